"""``Idempotency.once`` (first publish, repeats, failures, in flight) and the key's way in."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import httpx
import pytest

from pusherd.brokers.memory import MemoryBroker
from pusherd.errors import ApiError
from pusherd.metrics import Metrics
from pusherd.server import idempotency as idempotency_module
from pusherd.server.app import build, create_app
from pusherd.server.idempotency import Idempotency
from tests.server.conftest import APP, Client, asgi_client, make_config, serve
from tests.server.test_http_api import signed

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


def _signed_event(key_field: str | None = None) -> tuple[bytes, dict[str, str]]:
    event: dict[str, object] = {"name": "e", "channels": ["idem"], "data": "{}"}
    if key_field is not None:
        event["idempotency_key"] = key_field
    body = json.dumps(event).encode()
    return body, signed("POST", "/apps/12345/events", body)


async def test_idempotency_header_reaches_the_api_through_asgi() -> None:
    config = make_config()
    parts = build(config)
    app = create_app(config, parts)
    await parts.node.start()
    try:
        async with asgi_client(app) as http:
            answers = []
            for _ in range(2):
                body, query = _signed_event()
                answers.append(
                    await http.post(
                        "/apps/12345/events",
                        params=query,
                        content=body,
                        headers={"Idempotency-Key": "asgi-1"},
                    )
                )
    finally:
        await parts.node.stop(1.0)

    assert [(r.status_code, r.content) for r in answers] == [(200, b"{}"), (200, b"{}")]
    assert b'idempotent_duplicates_total{app_id="12345"} 1.0' in parts.metrics.render()


async def test_idempotency_header_reaches_the_api_through_the_rest_fast_path() -> None:
    async with serve(make_config()) as running:
        async with Client.open(running.url()) as client:
            await client.established()
            await client.subscribe("idem")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as http:
                for key in ("fast-1", "fast-1", "fast-2"):
                    body, query = _signed_event()
                    response = await http.post(
                        "/apps/12345/events",
                        params=query,
                        content=body,
                        headers={"Idempotency-Key": key},
                    )
                    assert response.status_code == 200
            first, second = await client.recv(), await client.recv()
            await client.nothing()

    assert first["event"] == second["event"] == "e"


async def test_idempotency_body_field_wins_over_the_header() -> None:
    async with serve(make_config()) as running:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as http:
            statuses = []
            for header in ("h-1", "h-2"):
                body, query = _signed_event("body-1")
                response = await http.post(
                    "/apps/12345/events",
                    params=query,
                    content=body,
                    headers={"Idempotency-Key": header},
                )
                statuses.append(response.status_code)
        rendered = running.parts.metrics.render()

    assert statuses == [200, 200]
    assert b'idempotent_duplicates_total{app_id="12345"} 1.0' in rendered
