"""Sockets are routed by their first bytes: upgrades to Connection, the rest to HTTP."""

from __future__ import annotations

import asyncio

from tests.server.conftest import Running

HEAD = (
    b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


async def handshake(running: Running, *parts: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        for index, part in enumerate(parts):
            writer.write(part)
            await writer.drain()
            if index < len(parts) - 1:
                # Not waiting for an event: a pause so the server reads the parts apart.
                await asyncio.sleep(0.05)
        async with asyncio.timeout(5):
            return await reader.readuntil(b"connection_established")
    finally:
        writer.close()


async def test_front_door_routes_a_whole_upgrade_head_to_the_websocket(running: Running) -> None:
    response = await handshake(running, HEAD)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


async def test_front_door_head_split_across_reads_still_upgrades(running: Running) -> None:
    response = await handshake(running, HEAD[:20], HEAD[20:])
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


async def test_front_door_plain_http_goes_to_the_http_protocol(running: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            first = await reader.readuntil(b'{"health":"OK"}')
            second = await reader.readuntil(b'{"ready":true}')
        assert first.startswith(b"HTTP/1.1 200")
        assert b"HTTP/1.1 200" in second
    finally:
        writer.close()
