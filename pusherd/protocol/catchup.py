"""One socket catching up on a history channel: the replay and the live stream, merged.

A socket subscribing to a history channel is indexed for live delivery before the
history is read, so every event is reached by one of the two, and some by both. The
merge that sends each exactly once, in order, is decided here on sequence numbers
alone (values in, values out); ``server.history`` carries it out on sockets.

1. While the history is being read, live events are held (``live`` answers ``HOLD``).
2. ``finish`` takes the retained events: they go out oldest first, then the held live
   events numbered above the last one replayed; the rest were in the replay already.
3. Then the socket keeps a *floor*, the last number it got: a live event at or below it
   is a repeat (``DROP``; with Redis, one published before the read may still be on its
   way over pub/sub). Pub/sub keeps a channel's order, so the first event above the
   floor ends the catch-up (``SEND_DONE``); where numbers can arrive out of order
   (Redis Cluster), the floor stays (``SEND``) until the server lets it lapse.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pusherd.protocol.history import Retained

__all__ = ["FRAME_OVERHEAD", "Catchup", "Replay", "Step", "fitting"]

# Bytes a text frame's header adds to a payload, at most (a 64-bit length).
FRAME_OVERHEAD = 10


class Step(enum.Enum):
    """What to do with one live event for a socket that is catching up."""

    HOLD = "hold"  # the replay is still being read: the event was kept for ``finish``
    DROP = "drop"  # already sent by the replay
    SEND = "send"  # new: send it, and keep the floor (numbers may come out of order)
    SEND_DONE = "send_done"  # new: send it; the catch-up is over


@dataclass(frozen=True, slots=True)
class Replay:
    """What ``finish`` decided.

    Attributes:
        payloads: what to send, in order (replayed events, then held live ones).
        replayed: how many retained events the replay covered.
        dropped: held live events that the replay already covered.
        floor: the last number sent (0: nothing was, the catch-up is over).
    """

    payloads: list[bytes]
    replayed: int
    dropped: int
    floor: int


class Catchup:
    """The catch-up state of one socket on one channel (see the module docstring)."""

    __slots__ = ("floor", "held")

    def __init__(self) -> None:
        # live events held while the replay is read: (seq, payload, except_socket_id)
        self.held: list[tuple[int, bytes, str | None]] | None = []
        self.floor = 0

    @property
    def replaying(self) -> bool:
        """True until ``finish``: live events are being held."""
        return self.held is not None

    def live(self, seq: int, payload: bytes, except_socket_id: str | None, in_order: bool) -> Step:
        """Decide about live event ``seq`` (holding it while the replay is read)."""
        held = self.held
        if held is not None:
            held.append((seq, payload, except_socket_id))
            return Step.HOLD
        if seq <= self.floor:
            return Step.DROP
        return Step.SEND_DONE if in_order else Step.SEND

    def finish(self, events: list[Retained], socket_id: str) -> Replay:
        """End the hold with the retained ``events`` (oldest first) read for the socket.

        Events the socket itself published (``except_socket_id``) count for the order
        but are not sent to it, as live delivery would not have.
        """
        held, self.held = self.held or [], None
        payloads: list[bytes] = []
        last = 0
        for event in events:
            if event.except_socket_id != socket_id:
                payloads.append(event.payload)
            last = event.seq
        dropped = 0
        for seq, payload, except_id in held:
            if seq <= last:
                dropped += 1
                continue
            if except_id != socket_id:
                payloads.append(payload)
            last = seq
        self.floor = last
        return Replay(payloads, len(events), dropped, last)


def fitting(events: list[Retained], max_buffer: int) -> list[Retained]:
    """The newest ``events`` whose frames fit in half a socket's write bound.

    A replay larger than the bound would cut the socket off as a slow consumer (4100),
    and pusher-js would reconnect into the same replay.
    """
    room = max_buffer // 2
    total = 0
    for index in range(len(events) - 1, -1, -1):
        total += len(events[index].payload) + FRAME_OVERHEAD
        if total > room:
            return events[index + 1 :]
    return events
