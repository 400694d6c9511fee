"""``Idempotency.once`` over the memory broker: first publish, repeats, failures, in flight."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pusherd.brokers.memory import MemoryBroker
from pusherd.errors import ApiError
from pusherd.metrics import Metrics
from pusherd.server import idempotency as idempotency_module
from pusherd.server.idempotency import Idempotency, check_key
from tests.server.conftest import APP

__all__: list[str] = []


def _service() -> tuple[Idempotency, MemoryBroker, Metrics]:
    broker = MemoryBroker()
    metrics = Metrics()
    return Idempotency(broker, metrics), broker, metrics


async def test_idempotency_once_publishes_once_and_repeats_the_answer() -> None:
    service, _, metrics = _service()
    calls: list[int] = []

    async def publish() -> bytes:
        calls.append(1)
        return b'{"n":%d}' % len(calls)

    answers = [await service.once(APP, "k", publish) for _ in range(3)]

    assert answers == [b'{"n":1}'] * 3
    assert calls == [1]
    assert b'idempotent_duplicates_total{app_id="12345"} 2.0' in metrics.render()


async def test_idempotency_once_releases_the_key_when_publishing_fails() -> None:
    service, _, _ = _service()

    async def fail() -> bytes:
        raise ApiError("Rate limit exceeded", 429)

    async def succeed() -> bytes:
        return b"{}"

    with pytest.raises(ApiError):
        await service.once(APP, "k", fail)
    assert await service.once(APP, "k", succeed) == b"{}"


async def test_idempotency_once_waits_for_an_answer_in_flight() -> None:
    service, broker, _ = _service()
    assert await broker.idempotency_claim(APP.id, "k", 30.0) is None  # another request

    async def answer_soon() -> None:
        await asyncio.sleep(0.05)
        await broker.idempotency_store(APP.id, "k", b'{"first":true}', 300.0)

    async def never() -> bytes:
        raise AssertionError("must not publish again")

    waiter = asyncio.create_task(service.once(APP, "k", never))
    await answer_soon()

    assert await waiter == b'{"first":true}'


async def test_idempotency_once_answers_409_while_the_first_never_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(idempotency_module, "IN_FLIGHT_WAIT", 0.1)
    service, broker, _ = _service()
    await broker.idempotency_claim(APP.id, "k", 30.0)

    async def never() -> bytes:
        raise AssertionError("must not publish again")

    with pytest.raises(ApiError) as raised:
        await service.once(APP, "k", never)
    assert raised.value.status == 409


async def test_idempotency_ttl_is_per_app() -> None:
    service, _, _ = _service()
    short = replace(APP, idempotency_ttl=0.05)
    calls: list[int] = []

    async def publish() -> bytes:
        calls.append(1)
        return b"{}"

    await service.once(short, "k", publish)
    await asyncio.sleep(0.1)  # the ttl is time itself
    await service.once(short, "k", publish)

    assert calls == [1, 1]


def test_check_key_refuses_empty_long_and_non_string_keys() -> None:
    assert check_key("a" * 200) == "a" * 200
    for bad in ("", "a" * 201, 7, None):
        with pytest.raises(ApiError):
            check_key(bad)
