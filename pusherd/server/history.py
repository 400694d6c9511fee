"""Channel history on a node: publish into it, replay it on subscribe, with no gap or repeat.

A subscribe to a history channel stays exact while publishing goes on at full rate:
the socket is indexed for live delivery (and the node subscribed at the broker) *before*
the history is read, and ``begin`` starts its ``protocol.catchup.Catchup``, which holds
its live events until ``replay`` has sent the retained ones, then drops the repeats.
That merge is decided in ``protocol.catchup``; this module reads the broker, writes to
sockets, and lets a floor lapse after ``FLOOR_TTL`` where the broker does not keep a
channel's order (``history_in_order`` is False on Redis Cluster).

Every history event reaches the node as an ``EnvelopeKind.SEQUENCED`` envelope; ordinary
``MESSAGE`` envelopes never come here, so channels without history cost nothing extra.
A SEQUENCED envelope for a channel nobody is catching up on costs one dict lookup before
the usual frame-once fan-out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pusherd.apps.base import App
from pusherd.brokers.base import Broker, Envelope
from pusherd.errors import BrokerError
from pusherd.protocol.catchup import Catchup, Step, fitting
from pusherd.protocol.history import HistoryRule, match_rule, retaining_rule
from pusherd.server.ports import Socket

if TYPE_CHECKING:
    from pusherd.metrics import Metrics
    from pusherd.server.hub import Hub

__all__ = ["FLOOR_TTL", "ChannelHistory"]

logger = logging.getLogger("pusherd.history")

# Seconds a replayed socket keeps its floor when no later live event comes: far longer
# than a pub/sub message can lag behind a command reply.
FLOOR_TTL = 10.0

ChannelKey = tuple[str, str]


class _Catchup(Catchup):
    """A ``Catchup`` with the timer that lets its floor lapse."""

    __slots__ = ("timer",)

    def __init__(self) -> None:
        super().__init__()
        self.timer: asyncio.TimerHandle | None = None


class ChannelHistory:
    """Publishes into history and replays it to subscribing sockets.

    Args:
        broker: stores, numbers and reads retained events.
        hub: the node's local sockets per channel (for live delivery).
        metrics: counts retained and replayed events.
    """

    def __init__(self, broker: Broker, hub: Hub, metrics: Metrics) -> None:
        self._broker = broker
        self._hub = hub
        self._metrics = metrics
        self._in_order = broker.history_in_order
        self._catching_up: dict[ChannelKey, dict[Socket, _Catchup]] = {}

    # publishing --------------------------------------------------------------------
    async def publish(self, app: App, envelope: Envelope, client_event: bool = False) -> None:
        """Publish ``envelope``: retained and numbered when a history rule matches.

        Callers publish straight to the broker for apps without history rules (one
        coroutine less per publish).
        """
        if app.history:
            rule = retaining_rule(app.history, envelope.channel, client_event)
            if rule is not None:
                await self._broker.publish_history(
                    envelope, rule.max_events, rule.max_age, app.history_max_bytes
                )
                self._metrics.history_appended(app.id, len(envelope.payload))
                return
        await self._broker.publish(envelope)

    # subscribing -------------------------------------------------------------------
    def begin(self, conn: Socket, app: App, channel: str) -> HistoryRule | None:
        """Start holding live events for ``conn`` if ``channel`` keeps history.

        Call it once ``conn`` is indexed for live delivery and before the history is
        read; return the rule (pass it to ``replay``), or None for other channels.
        """
        rule = match_rule(app.history, channel)
        if rule is None:
            return None
        states = self._catching_up.setdefault((app.id, channel), {})
        previous = states.get(conn)
        if previous is not None and previous.timer is not None:
            previous.timer.cancel()
        states[conn] = _Catchup()
        return rule

    def cancel(self, conn: Socket, app_id: str, channel: str) -> None:
        """Stop catching up (the subscribe failed or the socket went away)."""
        key = (app_id, channel)
        states = self._catching_up.get(key)
        if states is None:
            return
        state = states.pop(conn, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()
        if not states:
            del self._catching_up[key]

    async def replay(self, conn: Socket, app: App, channel: str, rule: HistoryRule) -> None:
        """Send the retained events, then the live ones held meanwhile (see module doc)."""
        key = (app.id, channel)
        try:
            events = await self._broker.history(app.id, channel, rule.max_events, rule.max_age)
        except BrokerError as exc:
            logger.warning("history of %s unavailable for replay: %s", channel, exc)
            events = []
        state = self._catching_up.get(key, {}).get(conn)
        if state is None or not state.replaying:
            return  # cancelled, or a newer subscribe of this socket took over
        if conn.closing or not self._hub.has(app.id, channel, conn):
            self.cancel(conn, app.id, channel)
            return
        fitted = fitting(events, conn.max_buffer)
        if len(fitted) < len(events):
            logger.info("replay trimmed to the newest %d events", len(fitted))
        replay = state.finish(fitted, conn.socket_id)
        for payload in replay.payloads:
            conn.send(payload)
        self._metrics.history_replayed(app.id, replay.replayed)
        if replay.dropped:
            self._metrics.history_overlap_dropped(app.id, replay.dropped)
        if not replay.floor:
            self.cancel(conn, app.id, channel)
            return
        state.timer = asyncio.get_running_loop().call_later(
            FLOOR_TTL, self._expire, key, conn, state
        )

    def _expire(self, key: ChannelKey, conn: Socket, state: _Catchup) -> None:
        states = self._catching_up.get(key)
        if states is not None and states.get(conn) is state:
            state.timer = None
            self.cancel(conn, *key)

    # delivering --------------------------------------------------------------------
    def deliver(self, envelope: Envelope) -> None:
        """Fan out a SEQUENCED envelope, holding or dropping it for catching-up sockets."""
        app_id, channel = envelope.app_id, envelope.channel
        states = self._catching_up.get((app_id, channel))
        if states is None:
            self._hub.fanout(app_id, channel, envelope.payload, envelope.except_socket_id)
            return
        seq, payload, except_id = envelope.seq, envelope.payload, envelope.except_socket_id
        in_order = self._in_order
        sent = dropped = 0
        for conn in self._hub.subscribers(app_id, channel):
            state = states.get(conn)
            if state is not None:
                step = state.live(seq, payload, except_id, in_order)
                if step is Step.HOLD:
                    continue
                if step is Step.DROP:
                    dropped += 1
                    continue
                if step is Step.SEND_DONE:
                    self.cancel(conn, app_id, channel)
            if except_id is None or conn.socket_id != except_id:
                conn.send(payload)
                sent += 1
        if sent:
            self._metrics.messages_sent(app_id, sent, sent * len(payload))
        if dropped:
            self._metrics.history_overlap_dropped(app_id, dropped)
