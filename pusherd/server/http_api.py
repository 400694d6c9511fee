"""The Pusher HTTP API (``/apps/{app_id}/...``): authenticate, await the broker, answer.

Pusher "HTTP API reference": success is always 200 with a JSON body (the PHP SDK
treats anything else as an error); failures are 400/401/403/404/408/413/429 with a
plain-text message. The rules (routes, validation, answer shapes) are in
``protocol.rest``; signatures are checked on ``/apps/...`` with the mount prefix
stripped, with every SDK's quirks absorbed (``protocol.signing``).

``handle`` serves both the keep-alive fast path (``RestProtocol``) and, as a raw ASGI
app, requests that reach Starlette: this is the publish hot path, and one regex
dispatch plus one body read is all it needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from pusherd.apps.base import App, AppRegistry
from pusherd.brokers.base import Broker, Envelope, EnvelopeKind
from pusherd.config import ServerConfig
from pusherd.errors import ApiError, BrokerError
from pusherd.logs import InfoLine
from pusherd.metrics import Metrics
from pusherd.observer import Observer
from pusherd.protocol import rest
from pusherd.protocol.channels import CACHE_TTL, SERVER_TO_USER_PREFIX, channel_kind
from pusherd.protocol.history import history_page
from pusherd.protocol.http import JSON, PLAIN
from pusherd.protocol.messages import encode_channel_event
from pusherd.protocol.ratelimit import Buckets
from pusherd.protocol.rest_request import (
    IDEMPOTENCY_HEADER,
    TIMED_OUT,
    declares_too_large,
    too_large_text,
)
from pusherd.protocol.signing import parse_query
from pusherd.server.history import ChannelHistory
from pusherd.server.idempotency import Idempotency

__all__ = ["RestApi"]

logger = logging.getLogger("pusherd.http")
_info = InfoLine("pusherd.http")

Answer = tuple[int, bytes, bytes]
_TIMED_OUT: Answer = (408, TIMED_OUT, PLAIN)


class RestApi:
    """Answers REST requests; also an ASGI app (mount it at the path prefix)."""

    def __init__(
        self,
        server: ServerConfig,
        apps: AppRegistry,
        broker: Broker,
        metrics: Metrics,
        observer: Observer,
        history: ChannelHistory,
        idempotency: Idempotency,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        connections: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        """``connections``: an app's open connections, cluster-wide (default: this node's)."""
        self.apps = apps
        self.broker = broker
        self.metrics = metrics
        self.observer = observer
        self.history = history
        self.idempotency = idempotency
        self.wall_clock = wall_clock
        self.clock = clock
        self.prefix = server.path_prefix
        self.window = server.timestamp_window
        self.max_body = server.max_http_body_kb * 1024
        self.request_timeout = server.http_request_timeout
        self._buckets = Buckets()
        self._count_connections = connections or self._local_connections

    def too_large(self) -> ApiError:
        return ApiError(too_large_text(self.max_body), 413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request as an ASGI app (behind uvicorn's HTTP protocol)."""
        try:
            async with asyncio.timeout(self.request_timeout):
                body = await self._read_body(scope, receive)
        except TimeoutError:
            status, payload, content_type = _TIMED_OUT
        else:
            key = next((v for k, v in scope.get("headers", ()) if k == IDEMPOTENCY_HEADER), None)
            status, payload, content_type = await self.handle(
                scope["method"], scope["path"], scope.get("query_string", b""), body, key
            )
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(payload))]
        if status in (408, 413):
            # The rest of the body is not read: the connection cannot carry another request.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it is known to pass ``max_http_body_kb``."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and declares_too_large(value, self.max_body):
                return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def handle(
        self,
        method: str,
        path: str,
        query_string: bytes,
        body: bytes | None,
        idempotency_key: bytes | None = None,
    ) -> Answer:
        """Answer one REST request; return (status, body, content type).

        Args:
            path: the decoded path, mount prefix included.
            body: the raw body, or None when it was larger than ``max_http_body_kb``.
            idempotency_key: the ``Idempotency-Key`` header, if any (``POST /events``).
        """
        started = time.perf_counter()
        endpoint = "unknown"
        received = len(body) if body is not None else 0
        try:
            path, endpoint, groups = rest.route(method, path, self.prefix)
            if body is None:
                raise self.too_large()
            params = parse_query(query_string.decode("latin-1"))
            app = rest.authenticate(
                self.apps,
                endpoint,
                groups,
                method,
                path,
                params,
                body,
                self.wall_clock(),
                self.window,
            )
            if endpoint == "events":
                result = await self._events(app, body, idempotency_key)
            else:
                result = await getattr(self, "_" + endpoint)(app, groups, params, body)
            # bytes: the answer stored for an idempotency key, returned exactly
            payload = result if type(result) is bytes else orjson.dumps(result)
            status, content_type = 200, JSON
        except ApiError as exc:
            status, payload, content_type = exc.status, exc.message.encode() + b"\n", PLAIN
        except BrokerError as exc:
            logger.warning("rest %s failed: broker unavailable: %s", endpoint, exc)
            status, payload, content_type = 503, b"Service temporarily unavailable\n", PLAIN
        except Exception:
            logger.exception("rest %s failed", endpoint)
            status, payload, content_type = 500, b"Internal server error\n", PLAIN
        elapsed = time.perf_counter() - started
        self.metrics.http_request(endpoint, status, elapsed, received, len(payload))
        if _info.enabled:
            _info(f"rest {method} {endpoint} -> {status} ({elapsed * 1000:.1f} ms)")
        return status, payload, content_type

    # endpoints ---------------------------------------------------------------------
    async def _events(self, app: App, body: bytes, header_key: bytes | None) -> Any:
        event = rest.check_events(body, app.max_event_payload_bytes, header_key)
        key = event.idempotency_key
        if key is not None:
            return await self.idempotency.once(app, key, lambda: self._event_answer(app, event))
        self._rate_limit(app, len(event.channels))
        await self._publish(app, event)
        if event.info:
            return {"channels": {c: await self._info(app, c, event.info) for c in event.channels}}
        return {}

    async def _event_answer(self, app: App, event: rest.Event) -> bytes:
        """Publish a keyed event; return its answer as the bytes stored for the key."""
        self._rate_limit(app, len(event.channels))
        await self._publish(app, event)
        if event.info:
            info = {c: await self._info(app, c, event.info) for c in event.channels}
            return orjson.dumps({"channels": info})
        return b"{}"

    async def _batch_events(
        self, app: App, groups: tuple[str, ...], params: Any, body: bytes
    ) -> Any:
        events = rest.check_batch(body, app.max_event_payload_bytes)
        if any(event.idempotency_key for event in events):
            # every item on its own: a repeated item is answered, not published again
            answers = [await self._batch_item(app, event) for event in events]
        else:
            self._rate_limit(app, len(events))
            for event in events:
                await self._publish(app, event)
            answers = [
                await self._info(app, event.channels[0], event.info) if event.info else {}
                for event in events
            ]
        if not any(event.info for event in events):
            return {}
        return {"batch": answers}

    async def _batch_item(self, app: App, event: rest.Event) -> Any:
        async def publish() -> bytes:
            self._rate_limit(app, 1)
            await self._publish(app, event)
            info = await self._info(app, event.channels[0], event.info) if event.info else {}
            return orjson.dumps(info)

        if event.idempotency_key is None:
            return orjson.loads(await publish())
        return orjson.loads(await self.idempotency.once(app, event.idempotency_key, publish))

    async def _channels(
        self, app: App, groups: tuple[str, ...], params: list[tuple[str, str]], body: bytes
    ) -> Any:
        prefix, info = rest.channels_query(dict(params))
        stats = await self.broker.channels(app.id, prefix)
        return {"channels": rest.channels_info(stats, info)}

    async def _channel(
        self, app: App, groups: tuple[str, ...], params: list[tuple[str, str]], body: bytes
    ) -> Any:
        channel = rest.channel_param(groups[1])
        info = rest.channel_query(channel, dict(params))
        return await self._info(app, channel, info, with_occupied=True)

    async def _users(self, app: App, groups: tuple[str, ...], params: Any, body: bytes) -> Any:
        channel = rest.presence_channel_param(groups[1])
        members = await self.broker.members(app.id, channel)
        return {"users": [{"id": user_id} for user_id in members]}

    async def _terminate(self, app: App, groups: tuple[str, ...], params: Any, body: bytes) -> Any:
        user_id = rest.user_param(groups[-1])
        await self.broker.publish(
            Envelope(app.id, SERVER_TO_USER_PREFIX + user_id, b"", kind=EnvelopeKind.TERMINATE)
        )
        return {}

    _terminate_by_key = _terminate

    async def _history(
        self, app: App, groups: tuple[str, ...], params: list[tuple[str, str]], body: bytes
    ) -> Any:
        channel = rest.channel_param(groups[1])
        rule, limit = rest.history_query(app.history, channel, dict(params))
        events = await self.broker.history(app.id, channel, limit, rule.max_age)
        return history_page(events)

    async def _connections(
        self, app: App, groups: tuple[str, ...], params: Any, body: bytes
    ) -> Any:
        return {"connections": await self._count_connections(app.id)}

    async def _local_connections(self, app_id: str) -> int:
        return int(self.metrics.read("connected").get((app_id,), 0))

    # helpers -----------------------------------------------------------------------
    async def _publish(self, app: App, event: rest.Event) -> None:
        for channel in event.channels:
            payload = encode_channel_event(event.name, channel, event.data)
            if channel_kind(channel).is_cache:
                await self.broker.cache_set(app.id, channel, payload, CACHE_TTL)
            envelope = Envelope(app.id, channel, payload, event.socket_id)
            if app.history:
                await self.history.publish(app, envelope)
            else:
                await self.broker.publish(envelope)
            self.observer.api_message(app.id, channel, event.name, payload, event.socket_id)

    async def _info(
        self, app: App, channel: str, info: AbstractSet[str], with_occupied: bool = False
    ) -> dict[str, Any]:
        stats = await self.broker.channel_stats(app.id, channel)
        cached = await self.broker.cache_get(app.id, channel) if "cache" in info else None
        return rest.channel_info(stats, info, cached, with_occupied)

    def _rate_limit(self, app: App, events: int) -> None:
        rate = app.max_backend_events_per_second
        if rate <= 0:
            return
        if not self._buckets.take(app.id, rate, events, self.clock()):
            self.metrics.rate_limited(app.id, "backend_events")
            raise ApiError(f"Rate limit exceeded: at most {rate} events per second", 429)
