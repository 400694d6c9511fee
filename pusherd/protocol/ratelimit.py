"""A token bucket with the clock passed in: client events per socket, REST events per app."""

from __future__ import annotations

__all__ = ["TokenBucket"]


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
