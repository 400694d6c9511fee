"""Channel kinds by prefix and channel-name rules (Pusher protocol, "Channels").

Prefixes are matched exactly with ``startswith`` in pusher-js's order, longest first,
so ``foo-private-x`` is public (soketi's unanchored regex got this wrong).
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = [
    "CACHE_TTL",
    "MAX_CHANNEL_NAME_LENGTH",
    "SERVER_TO_USER_PREFIX",
    "ChannelKind",
    "channel_kind",
    "channel_name_error",
]

MAX_CHANNEL_NAME_LENGTH = 200
#: Seconds a cache channel keeps its last event (Pusher "Cache channels": 30 minutes).
CACHE_TTL = 30 * 60
SERVER_TO_USER_PREFIX = "#server-to-user-"
_NAME = re.compile(r"[A-Za-z0-9_\-=@,.;]+")


class ChannelKind(Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    PRIVATE_ENCRYPTED = "private-encrypted"
    PRESENCE = "presence"
    CACHE = "cache"
    PRIVATE_CACHE = "private-cache"
    PRIVATE_ENCRYPTED_CACHE = "private-encrypted-cache"
    PRESENCE_CACHE = "presence-cache"
    SERVER_TO_USER = "server-to-user"

    @property
    def needs_auth(self) -> bool:
        """Private, encrypted and presence channels need a signed ``auth``."""
        return self._value_ not in _OPEN

    @property
    def is_presence(self) -> bool:
        return self is ChannelKind.PRESENCE or self is ChannelKind.PRESENCE_CACHE

    @property
    def is_cache(self) -> bool:
        return self._value_ in _CACHE

    @property
    def is_encrypted(self) -> bool:
        return self is ChannelKind.PRIVATE_ENCRYPTED or self is ChannelKind.PRIVATE_ENCRYPTED_CACHE

    @property
    def allows_client_events(self) -> bool:
        """Client events go on private and presence channels, never encrypted ones."""
        return self._value_ in _CLIENT_EVENTS


# Sets of member *values*: a str hashes in C, an Enum member through Python code.
_OPEN = frozenset(
    k.value for k in (ChannelKind.PUBLIC, ChannelKind.CACHE, ChannelKind.SERVER_TO_USER)
)
_CACHE = frozenset(
    k.value
    for k in (
        ChannelKind.CACHE,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRIVATE_ENCRYPTED_CACHE,
        ChannelKind.PRESENCE_CACHE,
    )
)
_CLIENT_EVENTS = frozenset(
    k.value
    for k in (
        ChannelKind.PRIVATE,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRESENCE,
        ChannelKind.PRESENCE_CACHE,
    )
)

_PREFIXES = (
    ("private-encrypted-cache-", ChannelKind.PRIVATE_ENCRYPTED_CACHE),
    ("private-encrypted-", ChannelKind.PRIVATE_ENCRYPTED),
    ("private-cache-", ChannelKind.PRIVATE_CACHE),
    ("private-", ChannelKind.PRIVATE),
    ("presence-cache-", ChannelKind.PRESENCE_CACHE),
    ("presence-", ChannelKind.PRESENCE),
    ("cache-", ChannelKind.CACHE),
    (SERVER_TO_USER_PREFIX, ChannelKind.SERVER_TO_USER),
)


# Names that passed ``channel_name_error`` lately, with their kind: every socket of an
# app subscribes to the same few channels, so each name is checked and classified once,
# not at every subscribe and leave. Cleared when full, so it stays small.
_KNOWN_LIMIT = 4096
_known: dict[str, ChannelKind] = {}


def channel_kind(name: str) -> ChannelKind:
    """Return the kind of channel ``name`` by its prefix."""
    known = _known.get(name)
    if known is not None:
        return known
    for prefix, kind in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return ChannelKind.PUBLIC


def channel_name_error(name: object) -> str | None:
    """Return why ``name`` is not a valid channel name, or None if it is.

    Names are 1–200 characters from ``[A-Za-z0-9_\\-=@,.;]``; a leading ``#`` is only
    allowed for ``#server-to-user-{id}``.
    """
    if type(name) is str and name in _known:
        return None
    error = _name_error(name)
    if error is None:
        assert isinstance(name, str)
        if len(_known) >= _KNOWN_LIMIT:
            _known.clear()
        _known[name] = channel_kind(name)
    return error


def _name_error(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "channel name must be a non-empty string"
    if len(name) > MAX_CHANNEL_NAME_LENGTH:
        return f"channel name longer than {MAX_CHANNEL_NAME_LENGTH} characters"
    if name.startswith("#"):
        if not name.startswith(SERVER_TO_USER_PREFIX) or len(name) == len(SERVER_TO_USER_PREFIX):
            return "channel names starting with '#' are reserved"
        # pusher-js subscribes to "#server-to-user-" + the signed-in id, whatever the id
        # contains, so only control characters are refused here.
        if not name.isprintable():
            return "user channel names must be printable"
        return None
    if not _NAME.fullmatch(name):
        return "channel name may only contain A-Z, a-z, 0-9 and _ - = @ , . ;"
    return None
