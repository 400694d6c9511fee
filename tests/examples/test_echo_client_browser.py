"""The Echo example page, end to end in headless Chromium.

Real processes only: ``pusherd serve``, the example backend (``examples/echo-client/
server.py``) and Debian's ``chromium``, driven over the Chrome DevTools Protocol with the
``websockets`` library (no playwright). Two pages are two users on one presence channel;
they see each other join, whisper "typing…", receive an event the backend publishes
through the official Pusher SDK, and see each other leave. A screenshot of the first page
is saved to ``tests/artifacts/echo-client.png``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.examples.roundtrip import stop
from tests.server_process import ServerProcess

__all__: list[str] = []

CHROMIUM = shutil.which("chromium")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "echo-client"
NODE_MODULES = REPO / "tests" / "js" / "node_modules"
ARTIFACTS = REPO / "tests" / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
    pytest.mark.skipif(
        not (NODE_MODULES / "laravel-echo" / "dist" / "echo.iife.js").exists(),
        reason="tests/js/node_modules is not installed (npm ci in tests/js)",
    ),
]

WAIT = 10.0  # seconds any single browser-side condition may take


class CdpError(Exception):
    """A DevTools command failed, timed out, or the browser went away."""


class Cdp:
    """A minimal Chrome DevTools Protocol client: one browser socket, flat sessions."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is None or future.done():
                        continue
                    if "error" in message:
                        future.set_exception(CdpError(str(message["error"])))
                    else:
                        future.set_result(message.get("result", {}))
                    continue
                for waiter in list(self._waiters):
                    method, session, future = waiter
                    if method == message.get("method") and session == message.get("sessionId"):
                        self._waiters.remove(waiter)
                        if not future.done():
                            future.set_result(message.get("params", {}))
        except ConnectionClosed:
            pass
        finally:
            for future in [*self._pending.values(), *(w[2] for w in self._waiters)]:
                if not future.done():
                    future.set_exception(CdpError("the browser closed the DevTools socket"))

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = WAIT,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.ws.send(json.dumps(message))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise CdpError(f"{method} did not answer within {timeout}s") from None

    def expect(self, method: str, session: str | None) -> asyncio.Future[dict[str, Any]]:
        """Return a future for the next ``method`` event (register it before acting)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, session, future))
        return future

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Page:
    """One browser tab, attached through a flat DevTools session."""

    def __init__(self, cdp: Cdp, target_id: str, session: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session = session

    @classmethod
    async def open(cls, cdp: Cdp, url: str) -> Page:
        created = await cdp.send("Target.createTarget", {"url": "about:blank"})
        target_id = created["targetId"]
        attached = await cdp.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        page = cls(cdp, target_id, attached["sessionId"])
        await page.send("Page.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1040, "height": 640, "deviceScaleFactor": 1, "mobile": False},
        )
        loaded = cdp.expect("Page.loadEventFired", page.session)
        navigated = await page.send("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise CdpError(f"cannot open {url}: {navigated['errorText']}")
        await asyncio.wait_for(loaded, WAIT)
        return page

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params, self.session)

    async def evaluate(self, expression: str, timeout: float = WAIT) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise) and return its value."""
        result = await self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session,
            timeout=timeout + 2,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"page error: {text}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, timeout: float = WAIT) -> Any:
        """Wait until the JS ``condition`` is truthy, re-checking on every DOM mutation."""
        ms = int(timeout * 1000)
        message = json.dumps(f"timed out after {ms} ms waiting for: {condition}")
        script = f"""new Promise((resolve, reject) => {{
            const check = () => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }};
            const first = check();
            if (first) {{ resolve(first); return; }}
            const observer = new MutationObserver(() => {{
                const value = check();
                if (value) {{ observer.disconnect(); clearTimeout(timer); resolve(value); }}
            }});
            observer.observe(document, {{subtree: true, childList: true, characterData: true,
                                        attributes: true}});
            const timer = setTimeout(() => {{
                observer.disconnect();
                reject(new Error({message}));
            }}, {ms});
        }})"""
        return await self.evaluate(script, timeout=timeout)

    async def members(self) -> list[str]:
        names = await self.evaluate(
            "[...document.querySelectorAll('#members li .name')].map(e => e.textContent)"
        )
        return list(names)

    async def screenshot(self, path: Path) -> None:
        # A background tab produces no frames until it is brought to the front.
        await self.send("Page.bringToFront")
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.cdp.send("Target.closeTarget", {"targetId": self.target_id})


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Cdp]:
    """Launch headless Chromium and yield a DevTools client for it."""
    assert CHROMIUM is not None
    log_path = profile.parent / "chromium.log"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--password-store=basic",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    with open(log_path, "wb") as log:
        # A session of its own, so the renderer and zygote children can be ended with it.
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        url = await _devtools_url(proc, profile, log_path)
        async with connect(url, max_size=None, open_timeout=WAIT) as ws:
            cdp = Cdp(ws)
            try:
                yield cdp
            finally:
                with contextlib.suppress(CdpError):
                    await cdp.send("Browser.close", timeout=3)
                await cdp.close()
    finally:
        _end(proc)


