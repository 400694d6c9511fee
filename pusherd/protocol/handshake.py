"""The WebSocket upgrade: the request head (RFC 6455 §4.2) and who may connect.

``parse_request`` checks the HTTP side; ``admit`` applies Pusher's rules to the request
(path, app key, protocol version, origin, drain and capacity) and names the close code of
the first one that fails (Pusher protocol, "Error Codes" 4001–4009, 4100, 4200).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from pusherd.apps.base import App
from pusherd.errors import CloseCode, ConnectionError_
from pusherd.protocol.frames import accept_key, close_frame, text_frame
from pusherd.protocol.http import response, strip_prefix
from pusherd.protocol.messages import encode_error
from pusherd.protocol.origins import origin_allowed

__all__ = [
    "HandshakeError",
    "Request",
    "accept_response",
    "admit",
    "is_upgrade",
    "parse_request",
    "refusal",
]

_UPGRADE = re.compile(rb"\r\nupgrade:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)

_APP_PATH = re.compile(r"/app/([^/]+)/?")
_ANY_ORIGIN = ("*",)


@dataclass(slots=True)
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
        return response(self.status, self.reason.encode() + b"\n", close=True, extra=self.extra)


# Lowercased "\r\nname:" of the headers read here, in the order parse_request unpacks.
_HEADERS = (
    b"\r\nupgrade:",
    b"\r\nsec-websocket-version:",
    b"\r\nsec-websocket-key:",
    b"\r\norigin:",
    b"\r\nx-forwarded-for:",
)


def is_upgrade(data: bytes) -> bool:
    """True if ``data`` holds a whole ``GET`` head asking for ``Upgrade: websocket``."""
    head_end = data.find(b"\r\n\r\n")
    return (
        data.startswith(b"GET ")
        and head_end > 0
        and _UPGRADE.search(data, 0, head_end + 2) is not None
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
    return Request(  # positional: this runs on every connect
        path,
        _query(query),
        key.decode("latin-1"),
        None if origin is None else origin.decode("latin-1"),
        None if forwarded_for is None else forwarded_for.decode("latin-1"),
    )


def _query(raw: str) -> dict[str, str]:
    # parse_qsl is general and slow; a Pusher URL has three or four plain pairs.
    pairs: dict[str, str] = {}
    escaped = "%" in raw or "+" in raw
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            if escaped:
                name, value = unquote_plus(name), unquote_plus(value)
            pairs[name] = value
    return pairs


def accept_response(key: str) -> bytes:
    """Return the ``101 Switching Protocols`` response for ``key`` (no extensions)."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )


def admit(
    request: Request,
    prefix: str,
    by_key: Callable[[str], App | None],
    draining: bool,
    full: bool,
) -> App:
    """Return the app a new socket connects to, if every check passes.

    Args:
        prefix: the configured path prefix ("" or "/something").
        by_key: the app registry's lookup by key.
        draining: the node is shutting down (4200: reconnect elsewhere).
        full: the node holds ``max_connections`` sockets already (4100).

    Raises:
        ConnectionError_: with the Pusher close code of the first failed check.
    """
    path = strip_prefix(request.path, prefix) if prefix else request.path
    match = None if path is None else _APP_PATH.fullmatch(path)
    if match is None:
        path = request.path if path is None else path
        raise ConnectionError_(f"Path not found: {path[:100]}", CloseCode.PATH_NOT_FOUND)
    app = by_key(match.group(1))
    if app is None:
        raise ConnectionError_(
            f"Application does not exist: {match.group(1)[:64]}", CloseCode.APP_NOT_FOUND
        )
    if not app.enabled:
        raise ConnectionError_("Application disabled", CloseCode.APP_DISABLED)
    _check_protocol(request.query)
    if app.allowed_origins != _ANY_ORIGIN and not origin_allowed(
        request.origin, app.allowed_origins
    ):
        raise ConnectionError_(
            f"Origin not allowed: {str(request.origin)[:100]}", CloseCode.UNAUTHORIZED
        )
    if draining:
        raise ConnectionError_("Server is shutting down, reconnect", CloseCode.RECONNECT)
    if full:
        raise ConnectionError_("Over capacity", CloseCode.OVER_CAPACITY)
    return app


def _check_protocol(query: dict[str, str]) -> None:
    raw = query.get("protocol")
    if raw is None:
        if "version" in query:
            return  # the protocol is inferred from the library version (Pusher docs)
        raise ConnectionError_("No protocol version supplied", CloseCode.NO_PROTOCOL)
    if not raw.isdigit():
        raise ConnectionError_("Invalid version string format", CloseCode.INVALID_VERSION)
    if not 5 <= int(raw) <= 7:
        raise ConnectionError_(
            f"Unsupported protocol version {raw[:8]}", CloseCode.UNSUPPORTED_PROTOCOL
        )


def refusal(accept: bytes, error: ConnectionError_) -> bytes:
    """The 101, ``pusher:error`` and the close frame that refuse an upgrade, in one write.

    Pusher refuses after the upgrade (pusher-js reads the code from the close frame, and
    only a WebSocket can carry one).
    """
    return (
        accept
        + text_frame(encode_error(error.message, error.code))
        + close_frame(error.code, error.message)
    )
