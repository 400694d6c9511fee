"""RSS of the memory driver's channel history: 10,000 channels x 50 retained 100-byte events.

    python -m bench.history_memory [--channels 10000] [--events 50] [--size 100]

Runs each budget in a fresh child process (so one run's heap does not hide the next)
and prints the RSS growth next to what the store accounts for (payload plus
``ENTRY_OVERHEAD`` per event, ``RING_OVERHEAD`` per channel) and the budget: with the
default 8 MiB budget the store keeps what fits and evicts the rest; with a budget large
enough for everything it keeps all 500,000 events, and RSS shows whether the accounting
is honest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys

__all__ = ["main"]

MIB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _fill(channels: int, events: int, size: int, budget: int) -> dict[str, float]:
    from pusherd.brokers.base import Envelope
    from pusherd.brokers.memory import MemoryBroker

    broker = MemoryBroker()
    await broker.start(lambda envelope: None)
    body = b"x" * (size - 40)
    before = _rss()
    for _ in range(events):
        for c in range(channels):
            name = f"history-{c}"
            payload = b'{"event":"e","channel":"%s","data":"%s"}' % (name.encode(), body)
            payload = payload[:size]
            await broker.publish_history(Envelope("app", name, payload), events, 86400.0, budget)
    after = _rss()
    kept, accounted = broker.history_store.stats("app")
    return {
        "budget_mib": budget / MIB,
        "events_kept": kept,
        "accounted_mib": accounted / MIB,
        "rss_growth_mib": (after - before) / MIB,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--child-budget", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_budget:
        result = asyncio.run(_fill(args.channels, args.events, args.size, args.child_budget))
        print(json.dumps(result))
        return
    everything = args.channels * (args.events * (args.size + 200) + 1024)
    print(f"{args.channels} channels x {args.events} events x {args.size} bytes\n")
    print("| budget MiB | events kept | accounted MiB | RSS growth MiB |")
    print("|---:|---:|---:|---:|")
    for budget in (8 * MIB, everything + MIB):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.history_memory",
                f"--channels={args.channels}",
                f"--events={args.events}",
                f"--size={args.size}",
                f"--child-budget={budget}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out)
        print(
            f"| {r['budget_mib']:.0f} | {r['events_kept']:,.0f} | {r['accounted_mib']:.1f} "
            f"| {r['rss_growth_mib']:.1f} |"
        )


if __name__ == "__main__":
    main()
