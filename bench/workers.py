"""``pusherd serve --workers N``: REST and churn rates with 1 and 2 worker processes.

    .venv/bin/python -m bench.workers [--seconds 8] [--output bench/results/workers.md]

Each configuration runs the Redis driver against one local ``redis-server``. The
server is not pinned (the point of workers is to use every core); the C load
generator stays pinned to CPU 1 as in ``bench.compare``, so on a 2-core machine the
second worker shares a core with the generator and with redis-server. Server CPU is
summed over the master and every worker process.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
import tempfile
import time
from pathlib import Path

from bench.build import build_loadgen
from bench.cluster import start_node, start_redis
from bench.gen import run_churn, run_pub
from bench.procstat import cpu_seconds
from bench.report import publish
from bench.servers import Server

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"


def _family(pid: int) -> list[int]:
    """``pid`` and its children (the workers), from ``/proc``."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(child) for child in children]
    return pids


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a worker that already exited
            total += cpu_seconds(pid)
    return total


def start_workers(work: Path, redis_url: str, workers: int) -> tuple[Server, list[int]]:
    server = start_node(work, redis_url, f"workers{workers}", None, workers)
    assert server.proc is not None
    proc = server.proc
    deadline = time.monotonic() + 30
    while len(_family(proc.pid)) < workers + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # every worker has its listener open before load starts
    return server, _family(proc.pid)


def measure(
    server: Server, pids: list[int], redis_pid: int, binary: Path, seconds: float
) -> dict[str, float]:
    c0, r0 = _cpu(pids), _cpu([redis_pid])
    pub = run_pub(binary, server.port, rate=0, duration=seconds, conns=16, prefix="nobody")
    c1, r1 = _cpu(pids), _cpu([redis_pid])
    churn = run_churn(binary, server.port, duration=seconds, concurrency=64, channels=64)
    c2 = _cpu(pids)
    return {
        "rest": pub["ok"] / pub["elapsed"],
        "rest_cpu_us": (c1 - c0) * 1e6 / max(pub["ok"], 1),
        "rest_bad": pub["bad"],
        "gen_cpu": pub["cpu_s"] / pub["elapsed"],
        "churn": churn["cycles"] / churn["elapsed"],
        "churn_cpu_us": (c2 - c1) * 1e6 / max(churn["cycles"], 1),
        "churn_errors": churn["errors"],
        "server_cpu": (c1 - c0) / pub["elapsed"],
        "redis_cpu": (r1 - r0) / pub["elapsed"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "workers.md")
    args = parser.parse_args(argv)
    binary = build_loadgen()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pusherd-workers-") as tmp:
        work = Path(tmp)
        redis, url = start_redis(work)
        try:
            for workers in (1, 2):
                print(f"[workers] --workers {workers} ...", file=sys.stderr, flush=True)
                server, pids = start_workers(work, url, workers)
                try:
                    rows.append((workers, measure(server, pids, redis.pid, binary, args.seconds)))
                finally:
                    server.stop()
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run {stamp}: Redis driver, server unpinned, C load generator on CPU 1; "
        f"{args.seconds:g} s per figure. REST: signed POST /events flat out on 16 keep-alive "
        "connections; churn: connect + subscribe + close on 64 slots.",
        "",
        "| workers | REST req/s | REST server CPU µs/req | churn cycles/s "
        "| churn server CPU µs/cycle | CPU during REST: server / redis-server / generator "
        "| errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for workers, m in rows:
        lines.append(
            f"| {workers} | {m['rest']:.0f} | {m['rest_cpu_us']:.0f} | {m['churn']:.0f} "
            f"| {m['churn_cpu_us']:.0f} "
            f"| {m['server_cpu']:.0%} / {m['redis_cpu']:.0%} / {m['gen_cpu']:.0%} "
            f"| {int(m['rest_bad'])} bad, {int(m['churn_errors'])} churn |"
        )
    if len(rows) == 2:
        one, two = rows[0][1], rows[1][1]
        lines += [
            "",
            f"2 workers / 1 worker: REST x{two['rest'] / one['rest']:.2f}, "
            f"churn x{two['churn'] / one['churn']:.2f}.",
        ]
    table = "\n".join(lines) + "\n"
    publish(table, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
