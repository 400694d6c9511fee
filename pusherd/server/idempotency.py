"""Idempotent REST publishes: a key seen again within ``idempotency_ttl`` is not published.

The first request with a key claims it at the broker (``SET NX`` in Redis, so two nodes
receiving the same retry at the same moment cannot both win), publishes, and stores its
answer body. A repeat gets exactly that body back. A repeat that arrives while the
first is still publishing waits for its answer (briefly, then 409: retry later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pusherd.apps.base import App
from pusherd.brokers.base import Broker
from pusherd.errors import ApiError, BrokerError
from pusherd.protocol.history import claim_ttl

if TYPE_CHECKING:
    from pusherd.metrics import Metrics

__all__ = ["Idempotency"]

IN_FLIGHT_WAIT = 5.0
_POLL = 0.02


class Idempotency:
    """Runs a publish at most once per (app, key) within the app's ``idempotency_ttl``."""

    def __init__(self, broker: Broker, metrics: Metrics) -> None:
        self._broker = broker
        self._metrics = metrics

    async def once(self, app: App, key: str, publish: Callable[[], Awaitable[bytes]]) -> bytes:
        """Return ``publish()``'s answer the first time, the stored answer after that.

        Raises:
            ApiError: 409 when the first request with ``key`` is still in flight.
        """
        ttl = float(app.idempotency_ttl)
        claim = claim_ttl(ttl)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IN_FLIGHT_WAIT
        while True:
            found = await self._broker.idempotency_claim(app.id, key, claim)
            if found is None:
                break
            if found:
                self._metrics.duplicate_suppressed(app.id)
                return found
            if loop.time() > deadline:
                raise ApiError("A request with this idempotency key is in progress", 409)
            await asyncio.sleep(_POLL)  # the first request stores its answer soon
        try:
            answer = await publish()
        except BaseException:
            with contextlib.suppress(BrokerError):
                await self._broker.idempotency_release(app.id, key)
            raise
        await self._broker.idempotency_store(app.id, key, answer, ttl)
        return answer
