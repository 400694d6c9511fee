"""Smoke test of the bench harness: a tiny fan-out against a real pusherd subprocess.

No timing assertions: the benchmark is a tool, not a test. This only proves the harness
builds, connects, publishes through the signed REST API and counts every delivery once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.build import build_loadgen
from bench.floor import start_floor
from bench.gen import Subscribers, run_churn, run_pub
from bench.servers import Server, start_pusherd

__all__: list[str] = []

SUBSCRIBERS = 20


@pytest.fixture(scope="module")
def loadgen() -> Path:
    if shutil.which("gcc") is None or not Path("/usr/include/openssl/hmac.h").exists():
        pytest.skip("bench needs gcc and the OpenSSL headers")
    return build_loadgen()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = start_pusherd(pin=False)
    try:
        yield srv
    finally:
        srv.stop()


def test_smoke_fanout_delivers_every_event_once(loadgen: Path, server: Server) -> None:
    subs = Subscribers(loadgen, server.port, SUBSCRIBERS, prefix="smoke", connect_timeout=20)
    try:
        ready = subs.ready()
        assert (ready.subscribed, ready.failed) == (SUBSCRIBERS, 0)
        pub = run_pub(loadgen, server.port, rate=20, duration=1.0, prefix="smoke", conns=2)
        assert pub["ok"] > 0
        assert pub["bad"] == 0
        expected = pub["ok"] * SUBSCRIBERS
        stats = subs.wait(expected, timeout=10)
        assert stats["deliveries"] == expected
        assert stats["dups"] == 0
        assert stats["late"] == 0
        assert stats["closed"] == 0
    finally:
        subs.close()


def test_smoke_churn_completes_cycles(loadgen: Path, server: Server) -> None:
    result = run_churn(loadgen, server.port, duration=0.5, concurrency=2, presence=True)
    assert result["cycles"] > 0
    assert result["errors"] == 0


def test_smoke_floor_server_answers_the_churn_cycle(loadgen: Path) -> None:
    floor = start_floor()
    try:
        result = run_churn(loadgen, floor.port, duration=0.5, concurrency=2)
    finally:
        floor.stop()
    assert result["cycles"] > 0
    assert result["errors"] == 0


def test_smoke_rest_with_a_new_connection_per_request(loadgen: Path, server: Server) -> None:
    pub = run_pub(loadgen, server.port, rate=50, duration=0.5, prefix="nobody", close=True)
    assert pub["ok"] > 0
    assert (pub["bad"], pub["errors"]) == (0, 0)
    assert pub["reconnects"] == pub["ok"]


def test_report_table_has_a_baseline_column_and_ratio() -> None:
    from bench.report import render_table
    from bench.scenarios import Figure

    def fig(value: float) -> Figure:
        return Figure("S4 churn", "CPU µs/cycle", value, "µs", "lower")

    table = render_table(
        {"pusherd": [fig(100.0)], "pusherd/baseline": [fig(125.0)], "soketi": [fig(80.0)]}
    )
    header = table.splitlines()[0]
    assert header.split(" | ")[2:7] == [
        "pusherd",
        "baseline",
        "soketi",
        "pusherd/soketi",
        "pusherd/baseline",
    ]
    row = table.splitlines()[2]
    assert "1.25 ❌" in row and "0.80 ✅" in row


def test_report_median_of_rounds_keeps_the_middle_value_and_names_the_spread() -> None:
    from bench.report import median_figures
    from bench.scenarios import Figure

    def fig(value: float, note: str = "") -> Figure:
        return Figure("S3 REST", "CPU µs/request", value, "µs", "lower", note)

    failed = Figure("S3 REST", "CPU µs/request", 0, "", "lower", "crashed")
    merged = median_figures([[fig(50.0, "a")], [fig(40.0, "b")], [failed], [fig(44.0, "c")]])
    assert [f.value for f in merged] == [44.0]
    assert merged[0].note.startswith("median of 3, 40.00 µs–50.00 µs; c")
    assert median_figures([[fig(7.0)]]) == [fig(7.0)]


@pytest.mark.redis
def test_smoke_redis_capacity_measures_every_operation(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        pytest.skip("needs redis-server and redis-benchmark")
    from bench import redis_capacity

    assert redis_capacity.main(["--requests", "2000"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    rates = {
        name.strip(): float(rate.strip(" |").replace(",", ""))
        for name, rate in (row[1:].rsplit("|", 2)[:2] for row in rows[1:])
    }
    assert len(rates) == 5 and all(rate > 0 for rate in rates.values()), rates
