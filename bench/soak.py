"""S5: a bounded soak of churn + publish, sampling the server's RSS and fd count over time.

A fixed audience of subscribers receives a steady publish stream while connect/subscribe/close
churn runs beside it and a few slow consumers subscribe and then never read (the server should
cut them off instead of buffering for them). Samples go to ``results/soak-<server>.csv`` and a
plot of both servers to ``results/soak.png``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.gen import Subscribers, churn_process, pub_process
from bench.plot import write_plot
from bench.procstat import cpu_seconds, fd_count, rss_kb
from bench.scenarios import Figure
from bench.servers import APP_KEY, start_server

__all__ = ["run_soak"]

SUBSCRIBERS = 1000
CHANNELS = 10
RATE = 50  # events/s over all channels: 5,000 deliveries/s
PADDING = 1000  # bytes per event, so slow consumers fill their buffers
SLOW = 5
CHURN_RATE = 200  # connect+subscribe+close cycles/s
SAMPLE_EVERY = 5.0


def _slow_consumer(port: int) -> socket.socket:
    """A raw WebSocket client that subscribes and then never reads again."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        f"GET /app/{APP_KEY}?protocol=7&client=bench&version=1.0 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: c2xvdy1jb25zdW1lci0xMg==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    mask = b"\x11\x22\x33\x44"
    for index in range(CHANNELS):  # every channel: enough traffic to overflow any buffer
        payload = json.dumps(
            {"event": "pusher:subscribe", "data": {"channel": f"soak{index}", "auth": ""}}
        ).encode()
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


def _cut_off(sock: socket.socket) -> bool:
    """Drain what the server sent (bounded); True when it closed the connection."""
    sock.setblocking(False)
    for _ in range(100_000):
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True
    return False


def run_soak(
    name: str, binary: Path, seconds: float, results: Path, pusherd_args: tuple[str, ...] = ()
) -> list[Figure]:
    """Run the soak against server ``name`` for ``seconds``; returns its figures."""
    tag = "S5 soak"
    print(f"[bench] S5 soak on {name} for {seconds:.0f} s ...", file=sys.stderr)
    server = start_server(name, pusherd_args)
    subs = Subscribers(binary, server.port, SUBSCRIBERS, channels=CHANNELS, prefix="soak")
    slow: list[socket.socket] = []
    procs: list[subprocess.Popen[str]] = []
    rows: list[tuple[float, int, int, float, int]] = []
    try:
        subs.ready()
        slow = [_slow_consumer(server.port) for _ in range(SLOW)]
        subs.reset()
        t0, c0 = time.monotonic(), cpu_seconds(server.pid)
        procs.append(
            pub_process(
                binary,
                server.port,
                rate=RATE,
                duration=seconds,
                channels=CHANNELS,
                prefix="soak",
                padding=PADDING,
            )
        )
        procs.append(
            churn_process(binary, server.port, duration=seconds, concurrency=4, rate=CHURN_RATE)
        )
        end = t0 + seconds
        while True:
            now = time.monotonic()
            st = subs.stats()
            rows.append(
                (
                    now - t0,
                    rss_kb(server.pid),
                    fd_count(server.pid),
                    cpu_seconds(server.pid) - c0,
                    int(st["deliveries"]),
                )
            )
            if now >= end:
                break
            time.sleep(min(SAMPLE_EVERY, max(end - now, 0.05)))
        outs = []
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            outs.append(json.loads(out.strip().splitlines()[-1]))
        pub, churn = outs
        st = subs.wait(int(pub["ok"]) * (SUBSCRIBERS // CHANNELS), 15)
        cut = sum(_cut_off(s) for s in slow)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for s in slow:
            with contextlib.suppress(OSError):
                s.close()
        subs.close()
        server.stop()

    results.mkdir(parents=True, exist_ok=True)
    csv_path = results / f"soak-{name}.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seconds", "rss_kb", "fds", "server_cpu_s", "deliveries"])
        writer.writerows(rows)
    write_plot(results, "soak.png")

    expected = int(pub["ok"]) * (SUBSCRIBERS // CHANNELS)
    loss = max(expected - int(st["deliveries"]), 0)
    first_half = [r[1] for r in rows[: max(len(rows) // 2, 1)]]
    last = rows[-1]
    note = (
        f"{seconds / 60:.1f} min, loss {loss}, dups {st['dups']}, {churn['cycles']} churn cycles, "
        f"slow consumers cut off {cut}/{SLOW}"
    )
    return [
        Figure(tag, "RSS at end", last[1] / 1024, "MB", "lower", note),
        Figure(tag, "RSS growth, 2nd half", (last[1] - max(first_half)) / 1024, "MB", "lower"),
        Figure(tag, "fds at end", last[2], "", "lower", f"max {max(r[2] for r in rows)}"),
        Figure(tag, "p99 latency", st["p99_us"] / 1000, "ms", "lower"),
        Figure(tag, "server CPU share", 100 * last[3] / max(last[0], 1e-9), "%", "lower"),
    ]
