"""What follows a cluster transition: the client events and webhooks, and their payloads.

The broker answers each membership change with a count or a flag, so exactly one node
sees each transition (Pusher "Presence channels", "Webhooks"):

- a subscriber count going 0 → 1 is ``channel_occupied``, 1 → 0 ``channel_vacated``;
- a presence user's first socket is ``member_added``, their last ``member_removed``;
- a user's first/last signed-in socket is watchlist ``online``/``offline``.

``channel_vacated`` and ``member_removed`` are held for the webhook delay under a
cluster-wide mark (``held_mark``) that a quick re-subscribe releases, so a page reload
sends neither webhook. The server layer awaits the broker and sends what this module
builds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from pusherd.protocol.actions import ClientEvent
from pusherd.protocol.messages import encode_channel_event, encode_event
from pusherd.protocol.presence import Member, presence_payload
from pusherd.types import JSON

__all__ = [
    "CountThrottle",
    "client_event_webhook",
    "held_mark",
    "member_added",
    "member_removed",
    "subscription_count",
    "subscription_succeeded",
    "watchlist_change",
    "watchlist_events",
    "webhook_event",
]

_EMPTY = "{}"
SUBSCRIPTION_COUNT_THROTTLE = 5.0


def subscription_succeeded(channel: str, members: dict[str, JSON] | None = None) -> bytes:
    """``pusher_internal:subscription_succeeded``; presence channels carry the members."""
    data: Any = _EMPTY if members is None else presence_payload(members)
    return encode_channel_event("pusher_internal:subscription_succeeded", channel, data)


def member_added(channel: str, member: Member) -> bytes:
    data: dict[str, JSON] = {"user_id": member.user_id}
    if member.user_info is not None:
        data["user_info"] = member.user_info
    return encode_channel_event("pusher_internal:member_added", channel, data)


def member_removed(channel: str, user_id: str) -> bytes:
    return encode_channel_event("pusher_internal:member_removed", channel, {"user_id": user_id})


def subscription_count(channel: str, count: int) -> bytes:
    return encode_channel_event(
        "pusher_internal:subscription_count", channel, {"subscription_count": count}
    )


def cache_miss(channel: str) -> bytes:
    return encode_channel_event("pusher:cache_miss", channel, _EMPTY)


def watchlist_events(watchlist: Iterable[str], online: set[str]) -> bytes:
    """The first ``pusher_internal:watchlist_events`` after sign-in: who is on and off."""
    ids = list(watchlist)
    events = []
    on = [u for u in ids if u in online]
    if on:
        events.append({"name": "online", "user_ids": on})
    off = [u for u in ids if u not in online]
    if off:
        events.append({"name": "offline", "user_ids": off})
    return encode_event("pusher_internal:watchlist_events", {"events": events})


def watchlist_change(user_id: str, name: str) -> bytes:
    return encode_event(
        "pusher_internal:watchlist_events", {"events": [{"name": name, "user_ids": [user_id]}]}
    )


def held_mark(name: str, channel: str, user_id: str | None = None) -> str:
    """The cluster-wide mark under which a delayed ``name`` webhook waits."""
    return f"held:{name}:{channel}" if user_id is None else f"held:{name}:{channel}:{user_id}"


def webhook_event(name: str, channel: str, user_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"name": name, "channel": channel}
    if user_id is not None:
        event["user_id"] = user_id
    return event


def client_event_webhook(action: ClientEvent, socket_id: str) -> dict[str, Any]:
    """The ``client_event`` webhook: ``data`` as a string, as hosted Pusher posts it."""
    data = action.data
    event: dict[str, Any] = {
        "name": "client_event",
        "channel": action.channel,
        "event": action.event,
        "data": data if isinstance(data, str) else orjson.dumps(data).decode(),
        "socket_id": socket_id,
    }
    if action.user_id is not None:
        event["user_id"] = action.user_id
    return event


class CountThrottle:
    """Send ``subscription_count`` for busy channels at most once per 5 s each.

    Below 101 subscribers every change is sent (as hosted Pusher does); above, a
    channel's count goes out at most every ``SUBSCRIPTION_COUNT_THROTTLE`` seconds.
    The memory is bounded: past 10,000 throttled channels it starts over.
    """

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        self._sent: dict[tuple[str, str], float] = {}

    def due(self, app_id: str, channel: str, count: int, now: float) -> bool:
        if count < 0:
            return False
        if count <= 100:
            return True
        key = (app_id, channel)
        if now - self._sent.get(key, float("-inf")) < SUBSCRIPTION_COUNT_THROTTLE:
            return False
        self._sent[key] = now
        if len(self._sent) > 10_000:
            self._sent.clear()
        return True
