"""Presence members, the ``subscription_succeeded`` presence payload and member limits.

Pusher protocol, "Presence channel events": ``channel_data`` is a JSON string
``{"user_id": <string|number>, "user_info"?: {...}}``; ids are normalised to strings
for keys and comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from pusherd.protocol.messages import load_json
from pusherd.types import JSON

__all__ = [
    "MAX_USER_ID_LENGTH",
    "MEMBER_EVENT_PREFIX",
    "Member",
    "member_news",
    "parse_member",
    "presence_payload",
]

MAX_USER_ID_LENGTH = 128
# How every member_added / member_removed this server encodes begins.
MEMBER_EVENT_PREFIX = b'{"event":"pusher_internal:member_'
_MEMBER_EVENTS = ("pusher_internal:member_added", "pusher_internal:member_removed")


@dataclass(frozen=True, slots=True)
class Member:
    """A presence member: a normalised string id and the app's ``user_info`` (or None)."""

    user_id: str
    user_info: JSON = None

    def to_json(self) -> bytes:
        """Encode for storage in a broker."""
        return orjson.dumps({"user_id": self.user_id, "user_info": self.user_info})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Member:
        data = orjson.loads(raw)
        return cls(user_id=str(data["user_id"]), user_info=data.get("user_info"))


def parse_member(channel_data: str, max_info_bytes: int) -> Member:
    """Parse presence ``channel_data`` into a ``Member``.

    Raises:
        ValueError: the data is not a JSON object with a usable ``user_id``, is nested
            deeper than ``MAX_JSON_DEPTH``, the id is longer than 128 characters, or
            ``user_info`` is larger than ``max_info_bytes``.
    """
    try:
        data = load_json(channel_data)
    except ValueError as exc:
        raise ValueError(f"channel_data must be a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("channel_data must be a JSON object")
    user_id = data.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int):
        raise ValueError("channel_data.user_id must be a string or a number")
    user_id = str(user_id)
    if not user_id:
        raise ValueError("channel_data.user_id must not be empty")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise ValueError(f"user_id longer than {MAX_USER_ID_LENGTH} characters")
    user_info = data.get("user_info")
    if user_info is not None and len(orjson.dumps(user_info)) > max_info_bytes:
        raise ValueError(f"user_info larger than {max_info_bytes // 1024} KB")
    return Member(user_id=user_id, user_info=user_info)


def presence_payload(members: Mapping[str, JSON]) -> dict[str, JSON]:
    """Build the ``presence`` object of ``subscription_succeeded`` (ids, hash, count)."""
    ids = list(members)
    return {"presence": {"ids": ids, "hash": dict(members), "count": len(ids)}}


def member_news(held: list[bytes], members: Mapping[str, JSON]) -> list[bytes]:
    """Which member events held during a presence subscribe its member list misses.

    ``held`` arrived while the socket waited for its ``subscription_succeeded``, which
    lists ``members``. Events from before that list was read tell nothing new (pusher-js
    would report such a member as joining right before listing them); events from after
    it do. Per user only the last event counts, and only if it changes the list.
    """
    last: dict[str, tuple[bool, bytes]] = {}
    other: list[bytes] = []  # an app's own event under a member event's name: kept as is
    for payload in held:
        try:
            message = orjson.loads(payload)
            event = message["event"]
            user_id = str(orjson.loads(message["data"])["user_id"])
        except (ValueError, KeyError, TypeError):
            other.append(payload)
            continue
        if event not in _MEMBER_EVENTS:
            other.append(payload)
            continue
        last[user_id] = (event == "pusher_internal:member_added", payload)
    news = [payload for user_id, (added, payload) in last.items() if added != (user_id in members)]
    return other + news
