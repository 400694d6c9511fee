"""The hub: the local subscriber index and the frame-once, write-once-per-turn fan-out.

The connections and transports here are small fakes with only what ``Hub`` touches,
so each test can say exactly what a socket was sent. The fan-out schedules its flush
with ``loop.call_soon``; one ``await asyncio.sleep(0)`` lets that callback run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import pytest

from pusherd.brokers.memory import MemoryBroker
from pusherd.metrics import Metrics
from pusherd.protocol.frames import text_frame
from pusherd.server.eager import Tasks
from pusherd.server.hub import Hub

if TYPE_CHECKING:
    from pusherd.server.connection import Connection

APP_ID = "12345"
OTHER_APP_ID = "67890"
CHANNEL = "news"
MAX_BUFFER = 1024


class FakeTransport:
    """Records every ``write``; reports a set write-buffer size; can be made to fail."""

    def __init__(self, buffered: int = 0, fail: bool = False) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError("peer went away")
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeConnection:
    """The attributes and methods of ``Connection`` that ``Hub`` uses."""

    def __init__(self, socket_id: str, transport: FakeTransport | None = None) -> None:
        self.socket_id = socket_id
        self.transport = transport if transport is not None else FakeTransport()
        self.out: list[bytes] | None = None
        self.max_buffer = MAX_BUFFER
        self.closing = False
        self.overflows = 0
        self.aborts = 0

    def overflow(self) -> None:
        self.overflows += 1

    def abort(self) -> None:
        self.aborts += 1
        self.closing = True

    @property
    def writes(self) -> list[bytes]:
        return self.transport.writes


class FakeMetrics:
    """Records the two calls the hub makes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []
        self.latencies: list[float] = []

    def messages_sent(self, app_id: str, count: int, nbytes: int) -> None:
        self.sent.append((app_id, count, nbytes))

    def publish_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)


def fake_conn(socket_id: str, transport: FakeTransport | None = None) -> Any:
    """A ``FakeConnection``, typed loosely so it can stand in for a ``Connection``."""
    return FakeConnection(socket_id, transport)


def make_hub(metrics: Metrics) -> Hub:
    """A hub on the memory broker (no node subscriptions, so nothing is ever spawned)."""
    return Hub(metrics, MemoryBroker(), Tasks(eager=True).spawn)


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


@pytest.fixture
def hub(metrics: FakeMetrics) -> Hub:
    return make_hub(cast("Metrics", metrics))


def subscribe(hub: Hub, *conns: Connection, channel: str = CHANNEL) -> None:
    for conn in conns:
        hub.add(APP_ID, channel, conn)


async def next_turn() -> None:
    """Yield once to the loop, so a flush scheduled with ``call_soon`` runs."""
    await asyncio.sleep(0)


# the index ---------------------------------------------------------------------------


def test_add_reports_only_the_first_local_subscriber_of_a_channel(hub: Hub) -> None:
    a, b = fake_conn("1.1"), fake_conn("1.2")
    assert hub.add(APP_ID, CHANNEL, a) is True
    assert hub.add(APP_ID, CHANNEL, b) is False
    assert hub.add(APP_ID, CHANNEL, a) is False  # again: a no-op
    assert hub.local_count(APP_ID, CHANNEL) == 2
    assert hub.has(APP_ID, CHANNEL, a)
    assert hub.has(APP_ID, CHANNEL, b)
    assert set(hub.subscribers(APP_ID, CHANNEL)) == {a, b}


def test_remove_reports_true_only_when_the_last_local_subscriber_leaves(hub: Hub) -> None:
    a, b = fake_conn("1.1"), fake_conn("1.2")
    subscribe(hub, a, b)
    assert hub.remove(APP_ID, CHANNEL, a) is False
    assert not hub.has(APP_ID, CHANNEL, a)
    assert hub.local_count(APP_ID, CHANNEL) == 1
    assert hub.remove(APP_ID, CHANNEL, b) is True
    assert hub.local_count(APP_ID, CHANNEL) == 0
    assert hub.subscribers(APP_ID, CHANNEL) == []
    assert list(hub.channels()) == []


