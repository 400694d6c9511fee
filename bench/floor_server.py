"""The least a Python + uvloop server can do per connect/subscribe/close cycle.

Not a Pusher server: it answers the load generator's churn cycle with canned bytes
(101 + connection_established, subscription_succeeded, close) and keeps no state.
Its CPU per cycle is the part of pusherd's churn cost that belongs to the runtime
(interpreter, uvloop, kernel TCP), measured beside pusherd and soketi by
``python -m bench.floor``. Run: ``python -m bench.floor_server PORT``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys

import uvloop

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(payload: bytes) -> bytes:
    if len(payload) < 126:
        return bytes((0x81, len(payload))) + payload
    return bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload


_ESTABLISHED = _frame(
    b'{"event":"pusher:connection_established",'
    b'"data":"{\\"socket_id\\":\\"1.1\\",\\"activity_timeout\\":120}"}'
)
_SUCCEEDED = _frame(b'{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"c"}')
_CLOSE = b"\x88\x02\x03\xe8"


class Canned(asyncio.Protocol):
    """Answer by the first byte of each read; assumes one message per read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if not self.upgraded:
            start = data.lower().find(b"sec-websocket-key:") + 18
            key = data[start : data.find(b"\r\n", start)].strip()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept
                + b"\r\n\r\n"
                + _ESTABLISHED
            )
            self.upgraded = True
        elif data[0] & 0x0F == 0x8:
            transport.write(_CLOSE)
            transport.close()
        else:
            transport.write(_SUCCEEDED)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1])))
