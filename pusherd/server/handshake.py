"""The HTTP/1.1 upgrade request head (RFC 6455 §4.2) as uvicorn replays it to us."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from pusherd.protocol.frames import accept_key

__all__ = ["HandshakeError", "Request", "accept_response", "parse_request"]


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    query: dict[str, str]
    key: str
    origin: str | None
    forwarded_for: str | None


class HandshakeError(Exception):
    """Not a valid WebSocket upgrade; answer with a plain HTTP error."""

    def __init__(self, status: int, reason: str, extra: bytes = b"") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra

    def response(self) -> bytes:
        body = self.reason.encode() + b"\n"
        phrase = {400: b"Bad Request", 426: b"Upgrade Required"}.get(self.status, b"Error")
        return (
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n%s\r\n%s" % (self.status, phrase, len(body), self.extra, body)
        )


# Lowercased "\r\nname:" of the headers read here, in the order parse_request unpacks.
_HEADERS = (
    b"\r\nupgrade:",
    b"\r\nsec-websocket-version:",
    b"\r\nsec-websocket-key:",
    b"\r\norigin:",
    b"\r\nx-forwarded-for:",
)


def parse_request(head: bytes) -> Request:
    """Parse and check an upgrade request head.

    Only the five headers used here are looked up (case-insensitively, the first of
    repeated ones wins); the head is never split into a dict of every header, since
    browsers send a dozen of them on every connect.

    Raises:
        HandshakeError: not a GET, missing/invalid ``Sec-WebSocket-Key``, or a version
            other than 13 (426 with ``Sec-WebSocket-Version: 13``).
    """
    end = head.find(b"\r\n\r\n")
    block = head[: end + 2] if end >= 0 else head + b"\r\n"
    lower = block.lower()
    values: list[bytes | None] = []
    for marker in _HEADERS:
        start = lower.find(marker)
        if start < 0:
            values.append(None)
        else:
            start += len(marker)
            values.append(block[start : block.find(b"\r\n", start)].strip(b" \t"))
    upgrade, version, key, origin, forwarded_for = values
    parts = block[: block.find(b"\r\n")].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        raise HandshakeError(400, "WebSocket upgrades must be GET requests")
    if upgrade is None or upgrade.lower() != b"websocket":
        raise HandshakeError(400, "missing 'Upgrade: websocket'")
    if version != b"13":
        raise HandshakeError(426, "unsupported WebSocket version", b"sec-websocket-version: 13\r\n")
    if key is None or len(key) != 24 or not key.endswith(b"=="):
        raise HandshakeError(400, "missing or invalid Sec-WebSocket-Key")
    path, _, query = parts[1].decode("latin-1").partition("?")
    return Request(
        path=path,
        query=_query(query),
        key=key.decode("latin-1"),
        origin=None if origin is None else origin.decode("latin-1"),
        forwarded_for=None if forwarded_for is None else forwarded_for.decode("latin-1"),
    )


def _query(raw: str) -> dict[str, str]:
    # parse_qsl is general and slow; a Pusher URL has three or four plain pairs.
    pairs: dict[str, str] = {}
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            if "%" in part or "+" in part:
                name, value = unquote_plus(name), unquote_plus(value)
            pairs[name] = value
    return pairs


def accept_response(key: str) -> bytes:
    """Return the ``101 Switching Protocols`` response for ``key`` (no extensions)."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )
