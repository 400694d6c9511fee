"""A real HTTP webhook receiver on 127.0.0.1 for tests.

A small HTTP/1.1 server on ``asyncio.start_server`` (keep-alive, ``Content-Length`` and
chunked bodies) that records every request's headers and raw body. Tests can make it
answer the next N requests with an error, answer slowly, or go down (listener and
connections closed) and come back on the same port, and can await "K events received".

Usage::

    async with WebhookReceiver() as receiver:
        target = WebhookTarget(url=receiver.url("/hook"))
        ...
        events = await receiver.wait_for_events(3)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    raw_headers: tuple[tuple[str, str], ...]  # names as sent
    body: bytes
    status: int
    at: float  # loop time when it arrived
    parsed: Any = field(default=None, repr=False, compare=False)  # body as JSON, if it is

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def json(self) -> Any:
        return self.parsed if self.parsed is not None else json.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.json["events"]
        return events


@dataclass
class WebhookReceiver:
    """Records webhook POSTs; see the module docstring."""

    host: str = "127.0.0.1"
    port: int = 0
    delay: float = 0.0  # seconds to wait before answering each request
    requests: list[Received] = field(default_factory=list)
    _fail: deque[int] = field(default_factory=deque)  # statuses for the next requests
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _events: list[dict[str, Any]] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    async def __aenter__(self) -> WebhookReceiver:
        await self.up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.down()

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` (they are still recorded)."""
        self._fail.extend([status] * count)

    async def up(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Stop listening and cut every open connection; ``up()`` brings it back."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # queries -----------------------------------------------------------------------
    @property
    def accepted(self) -> list[Received]:
        """Requests answered with 2xx, in arrival order."""
        return [r for r in self.requests if r.ok]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of accepted requests, in arrival order (duplicates included)."""
        return list(self._events)

    @property
    def distinct(self) -> int:
        """How many distinct event ids accepted requests carried."""
        return len(self._ids)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition()`` holds after some request; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until accepted requests carry ``count`` distinct event ids; return them all."""
        await self.wait_until(lambda: len(self._ids) >= count, timeout)
        return self.events

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` requests (any status) arrived; return them."""
        await self.wait_until(lambda: len(self.requests) >= count, timeout)
        return self.requests

    # HTTP --------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # down() cut this connection; end the handler quietly
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()  # no wait_closed(): down() may cancel us again right here

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Handle one request; return whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        raw = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                raw.append((name.strip(), value.strip()))
        headers = {name.lower(): value for name, value in raw}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        arrived = asyncio.get_running_loop().time()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self._fail.popleft() if self._fail else 200
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        request = Received(method, path, headers, tuple(raw), body, status, arrived, parsed)
        self.requests.append(request)
        if request.ok and isinstance(parsed, dict):
            for event in parsed.get("events", []):
                self._events.append(event)
                self._ids.add(event.get("id"))
        reply = b"{}"
        writer.write(
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(reply)}\r\n\r\n".encode()
            + reply
        )
        await writer.drain()
        self._changed.set()
        return headers.get("connection", "").lower() != "close"


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
