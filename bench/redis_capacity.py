"""What one Redis shard carries: pusherd's own commands, driven by ``redis-benchmark``.

    .venv/bin/python -m bench.redis_capacity [--requests 200000]

One redis-server (no persistence) on loopback, with pusherd's Lua scripts loaded. For
each operation ``redis-benchmark`` sends ``--requests`` commands over 50 connections,
16 pipelined, so the server and not the client is the limit:

* ``publish`` (fan-out): ``PUBLISH`` of a 100-byte envelope to a channel that 1 or 10
  subscriber connections listen on (10 = 10 nodes with subscribers on that channel);
* ``subscribe count``: ``add_subscriber.lua``, run when a socket subscribes;
* ``presence join`` / ``presence leave``: ``join_presence.lua`` / ``leave_presence.lua``
  on presence channels of up to 10 members (socket and user ids random out of 10).

Prints a Markdown table of requests/s. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from importlib.resources import files

import redis

from tests.redis_server import RedisServer

__all__ = ["main"]

PAYLOAD = "x" * 100
BASE = "pusherd"


def _log(text: str) -> None:
    print(f"[redis-capacity] {text}", file=sys.stderr, flush=True)


def _bench(port: int, requests: int, command: list[str]) -> float:
    argv = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", "50", "-P", "16"]
    argv += ["-r", "10", "--csv", *command]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
    # header, then "test","rps",...: the test name is the command, quotes and all
    found = re.search(r'","([0-9.]+)","', out.split("\n", 1)[1])
    if found is None:
        raise RuntimeError(f"unexpected redis-benchmark output: {out!r}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args(argv)
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("bench.redis_capacity needs redis-benchmark (Debian: redis-tools)")
    source = files("pusherd.brokers") / "lua"
    rows: list[tuple[str, float]] = []
    with ExitStack() as stack:
        server = stack.enter_context(RedisServer())
        client = stack.enter_context(redis.Redis(port=server.port))
        sha = {
            name: client.script_load((source / f"{name}.lua").read_text("utf-8"))
            for name in ("add_subscriber", "join_presence", "leave_presence")
        }
        channel = f"{BASE}:app:news"
        for listeners in (1, 10):
            subscribers = [
                subprocess.Popen(
                    ["redis-cli", "-p", str(server.port), "subscribe", channel],
                    stdout=subprocess.DEVNULL,
                )
                for _ in range(listeners)
            ]
            try:
                while client.pubsub_numsub(channel)[0][1] < listeners:
                    pass
                _log(f"publish, {listeners} subscriber(s)")
                rate = _bench(server.port, args.requests, ["PUBLISH", channel, PAYLOAD])
                rows.append((f"publish, {listeners} subscriber connection(s)", rate))
            finally:
                for process in subscribers:
                    process.terminate()
                    process.wait(5)
        keys = [f"{BASE}:{kind}:app:presence-room" for kind in ("pu", "pc", "ps")]
        items = f"{BASE}:items:node-a"
        scripts = {
            "subscribe count (add_subscriber.lua)": [
                "EVALSHA", sha["add_subscriber"], "3", f"{BASE}:s:app:room", f"{BASE}:chs:app",
                items, "s__rand_int__", "node-a", "room", "s\napp\nroom\n__rand_int__",
            ],
            "presence join (join_presence.lua)": [
                "EVALSHA", sha["join_presence"], "4", *keys, items, "s__rand_int__",
                "u__rand_int__", '{"user_id":"u","user_info":{"name":"a user"}}', "0",
                "p\napp\npresence-room\ns__rand_int__",
            ],
            "presence leave (leave_presence.lua)": [
                "EVALSHA", sha["leave_presence"], "4", *keys, items, "s__rand_int__",
                "p\napp\npresence-room\ns__rand_int__",
            ],
        }  # fmt: skip
        for name, command in scripts.items():
            _log(name)
            rows.append((name, _bench(server.port, args.requests, command)))
    print("| operation on one redis-server | requests/s |")
    print("|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
