from __future__ import annotations

from pusherd.protocol.ratelimit import TokenBucket


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
