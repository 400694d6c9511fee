"""``examples/Caddyfile`` in front of a real pusherd, with a real ``caddy run``.

The Caddyfile under test is the example itself: only its global block is swapped for
``admin off`` / ``auto_https off``, and its ``{$SITE_ADDRESS}`` / ``{$PUSHERD_UPSTREAMS}``
placeholders are filled from the environment, as in ``docker-compose.yml``. Clients (the
``websockets`` library, and pusher-js through ``tests/js/driver.js``) connect through Caddy,
and the official Pusher SDK triggers events through Caddy's ``/apps/...`` route.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.examples.roundtrip import (
    CONSOLE,
    WAIT,
    assert_console_stream,
    assert_roundtrip,
    next_event,
    sdk,
    stop,
)
from tests.server_process import ServerProcess, free_port

__all__: list[str] = []

CADDY = shutil.which("caddy")
NODE = shutil.which("node")
REPO = Path(__file__).resolve().parents[2]
CADDYFILE = REPO / "examples" / "Caddyfile"
DRIVER = REPO / "tests" / "js" / "driver.js"
GLOBAL_BLOCK = "{\n\tadmin {$CADDY_ADMIN:localhost:2019}\n}\n"

pytestmark = pytest.mark.skipif(CADDY is None, reason="caddy is not installed")


class Caddy:
    """A ``caddy run`` process serving the example Caddyfile on 127.0.0.1."""

    def __init__(self, upstream: str, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        text = CADDYFILE.read_text(encoding="utf-8")
        assert GLOBAL_BLOCK in text, "examples/Caddyfile's global block changed; update the test"
        self.config = workdir / "Caddyfile"
        self.config.write_text(
            text.replace(GLOBAL_BLOCK, "{\n\tadmin off\n\tauto_https off\n}\n"), encoding="utf-8"
        )
        self.log_path = workdir / "caddy.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # Caddy keeps state under $HOME / XDG dirs: keep it inside the test's directory.
            "HOME": str(workdir),
            "XDG_DATA_HOME": str(workdir / "data"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
            "SITE_ADDRESS": f"http://127.0.0.1:{self.port}",
            "PUSHERD_UPSTREAMS": upstream,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert CADDY is not None
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [CADDY, "run", "--config", str(self.config), "--adapter", "caddyfile"],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        # Ready when /up answers 200 *through* Caddy (listener up, upstream reachable).
        deadline = time.monotonic() + 15
        for _ in range(300):
            if self.proc.poll() is not None:
                raise AssertionError(self.describe(f"caddy exited with {self.proc.returncode}"))
            if self.get("/up")[0] == 200:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise AssertionError(self.describe("caddy did not proxy /up within 15 s"))

    def get(self, path: str) -> tuple[int | None, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError:
            return None, b""
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def describe(self, headline: str) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
        except OSError:
            tail = []
        return headline + "\n  caddy output tail:\n" + "\n".join("    " + line for line in tail)


@pytest.fixture(scope="module")
def pusherd() -> Iterator[ServerProcess]:
    with ServerProcess(CONSOLE) as server:
        yield server


@pytest.fixture(scope="module")
def caddy(pusherd: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Caddy]:
    proxy = Caddy(f"127.0.0.1:{pusherd.port}", tmp_path_factory.mktemp("caddy"))
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()


def test_caddy_routes_health_and_refuses_other_paths(caddy: Caddy) -> None:
    assert caddy.get("/up")[0] == 200
    assert caddy.get("/ready")[0] == 200
    assert caddy.get("/")[0] == 404
    assert caddy.get("/metrics")[0] == 404  # kept off the public proxy on purpose


async def test_caddy_websocket_subscriber_receives_rest_trigger(caddy: Caddy) -> None:
    await assert_roundtrip(caddy.port, "caddy")


@pytest.mark.node
@pytest.mark.skipif(NODE is None or not DRIVER.exists(), reason="node or tests/js is missing")
def test_caddy_pusher_js_client_receives_rest_trigger(caddy: Caddy) -> None:
    assert NODE is not None
    spec = {"host": "127.0.0.1", "port": caddy.port, "key": "app-key", "secret": "app-secret"}
    proc = subprocess.Popen(
        [NODE, str(DRIVER), json.dumps(spec)],
        cwd=DRIVER.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines = _JsonLines(proc)
    try:
        lines.until(lambda line: line.get("t") == "connected")
        proc.stdin.write(b'{"cmd": "subscribe", "channel": "caddy-js"}\n')
        proc.stdin.flush()
        lines.until(
            lambda line: (
                line.get("t") == "event" and line.get("event") == "pusher:subscription_succeeded"
            ),
        )
        sdk(caddy.port).trigger("caddy-js", "greeting", {"via": "caddy"})
        seen = lines.until(
            lambda line: line.get("t") == "event" and line.get("event") == "greeting"
        )
        assert seen["channel"] == "caddy-js"
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        stop(proc)
        proc.stdout.close()


class _JsonLines:
    """Read a child's stdout as JSON lines, each wait bounded by count and time.

    Reads the pipe with ``os.read`` into its own buffer, so ``select`` never waits on lines
    already pulled into a Python-level buffer.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = bytearray()
        self.seen: list[str] = []

    def until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        for _ in range(500):
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                ready, _, _ = select.select([self.fd], [], [], max(remaining, 0))
                chunk = os.read(self.fd, 65536) if ready else b""
                if not chunk:
                    raise AssertionError(
                        "driver never printed the expected line; it printed:\n"
                        + "\n".join(self.seen[-40:])
                    )
                self.buffer += chunk
            raw, _, rest = bytes(self.buffer).partition(b"\n")
            self.buffer[:] = rest
            self.seen.append(raw.decode(errors="replace"))
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if isinstance(line, dict) and wanted(line):
                    return line
        raise AssertionError("driver printed 500 lines without the expected one")


async def test_caddy_passes_the_drain_close_code_through(tmp_path: Path) -> None:
    """SIGTERM on pusherd closes sockets with 4200; the code must survive the proxy."""
    with ServerProcess() as server:
        proxy = Caddy(f"127.0.0.1:{server.port}", tmp_path)
        try:
            proxy.start()
            url = f"ws://127.0.0.1:{proxy.port}/app/app-key?protocol=7&client=js&version=8.4.0"
            async with connect(url, open_timeout=WAIT) as ws:
                await next_event(ws, "pusher:connection_established")
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(WAIT):
                    with contextlib.suppress(ConnectionClosed):
                        for _ in range(100):
                            await ws.recv()
                assert ws.close_code == 4200, server.describe(f"close code {ws.close_code}")
        finally:
            proxy.stop()


async def test_caddy_streams_the_console_live_log(caddy: Caddy) -> None:
    await assert_console_stream(caddy.port)
