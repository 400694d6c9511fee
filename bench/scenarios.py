"""Scenarios S1-S4: each runs against one freshly started server and returns its figures.

The main figure is server CPU time (utime+stime from ``/proc/PID/stat``) per unit of work,
which holds up on a noisy machine; rates and latencies are reported next to it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gen import Subscribers, run_churn, run_pub
from bench.procstat import cpu_seconds, fd_count, rss_kb
from bench.servers import Server

__all__ = ["SCENARIOS", "Figure", "Scale", "Scenario", "fixed_load", "measure_fanout"]


@dataclass(frozen=True)
class Scale:
    """How big and how long; ``quick()`` is the ~2 minute variant."""

    fanout_subs: tuple[int, ...] = (1000, 10000)
    fixed_deliveries: int = 20000
    fixed_seconds: float = 10.0
    ramp_seconds: float = 4.0
    ramp_steps: int = 10
    idle_sockets: tuple[int, int] = (10000, 19000)
    rest_seconds: float = 8.0
    rest_conns: int = 8
    churn_seconds: float = 8.0
    churn_concurrency: int = 32

    @staticmethod
    def quick() -> Scale:
        return Scale(
            fixed_seconds=4.0,
            ramp_seconds=2.0,
            ramp_steps=6,
            idle_sockets=(2000, 5000),
            rest_seconds=3.0,
            churn_seconds=3.0,
        )


@dataclass(frozen=True)
class Figure:
    """One measured number; ``better`` is "lower" or "higher"."""

    scenario: str
    name: str
    value: float
    unit: str
    better: str
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    run: Callable[[Server, Path, Scale], list[Figure]]


def _log(text: str) -> None:
    print(f"[bench]     {text}", file=sys.stderr)


def _drain(subs: Subscribers, expected: int, timeout: float = 15.0) -> dict[str, Any]:
    """Stats once ``expected`` deliveries arrived, or after ``timeout`` (then some were lost)."""
    return subs.wait(expected, timeout)


class _Seq:
    """Sequence numbers continue across publisher runs so receivers never see a repeat."""

    def __init__(self) -> None:
        self.base = 0


def measure_fanout(
    server: Server, binary: Path, subs: Subscribers, n: int, rate: float, seconds: float, seq: _Seq
) -> dict[str, float]:
    """Publish at ``rate`` events/s to one channel of ``n`` subscribers; measure one window."""
    subs.reset()
    st0 = subs.stats()
    c0, t0 = cpu_seconds(server.pid), time.monotonic()
    pub = run_pub(
        binary,
        server.port,
        rate=rate,
        duration=seconds,
        seq_base=seq.base,
        prefix="fan",
        conns=16,
    )
    seq.base = int(pub["last_seq"])
    st1 = subs.stats()
    expected = st0["deliveries"] + int(pub["ok"]) * n
    st2 = _drain(subs, expected)
    c1, t1 = cpu_seconds(server.pid), time.monotonic()
    delivered = st2["deliveries"] - st0["deliveries"]
    gen_cpu = (st2["cpu_s"] - st0["cpu_s"]) + pub["cpu_s"]
    return {
        "offered": rate * n,
        "pub_rate": pub["ok"] / pub["elapsed"],
        "deliveries_per_s": (st1["deliveries"] - st0["deliveries"]) / pub["elapsed"],
        "cpu_us_per_delivery": (c1 - c0) * 1e6 / max(delivered, 1),
        "server_cpu_share": (c1 - c0) / (t1 - t0),
        "p50_ms": st2["p50_us"] / 1000,
        "p99_ms": st2["p99_us"] / 1000,
        "loss": max(expected - st2["deliveries"], 0),
        "dups": st2["dups"],
        "bad": pub["bad"] + pub["errors"],
        "gen_cpu_share": gen_cpu / (t1 - t0),
        "resp_p99_ms": pub["resp_p99_us"] / 1000,
    }


def fixed_load(server: Server, binary: Path, n: int, scale: Scale) -> list[Figure]:
    """S1 for one subscriber count: fixed load, then ramp to saturation."""
    tag = f"S1 fan-out {n // 1000}k"
    subs = Subscribers(binary, server.port, n, channels=1, prefix="fan")
    try:
        ready = subs.ready()
        if ready.subscribed < n:
            raise RuntimeError(f"only {ready.subscribed}/{n} subscribed ({ready.failed} failed)")
        seq = _Seq()
        rate = scale.fixed_deliveries / n
        measure_fanout(server, binary, subs, n, rate, 1.0, seq)  # warm-up
        fixed = measure_fanout(server, binary, subs, n, rate, scale.fixed_seconds, seq)
        note = (
            f"loss {fixed['loss']}, dups {fixed['dups']}, gen CPU {fixed['gen_cpu_share']:.0%}, "
            f"server CPU {fixed['server_cpu_share']:.0%}"
        )
        k = scale.fixed_deliveries // 1000
        figures = [
            Figure(
                tag, f"CPU µs/delivery @{k}k/s", fixed["cpu_us_per_delivery"], "µs", "lower", note
            ),
            Figure(tag, f"p50 latency @{k}k/s", fixed["p50_ms"], "ms", "lower"),
            Figure(tag, f"p99 latency @{k}k/s", fixed["p99_ms"], "ms", "lower"),
            Figure(tag, f"REST p99 response @{k}k/s", fixed["resp_p99_ms"], "ms", "lower"),
        ]
        best = fixed
        for _ in range(scale.ramp_steps):
            rate *= 1.6
            step = measure_fanout(server, binary, subs, n, rate, scale.ramp_seconds, seq)
            _log(f"{tag} ramp: " + ", ".join(f"{k}={v:.4g}" for k, v in step.items()))
            if step["deliveries_per_s"] > best["deliveries_per_s"] and step["loss"] == 0:
                best = step
            if (
                step["deliveries_per_s"] < 0.9 * step["offered"]
                or step["p99_ms"] > 1000
                or step["loss"]
            ):
                break
        note = (
            f"p99 {best['p99_ms']:.1f} ms, gen CPU {best['gen_cpu_share']:.0%}, "
            f"server CPU {best['server_cpu_share']:.0%}"
        )
        if best["gen_cpu_share"] > 0.85:
            note += " (GENERATOR-BOUND: figure is a lower bound)"
        figures.append(
            Figure(tag, "saturation deliveries/s", best["deliveries_per_s"], "/s", "higher", note)
        )
        # Wall-clock saturation depends on how much of CPU 0 the server got on a shared
        # machine; deliveries per server CPU-second at that step does not.
        figures.append(
            Figure(
                tag,
                "deliveries per CPU-second at saturation",
                1e6 / best["cpu_us_per_delivery"],
                "/s",
                "higher",
            )
        )
        return figures
    finally:
        subs.close()


def idle_sockets(server: Server, binary: Path, scale: Scale, presence: bool) -> list[Figure]:
    """S2: RSS per idle subscribed socket and CPU per connect+subscribe."""
    kind = "presence" if presence else "public"
    tag = f"S2 idle {kind}"
    n1, n2 = scale.idle_sockets
    channels = max(n2 // 100, 1)  # <= 100 members per presence channel
    warm = Subscribers(binary, server.port, 200, channels=2, prefix="warm", presence=presence)
    try:
        warm.ready()
    finally:
        warm.close()
    time.sleep(1.0)
    base = rss_kb(server.pid)
    c0 = cpu_seconds(server.pid)
    first = Subscribers(
        binary, server.port, n1, channels=channels, prefix="idle", presence=presence
    )
    second: Subscribers | None = None
    try:
        r1 = first.ready()
        cpu_per = (cpu_seconds(server.pid) - c0) * 1e6 / max(r1.subscribed, 1)
        time.sleep(2.0)
        rss1 = rss_kb(server.pid)
        second = Subscribers(
            binary,
            server.port,
            n2 - n1,
            channels=channels,
            prefix="idle",
            presence=presence,
            id_base=n1,
        )
        r2 = second.ready()
        time.sleep(2.0)
        rss2 = rss_kb(server.pid)
        fds = fd_count(server.pid)
        held = r1.subscribed + r2.subscribed
        failed = r1.failed + r2.failed
        st = first.stats()
        note = f"{held}/{n2} subscribed, {failed} failed, {st['closed']} dropped, {fds} fds"
        return [
            Figure(
                tag,
                f"RSS KB/socket @{n1}",
                (rss1 - base) / max(r1.subscribed, 1),
                "KB",
                "lower",
                f"connect {r1.seconds:.1f} s",
            ),
            Figure(tag, f"RSS KB/socket @{n2}", (rss2 - base) / max(held, 1), "KB", "lower", note),
            Figure(
                tag,
                "CPU µs/connect+subscribe",
                cpu_per,
                "µs",
                "lower",
                f"{r1.subscribed / max(r1.seconds, 1e-9):.0f} subscribes/s",
            ),
        ]
    finally:
        first.close()
        if second is not None:
            second.close()


def _rate_and_cost(
    scenario: str,
    rate_name: str,
    cost_name: str,
    result: dict[str, Any],
    done: float,
    cpu: float,
    note: str,
    cost_note: str = "",
) -> list[Figure]:
    """A run's rate (``done`` per second) and the server CPU µs per unit of it."""
    return [
        Figure(scenario, rate_name, done / result["elapsed"], "/s", "higher", note),
        Figure(scenario, cost_name, cpu * 1e6 / max(int(done), 1), "µs", "lower", cost_note),
    ]


