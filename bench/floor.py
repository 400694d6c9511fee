"""S4 churn on pusherd, soketi and the runtime floor, side by side in one run.

``bench.floor_server`` answers the churn cycle with canned bytes, so its CPU per
cycle is what Python + uvloop + the kernel cost before any protocol work. The table
shows how much of pusherd's cycle is its own code and how far the floor itself is
from soketi's native core.

Usage: ``python -m bench.floor [--seconds 8] [--output bench/results/floor.md]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.build import build_loadgen
from bench.gen import GEN_CPU, run_churn
from bench.procstat import cpu_seconds
from bench.report import publish
from bench.servers import SERVER_CPU, Server, free_port, pinned, start_server

RESULTS = Path(__file__).resolve().parent / "results"


def start_floor() -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.floor_server", str(port)]
    proc = subprocess.Popen(pinned(SERVER_CPU, argv), cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("floor server exited at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return Server("floor", port, proc.pid, proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("floor server did not listen within 15 s")


def measure(server: Server, binary: Path, seconds: float) -> tuple[float, float, int]:
    """Cycles/s, server CPU µs per cycle, errors."""
    c0 = cpu_seconds(server.pid)
    res = run_churn(binary, server.port, duration=seconds, concurrency=32, channels=32)
    c1 = cpu_seconds(server.pid)
    cycles = max(int(res["cycles"]), 1)
    return res["cycles"] / res["elapsed"], (c1 - c0) * 1e6 / cycles, int(res["errors"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--servers", default="floor,pusherd,soketi")
    parser.add_argument("--output", type=Path, default=RESULTS / "floor.md")
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {GEN_CPU})
    binary = build_loadgen()
    rows = []
    for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
        print(f"[bench] churn on {name} ...", file=sys.stderr)
        server = start_floor() if name == "floor" else start_server(name)
        try:
            rate, cost, errors = measure(server, binary, args.seconds)
        finally:
            server.stop()
        rows.append((name, rate, cost, errors))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run {stamp}: connect + subscribe + close churn, 32 slots, {args.seconds:g} s each; "
        f"server on CPU {SERVER_CPU}, C load generator on CPU {GEN_CPU}.",
        "",
        "| server | cycles/s | server CPU µs/cycle | errors |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {r:.0f} | {c:.0f} | {e} |" for n, r, c, e in rows]
    table = "\n".join(lines) + "\n"
    publish(table, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
