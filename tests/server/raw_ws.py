"""A blocking raw-TCP WebSocket client for tests that need exact control over writes."""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any

__all__ = ["RawWebSocket", "masked_frame"]

_HEAD = (
    b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def masked_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """Encode one client frame (masked, as RFC 6455 §5.3 requires)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )
    return header + mask + masked


class RawWebSocket:
    """One upgraded socket; every read is bounded by the socket timeout."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.sock.sendall(_HEAD)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buffer += chunk

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(masked_frame(opcode, payload))

    def send_json(self, message: Any) -> None:
        self.send(0x1, json.dumps(message).encode())

    def frame(self) -> tuple[int, bytes]:
        """Read one server frame: (opcode, payload)."""
        while len(self.buffer) < 2:
            self._read()
        length = self.buffer[1] & 0x7F
        start = 2
        if length == 126:
            while len(self.buffer) < 4:
                self._read()
            (length,) = struct.unpack_from("!H", self.buffer, 2)
            start = 4
        elif length == 127:
            while len(self.buffer) < 10:
                self._read()
            (length,) = struct.unpack_from("!Q", self.buffer, 2)
            start = 10
        while len(self.buffer) < start + length:
            self._read()
        opcode = self.buffer[0] & 0x0F
        payload = self.buffer[start : start + length]
        self.buffer = self.buffer[start + length :]
        return opcode, payload

    def message(self) -> dict[str, Any]:
        """Read the next text frame as JSON (control frames are not expected here)."""
        opcode, payload = self.frame()
        assert opcode == 0x1, (opcode, payload)
        decoded: dict[str, Any] = json.loads(payload)
        return decoded

    def close_code(self, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """Read frames up to the server's close frame; return its code and the messages."""
        messages: list[dict[str, Any]] = []
        for _ in range(limit):
            opcode, payload = self.frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], messages
            if opcode == 0x1:
                messages.append(json.loads(payload))
        raise AssertionError(f"no close frame in {limit} frames")

    def answer_close_and_expect_eof(self) -> None:
        """Send our close frame; the server must then close TCP cleanly (EOF, no reset)."""
        self.send(0x8, struct.pack("!H", 1000))
        for _ in range(100):
            chunk = self.sock.recv(65536)
            if not chunk:
                return
        raise AssertionError("server kept the connection open after the close handshake")
