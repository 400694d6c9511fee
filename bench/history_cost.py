"""What channel history and idempotency keys cost on the hot paths, in one interleaved run.

    python -m bench.history_cost [--baseline REV] [--full]

Three servers, each scenario run on each in turn (fresh process, pinned like
``bench.compare``): ``base`` is pusherd at ``REV`` (default: the merge base with
``main``, exported with ``git archive`` into a temp dir), ``this`` is the working tree
with no history rule, ``history`` the working tree with a history rule for S1's channel
(``fan*``). S1 is the 1k fan-out at a fixed rate, S3 the keep-alive REST publish (no
keys). Read the ratios against their run-to-run noise: other work on the machine moves
them by several percent.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.build import build_loadgen
from bench.compare import _raise_fd_limit
from bench.scenarios import Figure, Scale, fixed_load, rest_rate
from bench.servers import ROOT, Server, start_pusherd

__all__ = ["main"]

HISTORY_RULE = '\n[[apps.history]]\nchannel_prefix = "fan"\nmax_events = 50\n'


def _export(rev: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="pusherd-base-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "pusherd"], check=True, capture_output=True
    ).stdout
    archive_path = target / "base.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    return target


def _start(name: str, source: Path, extra_config: str) -> Server:
    """A server from the tree at ``source`` with ``extra_config``, logging warnings only."""
    return start_pusherd(
        extra_args=("--log-level", "warning"), cwd=source, name=name, extra_config=extra_config
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history_cost", description=__doc__)
    parser.add_argument("--baseline", default="")
    parser.add_argument("--full", action="store_true", help="full scale (default: quick)")
    args = parser.parse_args(argv)
    rev = (
        args.baseline
        or subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    scale = Scale() if args.full else Scale.quick()
    _raise_fd_limit()
    binary = build_loadgen()
    base = _export(rev)
    variants = [("base", base, ""), ("this", ROOT, ""), ("history", ROOT, HISTORY_RULE)]
    scenarios: list[tuple[str, Callable[[Server, Path, Scale], list[Figure]]]] = [
        ("S1", lambda s, b, sc: fixed_load(s, b, sc.fanout_subs[0], sc)),
        ("S3", rest_rate),
    ]
    results: dict[str, dict[tuple[str, str], Figure]] = {name: {} for name, _, _ in variants}
    for key, run in scenarios:
        for name, source, extra in variants:
            print(f"[bench] {key} on {name} ...", file=sys.stderr)
            server = _start(name, source, extra)
            try:
                for figure in run(server, binary, scale):
                    results[name][(figure.scenario, figure.name)] = figure
            finally:
                server.stop()
    print(f"baseline {rev[:10]}, {'full' if args.full else 'quick'} scale\n")
    print("| scenario | figure | base | this | history | this/base | history/base |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for cell, figure in results["base"].items():
        row = [results[name].get(cell) for name in ("base", "this", "history")]
        values = [f"{f.value:.3g} {f.unit}" if f else "—" for f in row]
        ratios = [f"{f.value / figure.value:.3f}" if f and figure.value else "—" for f in row[1:]]
        print(f"| {cell[0]} | {cell[1]} | {' | '.join(values)} | {' | '.join(ratios)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
