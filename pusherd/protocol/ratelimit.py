"""Token buckets with the clock passed in: client events per socket, REST events per app."""

from __future__ import annotations

__all__ = ["Buckets", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``rate``; it starts full.

    Args:
        rate: tokens added per second (and the burst size); 0 or less means unlimited.
        now: the current time in seconds (any monotonic origin).
    """

    __slots__ = ("_at", "_tokens", "rate")

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._at = now

    def take(self, count: int, now: float) -> bool:
        """Take ``count`` tokens if there are that many; return whether it could."""
        rate = self.rate
        if rate <= 0:
            return True
        tokens = min(float(rate), self._tokens + (now - self._at) * rate)
        self._at = now
        if tokens < count:
            self._tokens = tokens
            return False
        self._tokens = tokens - count
        return True


class Buckets:
    """One ``TokenBucket`` per key (REST events: per app), built full on first use.

    A key whose rate changed (the app was reconfigured) starts over with a full bucket
    at the new rate.
    """

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, rate: int, count: int, now: float) -> bool:
        """Take ``count`` tokens from ``key``'s bucket of ``rate``; return whether it could."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate, now)
        return bucket.take(count, now)