def test_remove_from_an_unknown_channel_or_by_a_non_member_changes_nothing(hub: Hub) -> None:
    member, stranger = fake_conn("1.1"), fake_conn("1.2")
    assert hub.remove(APP_ID, "nobody-here", member) is False
    subscribe(hub, member)
    assert hub.remove(APP_ID, CHANNEL, stranger) is False
    assert hub.subscribers(APP_ID, CHANNEL) == [member]
    assert not hub.has(APP_ID, CHANNEL, stranger)


def test_unknown_channels_have_no_subscribers(hub: Hub) -> None:
    conn = fake_conn("1.1")
    assert hub.local_count(APP_ID, CHANNEL) == 0
    assert hub.subscribers(APP_ID, CHANNEL) == []
    assert not hub.has(APP_ID, CHANNEL, conn)
    assert list(hub.channels()) == []


def test_channels_are_indexed_per_app(hub: Hub) -> None:
    a, b = fake_conn("1.1"), fake_conn("1.2")
    assert hub.add(APP_ID, CHANNEL, a) is True
    assert hub.add(OTHER_APP_ID, CHANNEL, b) is True
    assert hub.add(APP_ID, "sports", a) is True
    assert sorted(hub.channels()) == [
        (APP_ID, CHANNEL),
        (APP_ID, "sports"),
        (OTHER_APP_ID, CHANNEL),
    ]
    assert hub.subscribers(APP_ID, CHANNEL) == [a]
    assert hub.subscribers(OTHER_APP_ID, CHANNEL) == [b]
    assert not hub.has(OTHER_APP_ID, CHANNEL, a)


def test_channels_is_a_snapshot_that_survives_removal_while_iterating(hub: Hub) -> None:
    conns = [fake_conn(f"1.{i}") for i in range(3)]
    for i, conn in enumerate(conns):
        subscribe(hub, conn, channel=f"ch-{i}")
    seen = []
    for app_id, channel in hub.channels():
        seen.append(channel)
        for conn in hub.subscribers(app_id, channel):
            hub.remove(app_id, channel, conn)
    assert sorted(seen) == ["ch-0", "ch-1", "ch-2"]
    assert list(hub.channels()) == []


# fan-out -----------------------------------------------------------------------------


async def test_fanout_frames_the_payload_once_for_every_subscriber(hub: Hub) -> None:
    conns = [fake_conn(f"1.{i}") for i in range(3)]
    subscribe(hub, *conns)
    payload = b'{"event":"update","channel":"news","data":"{}"}'

    assert hub.fanout(APP_ID, CHANNEL, payload, None) == 3
    await next_turn()

    expected = text_frame(payload)
    for conn in conns:
        assert conn.writes == [expected]
    first = conns[0].writes[0]
    assert all(conn.writes[0] is first for conn in conns)  # one bytes object, shared


async def test_held_sockets_get_member_events_later_and_others_at_once(hub: Hub) -> None:
    waiting, member, other = fake_conn("1.1"), fake_conn("1.2"), fake_conn("1.3")
    subscribe(hub, waiting, member, other)
    hub.hold_members(APP_ID, CHANNEL, waiting)
    added = b'{"event":"pusher_internal:member_added","channel":"news","data":"{}"}'
    update = b'{"event":"update","channel":"news","data":"{}"}'

    assert hub.fanout(APP_ID, CHANNEL, added, "1.2") == 1  # the joining member is excluded
    assert hub.fanout(APP_ID, CHANNEL, update, None) == 3  # anything else is not held
    await next_turn()

    assert waiting.writes == [text_frame(update)]
    assert other.writes == [text_frame(added) + text_frame(update)]
    assert hub.release_members(APP_ID, CHANNEL, waiting) == [added]
    assert hub.release_members(APP_ID, CHANNEL, waiting) == []
    assert hub.fanout(APP_ID, CHANNEL, added, None) == 3  # released: delivered again


