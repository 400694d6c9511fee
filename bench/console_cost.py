"""What the debug console costs on the hot paths, in one interleaved run (issue 12).

    python -m bench.console_cost [--full] [--stream-rate N]

Three variants of the working tree, each scenario run on each in turn (a fresh
``pusherd serve`` per run, pinned like ``bench.compare``: the server on ``SERVER_CPU``,
the load generator and this process on ``GEN_CPU``):

- ``off``: the console disabled (the default config);
- ``idle``: ``[console] enabled = true`` with a password, nobody logged in;
- ``watching``: the console enabled and one watcher, a thread of this process: it logs in
  over HTTP, opens the app's live log (``api/apps/{id}/stream?rate=N``, default the
  slider's maximum, 1000 lines/s) and reads it for the whole scenario, counting the lines
  by type and both kinds of "N lines skipped" marker (the relay's per-node cap, sent as a
  ``skipped`` line, and the stream's rate cap, an ``event: skipped``), and once a second
  times ``GET api/apps/{id}/channels`` (the console's responsiveness under load).

S1 is the 1k fan-out (a fixed 20k deliveries/s, then the ramp to saturation), S4 the
connect + subscribe + close churn, public and presence. The first table has the figures,
the ratios idle/off and watching/off and the scenarios' notes (generator and server CPU
shares); the second what the watcher saw per scenario, with the REST publishes the
console's stats counted meanwhile (one ``api_message`` line per published event, never
one per subscriber: 1.000 per publish when nothing was skipped). The watcher shares
``GEN_CPU`` with the generator, so a wall-clock rate of ``watching`` can fall because the
generator got less CPU: compare the CPU-per-unit rows. Read the ratios against their
run-to-run noise: other work on the machine moves them by several percent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.build import build_loadgen
from bench.compare import _raise_fd_limit
from bench.gen import GEN_CPU
from bench.history_cost import _start
from bench.scenarios import Figure, Scale, churn, fixed_load
from bench.servers import APP_ID, ROOT, Server

__all__ = ["WatchReport", "Watcher", "main"]

CONSOLE_PATH = "/console"
PROBE_EVERY = 1.0
MAX_RECONNECTS = 20
VARIANTS = ("off", "idle", "watching")
SETTLE = 1.0  # > relay FLUSH + stream TICK: what was logged before the end arrives


@dataclass
class WatchReport:
    """What one watcher saw over one scenario."""

    by_type: Counter[str] = field(default_factory=Counter)
    relay_markers: int = 0
    relay_skipped: int = 0
    stream_markers: int = 0
    stream_skipped: int = 0
    probe_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    reconnects: int = 0
    publishes: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def lines(self) -> int:
        """Lines received, the relay's skipped markers not counted."""
        return sum(n for kind, n in self.by_type.items() if kind != "skipped")


class Watcher:
    """One console viewer of ``APP_ID`` on its own thread (and event loop).

    ``start`` returns once the stream is open (the server then watches the app);
    ``stop`` closes it and returns the report.
    """

    def __init__(self, port: int, password: str, rate: int) -> None:
        self.base = f"http://127.0.0.1:{port}{CONSOLE_PATH}"
        self.password = password
        self.rate = rate
        self.report = WatchReport()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-watcher", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._last_id = ""

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        if not self._opened.wait(timeout) or self.report.errors:
            self.stop()
            raise RuntimeError(f"the console stream did not open: {self.report.errors}")

    def stop(self, settle: float = 0.0, timeout: float = 20.0) -> WatchReport:
        """Stop reading after ``settle`` s (the lines of the last tick still arrive)."""
        if settle and self._thread.is_alive():
            time.sleep(settle)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.report.errors.append(f"watcher did not stop within {timeout} s")
        return self.report

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # reported, and start() or the table shows it
            self.report.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._opened.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=self.base, timeout=10.0) as http:
            login = await http.post("/login", data={"password": self.password})
            if login.status_code != 303:
                raise RuntimeError(f"login answered {login.status_code}")
            publishes0 = await self._publishes(http)
            reader = asyncio.create_task(self._read(http))
            prober = asyncio.create_task(self._probe(http))
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, prober, stopped):
                task.cancel()
            for task in (reader, prober):
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # a reader that failed raises here
            self.report.publishes = await self._publishes(http) - publishes0

    async def _publishes(self, http: httpx.AsyncClient) -> float:
        """The node's running total of REST publish calls, from the console's stats."""
        response = await http.get(f"/api/apps/{APP_ID}/stats")
        response.raise_for_status()
        return float(response.json()["now"]["api_messages"])

    async def _read(self, http: httpx.AsyncClient) -> None:
        url = f"/api/apps/{APP_ID}/stream?rate={self.rate}"
        timeout = httpx.Timeout(10.0, read=None)
        for attempt in range(MAX_RECONNECTS + 1):
            if attempt:
                self.report.reconnects += 1
            headers = {"last-event-id": self._last_id} if self._last_id else {}
            try:
                async with http.stream("GET", url, headers=headers, timeout=timeout) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"stream answered {response.status_code}")
                    self._opened.set()
                    await self._consume(response)
            except httpx.HTTPError as exc:
                self.report.errors.append(f"stream: {type(exc).__name__}: {exc}")
        raise RuntimeError(f"the stream ended {MAX_RECONNECTS + 1} times")

    async def _consume(self, response: httpx.Response) -> None:
        report = self.report
        event = ""
        async for raw in response.aiter_lines():
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("id: "):
                self._last_id = raw[4:]
            elif raw.startswith("data: "):
                data: Any = json.loads(raw[6:])
                if event == "skipped":
                    report.stream_markers += 1
                    report.stream_skipped += int(data["count"])
                elif event == "lines":
                    now_ms = time.time() * 1000
                    for line in data:
                        kind = str(line.get("type"))
                        report.by_type[kind] += 1
                        if kind == "skipped":
                            report.relay_markers += 1
                            report.relay_skipped += int(line.get("count", 0))
                        elif isinstance(line.get("t"), int):
                            report.lag_ms.append(now_ms - line["t"])
            elif not raw:
                event = ""

    async def _probe(self, http: httpx.AsyncClient) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY)
            t0 = time.perf_counter()
            try:
                response = await http.get(f"/api/apps/{APP_ID}/channels")
            except httpx.HTTPError as exc:
                self.report.errors.append(f"probe: {type(exc).__name__}: {exc}")
                continue
            if response.status_code == 200:
                self.report.probe_ms.append((time.perf_counter() - t0) * 1000)
            else:
                self.report.errors.append(f"probe answered {response.status_code}")


