"""The REST fast path's rules for one request: which it takes, how it arrives, where it goes.

``server.rest_protocol`` serves REST calls and probes on keep-alive connections without
uvicorn's HTTP protocol. It feeds httptools' callbacks into an ``Incoming`` (the request
being received), whose methods answer what the connection must do now:

- a ``Content-Length`` past ``max_http_body_kb`` marks the request too large: it is
  answered 413 once its head is complete, and its body is never read;
- a body streamed (chunked) past the limit is dropped and answered 413 at once;
- ``Expect: 100-continue`` is answered ``100 Continue`` unless the body is already known
  to be too large (RFC 9110 §10.1.1: the client then sends the body);
- ``Idempotency-Key`` is kept for ``POST /events`` (``protocol.rest``);
- a request for another protocol (an upgrade, a console page) is rebuilt as bytes for
  the protocol that takes the connection over (``Incoming.head``).

``destination`` then picks the probe, the REST API or 404 for a complete request, and
``fast_path_urls``/``request_starts`` say which requests reach the fast path at all.
Timers, writes, pausing and the hand-over itself stay in ``server.rest_protocol``.
"""

from __future__ import annotations

from urllib.parse import unquote

from pusherd.protocol.http import strip_prefix
from pusherd.protocol.probes import PATHS

__all__ = [
    "CONTINUE",
    "IDEMPOTENCY_HEADER",
    "NOT_FOUND",
    "REST",
    "REST_PATHS",
    "TIMED_OUT",
    "Incoming",
    "declares_too_large",
    "destination",
    "fast_path_urls",
    "request_starts",
    "rest_paths",
    "too_large_text",
]

IDEMPOTENCY_HEADER = b"idempotency-key"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: The 408 body, for a request that has not fully arrived ``http_request_timeout``
#: seconds after its first byte (on the fast path and behind uvicorn alike).
TIMED_OUT = b"Request not received in time\n"
#: Where the REST API lives under the mount prefix (``/users/``: the Python SDK's
#: ``terminate_connections`` without ``/apps/{id}``).
REST_PATHS = ("/apps/", "/users/")
#: ``destination``'s answers besides a probe path (which always starts with ``/``).
REST = "rest"
NOT_FOUND = "not found"


def too_large_text(max_body: int) -> str:
    """The 413 message for a body past ``max_body`` bytes (``max_http_body_kb``)."""
    return f"Request body larger than {max_body // 1024} KB"


def declares_too_large(content_length: bytes, max_body: int) -> bool:
    """Whether a ``Content-Length`` value declares a body past ``max_body`` bytes.

    A value that is not a plain number declares nothing here (the parser refuses it).
    """
    return content_length.isdigit() and int(content_length) > max_body


def request_starts(prefix: str) -> tuple[bytes, ...]:
    """The request-line starts a new connection hands to the fast path (``POST /apps/``, …).

    Args:
        prefix: the mount prefix (``path_prefix``), "" for none.
    """
    mine = prefix.encode()
    return tuple(
        method + b" " + mine + path.encode() for method in (b"POST", b"GET") for path in REST_PATHS
    )


def rest_paths(prefix: str) -> tuple[str, ...]:
    """The path starts of the REST API's requests under ``prefix``."""
    return tuple(prefix + path for path in REST_PATHS)


def fast_path_urls(prefix: str) -> tuple[bytes, ...]:
    """The request-target starts the fast path answers itself.

    The REST API under ``prefix``, and the probes both under it and at the root; any
    other request on a fast-path connection goes to uvicorn's HTTP protocol.
    """
    mine = prefix.encode()
    starts = (mine, b"") if mine else (b"",)
    probes = (start + path.encode() for start in starts for path in PATHS)
    return (*(mine + path.encode() for path in REST_PATHS), *probes)


def destination(method: str, path: str, prefix: str) -> str:
    """Where a complete request goes: a probe path (one of ``PATHS``), ``REST`` or ``NOT_FOUND``.

    Probes answer ``GET`` both under ``prefix`` and at the root; any other path outside
    ``prefix`` is not found; the REST API answers everything under it (and refuses what
    it does not know itself).

    Args:
        path: the decoded path, ``prefix`` included.
    """
    local = strip_prefix(path, prefix)
    probe = path if local is None else local  # probes answer at the root too
    if method == "GET" and probe in PATHS:
        return probe
    if local is None:
        return NOT_FOUND
    return REST


class Incoming:
    """One request while it arrives, as httptools reports it (see the module docstring).

    Args:
        max_body: ``max_http_body_kb`` in bytes.
    """

    __slots__ = (
        "body",
        "headers",
        "idempotency_key",
        "keep_alive",
        "max_body",
        "method",
        "refusal",
        "size",
        "too_large",
        "url",
    )

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.method = ""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.keep_alive = True
        # Set when the request is answered before it has fully arrived (413, 408).
        self.refusal: tuple[int, bytes] | None = None
        self.idempotency_key: bytes | None = None

    def header(self, name: bytes, value: bytes) -> bool:
        """Take one header; return whether to answer ``100 Continue`` now.

        Only while the body is not known to be too large: a ``Content-Length`` past the
        limit that came before ``Expect`` means the client gets 413 instead.
        """
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" and declares_too_large(value, self.max_body):
            self.too_large = True
        elif lowered == IDEMPOTENCY_HEADER:
            self.idempotency_key = value
        elif lowered == b"expect" and value.lower() == b"100-continue":
            return not self.too_large
        return False

    def body_part(self, data: bytes) -> bool:
        """Take a piece of the body; return False once the body passes ``max_body``.

        The body read so far is dropped then: the request is answered 413 (a chunked
        body, whose size no header declared).
        """
        self.size += len(data)
        if self.size > self.max_body:
            self.body.clear()
            return False
        self.body.append(data)
        return True

    def refuse(self, status: int, message: bytes) -> None:
        """Answer the request with ``status`` before it has arrived; the connection closes."""
        self.refusal = (status, message)
        self.keep_alive = False

    def target(self) -> tuple[str, bytes]:
        """The decoded path and the raw query string of the request target."""
        path, _, query = self.url.partition(b"?")
        return unquote(path.decode("latin-1")), query

    def head(self) -> bytes:
        """The request head, rebuilt as bytes for a protocol that takes the connection over.

        The method (GET if the parser had not reported one yet), the target and every
        header as received, in order; ``HTTP/1.1``.
        """
        head = [self.method.encode() or b"GET", b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        return b"".join(head)