async def test_fanout_writes_nothing_until_the_loop_turns(hub: Hub) -> None:
    conn = fake_conn("1.1")
    subscribe(hub, conn)
    hub.fanout(APP_ID, CHANNEL, b"hello", None)
    assert conn.writes == []  # only queued
    assert conn.out == [text_frame(b"hello")]
    await next_turn()
    assert conn.writes == [text_frame(b"hello")]
    assert conn.out is None


async def test_fanout_to_a_channel_without_local_subscribers_sends_nothing(
    hub: Hub, metrics: FakeMetrics
) -> None:
    bystander = fake_conn("1.1")
    subscribe(hub, bystander, channel="other")
    assert hub.fanout(APP_ID, CHANNEL, b"hello", None) == 0
    assert hub.fanout(OTHER_APP_ID, "other", b"hello", None) == 0  # same name, other app
    await next_turn()
    assert bystander.writes == []
    assert metrics.sent == []
    assert metrics.latencies == []


async def test_fanout_skips_the_excepted_socket(hub: Hub, metrics: FakeMetrics) -> None:
    sender, a, b = fake_conn("1.1"), fake_conn("1.2"), fake_conn("1.3")
    subscribe(hub, sender, a, b)

    assert hub.fanout(APP_ID, CHANNEL, b"client-event", "1.1") == 2
    await next_turn()

    assert sender.writes == []
    assert a.writes == b.writes == [text_frame(b"client-event")]
    assert metrics.sent == [(APP_ID, 2, 2 * len(text_frame(b"client-event")))]


async def test_fanouts_in_one_loop_turn_reach_each_socket_as_one_write_in_order(
    hub: Hub,
) -> None:
    a, b = fake_conn("1.1"), fake_conn("1.2")
    subscribe(hub, a, b)
    payloads = [b"first", b"second", b"third"]

    for payload in payloads:
        assert hub.fanout(APP_ID, CHANNEL, payload, None) == 2
    await next_turn()

    coalesced = b"".join(text_frame(p) for p in payloads)
    assert a.writes == [coalesced]
    assert b.writes == [coalesced]

    hub.fanout(APP_ID, CHANNEL, b"later", None)
    await next_turn()
    assert a.writes == [coalesced, text_frame(b"later")]
    assert b.writes == [coalesced, text_frame(b"later")]


async def test_coalescing_keeps_each_sockets_own_channels_apart(hub: Hub) -> None:
    both, news_only = fake_conn("1.1"), fake_conn("1.2")
    subscribe(hub, both, news_only)
    subscribe(hub, both, channel="sports")

    hub.fanout(APP_ID, CHANNEL, b"n1", None)
    hub.fanout(APP_ID, "sports", b"s1", None)
    hub.fanout(APP_ID, CHANNEL, b"n2", None)
    await next_turn()

    assert both.writes == [text_frame(b"n1") + text_frame(b"s1") + text_frame(b"n2")]
    assert news_only.writes == [text_frame(b"n1") + text_frame(b"n2")]


async def test_closing_connections_are_skipped(hub: Hub, metrics: FakeMetrics) -> None:
    open_, closing = fake_conn("1.1"), fake_conn("1.2")
    closing.closing = True
    subscribe(hub, open_, closing)

    assert hub.fanout(APP_ID, CHANNEL, b"hello", None) == 1
    await next_turn()

    assert closing.writes == []
    assert closing.out is None
    assert open_.writes == [text_frame(b"hello")]
    assert metrics.sent == [(APP_ID, 1, len(text_frame(b"hello")))]


async def test_a_socket_that_starts_closing_before_the_flush_gets_no_write(hub: Hub) -> None:
    staying, leaving = fake_conn("1.1"), fake_conn("1.2")
    subscribe(hub, staying, leaving)

    assert hub.fanout(APP_ID, CHANNEL, b"hello", None) == 2
    leaving.closing = True
    await next_turn()

    assert leaving.writes == []
    assert leaving.out is None
    assert staying.writes == [text_frame(b"hello")]


