"""``python -m bench.compare``: run the scenarios against pusherd and soketi in one run.

Each scenario gets a freshly started server (pinned to CPU 0) and the load generator runs
pinned to CPU 1. The markdown table goes to stdout and to ``bench/results/latest.md``.
``--baseline REV`` adds pusherd as of commit ``REV`` (``bench.baseline``) as one more
server in the same run, and a ``pusherd/baseline`` ratio column. ``--repeat N`` runs every
scenario N times per server, interleaved, and reports medians with their spread: on a shared
or virtual machine one round moves by 10-30 %, so before/after claims want N >= 3.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import sys
import traceback
from pathlib import Path

from bench.baseline import Baseline, prepare_baseline
from bench.build import build_loadgen
from bench.gen import GEN_CPU
from bench.report import median_figures, publish, render_table
from bench.scenarios import SCENARIOS, Figure, Scale, Scenario
from bench.servers import BASELINE, start_server

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"


def _raise_fd_limit() -> None:
    """Children inherit the limit: lift the soft limit to the hard one (20,000 here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run_one(
    scenario: Scenario,
    name: str,
    args: argparse.Namespace,
    baseline: Baseline | None,
    scale: Scale,
    binary: Path,
) -> list[Figure]:
    """One scenario on a freshly started server; a failure becomes a FAILED figure."""
    server = None
    try:
        server = start_server(name, tuple(args.pusherd_arg), baseline)
        figures = scenario.run(server, binary, scale)
    except Exception as exc:  # one failure must not lose the rest of the table
        traceback.print_exc()
        figures = [
            Figure(
                f"{scenario.key} {scenario.title}",
                "FAILED",
                0,
                "",
                "lower",
                f"{name}: {exc}"[:200],
            )
        ]
    finally:
        if server is not None:
            server.stop()
    for f in figures:
        print(f"[bench]   {f.name}: {f.value:.3f} {f.unit}  {f.note}", file=sys.stderr)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument(
        "--scenarios",
        default="S1,S2,S3,S4",
        help="comma-separated subset of S1..S5 (S5 = the 10 minute soak)",
    )
    parser.add_argument("--quick", action="store_true", help="reduced scale, about 2 minutes")
    parser.add_argument("--servers", default="pusherd,soketi")
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument(
        "--pusherd-arg",
        action="append",
        default=[],
        help="extra argument for `pusherd serve` (repeatable), e.g. --pusherd-arg=--log-level "
        "--pusherd-arg=warning",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run pusherd as of this git revision, for a before/after column",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run every scenario N times on every server, interleaved (the server order "
        "rotates each round), and report the median with its spread",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args(argv)

    wanted = {s.strip().upper() for s in args.scenarios.split(",") if s.strip()}
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    baseline: Baseline | None = None
    if args.baseline:
        print(f"[bench] installing the baseline {args.baseline} ...", file=sys.stderr)
        baseline = prepare_baseline(args.baseline)
        servers.insert(servers.index("pusherd") + 1 if "pusherd" in servers else 0, BASELINE)
    scale = Scale.quick() if args.quick else Scale()
    _raise_fd_limit()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {GEN_CPU})
    binary = build_loadgen()

    results: dict[str, list[Figure]] = {name: [] for name in servers}
    rounds = max(1, args.repeat)
    for scenario in SCENARIOS:
        if scenario.key not in wanted:
            continue
        runs: dict[str, list[list[Figure]]] = {name: [] for name in servers}
        for round_ in range(rounds):
            turn = round_ % len(servers)
            for name in servers[turn:] + servers[:turn]:
                label = f" (round {round_ + 1}/{rounds})" if rounds > 1 else ""
                print(
                    f"[bench] {scenario.key} {scenario.title} on {name}{label} ...", file=sys.stderr
                )
                runs[name].append(_run_one(scenario, name, args, baseline, scale, binary))
        for name in servers:
            results[name].extend(median_figures(runs[name]))

    if "S5" in wanted:
        from bench.soak import run_soak

        for name in servers:
            results[name].extend(
                run_soak(name, binary, args.soak_minutes * 60, RESULTS, tuple(args.pusherd_arg))
            )

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    extra = f" pusherd args: `{' '.join(args.pusherd_arg)}`." if args.pusherd_arg else ""
    if baseline is not None:
        extra += f" Baseline: {args.baseline} = {baseline.commit[:10]}."
    if rounds > 1:
        extra += f" Each figure is the median of {rounds} interleaved rounds."
    header = (
        f"Run {stamp}, {'quick' if args.quick else 'full'} scale, scenarios "
        f"{','.join(sorted(wanted))}; server on CPU 0, C load generator on CPU {GEN_CPU}."
        f"{extra}\n"
    )
    table = render_table(results, header)
    publish(table, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
