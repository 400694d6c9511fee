"""The REST API driven by the official ``pusher`` Python SDK and by hand-signed requests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import replace
from typing import Any

import httpx
import pusher
import pytest

from tests.server.conftest import (
    APP,
    Client,
    Running,
    make_config,
    private_auth,
    serve,
)


def signed(
    method: str,
    path: str,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    key: str = "app-key",
    secret: str = "app-secret",
    timestamp: int | None = None,
) -> dict[str, str]:
    query = {
        "auth_key": key,
        "auth_timestamp": str(timestamp or int(time.time())),
        "auth_version": "1.0",
        **(params or {}),
    }
    if body:
        query["body_md5"] = hashlib.md5(body).hexdigest()
    string = "\n".join([method, path, "&".join(f"{k}={query[k]}" for k in sorted(query))])
    query["auth_signature"] = hmac.new(secret.encode(), string.encode(), hashlib.sha256).hexdigest()
    return query


async def call(
    running: Running,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, str] | None = None,
    prefix: str = "",
    **sign: Any,
) -> httpx.Response:
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    query = signed(method, path, raw, params, **sign)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as http:
        return await http.request(
            method,
            prefix + path,
            params=query,
            content=raw,
            headers={"content-type": "application/json"},
        )


async def sdk(running: Running, method: str, *args: Any, **kwargs: Any) -> Any:
    client = running.sdk()
    return await asyncio.to_thread(getattr(client, method), *args, **kwargs)


async def test_events_trigger_reaches_subscribers_and_answers_empty_object(
    running: Running,
) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.subscribe("orders")
        assert await sdk(running, "trigger", "orders", "shipped", {"id": 7}) == {}
        message = await client.recv()
        assert message == {"event": "shipped", "channel": "orders", "data": '{"id": 7}'}


async def test_events_data_string_is_relayed_verbatim(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.subscribe("raw")
        response = await call(
            running,
            "POST",
            "/apps/12345/events",
            {"name": "e", "channel": "raw", "data": "not json at all"},
        )
        assert response.status_code == 200
        assert response.json() == {}
        assert (await client.recv())["data"] == "not json at all"


async def test_events_socket_id_excludes_only_that_socket(running: Running) -> None:
    async with Client.open(running.url()) as a, Client.open(running.url()) as b:
        await a.established()
        await b.established()
        await a.subscribe("room")
        await b.subscribe("room")
        await sdk(running, "trigger", "room", "e", "x", socket_id=a.socket_id)
        assert (await b.recv())["event"] == "e"
        await a.nothing()


async def test_events_to_several_channels_with_info(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.subscribe("one")
        response = await call(
            running,
            "POST",
            "/apps/12345/events",
            {"name": "e", "channels": ["one", "two"], "data": "{}", "info": "subscription_count"},
        )
        assert response.json() == {
            "channels": {"one": {"subscription_count": 1}, "two": {"subscription_count": 0}}
        }


async def test_events_with_more_than_100_channels_is_400(running: Running) -> None:
    response = await call(
        running,
        "POST",
        "/apps/12345/events",
        {"name": "e", "channels": [f"c{i}" for i in range(101)], "data": "{}"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert "100" in response.text


async def test_events_data_over_limit_is_413(running: Running) -> None:
    response = await call(
        running,
        "POST",
        "/apps/12345/events",
        {"name": "e", "channel": "c", "data": "x" * (10 * 1024 + 1)},
    )
    assert response.status_code == 413


async def test_events_huge_body_is_413_and_the_server_keeps_serving(running: Running) -> None:
    response = await call(running, "POST", "/apps/12345/events", b"x" * (10 * 1024 * 1024))
    assert response.status_code == 413
    assert await sdk(running, "trigger", "still", "alive", {}) == {}


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "c", "data": "{}"},
        {"name": "e", "data": "{}"},
        {"name": "e", "channel": "c"},
        {"name": "e", "channel": "bad channel!", "data": "{}"},
        {"name": "e", "channel": "c", "data": "{}", "socket_id": "nope"},
        {"name": "e", "channel": "c", "data": "{}", "info": "user_count"},
        [1, 2],
    ],
)
async def test_events_invalid_bodies_are_400(running: Running, body: Any) -> None:
    response = await call(running, "POST", "/apps/12345/events", body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("depth", [100, 300, 2000])
async def test_events_body_nested_too_deep_is_400(running: Running, depth: int) -> None:
    raw = b'{"name":"e","channel":"c","data":' + b"[" * depth + b"]" * depth + b"}"
    response = await call(running, "POST", "/apps/12345/events", raw)
    assert response.status_code == 400, response.text
    assert response.text == "Invalid JSON body: nested deeper than 64 levels\n"


async def test_batch_events_delivers_all_and_reports_info(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.subscribe("b1")
        result = await sdk(
            running,
            "trigger_batch",
            [
                {"channel": "b1", "name": "first", "data": {"n": 1}},
                {"channel": "b1", "name": "second", "data": {"n": 2}, "info": "subscription_count"},
            ],
        )
        assert result == {"batch": [{}, {"subscription_count": 1}]}
        assert (await client.recv())["event"] == "first"
        assert (await client.recv())["event"] == "second"


async def test_batch_events_one_bad_item_sends_nothing(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.subscribe("b2")
        response = await call(
            running,
            "POST",
            "/apps/12345/batch_events",
            {
                "batch": [
                    {"channel": "b2", "name": "ok", "data": "{}"},
                    {"name": "missing-channel", "data": "{}"},
                ]
            },
        )
        assert response.status_code == 400
        assert "channel" in response.text
        await client.nothing()


async def test_batch_events_over_10_is_400(running: Running) -> None:
    batch = [{"channel": "c", "name": "e", "data": "{}"} for _ in range(11)]
    response = await call(running, "POST", "/apps/12345/batch_events", {"batch": batch})
    assert response.status_code == 400


async def test_channels_lists_occupied_channels_with_filter_and_user_count(
    running: Running,
) -> None:
    async with Client.open(running.url()) as client:
        socket_id = await client.established()
        await client.subscribe("news")
        data = json.dumps({"user_id": "u1", "user_info": {"name": "Ann"}})
        await client.subscribe(
            "presence-room", private_auth(socket_id, "presence-room", data), data
        )
        assert await sdk(running, "channels_info") == {
            "channels": {"news": {}, "presence-room": {}}
        }
        assert await sdk(
            running, "channels_info", prefix_filter="presence-", attributes=["user_count"]
        ) == {"channels": {"presence-room": {"user_count": 1}}}
        response = await call(running, "GET", "/apps/12345/channels", params={"info": "user_count"})
        assert response.status_code == 400


async def test_channel_info_reports_occupied_and_counts(running: Running) -> None:
    async with Client.open(running.url()) as client:
        socket_id = await client.established()
        await client.subscribe("news")
        assert await sdk(running, "channel_info", "news", ["subscription_count"]) == {
            "occupied": True,
            "subscription_count": 1,
        }
        assert await sdk(running, "channel_info", "empty") == {"occupied": False}
        data = json.dumps({"user_id": 9})
        await client.subscribe("presence-x", private_auth(socket_id, "presence-x", data), data)
        assert await sdk(running, "channel_info", "presence-x", ["user_count"]) == {
            "occupied": True,
            "user_count": 1,
        }
        response = await call(
            running, "GET", "/apps/12345/channels/news", params={"info": "user_count"}
        )
        assert response.status_code == 400


async def test_channel_info_cache_returns_last_event_and_ttl(running: Running) -> None:
    await sdk(running, "trigger", "cache-prices", "price", {"eur": 1})
    response = await call(
        running, "GET", "/apps/12345/channels/cache-prices", params={"info": "cache"}
    )
    body = response.json()
    assert body["occupied"] is False
    assert body["cache"]["data"] == '{"eur": 1}'
    assert 0 < body["cache"]["ttl"] <= 1800


async def test_users_lists_presence_members_and_refuses_other_channels(running: Running) -> None:
    async with Client.open(running.url()) as client:
        socket_id = await client.established()
        data = json.dumps({"user_id": 5, "user_info": {}})
        await client.subscribe("presence-u", private_auth(socket_id, "presence-u", data), data)
        assert await sdk(running, "users_info", "presence-u") == {"users": [{"id": "5"}]}
        response = await call(running, "GET", "/apps/12345/channels/public/users")
        assert response.status_code == 400


async def test_terminate_connections_closes_signed_in_sockets_with_4009(running: Running) -> None:
    from tests.server.conftest import user_auth

    async with Client.open(running.url()) as user, Client.open(running.url()) as bystander:
        socket_id = await user.established()
        await bystander.established()
        user_data = json.dumps({"id": "42"})
        await user.send(
            "pusher:signin", {"auth": user_auth(socket_id, user_data), "user_data": user_data}
        )
        assert (await user.recv())["event"] == "pusher:signin_success"
        await user.subscribe("#server-to-user-42")
        assert await sdk(running, "terminate_user_connections", "42") == {}
        message = await user.recv()
        assert message["event"] == "pusher:error"
        assert message["data"]["code"] == 4009
        assert (await user.closed())[0] == 4009
        await bystander.send("pusher:ping")
        assert (await bystander.recv())["event"] == "pusher:pong"


async def test_send_to_user_reaches_every_socket_signed_in_as_that_user(running: Running) -> None:
    from tests.server.conftest import user_auth

    async with Client.open(running.url()) as a, Client.open(running.url()) as b:
        for client in (a, b):
            socket_id = await client.established()
            user_data = json.dumps({"id": "7"})
            await client.send(
                "pusher:signin", {"auth": user_auth(socket_id, user_data), "user_data": user_data}
            )
            assert (await client.recv())["event"] == "pusher:signin_success"
        await sdk(running, "send_to_user", "7", "note", {"hi": 1})
        for client in (a, b):
            message = await client.recv()
            assert message["event"] == "note"
            assert message["channel"] == "#server-to-user-7"


@pytest.mark.parametrize(
    ("sign", "fragment"),
    [
        ({"secret": "wrong"}, "Invalid signature"),
        ({"timestamp": 1_000_000_000}, "Timestamp expired"),
        ({"key": "other-key"}, "auth_key"),
    ],
)
async def test_requests_with_bad_auth_are_401_with_pusher_text(
    running: Running, sign: dict[str, Any], fragment: str
) -> None:
    response = await call(
        running, "POST", "/apps/12345/events", {"name": "e", "channel": "c", "data": "{}"}, **sign
    )
    assert response.status_code == 401
    assert fragment in response.text
    assert "app-secret" not in response.text


async def test_requests_for_unknown_app_are_404(running: Running) -> None:
    response = await call(
        running, "POST", "/apps/999/events", {"name": "e", "channel": "c", "data": "{}"}
    )
    assert response.status_code == 404


async def test_requests_for_disabled_app_are_403() -> None:
    async with serve(make_config(replace(APP, enabled=False))) as r:
        response = await call(
            r, "POST", "/apps/12345/events", {"name": "e", "channel": "c", "data": "{}"}
        )
        assert response.status_code == 403


async def test_backend_event_rate_limit_answers_429() -> None:
    async with serve(make_config(replace(APP, max_backend_events_per_second=2))) as r:
        statuses = []
        for _ in range(4):
            response = await call(
                r, "POST", "/apps/12345/events", {"name": "e", "channel": "c", "data": "{}"}
            )
            statuses.append(response.status_code)
        assert statuses[:2] == [200, 200]
        assert 429 in statuses[2:]


async def test_path_prefix_serves_and_signs_without_the_prefix() -> None:
    async with serve(make_config(path_prefix="/ws")) as r:
        async with Client.open(f"ws://127.0.0.1:{r.port}/ws/app/app-key?protocol=7") as client:
            await client.established()
            await client.subscribe("p")
            response = await call(
                r,
                "POST",
                "/apps/12345/events",
                {"name": "e", "channel": "p", "data": "{}"},
                prefix="/ws",
            )
            assert response.status_code == 200, response.text
            assert (await client.recv())["event"] == "e"


async def test_python_sdk_terminate_path_without_app_prefix_is_accepted(
    running: Running,
) -> None:
    # pusher-http-python posts /users/{id}/terminate_connections (no /apps/{id}).
    client = pusher.Pusher(
        app_id="12345",
        key="app-key",
        secret="app-secret",
        host="127.0.0.1",
        port=running.port,
        ssl=False,
    )
    assert await asyncio.to_thread(client.terminate_user_connections, "1") == {}


async def _after_a_probe(running: Running, request: bytes) -> bytes:
    """Send ``request`` on a connection whose first request went through uvicorn's HTTP."""
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            first = await reader.readuntil(b'{"health":"OK"}')
            assert first.startswith(b"HTTP/1.1 200")
            writer.write(request)
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


_HUGE = (
    b"POST /apps/12345/events?auth_key=app-key HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n" + b"x" * 1024
)


async def test_events_huge_declared_body_behind_uvicorn_is_413_at_once(running: Running) -> None:
    response = await _after_a_probe(running, _HUGE)
    assert response.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in response


async def test_events_body_that_stops_arriving_behind_uvicorn_gets_408(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(running.parts.rest, "request_timeout", 0.3)
    stalled = _HUGE.replace(b"10737418240", b"2048")
    response = await _after_a_probe(running, stalled)
    assert response.startswith(b"HTTP/1.1 408")