async def test_a_socket_over_the_buffer_bound_is_cut_off_and_the_others_still_get_the_write(
    hub: Hub,
) -> None:
    slow = fake_conn("1.1", FakeTransport(buffered=MAX_BUFFER + 1))
    at_limit = fake_conn("1.2", FakeTransport(buffered=MAX_BUFFER))
    fast = fake_conn("1.3")
    subscribe(hub, slow, at_limit, fast)

    assert hub.fanout(APP_ID, CHANNEL, b"hello", None) == 3
    await next_turn()

    frame = text_frame(b"hello")
    assert slow.writes == [frame]  # written, then found over the bound
    assert slow.overflows == 1
    assert at_limit.overflows == 0  # the bound itself is still allowed
    assert fast.overflows == 0
    assert at_limit.writes == fast.writes == [frame]
    assert slow.aborts == at_limit.aborts == fast.aborts == 0


async def test_a_socket_whose_write_fails_is_aborted_and_the_others_still_get_the_frame(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    broken = fake_conn("1.1", FakeTransport(fail=True))
    healthy = [fake_conn(f"1.{i}") for i in range(2, 5)]
    subscribe(hub, broken, *healthy)

    assert hub.fanout(APP_ID, CHANNEL, b"hello", None) == 4
    with caplog.at_level("ERROR", logger="pusherd.hub"):
        await next_turn()  # the flush must not raise into the loop

    assert broken.aborts == 1
    assert broken.overflows == 0
    for conn in healthy:
        assert conn.writes == [text_frame(b"hello")]
        assert conn.aborts == 0
    assert "1.1" in caplog.text

    # The hub keeps working after the failure; the aborted socket is now closing.
    assert hub.fanout(APP_ID, CHANNEL, b"again", None) == 3
    await next_turn()
    for conn in healthy:
        assert conn.writes == [text_frame(b"hello"), text_frame(b"again")]
    assert broken.aborts == 1


# metrics -----------------------------------------------------------------------------


async def test_messages_sent_is_counted_once_per_fanout_with_the_socket_count(
    hub: Hub, metrics: FakeMetrics
) -> None:
    conns = [fake_conn(f"1.{i}") for i in range(3)]
    subscribe(hub, *conns)

    hub.fanout(APP_ID, CHANNEL, b"one", None)
    hub.fanout(APP_ID, CHANNEL, b"two!", "1.0")
    await next_turn()

    assert metrics.sent == [
        (APP_ID, 3, 3 * len(text_frame(b"one"))),
        (APP_ID, 2, 2 * len(text_frame(b"two!"))),
    ]
    # One latency observation per flushed turn, not per fan-out.
    assert len(metrics.latencies) == 1
    assert metrics.latencies[0] >= 0

    hub.fanout(APP_ID, CHANNEL, b"three", None)
    await next_turn()
    assert len(metrics.sent) == 3
    assert len(metrics.latencies) == 2


async def test_fanout_updates_the_real_metrics_exposition() -> None:
    metrics = Metrics()
    hub = make_hub(metrics)
    conns = [fake_conn(f"1.{i}") for i in range(2)]
    for conn in conns:
        hub.add(APP_ID, CHANNEL, conn)

    hub.fanout(APP_ID, CHANNEL, b"hello", None)
    hub.fanout(APP_ID, CHANNEL, b"hello", None)
    await next_turn()

    text = metrics.render().decode()
    nbytes = 4 * len(text_frame(b"hello"))
    assert f'pusherd_ws_messages_sent_total{{app_id="{APP_ID}"}} 4.0' in text
    assert f'pusherd_socket_transmitted_bytes_total{{app_id="{APP_ID}"}} {nbytes}.0' in text
    assert "pusherd_publish_to_write_seconds_count 1.0" in text
