"""The console bench's watcher against a real pusherd subprocess with the console on.

No timing assertions: this proves the watcher logs in, reads the live log and counts one
``api_message`` line per REST publish, and that a wrong password stops it at once.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.build import build_loadgen
from bench.console_cost import Watcher, _console_config
from bench.gen import run_pub
from bench.history_cost import _start
from bench.servers import ROOT, Server

__all__: list[str] = []

PASSWORD = secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def loadgen() -> Path:
    if shutil.which("gcc") is None or not Path("/usr/include/openssl/hmac.h").exists():
        pytest.skip("bench needs gcc and the OpenSSL headers")
    return build_loadgen()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = _start("watching", ROOT, _console_config(PASSWORD))
    try:
        yield srv
    finally:
        srv.stop()


def test_watcher_counts_one_api_message_line_per_rest_publish(
    loadgen: Path, server: Server
) -> None:
    watcher = Watcher(server.port, PASSWORD, rate=1000)
    watcher.start()
    try:
        pub = run_pub(loadgen, server.port, rate=20, duration=1.0, prefix="watched", conns=1)
    finally:
        report = watcher.stop(settle=1.0)
    assert pub["ok"] > 0
    assert report.errors == []
    assert report.publishes == pub["ok"]
    assert report.by_type["api_message"] == pub["ok"]
    assert report.relay_skipped == report.stream_skipped == 0
    assert report.lines == sum(report.by_type.values())


def test_watcher_with_a_wrong_password_does_not_start(server: Server) -> None:
    watcher = Watcher(server.port, "not-the-password", rate=1000)
    with pytest.raises(RuntimeError, match="login answered 401"):
        watcher.start()
