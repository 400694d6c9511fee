"""Shared check for the reverse-proxy examples: subscribe through a proxy, trigger through it.

The subscriber is a raw Pusher-protocol client (the ``websockets`` library); the trigger
is the official Pusher server SDK. Both talk only to the proxy's port.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import httpx
import pusher
from websockets.asyncio.client import ClientConnection, connect

__all__ = [
    "CONSOLE",
    "WAIT",
    "assert_console_stream",
    "assert_roundtrip",
    "next_event",
    "sdk",
    "stop",
]

WAIT = 10.0


def sdk(port: int) -> pusher.Pusher:
    """The official server SDK for the dev app, pointed at ``127.0.0.1:port``."""
    return pusher.Pusher(
        app_id="12345", key="app-key", secret="app-secret", host="127.0.0.1", port=port, ssl=False
    )


async def next_event(ws: ClientConnection, name: str) -> dict[str, Any]:
    """Return the next frame whose event is ``name`` (bounded by count and time)."""
    async with asyncio.timeout(WAIT):
        for _ in range(100):
            frame = json.loads(await ws.recv())
            if frame.get("event") == name:
                return dict(frame)
    raise AssertionError(f"no {name} among the first 100 frames")


async def assert_roundtrip(port: int, channel: str) -> None:
    """Subscribe to ``channel`` via the proxy on ``port`` and receive a REST-triggered event."""
    url = f"ws://127.0.0.1:{port}/app/app-key?protocol=7&client=js&version=8.4.0"
    async with connect(url, open_timeout=WAIT) as ws:
        established = await next_event(ws, "pusher:connection_established")
        assert json.loads(established["data"])["socket_id"]
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        await next_event(ws, "pusher_internal:subscription_succeeded")

        client = sdk(port)
        await asyncio.to_thread(client.trigger, channel, "greeting", {"via": "proxy"})
        event = await next_event(ws, "greeting")

        assert event["channel"] == channel
        assert json.loads(event["data"]) == {"via": "proxy"}
        info = await asyncio.to_thread(client.channels_info)
        assert channel in info["channels"]


CONSOLE = {"console": {"enabled": True, "password": "console-through-a-proxy"}}


async def assert_console_stream(port: int) -> None:
    """Log in to the console through the proxy on ``port``; its live log must stream."""
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        page = await http.get("/console/")
        assert page.status_code == 303, (page.status_code, page.text[:300])
        password = CONSOLE["console"]["password"]
        login = await http.post("/console/login", data={"password": password})
        assert login.status_code == 303, login.text
        assert (await http.get("/console/")).status_code == 200
        async with http.stream("GET", "/console/api/apps/12345/stream?rate=100") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            client = sdk(port)
            async with asyncio.timeout(WAIT):
                # The first trigger may come before the relay listens: trigger until seen.
                trigger = asyncio.create_task(_trigger_until_cancelled(client))
                try:
                    async for line in lines:
                        if line.startswith("data: ") and '"console-via-proxy"' in line:
                            break
                finally:
                    trigger.cancel()


async def _trigger_until_cancelled(client: pusher.Pusher) -> None:
    for _ in range(50):
        await asyncio.to_thread(client.trigger, "proxied", "console-via-proxy", {})
        await asyncio.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child we started; kill it if it does not exit within 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
