"""The Pusher HTTP API (``/apps/{app_id}/...``) as a plain ASGI app.

Pusher "HTTP API reference": success is always 200 with a JSON body (the PHP SDK
treats anything else as an error); failures are 400/401/403/404/413/429 with a
plain-text message. Signatures are checked on ``/apps/...`` with the mount prefix
stripped, with every SDK's quirks absorbed (``protocol.signing``).

Written as raw ASGI rather than Starlette routes: this is the publish hot path, and
one regex dispatch plus one body read is all it needs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from pusherd.apps.base import App
from pusherd.brokers.base import Envelope, EnvelopeKind
from pusherd.errors import ApiError, BrokerError
from pusherd.logs import InfoLine
from pusherd.protocol.channels import SERVER_TO_USER_PREFIX, channel_kind, channel_name_error
from pusherd.protocol.messages import encode_channel_event
from pusherd.protocol.signing import parse_query, verify_request
from pusherd.server.membership import CACHE_TTL
from pusherd.server.node import Node

__all__ = ["MAX_BATCH", "MAX_CHANNELS", "RestApi"]

logger = logging.getLogger("pusherd.http")
_info = InfoLine("pusherd.http")

MAX_CHANNELS = 100
MAX_BATCH = 10
MAX_EVENT_NAME = 200
_SOCKET_ID = re.compile(r"\d+\.\d+")
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/apps/([^/]+)/events"), "events"),
    ("POST", re.compile(r"/apps/([^/]+)/batch_events"), "batch_events"),
    ("GET", re.compile(r"/apps/([^/]+)/channels"), "channels"),
    ("GET", re.compile(r"/apps/([^/]+)/channels/([^/]+)"), "channel"),
    ("GET", re.compile(r"/apps/([^/]+)/channels/([^/]+)/users"), "users"),
    ("POST", re.compile(r"/apps/([^/]+)/users/([^/]+)/terminate_connections"), "terminate"),
    # The Python SDK posts this one without the /apps/{id} prefix; the app comes from auth_key.
    ("POST", re.compile(r"/users/([^/]+)/terminate_connections"), "terminate_by_key"),
]


class RestApi:
    """ASGI app for the REST API; mount it at the path prefix."""

    def __init__(self, node: Node, wall_clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.broker = node.broker
        self.wall_clock = wall_clock
        config = node.config.server
        self.prefix = config.path_prefix
        self.window = config.timestamp_window
        self.max_body = config.max_http_body_kb * 1024
        self.request_timeout = config.http_request_timeout
        self._buckets: dict[str, tuple[float, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request as an ASGI app (behind uvicorn's HTTP protocol)."""
        timed_out = False
        try:
            async with asyncio.timeout(self.request_timeout):
                body: bytes | None = await self._read_body(scope, receive)
        except ApiError:
            body = None  # too large: handle() answers 413
        except TimeoutError:
            body, timed_out = b"", True
        if timed_out:
            status, payload, content_type = 408, b"Request not received in time\n", b"text/plain"
        else:
            status, payload, content_type = await self.handle(
                scope["method"], scope["path"], scope.get("query_string", b""), body
            )
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(payload))]
        if status in (408, 413):
            # The rest of the body is not read: the connection cannot carry another request.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def handle(
        self, method: str, path: str, query_string: bytes, body: bytes | None
    ) -> tuple[int, bytes, bytes]:
        """Answer one REST request; return (status, body, content type).

        Args:
            path: the decoded path, mount prefix included.
            body: the raw body, or None when it was larger than ``max_http_body_kb``.
        """
        started = time.perf_counter()
        endpoint = "unknown"
        received = len(body) if body is not None else 0
        try:
            if self.prefix and path.startswith(self.prefix):
                path = path[len(self.prefix) :]
            route = _match(method, path)
            if route is None:
                raise ApiError("Not found", 404 if _known_path(path) is None else 405)
            endpoint, groups = route
            if body is None:
                raise ApiError(f"Request body larger than {self.max_body // 1024} KB", 413)
            params = parse_query(query_string.decode("latin-1"))
            app = self._authenticate(endpoint, groups, method, path, params, body)
            result = await getattr(self, "_" + endpoint)(app, groups, params, body)
            status, payload, content_type = 200, orjson.dumps(result), b"application/json"
        except ApiError as exc:
            status, payload, content_type = exc.status, exc.message.encode() + b"\n", b"text/plain"
        except BrokerError as exc:
            logger.warning("rest %s failed: broker unavailable: %s", endpoint, exc)
            status, payload, content_type = 503, b"Service temporarily unavailable\n", b"text/plain"
        except Exception:
            logger.exception("rest %s failed", endpoint)
            status, payload, content_type = 500, b"Internal server error\n", b"text/plain"
        elapsed = time.perf_counter() - started
        self.node.metrics.http_request(endpoint, status, elapsed, received, len(payload))
        if _info.enabled:
            _info(f"rest {method} {endpoint} -> {status} ({elapsed * 1000:.1f} ms)")
        return status, payload, content_type

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                raise ApiError(f"Request body larger than {self.max_body // 1024} KB", 413)
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
                raise ApiError(f"Request body larger than {self.max_body // 1024} KB", 413)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _authenticate(
        self,
        endpoint: str,
        groups: tuple[str, ...],
        method: str,
        path: str,
        params: list[tuple[str, str]],
        body: bytes,
    ) -> App:
        if endpoint == "terminate_by_key":
            key = next((v for k, v in params if k.lower() == "auth_key"), "")
            app = self.node.apps.by_key(key)
            if app is None:
                raise ApiError("Unknown auth_key", 401)
        else:
            app = self.node.apps.by_id(groups[0])
            if app is None:
                raise ApiError(f"Unknown app_id: {groups[0][:64]}", 404)
        verify_request(
            app.key, app.secret, method, path, params, body, self.wall_clock(), self.window
        )
        if not app.enabled:
            raise ApiError("Application disabled", 403)
        return app

    # endpoints ---------------------------------------------------------------------
    async def _events(self, app: App, groups: tuple[str, ...], params: Any, body: bytes) -> Any:
        event = _json_object(body)
        channels = event.get("channels")
        if channels is None and "channel" in event:
            channels = [event["channel"]]
        name, data, socket_id, info = self._check_event(app, event, channels)
        assert isinstance(channels, list)
        self._rate_limit(app, len(channels))
        await self._publish(app, channels, name, data, socket_id)
        if info:
            return {"channels": {c: await self._info(app, c, info) for c in channels}}
        return {}

    async def _batch_events(
        self, app: App, groups: tuple[str, ...], params: Any, body: bytes
    ) -> Any:
        batch = _json_object(body).get("batch")
        if not isinstance(batch, list) or not batch:
            raise ApiError("Missing required parameter: batch (a non-empty array)", 400)
        if len(batch) > MAX_BATCH:
            raise ApiError(f"Batch too large: at most {MAX_BATCH} events", 400)
        checked = []
        for item in batch:
            if not isinstance(item, dict):
                raise ApiError("Invalid batch: every item must be an object", 400)
            channel = item.get("channel")
            if channel is None:
                raise ApiError("Missing required parameter: channel", 400)
            checked.append((channel, *self._check_event(app, item, [channel])))
        self._rate_limit(app, len(checked))
        for channel, name, data, socket_id, _ in checked:
            await self._publish(app, [channel], name, data, socket_id)
        if not any(info for *_, info in checked):
            return {}
        return {
            "batch": [
                await self._info(app, channel, info) if info else {}
                for channel, _, _, _, info in checked
            ]
        }

    async def _channels(
        self, app: App, groups: tuple[str, ...], params: list[tuple[str, str]], body: bytes
    ) -> Any:
        query = dict(params)
        prefix = query.get("filter_by_prefix", "")
        info = _info_fields(query.get("info", ""), {"user_count", "subscription_count"})
        if "user_count" in info and not prefix.startswith("presence-"):
            raise ApiError("info=user_count is only allowed with filter_by_prefix=presence-", 400)
        stats = await self.broker.channels(app.id, prefix)
        result: dict[str, dict[str, int]] = {}
        for channel, stat in stats.items():
            attributes: dict[str, int] = {}
            if "user_count" in info:
                attributes["user_count"] = stat.user_count
            if "subscription_count" in info:
                attributes["subscription_count"] = stat.subscription_count
            result[channel] = attributes
        return {"channels": result}

    async def _channel(
        self, app: App, groups: tuple[str, ...], params: list[tuple[str, str]], body: bytes
    ) -> Any:
        channel = _channel_param(groups[1])
        info = _info_fields(
            dict(params).get("info", ""), {"user_count", "subscription_count", "cache"}
        )
        kind = channel_kind(channel)
        if "user_count" in info and not kind.is_presence:
            raise ApiError("info=user_count is only available for presence channels", 400)
        if "cache" in info and not kind.is_cache:
            raise ApiError("info=cache is only available for cache channels", 400)
        return await self._info(app, channel, info, with_occupied=True)

    async def _users(self, app: App, groups: tuple[str, ...], params: Any, body: bytes) -> Any:
        channel = _channel_param(groups[1])
        if not channel_kind(channel).is_presence:
            raise ApiError("Users are only available for presence channels", 400)
        members = await self.broker.members(app.id, channel)
        return {"users": [{"id": user_id} for user_id in members]}

    async def _terminate(self, app: App, groups: tuple[str, ...], params: Any, body: bytes) -> Any:
        user_id = groups[-1]
        if not user_id or len(user_id) > 200:
            raise ApiError("Invalid user id", 400)
        await self.broker.publish(
            Envelope(app.id, SERVER_TO_USER_PREFIX + user_id, b"", kind=EnvelopeKind.TERMINATE)
        )
        return {}

    _terminate_by_key = _terminate

    # helpers -----------------------------------------------------------------------
    def _check_event(
        self, app: App, event: dict[str, Any], channels: Any
    ) -> tuple[str, str, str | None, AbstractSet[str]]:
        name = event.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError("Missing required parameter: name", 400)
        if len(name) > MAX_EVENT_NAME:
            raise ApiError(f"Event name too long: at most {MAX_EVENT_NAME} characters", 400)
        if "data" not in event:
            raise ApiError("Missing required parameter: data", 400)
        data = event["data"]
        if not isinstance(data, str):
            data = orjson.dumps(data).decode()
        limit = app.max_event_payload_bytes
        if len(data) * 4 > limit and len(data.encode()) > limit:  # ≤ 4 UTF-8 bytes a char
            raise ApiError(f"Event data too large: at most {app.max_event_payload_kb} KB", 413)
        if not isinstance(channels, list) or not channels:
            raise ApiError("Missing required parameter: channels (or channel)", 400)
        if len(channels) > MAX_CHANNELS:
            raise ApiError(f"Too many channels: at most {MAX_CHANNELS} per event", 400)
        for channel in channels:
            error = channel_name_error(channel)
            if error is not None:
                raise ApiError(f"Invalid channel {str(channel)[:200]!r}: {error}", 400)
        if len(channels) > 1 and any(channel_kind(c).is_encrypted for c in channels):
            raise ApiError("Cannot trigger to several channels when one is encrypted", 400)
        socket_id = event.get("socket_id")
        if socket_id is not None and (
            not isinstance(socket_id, str) or not _SOCKET_ID.fullmatch(socket_id)
        ):
            raise ApiError("Invalid socket_id", 400)
        raw_info = event.get("info")
        info = _info_fields(raw_info, _EVENT_INFO) if raw_info else _NO_INFO
        if "user_count" in info and not all(channel_kind(c).is_presence for c in channels):
            raise ApiError("info=user_count is only available for presence channels", 400)
        return name, data, socket_id, info

    async def _publish(
        self, app: App, channels: list[str], name: str, data: str, socket_id: str | None
    ) -> None:
        for channel in channels:
            payload = encode_channel_event(name, channel, data)
            if channel_kind(channel).is_cache:
                await self.broker.cache_set(app.id, channel, payload, CACHE_TTL)
            await self.broker.publish(Envelope(app.id, channel, payload, socket_id))

    async def _info(
        self, app: App, channel: str, info: AbstractSet[str], with_occupied: bool = False
    ) -> dict[str, Any]:
        stats = await self.broker.channel_stats(app.id, channel)
        result: dict[str, Any] = {}
        if with_occupied:
            result["occupied"] = stats.subscription_count > 0
        if "user_count" in info:
            result["user_count"] = stats.user_count
        if "subscription_count" in info:
            result["subscription_count"] = stats.subscription_count
        if "cache" in info:
            cached = await self.broker.cache_get(app.id, channel)
            result["cache"] = (
                None
                if cached is None
                else {"data": orjson.loads(cached[0]).get("data"), "ttl": int(cached[1])}
            )
        return result

    def _rate_limit(self, app: App, events: int) -> None:
        rate = app.max_backend_events_per_second
        if rate <= 0:
            return
        now = time.monotonic()
        tokens, at = self._buckets.get(app.id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - at) * rate)
        if tokens < events:
            self._buckets[app.id] = (tokens, now)
            self.node.metrics.rate_limited(app.id, "backend_events")
            raise ApiError(f"Rate limit exceeded: at most {rate} events per second", 429)
        self._buckets[app.id] = (tokens - events, now)


def _match(method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
    for route_method, pattern, endpoint in _ROUTES:
        found = pattern.fullmatch(path)
        if found is not None and route_method == method:
            return endpoint, found.groups()
    return None


def _known_path(path: str) -> str | None:
    for _, pattern, endpoint in _ROUTES:
        if pattern.fullmatch(path):
            return endpoint
    return None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError("Invalid JSON body", 400) from None
    if not isinstance(value, dict):
        raise ApiError("The body must be a JSON object", 400)
    return value


_EVENT_INFO = frozenset({"user_count", "subscription_count"})
_NO_INFO: frozenset[str] = frozenset()


def _info_fields(raw: object, allowed: AbstractSet[str]) -> AbstractSet[str]:
    if not isinstance(raw, str):
        raise ApiError("info must be a comma-separated string", 400)
    fields = {f.strip() for f in raw.split(",") if f.strip()}
    unknown = fields - allowed
    if unknown:
        raise ApiError(f"Unsupported info attribute: {', '.join(sorted(unknown))}", 400)
    return fields


def _channel_param(channel: str) -> str:
    error = channel_name_error(channel)
    if error is not None:
        raise ApiError(f"Invalid channel: {error}", 400)
    return channel
