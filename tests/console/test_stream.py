"""The SSE stream: a reader that stops reading is cut off; memory stays bounded."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pusherd.console import stream as stream_module
from tests.console.conftest import ConsoleServer, logged_in
from tests.server.conftest import APP


async def test_console_stream_reader_that_stops_reading_is_cut_off(
    console_server: ConsoleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "STALL", 0.5)
    monkeypatch.setattr(stream_module, "UNWATCH_AFTER", 0.1)
    running = console_server.running
    lifecycle = running.parts.lifecycle
    async with logged_in(console_server) as (http, _):
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    # A raw socket with a tiny receive window that never reads what it is sent.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", running.port))
    try:
        request = (
            f"GET /console/api/apps/{APP.id}/stream?rate=1000 HTTP/1.1\r\n"
            f"host: 127.0.0.1\r\ncookie: {cookie}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        async with asyncio.timeout(5):
            while not lifecycle.active:
                await asyncio.sleep(0.02)
        sdk = running.sdk()
        big = {"blob": "x" * 9000}
        async with asyncio.timeout(20):
            while lifecycle.active:  # cut off: the last viewer left, the relay stopped
                batch = [{"channel": "news", "name": f"e{i}", "data": big} for i in range(10)]
                await asyncio.to_thread(sdk.trigger_batch, batch)
    finally:
        sock.close()
