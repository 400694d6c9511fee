from __future__ import annotations

from pusherd.protocol.ratelimit import Buckets, TokenBucket


def test_token_bucket_starts_full_and_refuses_past_its_burst() -> None:
    bucket = TokenBucket(3, now=0.0)
    assert [bucket.take(1, 0.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_refills_at_its_rate_up_to_its_size() -> None:
    bucket = TokenBucket(10, now=0.0)
    assert bucket.take(10, 0.0)
    assert not bucket.take(1, 0.05)  # half a token back
    assert bucket.take(1, 0.1)
    assert not bucket.take(11, 100.0)  # never more than the burst
    assert bucket.take(10, 100.0)


def test_token_bucket_takes_several_at_once_or_none() -> None:
    bucket = TokenBucket(5, now=0.0)
    assert not bucket.take(6, 0.0)
    assert bucket.take(5, 0.0)


def test_token_bucket_with_no_rate_is_unlimited() -> None:
    bucket = TokenBucket(0, now=0.0)
    assert all(bucket.take(1000, 0.0) for _ in range(10))


def test_buckets_keep_one_bucket_per_key() -> None:
    buckets = Buckets()
    assert buckets.take("a", 2, 2, 0.0)
    assert not buckets.take("a", 2, 1, 0.0)
    assert buckets.take("b", 2, 2, 0.0)  # another key has its own tokens
    assert len(buckets) == 2
    assert buckets.take("a", 2, 1, 0.5)  # refilled at the key's rate


def test_buckets_start_a_key_over_full_when_its_rate_changes() -> None:
    buckets = Buckets()
    assert buckets.take("a", 3, 3, 0.0)
    assert not buckets.take("a", 3, 1, 0.0)
    assert buckets.take("a", 5, 5, 0.0)  # reconfigured: a full bucket at the new rate
    assert not buckets.take("a", 5, 1, 0.0)
    assert len(buckets) == 1


def test_buckets_with_no_rate_are_unlimited() -> None:
    buckets = Buckets()
    assert all(buckets.take("a", 0, 1000, 0.0) for _ in range(10))
