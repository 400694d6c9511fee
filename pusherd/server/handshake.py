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


def parse_request(head: bytes) -> Request:
    """Parse and check an upgrade request head.

    Raises:
        HandshakeError: not a GET, missing/invalid ``Sec-WebSocket-Key``, or a version
            other than 13 (426 with ``Sec-WebSocket-Version: 13``).
    """
    try:
        text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise HandshakeError(400, "invalid request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET":
        raise HandshakeError(400, "WebSocket upgrades must be GET requests")
    target = parts[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError(400, "missing 'Upgrade: websocket'")
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeError(426, "unsupported WebSocket version", b"sec-websocket-version: 13\r\n")
    key = headers.get("sec-websocket-key", "")
    if len(key) != 24 or not key.endswith("=="):
        raise HandshakeError(400, "missing or invalid Sec-WebSocket-Key")
    path, _, query = target.partition("?")
    return Request(
        path=path,
        query=_query(query),
        key=key,
        origin=headers.get("origin"),
        forwarded_for=headers.get("x-forwarded-for"),
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
