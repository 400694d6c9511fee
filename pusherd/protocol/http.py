"""HTTP/1.1 responses as bytes: the one writer for every answer pusherd builds by hand.

The REST fast path, the probes, the metrics port and refused WebSocket upgrades all
answer with a status line, ``content-type``, ``content-length`` and an optional
``connection: close``; building them here keeps them byte-identical.
"""

from __future__ import annotations

__all__ = ["JSON", "PLAIN", "REASONS", "response", "strip_prefix"]

JSON = b"application/json"
PLAIN = b"text/plain"

REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    409: b"Conflict",
    413: b"Payload Too Large",
    426: b"Upgrade Required",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def response(
    status: int, body: bytes, content_type: bytes = PLAIN, close: bool = False, extra: bytes = b""
) -> bytes:
    """Return a whole response; ``extra`` holds more header lines, each ending in CRLF."""
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n%s" % (
        status,
        REASONS.get(status, b"Error"),
        content_type,
        len(body),
        b"connection: close\r\n" if close else b"",
        extra,
        body,
    )


def strip_prefix(path: str, prefix: str) -> str | None:
    """The path inside the configured ``path_prefix``, or None if it is outside.

    The one place the prefix is taken off (upgrades, REST, probes): ``/ws/app/k`` under
    ``/ws`` is ``/app/k``; ``/wsx/app/k`` is outside it.
    """
    if not prefix:
        return path
    if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/":
        return path[len(prefix) :]
    return None
