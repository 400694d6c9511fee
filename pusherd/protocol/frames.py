"""WebSocket framing (RFC 6455), sans-I/O: the handshake key, a frame parser, encoders.

Why not ``websockets.ServerProtocol``: a pusherd node holds tens of thousands of mostly
idle sockets and writes one pre-built frame to all of them. The server side needs only
unmasked frame *encoding* (done once per fan-out) and a small parser for the rare,
small client frames, with no per-connection generator or buffer objects. This parser
keeps one ``bytes`` remainder and, while a fragmented message is open, its parts.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "CloseStatus",
    "FrameError",
    "FrameParser",
    "Message",
    "Opcode",
    "accept_key",
    "close_frame",
    "close_reply",
    "encode_frame",
    "ping_frame",
    "pong_frame",
    "text_frame",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseStatus(IntEnum):
    """RFC 6455 §7.4.1 status codes used here."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    TOO_BIG = 1009


_OPCODES = {int(op): op for op in Opcode}


@dataclass(slots=True)
class Message:
    """A complete message or control frame from the client."""

    opcode: Opcode
    payload: bytes


class FrameError(Exception):
    """The client broke RFC 6455; close the connection with ``code``.

    ``messages`` holds the complete messages that came before the bad frame in the same
    read: they are still the client's, and are handled before the close.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.messages: list[Message] = []


def accept_key(key: str) -> str:
    """Return ``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (§4.2.2)."""
    digest = hashlib.sha1(key.encode() + _GUID, usedforsecurity=False).digest()
    return binascii.b2a_base64(digest, newline=False).decode()


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """Encode one unmasked server frame (§5.2)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, length))
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def text_frame(payload: bytes) -> bytes:
    """Frame ``payload`` (UTF-8 JSON) as a single text frame (``encode_frame``, inlined:
    every message a socket gets is framed here, two per connect)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def ping_frame(payload: bytes = b"") -> bytes:
    return encode_frame(Opcode.PING, payload)


def pong_frame(payload: bytes = b"") -> bytes:
    return encode_frame(Opcode.PONG, payload)


def close_frame(code: int, reason: str = "") -> bytes:
    """Encode a close frame; the reason is cut to fit the 125-byte control limit."""
    data = reason.encode()[:123]
    return encode_frame(Opcode.CLOSE, struct.pack("!H", code) + data)


_NORMAL_CLOSE = close_frame(CloseStatus.NORMAL)


def close_reply(payload: bytes) -> tuple[int, bytes]:
    """The code of a client's close frame and the close frame that answers it (§5.5.1).

    The code is echoed; a missing one counts as 1000, and one outside 1000–4999 is
    answered with 1000.
    """
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
    if 1000 <= code < 5000 and code != 1000:
        return code, close_frame(code)
    return code, _NORMAL_CLOSE


def _unmask(data: bytes, mask: bytes) -> bytes:
    length = len(data)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )


class FrameParser:
    """Turn bytes from a client into ``Message``s.

    Args:
        max_size: the largest message (after reassembly) accepted, in bytes.
    """

    __slots__ = (
        "_buffer",
        "_fragment_opcode",
        "_fragment_size",
        "_fragments",
        "_skip",
        "max_size",
    )

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = b""
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = Opcode.TEXT
        self._fragment_size = 0
        self._skip = 0

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data`` and return every complete message in it.

        Raises:
            FrameError: a protocol violation (unmasked frame, reserved bits, bad opcode,
                bad continuation, oversized message or control frame).
        """
        if not self._buffer and self._fragments is None:
            # Nearly every read is one whole, short, final text or close frame.
            first = data[0] if data else 0
            length = len(data) - 6
            if (
                (first == 0x81 or first == 0x88)
                and 0 <= length < 126
                and data[1] == 0x80 | length
                and length <= self.max_size
            ):
                whole = Opcode.TEXT if first == 0x81 else Opcode.CLOSE
                return [Message(whole, _unmask(data[6:], data[2:6]))]
        buffer = self._buffer + data if self._buffer else data
        messages: list[Message] = []
        offset = 0
        end = len(buffer)
        try:
            while end - offset >= 2:
                first = buffer[offset]
                second = buffer[offset + 1]
                if first & 0x70:
                    raise FrameError(CloseStatus.PROTOCOL_ERROR, "reserved bits must be 0")
                if not second & 0x80:
                    raise FrameError(CloseStatus.PROTOCOL_ERROR, "client frames must be masked")
                fin = first & 0x80
                opcode = first & 0x0F
                length = second & 0x7F
                position = offset + 2
                if length == 126:
                    if end - position < 2:
                        break
                    (length,) = struct.unpack_from("!H", buffer, position)
                    position += 2
                elif length == 127:
                    if end - position < 8:
                        break
                    (length,) = struct.unpack_from("!Q", buffer, position)
                    position += 8
                if opcode >= 0x8:
                    if length > 125 or not fin:
                        raise FrameError(CloseStatus.PROTOCOL_ERROR, "invalid control frame")
                elif length + self._fragment_size > self.max_size:
                    raise FrameError(
                        CloseStatus.TOO_BIG, f"message larger than {self.max_size} bytes"
                    )
                if end - position < 4 + length:
                    break
                mask = buffer[position : position + 4]
                position += 4
                payload = _unmask(buffer[position : position + length], mask)
                offset = position + length
                self._frame(opcode, bool(fin), payload, messages)
        except FrameError as exc:
            # ``offset`` is a frame boundary: the bad frame's start, or the end of a bad
            # continuation. ``discard_until_close`` goes on from there.
            self._buffer = buffer[offset:]
            exc.messages = messages
            raise
        self._buffer = buffer[offset:] if offset < end else b""
        return messages

    def discard_until_close(self, data: bytes) -> bool:
        """Skip the client's frames after the server sent its close frame (§7.1.1).

        Payloads are skipped by their declared length, however large, without being
        unmasked or kept, so the rest of an oversized frame costs nothing but the read.

        Returns:
            True once the header of the client's own close frame has arrived.
        """
        self._fragments = None
        buffer = self._buffer + data if self._buffer else data
        offset = self._skip
        end = len(buffer)
        while end - offset >= 2:
            second = buffer[offset + 1]
            if buffer[offset] & 0x0F == Opcode.CLOSE:
                self._buffer = b""
                self._skip = 0
                return True
            length = second & 0x7F
            position = offset + 2
            if length == 126:
                if end - position < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, position)
                position += 2
            elif length == 127:
                if end - position < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, position)
                position += 8
            offset = position + (4 if second & 0x80 else 0) + length
        if offset >= end:
            self._skip = offset - end
            self._buffer = b""
        else:
            self._skip = 0
            self._buffer = buffer[offset:]
        return False

    def _frame(self, opcode: int, fin: bool, payload: bytes, messages: list[Message]) -> None:
        if opcode == Opcode.TEXT and fin and self._fragments is None:
            messages.append(Message(Opcode.TEXT, payload))  # nearly every frame
        elif opcode in (Opcode.CLOSE, Opcode.PING, Opcode.PONG):
            messages.append(Message(_OPCODES[opcode], payload))
        elif opcode in (Opcode.TEXT, Opcode.BINARY):
            if self._fragments is not None:
                raise FrameError(CloseStatus.PROTOCOL_ERROR, "expected a continuation frame")
            if fin:
                messages.append(Message(_OPCODES[opcode], payload))
            else:
                self._fragments = [payload]
                self._fragment_opcode = _OPCODES[opcode]
                self._fragment_size = len(payload)
        elif opcode == Opcode.CONTINUATION:
            if self._fragments is None:
                raise FrameError(CloseStatus.PROTOCOL_ERROR, "unexpected continuation frame")
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if fin:
                messages.append(Message(self._fragment_opcode, b"".join(self._fragments)))
                self._fragments = None
                self._fragment_size = 0
        else:
            raise FrameError(CloseStatus.PROTOCOL_ERROR, f"unknown opcode {opcode}")
