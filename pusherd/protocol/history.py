"""Channel history and idempotency keys: the pure parts (no I/O, time passed in).

- ``HistoryRule`` is one ``[[apps.history]]`` entry: which channels keep their recent
  events (``channel_prefix``/``channel_suffix``), how many (``max_events``) and for how
  long (``max_age`` seconds), and whether client events count (``client_events``).
  ``match_rule`` picks the first rule that matches a channel; channels no rule matches
  keep nothing and cost nothing.
- ``HistoryStore`` is the memory broker's storage: a ring per channel, trimmed by count
  and age, with one byte budget per app that evicts the app's oldest events first. Every
  append gets the channel's next sequence number; subscribers use it to drop the overlap
  between the replay and the live stream.
- ``IdempotencyCache`` remembers the answer given to an idempotency key for a while,
  bounded in entries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CLAIM_TTL",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EVENTS",
    "ENTRY_OVERHEAD",
    "MAX_AGE_CAP",
    "MAX_EVENTS_CAP",
    "MAX_IDEMPOTENCY_KEY",
    "RING_OVERHEAD",
    "HistoryRule",
    "HistoryStore",
    "IdempotencyCache",
    "Retained",
    "claim_ttl",
    "history_page",
    "idempotency_key_error",
    "match_rule",
    "retaining_rule",
]

DEFAULT_MAX_EVENTS = 50
MAX_EVENTS_CAP = 1000
DEFAULT_MAX_AGE = 120.0
MAX_AGE_CAP = 86400.0
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_IDEMPOTENCY_KEY = 200
# What one retained event costs in memory besides its payload (the entry tuple, its
# number objects, the bytes header and two deque slots), counted against ``max_bytes``
# so that the budget bounds the process's memory, not only the payload bytes.
ENTRY_OVERHEAD = 200
# What one history channel costs besides its events (its ring's deque block, the ring,
# its key and the index entry), counted the same way.
RING_OVERHEAD = 1024
# A claim whose owner never stores an answer (it crashed mid-publish) lapses after this
# many seconds, so the key does not stay blocked for the whole ttl.
CLAIM_TTL = 30.0


@dataclass(frozen=True, slots=True)
class HistoryRule:
    """One ``[[apps.history]]`` entry (see the module docstring)."""

    channel_prefix: str | None = None
    channel_suffix: str | None = None
    max_events: int = DEFAULT_MAX_EVENTS
    max_age: float = DEFAULT_MAX_AGE
    client_events: bool = False

    def matches(self, channel: str) -> bool:
        if self.channel_prefix is not None and not channel.startswith(self.channel_prefix):
            return False
        return self.channel_suffix is None or channel.endswith(self.channel_suffix)


def match_rule(rules: tuple[HistoryRule, ...], channel: str) -> HistoryRule | None:
    """Return the first rule that keeps history for ``channel``, or None."""
    for rule in rules:
        if rule.matches(channel):
            return rule
    return None


def retaining_rule(
    rules: tuple[HistoryRule, ...], channel: str, client_event: bool = False
) -> HistoryRule | None:
    """Return the rule that retains an event published on ``channel``, or None.

    Client events are retained only where the rule says ``client_events``.
    """
    rule = match_rule(rules, channel)
    if rule is None or (client_event and not rule.client_events):
        return None
    return rule


@dataclass(frozen=True, slots=True)
class Retained:
    """One retained event: the exact bytes delivered live, and when it was published.

    Attributes:
        seq: the channel's sequence number (1, 2, … per channel).
        payload: the JSON text subscribers received.
        published_at: wall-clock seconds.
        except_socket_id: the socket the live event skipped (the sender), if any.
    """

    seq: int
    payload: bytes
    published_at: float
    except_socket_id: str | None = None


def history_page(events: list[Retained]) -> dict[str, Any]:
    """Encode retained events for ``GET /apps/{id}/channels/{channel}/events``."""
    page = []
    for event in events:
        decoded = orjson.loads(event.payload)
        item: dict[str, Any] = {
            "seq": event.seq,
            "published_at": round(event.published_at, 3),
            "event": decoded.get("event"),
            "data": decoded.get("data"),
        }
        if "user_id" in decoded:
            item["user_id"] = decoded["user_id"]
        page.append(item)
    return {"events": page}


def idempotency_key_error(value: object) -> str | None:
    """Return why ``value`` is not a usable idempotency key, or None."""
    if not isinstance(value, str) or not value:
        return "idempotency_key must be a non-empty string"
    if len(value) > MAX_IDEMPOTENCY_KEY:
        return f"idempotency_key too long: at most {MAX_IDEMPOTENCY_KEY} characters"
    return None


# memory storage -------------------------------------------------------------------------
class _Ring:
    __slots__ = ("alive", "entries", "key", "max_age", "seq")

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        # (seq, published_at, payload, except_socket_id, ring)
        self.entries: deque[tuple[int, float, bytes, str | None, _Ring]] = deque()
        self.seq = 0
        self.max_age = DEFAULT_MAX_AGE
        self.alive = True


class _AppBudget:
    __slots__ = ("bytes", "events", "order")

    def __init__(self) -> None:
        self.bytes = 0
        self.events = 0
        # every appended entry in publish order (stale ones are skipped when reached)
        self.order: deque[tuple[int, float, bytes, str | None, _Ring]] = deque()


class HistoryStore:
    """Retained events of every history channel of every app, in memory.

    Each channel is a ring trimmed to its rule's ``max_events`` and ``max_age``; each
    app's rings together stay within that app's ``max_bytes`` (payload plus
    ``ENTRY_OVERHEAD`` per event, ``RING_OVERHEAD`` per channel), the app's oldest events
    going first.
    """

    def __init__(self) -> None:
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._apps: dict[str, _AppBudget] = {}

    def stats(self, app_id: str) -> tuple[int, int]:
        """Return (events, bytes) retained for ``app_id``."""
        budget = self._apps.get(app_id)
        return (budget.events, budget.bytes) if budget else (0, 0)

    def append(
        self,
        app_id: str,
        channel: str,
        payload: bytes,
        except_socket_id: str | None,
        max_events: int,
        max_age: float,
        max_bytes: int,
        now: float,
    ) -> int:
        """Retain one event; return its sequence number."""
        key = (app_id, channel)
        budget = self._apps.get(app_id)
        if budget is None:
            budget = self._apps[app_id] = _AppBudget()
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = _Ring(key)
            budget.bytes += RING_OVERHEAD
        ring.seq += 1
        ring.max_age = max_age
        entry = (ring.seq, now, payload, except_socket_id, ring)
        ring.entries.append(entry)
        budget.order.append(entry)
        budget.events += 1
        budget.bytes += len(payload) + ENTRY_OVERHEAD
        entries = ring.entries
        while len(entries) > max_events:
            self._drop(budget, entries.popleft())
        self._expire(budget, ring, now)
        while budget.bytes > max_bytes and budget.order:
            oldest = budget.order.popleft()
            owner = oldest[4]
            if owner.alive and owner.entries and owner.entries[0] is oldest:
                owner.entries.popleft()
                self._drop(budget, oldest)
                if not owner.entries:
                    self._forget(budget, owner)
        if len(budget.order) > 2 * budget.events + 1024:
            budget.order = deque(e for e in budget.order if _live(e))
        return entry[0]

    def read(self, app_id: str, channel: str, since: int, limit: int, now: float) -> list[Retained]:
        """Return up to ``limit`` retained events after ``since``, oldest first.

        The newest ones when there are more than ``limit``.
        """
        ring = self._rings.get((app_id, channel))
        if ring is None:
            return []
        budget = self._apps[app_id]
        self._expire(budget, ring, now)
        picked = [e for e in ring.entries if e[0] > since]
        if limit < len(picked):
            picked = picked[len(picked) - limit :] if limit > 0 else []
        return [Retained(e[0], e[2], e[1], e[3]) for e in picked]

    def _expire(self, budget: _AppBudget, ring: _Ring, now: float) -> None:
        entries = ring.entries
        cutoff = now - ring.max_age
        while entries and entries[0][1] < cutoff:
            self._drop(budget, entries.popleft())
        if not entries:
            self._forget(budget, ring)

    @staticmethod
    def _drop(budget: _AppBudget, entry: tuple[int, float, bytes, str | None, _Ring]) -> None:
        budget.events -= 1
        budget.bytes -= len(entry[2]) + ENTRY_OVERHEAD

    def _forget(self, budget: _AppBudget, ring: _Ring) -> None:
        # An empty ring goes (its sequence restarts at 1 later): a subscriber that read
        # nothing replays nothing, so no live event can fall below its mark.
        if ring.alive and self._rings.get(ring.key) is ring:
            ring.alive = False
            del self._rings[ring.key]
            budget.bytes -= RING_OVERHEAD


def _live(entry: tuple[int, float, bytes, str | None, _Ring]) -> bool:
    ring = entry[4]
    return ring.alive and bool(ring.entries) and ring.entries[0][0] <= entry[0]


# idempotency ----------------------------------------------------------------------------
def claim_ttl(ttl: float) -> float:
    """How long a claim on a key lasts until its answer is stored (``CLAIM_TTL`` at most).

    The answer itself is kept for the app's whole ``idempotency_ttl`` (``ttl``).
    """
    return min(ttl, CLAIM_TTL)


class IdempotencyCache:
    """Answers given to idempotency keys, each kept for its ttl; at most ``limit`` keys.

    ``claim`` is the atomic check-and-set: the first caller gets None and must publish
    then ``store`` its answer (or ``release`` on failure); later callers get the stored
    answer, or ``b""`` while the first one is still in flight.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._entries: dict[tuple[str, str], tuple[float, bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, app_id: str, key: str, ttl: float, now: float) -> bytes | None:
        entries = self._entries
        found = entries.get((app_id, key))
        if found is not None and found[0] > now:
            return found[1]
        if found is not None:
            del entries[(app_id, key)]
        entries[(app_id, key)] = (now + ttl, b"")
        if len(entries) > self._limit:
            self._trim(now)
        return None

    def store(self, app_id: str, key: str, answer: bytes, ttl: float, now: float) -> None:
        if (app_id, key) in self._entries:
            self._entries[(app_id, key)] = (now + ttl, answer)

    def release(self, app_id: str, key: str) -> None:
        self._entries.pop((app_id, key), None)

    def _trim(self, now: float) -> None:
        entries = self._entries
        for item, (expires, _) in list(entries.items()):
            if expires <= now:
                del entries[item]
        while len(entries) > self._limit:  # oldest claims first (dicts keep insertion order)
            del entries[next(iter(entries))]
