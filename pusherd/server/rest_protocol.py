"""HTTP/1.1 keep-alive connections from backends publishing through the REST API.

``FrontDoor`` hands a socket here when its first request is for ``/apps/…`` (or the
Python SDK's ``/users/…``). Backends keep these connections open and send request
after request, so each request costs only the httptools parse, ``RestApi.handle`` and
one ``write``: no ASGI scope, no task per request (with the memory broker nothing
waits, see ``eager``), no middleware. The probes (``/up``, ``/ready``, ``/health``,
``/metrics``) are answered too; any other path is a 404 (all other traffic goes through
uvicorn and Starlette).
Requests are answered in order; a pipelining flood pauses reading. A body declared (or
streamed) past ``max_http_body_kb`` is answered 413 at once, without reading it; a request
that has not fully arrived ``http_request_timeout`` seconds after its first byte gets
408. Both close the connection after a lingering read (``server.linger``), so the
answer is not lost to a reset while the client is still sending.

What each request's pieces mean (the limits, ``Expect``, ``Idempotency-Key``, which
requests are ours and where each goes) is decided in ``protocol.rest_request``; this
module keeps the timers, the writes, pausing, and handing the socket over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import httptools

from pusherd.protocol.http import PLAIN, response
from pusherd.protocol.rest_request import (
    CONTINUE,
    NOT_FOUND,
    REST,
    TIMED_OUT,
    Incoming,
    destination,
    fast_path_urls,
    too_large_text,
)
from pusherd.server.eager import start_eagerly
from pusherd.server.http_api import RestApi
from pusherd.server.linger import Lingering
from pusherd.server.probes import Probes

__all__ = ["RestProtocol", "RestServices"]

logger = logging.getLogger("pusherd.http")

KEEP_ALIVE_TIMEOUT = 60.0
MAX_PIPELINE = 32


class RestServices:
    """What every ``RestProtocol`` of a node uses, built once by ``server.app``.

    Args:
        websocket: builds the protocol for a socket that upgrades (``server_state=``).
        eager: the broker never waits, so requests run without a task each.
    """

    __slots__ = ("_ours", "eager", "prefix", "probes", "rest", "websocket")

    def __init__(
        self,
        rest: RestApi,
        probes: Probes,
        websocket: Callable[..., asyncio.Protocol],
        prefix: str,
        eager: bool,
    ) -> None:
        self.rest = rest
        self.probes = probes
        self.websocket = websocket
        self.prefix = prefix
        self.eager = eager
        self._ours = fast_path_urls(prefix)

    def ours(self, url: bytes) -> bool:
        """Whether this protocol answers ``url`` (the REST API and the probes)."""
        return url.startswith(self._ours)


class RestProtocol(asyncio.Protocol):
    """Serve REST requests on one connection (see the module docstring)."""

    def __init__(
        self,
        services: RestServices,
        server_state: Any = None,
        http: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        """``http`` builds uvicorn's HTTP protocol, for a request that is not for us."""
        self.services = services
        self.http = http
        self.foreign: Incoming | None = None
        self.rest = services.rest
        self.server_state = server_state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.max_body = self.rest.max_body
        self.current = Incoming(self.max_body)
        self.pending: deque[Incoming] = deque()
        self.busy = False
        self.closing = False
        self.paused = False
        self.idle: asyncio.TimerHandle | None = None
        self.upgrade: Incoming | None = None
        self.request_timeout = self.rest.request_timeout
        self.deadline: asyncio.TimerHandle | None = None
        # Between a request's first and last byte (its 408 clock runs only across reads).
        self.receiving = False
        # After a refusal: input is read and dropped until EOF (see server.linger).
        self.discarding = False
        self.lingering: Lingering | None = None

    # asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.server_state is not None:
            self.server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            if self.lingering is not None:
                self.lingering.feed(data)
            return
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._switch_to_websocket()
        except httptools.HttpParserError:
            self._fail(b"invalid HTTP request")
        else:
            if self.foreign is not None:
                self._hand_to_http()
            elif self.receiving and self.deadline is None and not self.discarding:
                # A request split across reads: nearly every one arrives whole, and pays
                # for no timer.
                self.deadline = asyncio.get_running_loop().call_later(
                    self.request_timeout, self._timed_out, self.current
                )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for timer in (self.idle, self.deadline, self.lingering):
            if timer is not None:
                timer.cancel()
        if self.server_state is not None:
            self.server_state.connections.discard(self)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: finish the request in flight, then close."""
        self.closing = True
        if not self.busy and self.transport is not None:
            self.transport.close()

    # httptools callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.discarding:
            return
        self.current = Incoming(self.max_body)
        self.receiving = True

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.current.header(name, value) and not self.discarding:
            assert self.transport is not None
            self.transport.write(CONTINUE)

    def on_headers_complete(self) -> None:
        if self.current.too_large:  # declared too large: answer now, never read the body
            self._refuse(413, self._too_large_message())

    def on_body(self, body: bytes) -> None:
        if self.discarding:
            return
        if not self.current.body_part(body):  # a chunked body that grew too large
            self._refuse(413, self._too_large_message())

    def _too_large_message(self) -> bytes:
        return too_large_text(self.max_body).encode() + b"\n"

    def _timed_out(self, request: Incoming) -> None:
        self.deadline = None
        if request is self.current and not self.discarding and not self.closing:
            self._refuse(408, TIMED_OUT)

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer the request still arriving with ``status``, in turn, then stop reading it."""
        request = self.current
        request.refuse(status, message)
        self.discarding = True
        self.receiving = False
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.pending.append(request)
        if not self.busy:
            self._next()

    def on_message_complete(self) -> None:
        self.receiving = False
        if self.discarding:
            return  # already answered (413, 408)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        request = self.current
        if self.parser.should_upgrade():
            self.upgrade = request  # data_received hands the socket over
            return
        request.method = self.parser.get_method().decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        if self.http is not None and not self.services.ours(request.url):
            # A pooled proxy connection that began with REST calls, now for the console
            # (or any other Starlette route): data_received hands it to uvicorn's HTTP.
            self.foreign = request
            return
        self.pending.append(request)
        if len(self.pending) >= MAX_PIPELINE and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    def _switch_to_websocket(self) -> None:
        """Hand the socket to a ``Connection``: proxies reuse pooled keep-alive connections
        for WebSocket upgrades, so one can arrive after REST calls on the same socket."""
        request = self.upgrade
        transport = self.transport
        if request is None or transport is None or self.busy or self.pending:
            self._fail(b"upgrade not possible on this connection now")
            return
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self._hand_over(self.services.websocket(server_state=self.server_state), request)

    def _hand_to_http(self) -> None:
        """Give the connection to uvicorn's HTTP protocol, replaying the foreign request.

        Only when nothing of ours is in flight or behind it; otherwise it is answered
        here, in turn (404), so answers never leave out of order.
        """
        request, self.foreign = self.foreign, None
        if request is None:
            return
        if self.busy or self.pending or self.receiving or self.http is None:
            self.pending.append(request)
            if not self.busy:
                self._next()
            return
        self._hand_over(self.http(), request, b"".join(request.body))

    def _hand_over(self, protocol: asyncio.Protocol, request: Incoming, body: bytes = b"") -> None:
        transport = self.transport
        assert transport is not None
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.closing = True
        if self.server_state is not None:
            self.server_state.connections.discard(self)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(request.head() + body)

    # serving -----------------------------------------------------------------------
    def _next(self) -> None:
        while self.pending and not self.closing:
            request = self.pending.popleft()
            coro = self._serve(request)
            if self.services.eager:
                waiting = start_eagerly(coro)
                if waiting is None:
                    continue
            else:
                waiting = asyncio.get_running_loop().create_task(coro)
            self.busy = True
            waiting.add_done_callback(self._resume)
            return
        if self.paused and self.transport is not None and not self.closing:
            self.paused = False
            self.transport.resume_reading()
        if not self.pending and not self.closing:
            self.idle = asyncio.get_running_loop().call_later(KEEP_ALIVE_TIMEOUT, self._expire)

    def _resume(self, _: asyncio.Future[None]) -> None:
        self.busy = False
        if self.closing:
            if self.transport is not None and self.lingering is None:
                self.transport.close()
            return
        self._next()

    def _expire(self) -> None:
        if self.transport is not None and not self.busy:
            self.transport.close()

    async def _serve(self, request: Incoming) -> None:
        if request.refusal is not None:
            status, message = request.refusal
            self._respond(status, message, b"text/plain", keep_alive=False)
            return
        method = request.method
        path, query = request.target()
        where = destination(method, path, self.services.prefix)
        if where == REST:
            body = None if request.too_large else b"".join(request.body)
            status, payload, content_type = await self.rest.handle(
                method, path, query, body, request.idempotency_key
            )
        elif where == NOT_FOUND:
            status, payload, content_type = 404, b"Not found\n", PLAIN
        else:
            status, payload, content_type = self.services.probes.answer(where)
        self._respond(status, payload, content_type, request.keep_alive)

    def _respond(self, status: int, payload: bytes, content_type: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        close = not keep_alive or self.closing
        transport.write(response(status, payload, content_type, close))
        if close:
            self.closing = True
            if self.discarding:
                self._linger(transport)
            else:
                transport.close()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close after the client stops sending (or ``server.linger``'s bounds)."""
        if transport.can_write_eof():
            transport.write_eof()  # the answer is complete: tell the client now
        self.lingering = Lingering(transport, None)

    def _fail(self, message: bytes) -> None:
        """Answer 400 after the requests before it (the parser cannot go on), then close."""
        self.current = Incoming(self.max_body)
        self._refuse(400, message + b"\n")