def _console_config(password: str) -> str:
    return f'\n[console]\nenabled = true\npassword = "{password}"\npath = "{CONSOLE_PATH}"\n'


def _p50_max(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def _watch_row(key: str, report: WatchReport) -> str:
    kinds = ", ".join(
        f"{kind} {n}" for kind, n in report.by_type.most_common() if kind != "skipped"
    )
    api = report.by_type.get("api_message", 0)
    per_publish = f"{api / report.publishes:.3f}" if report.publishes else "—"
    cells = [
        key,
        str(report.lines),
        kinds or "—",
        f"{report.relay_markers} ({report.relay_skipped} lines)",
        f"{report.stream_markers} ({report.stream_skipped} lines)",
        f"{report.publishes:.0f} / {per_publish}",
        f"{_p50_max(report.probe_ms)} ({len(report.probe_ms)})",
        _p50_max(report.lag_ms),
        f"{report.reconnects}; {'; '.join(report.errors[:3]) or 'none'}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_cost", description=__doc__)
    parser.add_argument("--full", action="store_true", help="full scale (default: quick)")
    parser.add_argument(
        "--stream-rate", type=int, default=1000, help="the watcher's ?rate= (lines/s, 1-1000)"
    )
    args = parser.parse_args(argv)
    scale = Scale() if args.full else Scale.quick()
    _raise_fd_limit()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {GEN_CPU})  # this process and the watcher thread
    binary = build_loadgen()
    password = secrets.token_urlsafe(18)
    configs = {"off": "", "idle": _console_config(password), "watching": _console_config(password)}
    scenarios: list[tuple[str, Callable[[Server, Path, Scale], list[Figure]]]] = [
        ("S1", lambda s, b, sc: fixed_load(s, b, sc.fanout_subs[0], sc)),
        ("S4", churn),
    ]
    results: dict[str, dict[tuple[str, str], Figure]] = {name: {} for name in VARIANTS}
    watched: list[tuple[str, WatchReport]] = []
    for key, run in scenarios:
        for name in VARIANTS:
            print(f"[bench] {key} on {name} ...", file=sys.stderr)
            server = _start(name, ROOT, configs[name])
            watcher: Watcher | None = None
            try:
                if name == "watching":
                    watcher = Watcher(server.port, password, args.stream_rate)
                    watcher.start()
                for figure in run(server, binary, scale):
                    results[name][(figure.scenario, figure.name)] = figure
            finally:
                if watcher is not None:
                    watched.append((key, watcher.stop(settle=SETTLE)))
                server.stop()
    scale_name = "full" if args.full else "quick"
    print(f"{scale_name} scale, watcher stream rate {args.stream_rate} lines/s\n")
    print(
        "| scenario | figure | off | idle | watching | idle/off | watching/off "
        "| notes (off; idle; watching) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for cell, figure in results["off"].items():
        row = [results[name].get(cell) for name in VARIANTS]
        values = [f"{f.value:.3g} {f.unit}" if f else "—" for f in row]
        ratios = [f"{f.value / figure.value:.3f}" if f and figure.value else "—" for f in row[1:]]
        notes = "; ".join(f.note for f in row if f) if any(f and f.note for f in row) else ""
        print(f"| {cell[0]} | {cell[1]} | {' | '.join(values)} | {' | '.join(ratios)} | {notes} |")
    print(
        "\n| watcher | lines | by type | relay skipped markers | stream skipped markers "
        "| REST publishes / api_message lines per publish | API GET channels p50 / max ms "
        "(probes) | line lag p50 / max ms | reconnects; errors |"
    )
    print("|---|---:|---|---|---|---|---|---|---|")
    for key, report in watched:
        print(_watch_row(key, report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