def rest_rate(server: Server, binary: Path, scale: Scale) -> list[Figure]:
    """S3: signed POST /events flat out to a channel without subscribers, over keep-alive
    connections, then with a new TCP connection per request."""
    figures = []
    for close in (False, True):
        how = ", new connection each" if close else ""
        c0 = cpu_seconds(server.pid)
        pub = run_pub(
            binary,
            server.port,
            rate=0,
            duration=scale.rest_seconds,
            conns=scale.rest_conns,
            prefix="nobody",
            close=close,
        )
        cpu = cpu_seconds(server.pid) - c0
        note = (
            f"{pub['bad']} bad, {pub['reconnects']} reconnects, gen CPU "
            f"{pub['cpu_s'] / pub['elapsed']:.0%}, server CPU {cpu / pub['elapsed']:.0%}"
        )
        figures += _rate_and_cost(
            "S3 REST",
            f"POST /events req/s{how}",
            f"CPU µs/request{how}",
            pub,
            pub["ok"],
            cpu,
            note,
            f"p99 response {pub['resp_p99_us'] / 1000:.1f} ms",
        )
    return figures


def churn(server: Server, binary: Path, scale: Scale) -> list[Figure]:
    """S4: connect + subscribe + close cycles, public and presence."""
    figures = []
    for presence in (False, True):
        kind = "presence join/leave" if presence else "connect+subscribe+close"
        c0 = cpu_seconds(server.pid)
        res = run_churn(
            binary,
            server.port,
            duration=scale.churn_seconds,
            concurrency=scale.churn_concurrency,
            presence=presence,
            channels=scale.churn_concurrency,
            prefix="ch",
        )
        cpu = cpu_seconds(server.pid) - c0
        note = (
            f"{res['errors']} errors, gen CPU {res['cpu_s'] / res['elapsed']:.0%}, "
            f"server CPU {cpu / res['elapsed']:.0%}"
        )
        figures += _rate_and_cost(
            "S4 churn", f"{kind} cycles/s", f"{kind} CPU µs/cycle", res, res["cycles"], cpu, note
        )
    return figures


SCENARIOS = [
    Scenario("S1", "fan-out 1k", lambda s, b, sc: fixed_load(s, b, sc.fanout_subs[0], sc)),
    Scenario("S1", "fan-out 10k", lambda s, b, sc: fixed_load(s, b, sc.fanout_subs[1], sc)),
    Scenario("S2", "idle public", lambda s, b, sc: idle_sockets(s, b, sc, presence=False)),
    Scenario("S2", "idle presence", lambda s, b, sc: idle_sockets(s, b, sc, presence=True)),
    Scenario("S3", "REST", rest_rate),
    Scenario("S4", "churn", churn),
]