async def _devtools_url(proc: subprocess.Popen[bytes], profile: Path, log_path: Path) -> str:
    """Read the browser's DevTools URL from ``<profile>/DevToolsActivePort`` (bounded)."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 20
    for _ in range(2000):
        if proc.poll() is not None:
            raise CdpError(f"chromium exited with {proc.returncode}: {_tail(log_path)}")
        lines = port_file.read_text().split("\n") if port_file.exists() else []
        if len(lines) >= 2 and lines[0].isdigit() and lines[1].startswith("/devtools/"):
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if time.monotonic() > deadline:
            break
        # Chromium writes the file once; there is no event to wait on but the file itself.
        await asyncio.sleep(0.05)
    raise CdpError(f"chromium wrote no DevToolsActivePort within 20 s: {_tail(log_path)}")


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Stop the browser we started, then any child still in its process group."""
    stop(proc)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture
def pusherd() -> Iterator[ServerProcess]:
    with ServerProcess() as server:
        yield server


@pytest.fixture
def echo_backend(pusherd: ServerProcess, tmp_path: Path) -> Iterator[str]:
    """Run ``examples/echo-client/server.py`` on a free port; yield its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "PUSHERD_"))}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        str(EXAMPLE / "server.py"),
        "--port",
        "0",
        "--pusherd-host",
        pusherd.host,
        "--pusherd-port",
        str(pusherd.port),
        "--node-modules",
        str(NODE_MODULES),
    ]
    log_path = tmp_path / "echo-backend.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
    try:
        assert proc.stdout is not None
        # The backend prints its address once it listens: wait for that line, bounded.
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"echo backend did not start: {line!r} {_tail(log_path)}"
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_echo_client_two_users_join_whisper_receive_and_leave(
    pusherd: ServerProcess, echo_backend: str, tmp_path: Path
) -> None:
    async with chromium(tmp_path / "profile") as cdp:
        alice = await Page.open(cdp, f"{echo_backend}/?user=Alice")
        await alice.wait_for("document.getElementById('status').dataset.state === 'connected'")
        await alice.wait_for("document.querySelectorAll('#members li').length === 1")

        bob = await Page.open(cdp, f"{echo_backend}/?user=Bob")
        await bob.wait_for("document.querySelectorAll('#members li').length === 2")
        await alice.wait_for("document.querySelectorAll('#members li').length === 2")
        assert await alice.members() == ["Alice", "Bob"], pusherd.describe("alice's list")
        assert await bob.members() == ["Alice", "Bob"]
        assert await alice.evaluate("document.getElementById('online-count').textContent") == "2"

        # Typing in Alice's box whispers a client event that only Bob sees.
        await alice.evaluate(
            "(() => { const box = document.getElementById('message');"
            " box.value = 'Hello from the backend'; box.dispatchEvent(new Event('input')); })()"
        )
        await bob.wait_for("document.getElementById('typing').textContent.includes('Alice')")
        assert "typing" in await bob.evaluate("document.getElementById('typing').textContent")

        # Submitting asks the backend to publish App\Events\MessagePosted via the REST API.
        await alice.evaluate("document.getElementById('compose').requestSubmit()")
        has_message = (
            "[...document.querySelectorAll('#messages .message .text')]"
            ".some(e => e.textContent === 'Hello from the backend')"
        )
        await alice.wait_for(has_message)
        await bob.wait_for(has_message)
        await alice.screenshot(ARTIFACTS / "echo-client.png")

        # Closing Bob's tab drops his socket; Alice's list loses him.
        await bob.close()
        await alice.wait_for("document.querySelectorAll('#members li').length === 1")
        assert await alice.members() == ["Alice"]
        assert await alice.evaluate("document.getElementById('online-count').textContent") == "1"
        await alice.close()
