"""Shared check for the reverse-proxy examples: subscribe through a proxy, trigger through it.

The subscriber is a raw Pusher-protocol client (the ``websockets`` library); the trigger
is the official Pusher server SDK. Both talk only to the proxy's port.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pusher
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["WAIT", "assert_roundtrip", "next_event", "sdk", "stop"]

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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child we started; kill it if it does not exit within 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
