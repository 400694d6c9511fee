"""Socket ids: two random unsigned 32-bit numbers, as hosted Pusher gives them."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SocketIds"]


class SocketIds:
    """Socket ids ``\\d+\\.\\d+`` from ``random_bytes`` (the OS CSPRNG), 256 at a time.

    They are signed into channel auth strings, so they must not be guessable; one
    ``getrandom`` per 256 connections keeps that cheap under connection churn.
    """

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        self._ready: list[str] = []

    def next(self) -> str:
        ready = self._ready
        if not ready:
            pool = self._random(8 * 256)
            for start in range(0, len(pool), 8):
                high = int.from_bytes(pool[start : start + 4], "big")
                low = int.from_bytes(pool[start + 4 : start + 8], "big")
                ready.append(f"{high}.{low}")
        return ready.pop()
