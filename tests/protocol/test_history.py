"""History rules, the memory history store and the idempotency cache: values in, values out."""

from __future__ import annotations

import orjson

from pusherd.protocol.history import (
    CLAIM_TTL,
    ENTRY_OVERHEAD,
    RING_OVERHEAD,
    HistoryRule,
    HistoryStore,
    IdempotencyCache,
    Retained,
    claim_ttl,
    history_page,
    idempotency_key_error,
    match_rule,
    retaining_rule,
)

__all__: list[str] = []

BIG = 1 << 30


def test_match_rule_picks_the_first_rule_matching_prefix_and_suffix() -> None:
    alerts = HistoryRule(channel_prefix="private-alerts-", channel_suffix="-eu")
    anything = HistoryRule(max_events=3)
    rules = (alerts, anything)

    assert match_rule(rules, "private-alerts-1-eu") is alerts
    assert match_rule(rules, "private-alerts-1-us") is anything
    assert match_rule((alerts,), "news") is None
    assert match_rule((), "news") is None


def test_retaining_rule_keeps_client_events_only_where_the_rule_says_so() -> None:
    server_only = HistoryRule(channel_prefix="private-chat-")
    with_clients = HistoryRule(channel_prefix="private-room-", client_events=True)
    rules = (server_only, with_clients)

    assert retaining_rule(rules, "private-chat-1") is server_only
    assert retaining_rule(rules, "private-chat-1", client_event=True) is None
    assert retaining_rule(rules, "private-room-1", client_event=True) is with_clients
    assert retaining_rule(rules, "private-room-1") is with_clients
    assert retaining_rule(rules, "news") is None
    assert retaining_rule((), "news", client_event=True) is None


def test_history_store_numbers_events_per_channel_from_one() -> None:
    store = HistoryStore()
    seqs = [store.append("a", "c", b"x", None, 50, 120, BIG, 0.0) for _ in range(3)]
    other = store.append("a", "d", b"y", None, 50, 120, BIG, 0.0)

    assert seqs == [1, 2, 3]
    assert other == 1
    assert [e.seq for e in store.read("a", "c", 0, 50, 0.0)] == [1, 2, 3]


def test_history_store_trims_by_count_and_age() -> None:
    store = HistoryStore()
    for n in range(10):
        store.append("a", "c", b"%d" % n, None, 4, 10.0, BIG, float(n))

    assert [e.payload for e in store.read("a", "c", 0, 50, 9.0)] == [b"6", b"7", b"8", b"9"]
    assert [e.payload for e in store.read("a", "c", 0, 50, 17.5)] == [b"8", b"9"]
    assert store.read("a", "c", 0, 50, 100.0) == []
    assert store.stats("a") == (0, 0)  # the empty channel is gone too


def test_history_store_read_since_and_limit_keep_the_newest() -> None:
    store = HistoryStore()
    for n in range(6):
        store.append("a", "c", b"%d" % n, "1.1" if n == 2 else None, 50, 120, BIG, 0.0)

    assert [e.seq for e in store.read("a", "c", 3, 50, 0.0)] == [4, 5, 6]
    assert [e.seq for e in store.read("a", "c", 0, 2, 0.0)] == [5, 6]
    assert store.read("a", "c", 0, 0, 0.0) == []
    assert store.read("a", "c", 2, 1, 0.0)[0] == Retained(6, b"5", 0.0, None)
    assert store.read("a", "c", 2, 50, 0.0)[0].except_socket_id == "1.1"


def test_history_store_byte_budget_evicts_the_apps_oldest_events_first() -> None:
    store = HistoryStore()
    size = 100 + ENTRY_OVERHEAD
    budget = 5 * size + 2 * RING_OVERHEAD
    for n in range(4):
        store.append("a", "old", b"o" * 100, None, 50, 120, budget, float(n))
    for n in range(4):
        store.append("a", "new", b"n" * 100, None, 50, 120, budget, 10.0 + n)
    store.append("b", "other", b"b" * 100, None, 50, 120, budget, 0.0)

    assert len(store.read("a", "old", 0, 50, 20.0)) == 1
    assert len(store.read("a", "new", 0, 50, 20.0)) == 4
    assert store.stats("a") == (5, budget)
    assert store.stats("b") == (1, size + RING_OVERHEAD)


def test_history_store_stays_within_budget_over_many_channels() -> None:
    store = HistoryStore()
    budget = 1000 * (100 + ENTRY_OVERHEAD) + 300 * RING_OVERHEAD
    for n in range(20_000):
        store.append("a", f"c{n % 3000}", b"x" * 100, None, 50, 120, budget, n / 1000)
        events, used = store.stats("a")
        assert used <= budget

    kept = [store.read("a", f"c{n}", 0, 50, 20.0) for n in range(3000)]
    assert sum(map(len, kept)) == events
    assert used == events * (100 + ENTRY_OVERHEAD) + sum(1 for k in kept if k) * RING_OVERHEAD
    # what is left is the newest: every kept event is newer than every evicted one
    assert min(e.published_at for k in kept for e in k) == (20_000 - events) / 1000


def test_history_store_bookkeeping_stays_bounded_when_count_trims() -> None:
    store = HistoryStore()
    for n in range(50_000):
        store.append("a", "c", b"x", None, 5, 1e9, BIG, float(n))

    assert store.stats("a") == (5, 5 * (1 + ENTRY_OVERHEAD) + RING_OVERHEAD)
    assert len(store._apps["a"].order) <= 2 * 5 + 1024


def test_history_page_lists_event_data_user_and_time() -> None:
    payload = orjson.dumps({"event": "client-x", "channel": "c", "data": {"a": 1}, "user_id": "u1"})

    page = history_page([Retained(7, payload, 1700000000.12345)])

    assert page == {
        "events": [
            {
                "seq": 7,
                "published_at": 1700000000.123,
                "event": "client-x",
                "data": {"a": 1},
                "user_id": "u1",
            }
        ]
    }


def test_idempotency_key_error_accepts_1_to_200_characters() -> None:
    assert idempotency_key_error("k") is None
    assert idempotency_key_error("k" * 200) is None
    assert idempotency_key_error("k" * 201) is not None
    assert idempotency_key_error("") is not None
    assert idempotency_key_error(5) is not None


def test_claim_ttl_is_the_keys_ttl_capped_at_claim_ttl() -> None:
    assert claim_ttl(5.0) == 5.0
    assert claim_ttl(CLAIM_TTL) == CLAIM_TTL
    assert claim_ttl(86400.0) == CLAIM_TTL == 30.0


def test_idempotency_cache_claim_store_and_expiry() -> None:
    cache = IdempotencyCache()

    assert cache.claim("a", "k", 10.0, 0.0) is None
    assert cache.claim("a", "k", 10.0, 1.0) == b""
    cache.store("a", "k", b"{}", 10.0, 2.0)
    assert cache.claim("a", "k", 10.0, 11.0) == b"{}"
    assert cache.claim("b", "k", 10.0, 11.0) is None
    assert cache.claim("a", "k", 10.0, 12.5) is None


def test_idempotency_cache_release_and_bound() -> None:
    cache = IdempotencyCache(limit=100)
    cache.claim("a", "k", 10.0, 0.0)
    cache.release("a", "k")
    assert cache.claim("a", "k", 10.0, 0.0) is None

    for n in range(1000):
        cache.claim("a", f"x{n}", 1000.0, 0.0)

    assert len(cache) <= 100
    assert cache.claim("a", "x999", 1000.0, 0.0) == b""
