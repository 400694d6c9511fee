"""The Pusher HTTP API's rules, as values in and values out ("HTTP API reference").

Routing, body and query validation and the shapes of the answers live here; the server
layer only authenticates, awaits the broker and writes the answer. Every refusal is an
``ApiError`` carrying its HTTP status and the plain-text message hosted Pusher gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from pusherd.apps.base import App, AppRegistry
from pusherd.errors import ApiError
from pusherd.protocol.channels import channel_kind, channel_name_error
from pusherd.protocol.history import HistoryRule, idempotency_key_error, match_rule
from pusherd.protocol.http import strip_prefix
from pusherd.protocol.messages import load_json
from pusherd.protocol.signing import verify_request

__all__ = [
    "MAX_BATCH",
    "MAX_CHANNELS",
    "MAX_EVENT_NAME",
    "ChannelStats",
    "Event",
    "authenticate",
    "channel_info",
    "channel_param",
    "channel_query",
    "channels_info",
    "channels_query",
    "check_batch",
    "check_event",
    "check_events",
    "history_query",
    "idempotency_key",
    "info_fields",
    "json_object",
    "match_route",
    "presence_channel_param",
    "route",
    "user_param",
]

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
    # extension: the retained events of a history channel (``[[apps.history]]``)
    ("GET", re.compile(r"/apps/([^/]+)/channels/([^/]+)/events"), "history"),
    # Reverb Pulse's connections card polls this one (an extension of the Pusher API).
    ("GET", re.compile(r"/apps/([^/]+)/connections"), "connections"),
    ("POST", re.compile(r"/apps/([^/]+)/users/([^/]+)/terminate_connections"), "terminate"),
    # The Python SDK posts this one without the /apps/{id} prefix; the app comes from auth_key.
    ("POST", re.compile(r"/users/([^/]+)/terminate_connections"), "terminate_by_key"),
]
_EVENT_INFO = frozenset({"user_count", "subscription_count"})
_NO_INFO: frozenset[str] = frozenset()


class ChannelStats(Protocol):
    """What the broker counts for a channel (``brokers.base.ChannelStats``)."""

    @property
    def subscription_count(self) -> int: ...

    @property
    def user_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One event to publish: ``data`` is the string every subscriber receives."""

    channels: list[str]
    name: str
    data: str
    socket_id: str | None
    info: AbstractSet[str]
    idempotency_key: str | None = None  # publish once per key (``idempotency_ttl``)


def match_route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """Return the endpoint name and path groups for a request (prefix already removed).

    Raises:
        ApiError: 404 for an unknown path, 405 for a known path with another method.
    """
    known = False
    for route_method, pattern, endpoint in _ROUTES:
        found = pattern.fullmatch(path)
        if found is not None:
            if route_method == method:
                return endpoint, found.groups()
            known = True
    raise ApiError("Not found", 405 if known else 404)


def route(method: str, path: str, prefix: str) -> tuple[str, str, tuple[str, ...]]:
    """Return the path inside ``prefix``, the endpoint name and the path groups.

    Args:
        path: the decoded path, mount prefix included.
        prefix: the mount prefix (``path_prefix``), "" for none.

    Raises:
        ApiError: 404 outside ``prefix`` or for an unknown path, 405 for a known path
            with another method (``match_route``).
    """
    local = strip_prefix(path, prefix)
    if local is None:
        raise ApiError("Not found", 404)
    endpoint, groups = match_route(method, local)
    return local, endpoint, groups


