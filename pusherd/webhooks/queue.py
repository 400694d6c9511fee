"""The ordered queue of one (app, webhook target), with delayed-event slots.

An event from ``emit_later()`` takes its place in the queue at once as a ``PENDING`` slot.
Later events for the same channel wait behind it; events for other channels may go ahead.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from pusherd.apps.base import App, WebhookTarget

__all__ = ["Item", "SlotState", "TargetQueue", "describe_target"]


class SlotState(enum.Enum):
    PENDING = 1  # an emit_later() event waiting for its delay and confirm()
    READY = 2


@dataclass(slots=True, eq=False)
class Item:
    """One event queued for one target; ``event`` is shared by every target it goes to."""

    channel: str | None
    event: dict[str, Any]
    time_ms: int
    state: SlotState = SlotState.READY


@dataclass(slots=True, eq=False)
class TargetQueue:
    """The ordered queue and worker task of one (app, target)."""

    app: App
    target: WebhookTarget
    where: str  # log-safe description of the target
    items: deque[Item] = field(default_factory=deque)
    inflight: int = 0  # items taken by the worker and not yet delivered or dropped
    failing: bool = False  # the last attempt failed; later failures log at debug level
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.items) + self.inflight

    def eligible(self, limit: int) -> list[Item]:
        """Return up to ``limit`` ready items that no pending slot of their channel precedes."""
        blocked: set[str | None] = set()
        out: list[Item] = []
        for item in self.items:
            if item.state is SlotState.PENDING:
                blocked.add(item.channel)
            elif item.channel not in blocked:
                out.append(item)
                if len(out) >= limit:
                    break
        return out

    def take(self, chosen: list[Item]) -> None:
        """Move ``chosen`` (from ``eligible()``) out of the queue and into flight."""
        if all(a is b for a, b in zip(chosen, self.items, strict=False)):
            for _ in chosen:
                self.items.popleft()
        else:
            ids = {id(item) for item in chosen}
            self.items = deque(item for item in self.items if id(item) not in ids)
        self.inflight += len(chosen)


def describe_target(index: int, url: str) -> str:
    """Describe a target for logs: its index and origin, never its path or query (tokens)."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        return f"#{index} (invalid url)"
    port = f":{parsed.port}" if parsed.port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host  # IPv6 literal
    return f"#{index} ({parsed.scheme}://{host}{port}/...)"
