"""The ``Broker`` contract, run against every backend (``broker`` fixture params).

``MemoryBroker`` defines the semantics; ``RedisBroker`` must match it call for call.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pusherd.brokers import Broker
from pusherd.brokers.base import ChannelStats, Envelope, EnvelopeKind
from pusherd.protocol.presence import Member
from tests.brokers.conftest import Inbox, eventually

__all__: list[str] = []

APP = "app-1"
OTHER_APP = "app-2"


# Fanout ---------------------------------------------------------------------------------
async def test_broker_is_ready_after_start(broker: Broker) -> None:
    assert broker.ready


async def test_publish_delivers_envelope_with_except_socket_id(
    broker: Broker, inbox: Inbox
) -> None:
    await broker.subscribe(APP, "news")
    sent = Envelope(APP, "news", b'{"event":"a","data":"{}"}', except_socket_id="1.2")
    await broker.publish(sent)
    assert await inbox.wait_for(1) == [sent]


async def test_publish_delivers_terminate_envelope(broker: Broker, inbox: Inbox) -> None:
    await broker.subscribe(APP, "private-x")
    sent = Envelope(APP, "private-x", b"", kind=EnvelopeKind.TERMINATE)
    await broker.publish(sent)
    assert await inbox.wait_for(1) == [sent]


async def test_publish_preserves_order_per_channel(broker: Broker, inbox: Inbox) -> None:
    await broker.subscribe(APP, "ordered")
    sent = [Envelope(APP, "ordered", b'{"n":%d}' % n) for n in range(50)]
    for envelope in sent:
        await broker.publish(envelope)
    assert await inbox.wait_for(50) == sent


async def test_subscribe_twice_delivers_once(broker: Broker, inbox: Inbox) -> None:
    await broker.subscribe(APP, "twice")
    await broker.subscribe(APP, "twice")
    await broker.publish(Envelope(APP, "twice", b"1"))
    await broker.publish(Envelope(APP, "twice", b"2"))
    envelopes = await inbox.wait_for(2)
    assert [e.payload for e in envelopes] == [b"1", b"2"]


async def test_unsubscribe_unknown_channel_is_noop(broker: Broker) -> None:
    await broker.unsubscribe(APP, "never-subscribed")


# ChannelState ---------------------------------------------------------------------------
async def test_add_subscriber_returns_count_after(broker: Broker) -> None:
    assert await broker.add_subscriber(APP, "c", "1.1") == 1
    assert await broker.add_subscriber(APP, "c", "1.2") == 2
    assert await broker.add_subscriber(APP, "c", "1.2") == 2
    assert await broker.add_subscriber(OTHER_APP, "c", "1.3") == 1


async def test_remove_subscriber_returns_count_after(broker: Broker) -> None:
    await broker.add_subscriber(APP, "c", "1.1")
    await broker.add_subscriber(APP, "c", "1.2")
    assert await broker.remove_subscriber(APP, "c", "1.1") == 1
    assert await broker.remove_subscriber(APP, "c", "1.2") == 0


async def test_remove_subscriber_not_counted_returns_minus_one(broker: Broker) -> None:
    assert await broker.remove_subscriber(APP, "c", "1.1") == -1
    await broker.add_subscriber(APP, "c", "1.1")
    await broker.remove_subscriber(APP, "c", "1.1")
    assert await broker.remove_subscriber(APP, "c", "1.1") == -1


async def test_channels_lists_occupied_channels_by_prefix(broker: Broker) -> None:
    await broker.add_subscriber(APP, "private-a", "1.1")
    await broker.add_subscriber(APP, "private-a", "1.2")
    await broker.add_subscriber(APP, "public", "1.1")
    await broker.add_subscriber(APP, "private-gone", "1.1")
    await broker.remove_subscriber(APP, "private-gone", "1.1")
    await broker.add_subscriber(OTHER_APP, "private-b", "2.1")
    assert await broker.channels(APP, "private-") == {"private-a": ChannelStats(2, 0)}
    assert set(await broker.channels(APP)) == {"private-a", "public"}
    assert await broker.channels("no-such-app") == {}


async def test_channels_reports_presence_user_count(broker: Broker) -> None:
    for socket_id, user in (("1.1", "u1"), ("1.2", "u1"), ("1.3", "u2")):
        await broker.add_subscriber(APP, "presence-room", socket_id)
        await broker.join_presence(APP, "presence-room", socket_id, Member(user), 0)
    assert await broker.channels(APP, "presence-") == {"presence-room": ChannelStats(3, 2)}
    assert await broker.channel_stats(APP, "presence-room") == ChannelStats(3, 2)


async def test_channel_stats_of_empty_channel_is_zero(broker: Broker) -> None:
    assert await broker.channel_stats(APP, "nobody") == ChannelStats(0, 0)


async def test_cache_get_returns_payload_and_remaining_ttl(broker: Broker) -> None:
    await broker.cache_set(APP, "cache-x", b'{"event":"e"}', 30.0)
    cached = await broker.cache_get(APP, "cache-x")
    assert cached is not None
    payload, ttl = cached
    assert payload == b'{"event":"e"}'
    assert 25.0 < ttl <= 30.0
    assert await broker.cache_get(APP, "cache-y") is None
    assert await broker.cache_get(OTHER_APP, "cache-x") is None


async def test_cache_set_replaces_and_expires(broker: Broker) -> None:
    await broker.cache_set(APP, "cache-x", b"old", 30.0)
    await broker.cache_set(APP, "cache-x", b"new", 0.05)
    cached = await broker.cache_get(APP, "cache-x")
    assert cached is None or cached[0] == b"new"

    async def expired() -> bool:
        return await broker.cache_get(APP, "cache-x") is None

    await eventually(expired)


async def test_burst_of_concurrent_calls_counts_every_one(broker: Broker, inbox: Inbox) -> None:
    # hundreds of sockets subscribing at once: more calls in flight than Redis connections
    counts = await asyncio.gather(
        *(broker.add_subscriber(APP, "burst", f"s.{n}") for n in range(300))
    )
    assert sorted(counts) == list(range(1, 301))
    await broker.subscribe(APP, "burst")
    await asyncio.gather(*(broker.publish(Envelope(APP, "burst", b"%d" % n)) for n in range(300)))
    got = await inbox.wait_for(300)
    assert sorted(int(e.payload) for e in got) == list(range(300))


# PresenceState --------------------------------------------------------------------------
async def test_join_presence_first_socket_is_new_user(broker: Broker) -> None:
    joined = await broker.join_presence(APP, "presence-r", "1.1", Member("u1", {"n": 1}), 0)
    assert joined.is_new_user
    assert not joined.refused
    assert joined.member == Member("u1", {"n": 1})
    assert joined.members == {"u1": {"n": 1}}


async def test_join_presence_first_socket_info_wins(broker: Broker) -> None:
    await broker.join_presence(APP, "presence-r", "1.1", Member("u1", {"n": 1}), 0)
    again = await broker.join_presence(APP, "presence-r", "1.2", Member("u1", {"n": 2}), 0)
    assert not again.is_new_user
    assert again.member == Member("u1", {"n": 1})
    assert await broker.members(APP, "presence-r") == {"u1": {"n": 1}}


async def test_join_presence_same_socket_twice_counts_once(broker: Broker) -> None:
    await broker.join_presence(APP, "presence-r", "1.1", Member("u1"), 0)
    await broker.join_presence(APP, "presence-r", "1.1", Member("u1"), 0)
    assert await broker.leave_presence(APP, "presence-r", "1.1") == Member("u1")


async def test_join_presence_refuses_new_user_when_full(broker: Broker) -> None:
    await broker.join_presence(APP, "presence-r", "1.1", Member("u1", "a"), 2)
    await broker.join_presence(APP, "presence-r", "1.2", Member("u2", "b"), 2)
    refused = await broker.join_presence(APP, "presence-r", "1.3", Member("u3", "c"), 2)
    assert refused.refused
    assert not refused.is_new_user
    assert refused.members == {"u1": "a", "u2": "b"}
    extra = await broker.join_presence(APP, "presence-r", "1.4", Member("u1", "a"), 2)
    assert not extra.refused
    assert set(await broker.members(APP, "presence-r")) == {"u1", "u2"}
    assert await broker.leave_presence(APP, "presence-r", "1.3") is None


async def test_leave_presence_returns_member_on_last_socket(broker: Broker) -> None:
    await broker.join_presence(APP, "presence-r", "1.1", Member("u1", {"n": 1}), 0)
    await broker.join_presence(APP, "presence-r", "1.2", Member("u1", {"n": 2}), 0)
    assert await broker.leave_presence(APP, "presence-r", "1.1") is None
    assert await broker.members(APP, "presence-r") == {"u1": {"n": 1}}
    assert await broker.leave_presence(APP, "presence-r", "1.2") == Member("u1", {"n": 1})
    assert await broker.members(APP, "presence-r") == {}


async def test_leave_presence_unknown_socket_returns_none(broker: Broker) -> None:
    assert await broker.leave_presence(APP, "presence-r", "9.9") is None


async def test_join_presence_is_new_again_after_leaving(broker: Broker) -> None:
    await broker.join_presence(APP, "presence-r", "1.1", Member("u1", "old"), 0)
    await broker.leave_presence(APP, "presence-r", "1.1")
    joined = await broker.join_presence(APP, "presence-r", "1.2", Member("u1", "new"), 0)
    assert joined.is_new_user
    assert joined.member == Member("u1", "new")


async def test_members_are_per_app_and_channel(broker: Broker) -> None:
    await broker.join_presence(APP, "presence-a", "1.1", Member("u1"), 0)
    await broker.join_presence(OTHER_APP, "presence-a", "1.2", Member("u2"), 0)
    assert await broker.members(APP, "presence-a") == {"u1": None}
    assert await broker.members(APP, "presence-b") == {}


# UserState ------------------------------------------------------------------------------
async def test_add_connection_enforces_limit(broker: Broker) -> None:
    assert await broker.add_connection(APP, "1.1", 2)
    assert await broker.add_connection(APP, "1.2", 2)
    assert not await broker.add_connection(APP, "1.3", 2)
    assert await broker.add_connection(APP, "1.2", 2)
    assert await broker.connection_count(APP) == 2
    await broker.remove_connection(APP, "1.1")
    assert await broker.connection_count(APP) == 1
    assert await broker.add_connection(APP, "1.3", 2)


async def test_add_connection_without_limit(broker: Broker) -> None:
    for n in range(5):
        assert await broker.add_connection(APP, f"1.{n}", 0)
    assert await broker.connection_count(APP) == 5
    assert await broker.connection_count(OTHER_APP) == 0
    await broker.remove_connection(APP, "9.9")
    assert await broker.connection_count(APP) == 5


async def test_sign_in_reports_online_transitions(broker: Broker) -> None:
    assert await broker.sign_in(APP, "u1", "1.1")
    assert not await broker.sign_in(APP, "u1", "1.2")
    assert await broker.online(APP, ["u1", "u2"]) == {"u1"}
    assert await broker.online(OTHER_APP, ["u1"]) == set()
    assert not await broker.sign_out(APP, "u1", "1.1")
    assert await broker.sign_out(APP, "u1", "1.2")
    assert not await broker.sign_out(APP, "u1", "1.2")
    assert await broker.online(APP, ["u1"]) == set()
    assert await broker.online(APP, []) == set()


async def test_sign_out_unknown_socket_is_false(broker: Broker) -> None:
    await broker.sign_in(APP, "u1", "1.1")
    assert not await broker.sign_out(APP, "u1", "1.2")
    assert await broker.online(APP, ["u1"]) == {"u1"}


# Marks ----------------------------------------------------------------------------------
async def test_claim_sets_once_until_released(broker: Broker) -> None:
    assert await broker.claim(APP, "webhook:x", 30.0)
    assert not await broker.claim(APP, "webhook:x", 30.0)
    assert await broker.claim(OTHER_APP, "webhook:x", 30.0)
    assert await broker.release(APP, "webhook:x")
    assert not await broker.release(APP, "webhook:x")
    assert await broker.claim(APP, "webhook:x", 30.0)


async def test_claim_expires_after_ttl(broker: Broker) -> None:
    assert await broker.claim(APP, "short", 0.05)
    assert not await broker.claim(APP, "short", 30.0)

    async def claimed() -> bool:
        return await broker.claim(APP, "short", 30.0)

    await eventually(claimed)
    assert not await broker.release(APP, "never-set")


@pytest.mark.parametrize("ttl", [0.5, 120.0])
async def test_cache_ttl_is_at_most_requested(broker: Broker, ttl: float) -> None:
    await broker.cache_set(APP, "cache-t", b"x", ttl)
    cached = await broker.cache_get(APP, "cache-t")
    assert cached is not None
    assert 0 < cached[1] <= ttl


# History --------------------------------------------------------------------------------
MIB = 1024 * 1024


async def test_publish_history_numbers_and_delivers_sequenced(broker: Broker, inbox: Inbox) -> None:
    await broker.subscribe(APP, "history-a")
    sent = Envelope(APP, "history-a", b'{"event":"e","channel":"history-a","data":"1"}', "1.2")
    first = await broker.publish_history(sent, 50, 120.0, MIB)
    second = await broker.publish_history(Envelope(APP, "history-a", b"2"), 50, 120.0, MIB)

    got = await inbox.wait_for(2)
    assert (first, second) == (1, 2)
    assert [(e.kind, e.seq, e.payload, e.except_socket_id) for e in got] == [
        (EnvelopeKind.SEQUENCED, 1, sent.payload, "1.2"),
        (EnvelopeKind.SEQUENCED, 2, b"2", None),
    ]


async def test_history_returns_exact_payloads_oldest_first(broker: Broker) -> None:
    payloads = [b'{"event":"e","data":"%d"}' % n for n in range(5)]
    for payload in payloads:
        await broker.publish_history(Envelope(APP, "history-b", payload), 50, 120.0, MIB)

    events = await broker.history(APP, "history-b", 50, 120.0)

    assert [e.payload for e in events] == payloads
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert all(abs(e.published_at - time.time()) < 30 for e in events)


async def test_history_since_and_limit_pick_the_newest_after(broker: Broker) -> None:
    for n in range(10):
        await broker.publish_history(Envelope(APP, "history-c", b"%d" % n), 50, 120.0, MIB)

    assert [e.seq for e in await broker.history(APP, "history-c", 3, 120.0)] == [8, 9, 10]
    assert [e.seq for e in await broker.history(APP, "history-c", 50, 120.0, since=7)] == [
        8,
        9,
        10,
    ]
    assert await broker.history(APP, "history-c", 0, 120.0) == []


async def test_history_keeps_at_most_max_events(broker: Broker) -> None:
    for n in range(300):
        await broker.publish_history(Envelope(APP, "history-d", b"%d" % n), 20, 120.0, MIB)

    events = await broker.history(APP, "history-d", 20, 120.0)

    assert [e.payload for e in events] == [b"%d" % n for n in range(280, 300)]


async def test_history_leaves_out_events_older_than_max_age(broker: Broker) -> None:
    await broker.publish_history(Envelope(APP, "history-e", b"old"), 50, 0.2, MIB)
    loop = asyncio.get_running_loop()
    published = loop.time()
    await asyncio.sleep(0.3)  # the age limit is wall-clock time in both brokers
    assert loop.time() - published >= 0.2
    await broker.publish_history(Envelope(APP, "history-e", b"new"), 50, 0.2, MIB)

    assert [e.payload for e in await broker.history(APP, "history-e", 50, 0.2)] == [b"new"]


async def test_history_is_per_app_and_channel(broker: Broker) -> None:
    await broker.publish_history(Envelope(APP, "history-f", b"a"), 50, 120.0, MIB)
    await broker.publish_history(Envelope(OTHER_APP, "history-f", b"b"), 50, 120.0, MIB)

    assert [e.payload for e in await broker.history(APP, "history-f", 50, 120.0)] == [b"a"]
    assert [e.seq for e in await broker.history(OTHER_APP, "history-f", 50, 120.0)] == [1]
    assert await broker.history(APP, "history-none", 50, 120.0) == []


# Idempotency ----------------------------------------------------------------------------
async def test_idempotency_claim_once_then_stored_answer(broker: Broker) -> None:
    assert await broker.idempotency_claim(APP, "k1", 30.0) is None
    assert await broker.idempotency_claim(APP, "k1", 30.0) == b""
    await broker.idempotency_store(APP, "k1", b'{"a":1}', 30.0)

    assert await broker.idempotency_claim(APP, "k1", 30.0) == b'{"a":1}'
    assert await broker.idempotency_claim(OTHER_APP, "k1", 30.0) is None


async def test_idempotency_release_lets_a_retry_claim(broker: Broker) -> None:
    assert await broker.idempotency_claim(APP, "k2", 30.0) is None
    await broker.idempotency_release(APP, "k2")

    assert await broker.idempotency_claim(APP, "k2", 30.0) is None


async def test_idempotency_claim_expires_after_ttl(broker: Broker) -> None:
    assert await broker.idempotency_claim(APP, "k3", 0.05) is None
    await broker.idempotency_store(APP, "k3", b"{}", 0.05)

    async def claimed() -> bool:
        return await broker.idempotency_claim(APP, "k3", 30.0) is None

    await eventually(claimed)


async def test_idempotency_concurrent_claims_have_one_winner(broker: Broker) -> None:
    results = await asyncio.gather(*(broker.idempotency_claim(APP, "k4", 30.0) for _ in range(20)))

    assert results.count(None) == 1
