"""Cluster benchmark: cross-node latency and fan-out with 2 Redis nodes vs 1.

    .venv/bin/python -m bench.cluster [--subscribers 2000] [--seconds 4] [--steps 6]
        [--topology single sentinel cluster]

1. **Latency**: subscribers on node B, signed REST publishes on node A at a modest rate:
   publish-to-receive p50/p99 across nodes (through Redis pub/sub), next to the same
   figure with publisher and subscribers on one node.
2. **Fan-out**: ``--subscribers`` sockets on one channel, all on one node, then split
   evenly over two nodes (REST on node A). The publish rate is raised x1.6 per step until
   deliveries fall below 90% of the offered load, p99 passes 1 s, or something is lost;
   the best loss-free deliveries/s is reported.

Nodes run ``python -m pusherd serve`` with ``driver = "redis"`` on one redis-server, or,
with ``--topology``, on each Redis deployment the tests use (``tests/redis_topology.py``:
``single``, ``tls``, ``sentinel`` = master + replica + Sentinel, ``cluster`` = 3 masters
with a replica each and sharded pub/sub), one after the other in the same run, so the
figures stand side by side; a Markdown table of them ends the output.
Node A is pinned to CPU 0 and node B to CPU 1 (``taskset``); the load generator
(``bench/loadgen.c``) is pinned to CPU 1 too, so on a 2-core machine the two-node figure
shares a core with the generator: read it with the CPU µs/delivery row. Everything
talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.build import build_loadgen
from bench.gen import Subscribers, run_pub
from bench.procstat import cpu_seconds
from bench.servers import APP_ID, APP_KEY, APP_SECRET, ROOT, Server, _wait_http, free_port, pinned
from tests.redis_topology import KINDS, Topologies
from tests.server_process import to_toml

__all__ = ["main"]


def _log(text: str) -> None:
    print(f"[cluster] {text}", file=sys.stderr, flush=True)


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("bench.cluster needs redis-server")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(work), "--loglevel", "warning"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    if proc.poll() is not None:
        raise RuntimeError("redis-server did not start")
    return proc, f"redis://127.0.0.1:{port}/0"


def start_node(
    work: Path,
    redis_url: str,
    name: str,
    cpu: int | None,
    workers: int = 1,
    scaling: dict[str, Any] | None = None,
) -> Server:
    """A ``pusherd serve`` on the Redis driver, pinned to ``cpu`` (None: not pinned);
    ``scaling`` replaces the ``[scaling]`` driver and URL (another Redis topology)."""
    port = free_port()
    config = work / f"{name}.toml"
    settings = scaling or {"driver": "redis", "redis_url": redis_url}
    config.write_text(
        to_toml(
            {
                "server": {"host": "127.0.0.1", "port": port, "workers": workers},
                "scaling": {**settings, "node_id": name},
                "apps": [{"id": APP_ID, "key": APP_KEY, "secret": APP_SECRET}],
            }
        )
    )
    argv = [sys.executable, "-m", "pusherd", "serve", "--config", str(config)]
    if cpu is not None:
        argv = pinned(cpu, argv)
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    log.close()
    server = Server(name, port, proc.pid, proc, work)
    _wait_http(port, "/ready", 30, proc)
    return server


class Seq:
    """Sequence numbers continue across publisher runs so receivers never see a repeat."""

    base = 0


def window(
    binary: Path,
    publisher: Server,
    groups: list[tuple[Subscribers, int]],
    nodes: list[Server],
    rate: float,
    seconds: float,
    seq: Seq,
    prefix: str,
) -> dict[str, float]:
    """Publish at ``rate`` events/s on ``publisher`` for ``seconds``; sum every group."""
    total = sum(n for _, n in groups)
    for subs, _ in groups:
        subs.reset()
    c0, t0 = sum(cpu_seconds(node.pid) for node in nodes), time.monotonic()
    pub = run_pub(
        binary,
        publisher.port,
        rate=rate,
        duration=seconds,
        seq_base=seq.base,
        prefix=prefix,
        conns=8,
    )
    seq.base = int(pub["last_seq"])
    during = sum(subs.stats()["deliveries"] for subs, _ in groups)
    finals = [subs.wait(int(pub["ok"]) * n, 15.0) for subs, n in groups]
    c1, t1 = sum(cpu_seconds(node.pid) for node in nodes), time.monotonic()
    delivered = sum(final["deliveries"] for final in finals)
    expected = int(pub["ok"]) * total
    return {
        "offered": rate * total,
        "deliveries_per_s": during / pub["elapsed"],
        "p50_ms": max(final["p50_us"] for final in finals) / 1000,
        "p99_ms": max(final["p99_us"] for final in finals) / 1000,
        "loss": max(expected - delivered, 0),
        "dups": sum(final["dups"] for final in finals),
        "cpu_us_per_delivery": (c1 - c0) * 1e6 / max(delivered, 1),
        "nodes_cpu_share": (c1 - c0) / (t1 - t0),
    }


def latency(binary: Path, a: Server, b: Server, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seq = Seq()
    for label, host in (("same node (A→A)", a), ("cross node (A→B)", b)):
        prefix = f"lat{host.name}"
        subs = Subscribers(binary, host.port, 100, channels=1, prefix=prefix)
        try:
            subs.ready()
            window(binary, a, [(subs, 100)], [a, b], 50, 1.0, seq, prefix)  # warm-up
            out[label] = window(binary, a, [(subs, 100)], [a, b], 200, seconds, seq, prefix)
        finally:
            subs.close()
        _log(f"latency {label}: {out[label]}")
    return out


def fanout(
    binary: Path, nodes: list[Server], subscribers: int, seconds: float, steps: int
) -> dict[str, Any]:
    share = subscribers // len(nodes)
    prefix = f"fan{len(nodes)}"
    groups = [
        (Subscribers(binary, node.port, share, channels=1, prefix=prefix), share) for node in nodes
    ]
    seq = Seq()
    try:
        for subs, _ in groups:
            ready = subs.ready()
            if ready.subscribed < share:
                raise RuntimeError(
                    f"only {ready.subscribed}/{share} subscribed, {ready.failed} failed"
                )
        rate = 10.0
        window(binary, nodes[0], groups, nodes, rate, 1.0, seq, prefix)  # warm-up
        best: dict[str, float] | None = None
        for _ in range(steps):
            step = window(binary, nodes[0], groups, nodes, rate, seconds, seq, prefix)
            _log(f"{len(nodes)} node(s) @ {rate:.0f} ev/s: {step}")
            failed = (
                step["deliveries_per_s"] < 0.9 * step["offered"]
                or step["p99_ms"] > 1000
                or step["loss"]
            )
            if not failed and (best is None or step["deliveries_per_s"] > best["deliveries_per_s"]):
                best = step
            if failed:
                break
            rate *= 1.6
        return {"best": best}
    finally:
        for subs, _ in groups:
            subs.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--topology", nargs="+", choices=KINDS, default=None)
    args = parser.parse_args(argv)
    binary = build_loadgen()
    if args.topology is None:  # the original run: one redis-server, flat results
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pusherd-cluster-")))
            redis, url = start_redis(work)
            stack.callback(redis.wait, 5)
            stack.callback(redis.terminate)
            results = _run(stack, work, binary, args, url, None)
        print(json.dumps(results, indent=2))
        return 0
    by_topology: dict[str, Any] = {}
    with ExitStack() as outer:
        topologies = Topologies()
        outer.callback(topologies.close)
        for kind in args.topology:
            topology = topologies.get(kind)
            topology.flushall()
            _log(f"topology {kind}")
            with ExitStack() as stack:
                work = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="pusherd-cluster-"))
                )
                by_topology[kind] = _run(stack, work, binary, args, "", topology.scaling())
    print(json.dumps(by_topology, indent=2))
    print(_table(by_topology))
    return 0


def _run(
    stack: ExitStack,
    work: Path,
    binary: Path,
    args: argparse.Namespace,
    url: str,
    scaling: dict[str, Any] | None,
) -> dict[str, Any]:
    """Latency and fan-out on two nodes A and B (and fan-out on A alone)."""
    results: dict[str, Any] = {}
    a = start_node(work, url, "node-a", 0, scaling=scaling)
    stack.callback(a.stop)
    b = start_node(work, url, "node-b", 1, scaling=scaling)
    stack.callback(b.stop)
    results["latency"] = latency(binary, a, b, args.seconds)
    results["fanout 1 node"] = fanout(binary, [a], args.subscribers, args.seconds, args.steps)
    results["fanout 2 nodes"] = fanout(binary, [a, b], args.subscribers, args.seconds, args.steps)
    return results


def _table(by_topology: dict[str, Any]) -> str:
    lines = [
        "| topology | A→A p50 / p99 ms | A→B p50 / p99 ms "
        "| fan-out deliveries/s, 1 node / 2 nodes |",
        "|---|---|---|---|",
    ]
    for kind, results in by_topology.items():
        same = results["latency"]["same node (A→A)"]
        cross = results["latency"]["cross node (A→B)"]
        best = [(results[f"fanout {n}"]["best"] or {}) for n in ("1 node", "2 nodes")]
        rates = " / ".join(f"{b.get('deliveries_per_s', 0):,.0f}" for b in best)
        lines.append(
            f"| {kind} | {same['p50_ms']:.1f} / {same['p99_ms']:.1f} "
            f"| {cross['p50_ms']:.1f} / {cross['p99_ms']:.1f} | {rates} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
