"""Client messages in, server messages out (Pusher protocol v7, "Events").

Server → client ``data`` is a *string* of JSON ("double encoding"), except
``pusher:error``, whose data is an object as hosted Pusher sends it. Client → server
``data`` may be an object or a string; both are accepted.

Every JSON value a client sends, and every JSON string inside one (``data``,
``channel_data``, ``user_data``), is decoded by ``load_json``: nested deeper than
``MAX_JSON_DEPTH`` it is refused, so nothing downstream (orjson's encoder stops at 255
levels, ``repr`` at Python's recursion limit) ever meets a value it cannot handle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from pusherd.errors import PusherError, SubscriptionError
from pusherd.types import JSON

__all__ = [
    "MAX_JSON_DEPTH",
    "ClientMessage",
    "data_object",
    "encode_channel_event",
    "encode_error",
    "encode_event",
    "error_messages",
    "json_preview",
    "load_json",
    "parse_client_message",
]

# Deep enough for any real payload, far below orjson's 255-level encoder limit even
# after the server wraps a value in a few envelopes (presence hash, member, event).
MAX_JSON_DEPTH = 64
_DEEP = f"nested deeper than {MAX_JSON_DEPTH} levels"
_DEEP_MESSAGE = f"Invalid message: JSON {_DEEP}"


def load_json(raw: bytes | str) -> JSON:
    """Decode ``raw``, refusing values nested deeper than ``MAX_JSON_DEPTH``.

    Raises:
        ValueError: "not valid JSON" or "nested deeper than 64 levels" (orjson's own
            1024-level decoder limit gives the same answer as a shallower excess).
    """
    try:
        value: JSON = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(
            _DEEP if str(exc).startswith("depth limit") else "not valid JSON"
        ) from None
    if _brackets(raw) > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(_DEEP)
    return value


def _brackets(raw: bytes | str) -> int:
    """Count ``{`` and ``[``: fewer than the limit cannot nest that deep (C speed)."""
    if type(raw) is bytes:
        return raw.count(b"{") + raw.count(b"[")
    assert isinstance(raw, str)
    return raw.count("{") + raw.count("[")


def _deeper_than(value: JSON, limit: int) -> bool:
    """Whether containers nest more than ``limit`` deep (no recursion, stops early)."""
    stack: list[tuple[JSON, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[JSON]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def json_preview(value: object, limit: int = 200) -> str:
    """Show a client-sent value in an error message: strings cut to ``limit``, other
    values by type only, so a huge or deep value never gets ``repr``'d."""
    if isinstance(value, str):
        return value[:limit]
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()[:limit]
    return "an array" if isinstance(value, list) else "an object"


@dataclass(slots=True)
class ClientMessage:
    """A parsed client frame: ``event``, optional ``channel`` and ``data`` as sent."""

    event: str
    channel: str | None
    data: JSON


def parse_client_message(raw: bytes | str) -> ClientMessage:
    """Parse one client text frame.

    Raises:
        PusherError: (code null) the frame is not a JSON object with a string ``event``,
            is nested deeper than ``MAX_JSON_DEPTH``, or ``channel`` is present and not
            a string.
    """
    # load_json, inlined: this runs for every client frame.
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            raise PusherError(_DEEP_MESSAGE) from None
        raise PusherError("Invalid JSON: messages must be JSON objects") from None
    if _brackets(raw) > MAX_JSON_DEPTH and _deeper_than(message, MAX_JSON_DEPTH):
        raise PusherError(_DEEP_MESSAGE)
    if not isinstance(message, dict):
        raise PusherError("Invalid message: messages must be JSON objects")
    event = message.get("event")
    if not isinstance(event, str) or not event:
        raise PusherError("Invalid message: 'event' must be a non-empty string")
    channel = message.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise PusherError("Invalid message: 'channel' must be a string")
    return ClientMessage(event=event, channel=channel, data=message.get("data"))


def data_object(message: ClientMessage) -> dict[str, Any]:
    """Return ``data`` as an object, decoding a JSON string if the client sent one.

    Raises:
        PusherError: ``data`` is neither an object nor a string holding one.
    """
    data = message.data
    if isinstance(data, str):
        try:
            data = load_json(data)
        except ValueError as exc:
            raise PusherError(
                f"Invalid {message.event}: 'data' must be a JSON object ({exc})"
            ) from None
    if not isinstance(data, dict):
        raise PusherError(f"Invalid {message.event}: 'data' must be a JSON object")
    return data


def encode_event(event: str, data: JSON = None, *, as_string: bool = True) -> bytes:
    """Encode a connection-level event (no channel).

    ``data`` is JSON-encoded into a string when ``as_string`` (the protocol's double
    encoding); ``None`` omits the field.
    """
    message: dict[str, JSON] = {"event": event}
    if data is not None:
        message["data"] = orjson.dumps(data).decode() if as_string else data
    return orjson.dumps(message)


def encode_channel_event(
    event: str, channel: str, data: JSON = None, user_id: str | None = None
) -> bytes:
    """Encode an event on ``channel``.

    A ``str`` ``data`` is sent verbatim (REST events are relayed as given); anything
    else is JSON-encoded into a string. ``None`` omits ``data``.
    """
    message: dict[str, JSON] = {"event": event, "channel": channel}
    if data is not None:
        message["data"] = data if isinstance(data, str) else orjson.dumps(data).decode()
    if user_id is not None:
        message["user_id"] = user_id
    return orjson.dumps(message)


def encode_error(message: str, code: int | None) -> bytes:
    """Encode ``pusher:error`` with object data ``{"code", "message"}``."""
    return orjson.dumps({"event": "pusher:error", "data": {"code": code, "message": message}})


def error_messages(exc: PusherError) -> list[bytes]:
    """The messages that tell a client about a non-fatal ``exc``, in order.

    A refused subscription also gets ``pusher:subscription_error`` on its channel, with
    object data as soketi sends it: pusher-js routes it to the channel, so Echo's
    ``.error()`` callback fires (``AuthError`` for 401/403, else ``SubscriptionError``).
    """
    error = encode_error(exc.message, exc.code)
    if not isinstance(exc, SubscriptionError) or not exc.channel:
        return [error]
    kind = "AuthError" if exc.status in (401, 403) else "SubscriptionError"
    refusal = orjson.dumps(
        {
            "event": "pusher:subscription_error",
            "channel": exc.channel,
            "data": {"type": kind, "error": exc.message, "status": exc.status},
        }
    )
    return [refusal, error]
