"""``python -m bench.cycle``: what one connect + subscribe + close cycle costs pusherd.

Runs pusherd in this process (uvloop, the memory driver, the same wiring as ``serve``)
and the C load generator's churn loop against it for a few seconds, then prints the
server's CPU µs per cycle and, with ``--profile``, the Python function calls per cycle
(cProfile, which also slows every call: read its µs figure as relative only) and the
functions that make them. ``--rev REV`` measures an installed baseline instead
(``bench.baseline``), for before/after figures from the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.build import build_loadgen
from bench.gen import churn_process
from bench.servers import SERVER_CPU

__all__ = ["main"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(seconds: float, concurrency: int, profile: bool) -> dict[str, Any]:
    import uvicorn

    from pusherd.config import Config, ServerConfig
    from pusherd.server.app import create_app, uvicorn_protocols

    try:
        from pusherd.server.app import build
    except ImportError:  # a baseline from before the composition root
        from pusherd.server.app import create_node as build  # type: ignore[attr-defined,no-redef]

    config = replace(Config(), server=replace(ServerConfig(), host="127.0.0.1", port=0))
    parts = build(config)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, parts),
            host="127.0.0.1",
            port=0,
            **uvicorn_protocols(parts),
            lifespan="on",
            log_config=None,
            log_level="warning",
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded: 5 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    binary = build_loadgen()
    profiler = cProfile.Profile() if profile else None
    before = _cpu()
    if profiler is not None:
        profiler.enable()
    proc = churn_process(binary, port, duration=seconds, concurrency=concurrency)
    out, _ = await asyncio.get_running_loop().run_in_executor(None, proc.communicate)
    if profiler is not None:
        profiler.disable()
    cpu = _cpu() - before
    server.should_exit = True
    await task
    import json

    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    cycles = max(1, int(result["cycles"]))
    report: dict[str, Any] = {"cycles": cycles, "us_per_cycle": cpu / cycles * 1e6}
    if profiler is not None:
        stats = pstats.Stats(profiler)
        report["calls_per_cycle"] = stats.total_calls / cycles  # type: ignore[attr-defined]
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("ncalls").print_stats(
            int(os.environ.get("CYCLE_TOP", "25"))
        )
        report["top"] = text.getvalue()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="count calls with cProfile")
    parser.add_argument("--rev", help="measure pusherd as of this git revision instead")
    args = parser.parse_args(argv)
    if args.rev:
        from bench.baseline import prepare_baseline

        baseline = prepare_baseline(args.rev)
        # This bench package, but the baseline's pusherd: a path holding only ``bench``.
        shim = baseline.tree.parent / "bench-shim"
        shim.mkdir(exist_ok=True)
        link = shim / "bench"
        if not link.exists():
            link.symlink_to(Path(__file__).resolve().parent)
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != args.rev]
        rest = [a for a in rest if a != "--rev"]
        env = {**os.environ, "PYTHONPATH": str(shim)}
        return subprocess.call(
            [str(baseline.python), "-m", "bench.cycle", *rest], cwd=shim, env=env
        )
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {SERVER_CPU})
    import uvloop

    report = uvloop.run(_measure(args.seconds, args.concurrency, args.profile))
    print(f"cycles: {report['cycles']}  server CPU: {report['us_per_cycle']:.1f} µs/cycle")
    if "calls_per_cycle" in report:
        print(f"Python calls per cycle (cProfile): {report['calls_per_cycle']:.0f}")
        print(report["top"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