def authenticate(
    apps: AppRegistry,
    endpoint: str,
    groups: tuple[str, ...],
    method: str,
    path: str,
    params: list[tuple[str, str]],
    body: bytes,
    now: float,
    window: int,
) -> App:
    """Return the app a request is signed for (Pusher "Authenticating requests").

    The app comes from the path, or for the Python SDK's ``/users/...`` call from
    ``auth_key``; an unknown app is 404 (401 by key), a bad signature 401, a disabled
    app 403.
    """
    if endpoint == "terminate_by_key":
        key = next((v for k, v in params if k.lower() == "auth_key"), "")
        app = apps.by_key(key)
        if app is None:
            raise ApiError("Unknown auth_key", 401)
    else:
        app = apps.by_id(groups[0])
        if app is None:
            raise ApiError(f"Unknown app_id: {groups[0][:64]}", 404)
    verify_request(app.key, app.secret, method, path, params, body, now, window)
    if not app.enabled:
        raise ApiError("Application disabled", 403)
    return app


def json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object body (400 for anything else)."""
    try:
        value = load_json(body)
    except ValueError as exc:
        raise ApiError(f"Invalid JSON body: {exc}", 400) from None
    if not isinstance(value, dict):
        raise ApiError("The body must be a JSON object", 400)
    return value


def check_event(event: Mapping[str, Any], channels: Any, max_payload: int) -> Event:
    """Validate one event of ``POST /events`` or a ``batch_events`` item.

    Args:
        channels: the event's channels (``channels``, or PHP's singular ``channel``).
        max_payload: the app's ``max_event_payload_kb`` in bytes (413 above it).
    """
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
    if len(data) * 4 > max_payload and len(data.encode()) > max_payload:  # ≤ 4 bytes a char
        raise ApiError(f"Event data too large: at most {max_payload // 1024} KB", 413)
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
    info = info_fields(raw_info, _EVENT_INFO) if raw_info else _NO_INFO
    if "user_count" in info and not all(channel_kind(c).is_presence for c in channels):
        raise ApiError("info=user_count is only available for presence channels", 400)
    key = event.get("idempotency_key")
    if key is not None:
        key = idempotency_key(key)
    return Event(channels, name, data, socket_id, info, key)


def check_events(body: bytes, max_payload: int, header_key: bytes | None = None) -> Event:
    """Validate the body of ``POST /events``.

    Args:
        header_key: the ``Idempotency-Key`` header, if any: the event's key when its
            body names none (the body's ``idempotency_key`` wins); checked last.
    """
    event = json_object(body)
    channels = event.get("channels")
    if channels is None and "channel" in event:
        channels = [event["channel"]]
    checked = check_event(event, channels, max_payload)
    if checked.idempotency_key is None and header_key is not None:
        key = idempotency_key(header_key.decode("latin-1"))
        return replace(checked, idempotency_key=key)
    return checked


def check_batch(body: bytes, max_payload: int) -> list[Event]:
    """Validate the body of ``POST /batch_events``: every item, or none is published."""
    batch = json_object(body).get("batch")
    if not isinstance(batch, list) or not batch:
        raise ApiError("Missing required parameter: batch (a non-empty array)", 400)
    if len(batch) > MAX_BATCH:
        raise ApiError(f"Batch too large: at most {MAX_BATCH} events", 400)
    events = []
    for item in batch:
        if not isinstance(item, dict):
            raise ApiError("Invalid batch: every item must be an object", 400)
        channel = item.get("channel")
        if channel is None:
            raise ApiError("Missing required parameter: channel", 400)
        events.append(check_event(item, [channel], max_payload))
    return events


def info_fields(raw: object, allowed: AbstractSet[str]) -> AbstractSet[str]:
    """Parse an ``info`` list ("user_count,subscription_count") against ``allowed``."""
    if not isinstance(raw, str):
        raise ApiError("info must be a comma-separated string", 400)
    fields = {f.strip() for f in raw.split(",") if f.strip()}
    unknown = fields - allowed
    if unknown:
        raise ApiError(f"Unsupported info attribute: {', '.join(sorted(unknown))}", 400)
    return fields


def idempotency_key(value: object) -> str:
    """Return ``value`` as an idempotency key, or raise ``ApiError`` (400).

    The key of ``POST /events`` (its ``idempotency_key`` or its ``Idempotency-Key``
    header) and of each ``batch_events`` item.
    """
    error = idempotency_key_error(value)
    if error is not None:
        raise ApiError(error, 400)
    assert isinstance(value, str)
    return value


def channel_param(channel: str) -> str:
    """Check a channel name taken from the path."""
    error = channel_name_error(channel)
    if error is not None:
        raise ApiError(f"Invalid channel: {error}", 400)
    return channel


def presence_channel_param(channel: str) -> str:
    """Check the channel of ``GET /channels/{channel}/users``: only presence has users."""
    channel_param(channel)
    if not channel_kind(channel).is_presence:
        raise ApiError("Users are only available for presence channels", 400)
    return channel


def channels_query(query: Mapping[str, str]) -> tuple[str, AbstractSet[str]]:
    """Return ``filter_by_prefix`` and ``info`` of ``GET /channels``."""
    prefix = query.get("filter_by_prefix", "")
    info = info_fields(query.get("info", ""), {"user_count", "subscription_count"})
    if "user_count" in info and not prefix.startswith("presence-"):
        raise ApiError("info=user_count is only allowed with filter_by_prefix=presence-", 400)
    return prefix, info


def channel_query(channel: str, query: Mapping[str, str]) -> AbstractSet[str]:
    """Return the ``info`` of ``GET /channels/{channel}``."""
    info = info_fields(query.get("info", ""), {"user_count", "subscription_count", "cache"})
    kind = channel_kind(channel)
    if "user_count" in info and not kind.is_presence:
        raise ApiError("info=user_count is only available for presence channels", 400)
    if "cache" in info and not kind.is_cache:
        raise ApiError("info=cache is only available for cache channels", 400)
    return info


def history_query(
    rules: tuple[HistoryRule, ...], channel: str, query: Mapping[str, str]
) -> tuple[HistoryRule, int]:
    """Return the rule keeping ``channel``'s history and how many events to read.

    ``GET /channels/{channel}/events`` (an extension): ``limit`` (a positive integer)
    reads at most that many of the newest events, never more than the rule keeps.

    Raises:
        ApiError: 404 when no ``[[apps.history]]`` rule keeps the channel, 400 for a bad
            ``limit``.
    """
    rule = match_rule(rules, channel)
    if rule is None:
        raise ApiError("No history is kept for this channel (no [[apps.history]] rule)", 404)
    raw = query.get("limit")
    limit = rule.max_events
    if raw is not None:
        if not raw.isdigit() or int(raw) < 1:
            raise ApiError("limit must be a positive integer", 400)
        limit = min(int(raw), rule.max_events)
    return rule, limit


def channels_info(
    stats: Mapping[str, ChannelStats], info: AbstractSet[str]
) -> dict[str, dict[str, int]]:
    """The ``channels`` object of ``GET /channels``."""
    result: dict[str, dict[str, int]] = {}
    for channel, stat in stats.items():
        attributes: dict[str, int] = {}
        if "user_count" in info:
            attributes["user_count"] = stat.user_count
        if "subscription_count" in info:
            attributes["subscription_count"] = stat.subscription_count
        result[channel] = attributes
    return result


def channel_info(
    stats: ChannelStats,
    info: AbstractSet[str],
    cached: tuple[bytes, float] | None = None,
    with_occupied: bool = False,
) -> dict[str, Any]:
    """One channel's attributes (``GET /channels/{channel}``, ``info`` on events)."""
    result: dict[str, Any] = {}
    if with_occupied:
        result["occupied"] = stats.subscription_count > 0
    if "user_count" in info:
        result["user_count"] = stats.user_count
    if "subscription_count" in info:
        result["subscription_count"] = stats.subscription_count
    if "cache" in info:
        result["cache"] = (
            None
            if cached is None
            else {"data": orjson.loads(cached[0]).get("data"), "ttl": int(cached[1])}
        )
    return result


def user_param(user_id: str) -> str:
    """Check a user id taken from the path of ``terminate_connections``."""
    if not user_id or len(user_id) > 200:
        raise ApiError("Invalid user id", 400)
    return user_id
