"""Sockets are routed by their first bytes: upgrades stay in Upgrade, the rest go to HTTP."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pusherd.server.app import build, uvicorn_protocols
from pusherd.server.front_door import Upgrade
from pusherd.server.rest_protocol import RestProtocol
from tests.server.conftest import Running, make_config

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


class RecordingTransport(asyncio.Transport):
    """Records writes and protocol switches; nothing leaves the process."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.switched_to: list[asyncio.BaseProtocol] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.switched_to.append(protocol)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None


def test_an_upgrade_stays_in_the_first_protocol_with_no_protocol_switch() -> None:
    parts = build(make_config())
    protocol = uvicorn_protocols(parts)["http"](config=None, server_state=None, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(HEAD)
    assert isinstance(protocol, Upgrade)
    assert transport.switched_to == []
    assert transport.written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"pusher:connection_established" in transport.written
    assert protocol.conn in parts.sockets.connections


async def test_a_rest_call_goes_to_the_rest_protocol_and_the_first_protocol_is_dropped() -> None:
    config = make_config()
    parts = build(config)
    state = SimpleNamespace(connections=set())
    protocol = uvicorn_protocols(parts)["http"](config=None, server_state=state, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    assert state.connections == {protocol}
    protocol.data_received(b"GET /apps/app-id/channels HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [type(p) for p in transport.switched_to] == [RestProtocol]
    assert state.connections == {transport.switched_to[0]}
    assert transport.written.startswith(b"HTTP/1.1 404 Not Found\r\n")
