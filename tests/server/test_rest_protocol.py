"""The keep-alive REST connection, over raw sockets: pipelining, limits, probes, errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import replace

import pytest

from pusherd.config import ConsoleConfig
from tests.server.conftest import Running, make_config, serve


def publish_request(channel: str, extra_headers: bytes = b"", body: bytes | None = None) -> bytes:
    raw = (
        body
        if body is not None
        else json.dumps({"name": "e", "channel": channel, "data": "{}"}).encode()
    )
    query = (
        f"auth_key=app-key&auth_timestamp={int(time.time())}&auth_version=1.0"
        f"&body_md5={hashlib.md5(raw).hexdigest()}"
    )
    signature = hmac.new(
        b"app-secret", f"POST\n/apps/12345/events\n{query}".encode(), hashlib.sha256
    ).hexdigest()
    return (
        (
            f"POST /apps/12345/events?{query}&auth_signature={signature} HTTP/1.1\r\n"
            f"Host: x\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
        ).encode()
        + extra_headers
        + b"\r\n"
        + raw
    )


async def exchange(running: Running, data: bytes, until: bytes, count: int = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(data)
        received = b""
        async with asyncio.timeout(5):
            while received.count(until) < count:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
        return received
    finally:
        writer.close()


async def test_rest_connection_answers_pipelined_requests_in_order(running: Running) -> None:
    requests = b"".join(publish_request(f"c{i}") for i in range(5))
    requests += b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n"
    response = await exchange(running, requests, b"HTTP/1.1 200 OK", 6)
    assert response.count(b"HTTP/1.1 200 OK") == 6
    assert response.endswith(b'{"health":"OK"}')


async def test_rest_connection_answers_expect_100_continue(running: Running) -> None:
    request = publish_request("c", b"Expect: 100-continue\r\n")
    response = await exchange(running, request, b"{}")
    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


async def test_rest_connection_oversized_body_is_413_then_closed_and_the_server_serves_on(
    running: Running,
) -> None:
    big = publish_request("c", body=b"x" * (1024 * 1024 + 1))
    response = await exchange(running, big + publish_request("c"), b"\0")
    assert response.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in response
    assert response.count(b"HTTP/1.1") == 1  # the request behind it is not read
    assert (await exchange(running, publish_request("c"), b"{}")).startswith(b"HTTP/1.1 200")


def _head(length: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /apps/12345/events?auth_key=app-key HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n"
        + (b"Content-Length: %d\r\n" % length if length >= 0 else b"")
        + extra
        + b"\r\n"
    )


async def test_rest_connection_huge_declared_body_is_413_without_waiting_for_it(
    running: Running,
) -> None:
    # 10 GiB declared, 1 KB sent: the answer must not wait for the rest.
    response = await exchange(running, _head(10 * 1024**3) + b"x" * 1024, b"\0")
    assert response.startswith(b"HTTP/1.1 413 Payload Too Large")
    assert b"Request body larger than 1024 KB" in response


async def test_rest_connection_huge_chunked_body_is_413_as_it_passes_the_limit(
    running: Running,
) -> None:
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    head = _head(-1, b"Transfer-Encoding: chunked\r\n")
    response = await exchange(running, head + chunk * 17, b"\0")
    assert response.startswith(b"HTTP/1.1 413")


async def test_rest_connection_body_that_stops_arriving_gets_408(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(running.parts.rest, "request_timeout", 0.3)
    response = await exchange(running, _head(2048) + b"{" * 100, b"\0")
    assert response.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"connection: close" in response


async def test_rest_connection_stalled_chunked_body_gets_408(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(running.parts.rest, "request_timeout", 0.3)
    head = _head(-1, b"Transfer-Encoding: chunked\r\n")
    response = await exchange(running, head + b"10\r\n0123456789abcdef\r\n", b"\0")
    assert response.startswith(b"HTTP/1.1 408")


async def test_rest_connection_refusal_waits_for_the_answers_before_it(running: Running) -> None:
    requests = publish_request("a") + publish_request("b") + _head(10 * 1024**3) + b"x"
    response = await exchange(running, requests, b"\0")
    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert response.index(b"HTTP/1.1 413") > response.rindex(b"HTTP/1.1 200 OK")


async def test_rest_connection_probes_and_unknown_paths(running: Running) -> None:
    requests = (
        publish_request("c")
        + b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    response = await exchange(running, requests, b"HTTP/1.1 ", 5)
    assert b'{"ready":true}' in response
    assert b'{"status":"ok","timestamp":"' in response
    assert b"pusherd_http_calls_received_total" in response
    assert b"HTTP/1.1 404 Not Found" in response


async def test_rest_connection_close_header_closes_after_the_answer(running: Running) -> None:
    response = await exchange(running, publish_request("c", b"Connection: close\r\n"), b"\0")
    assert response.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in response


async def test_rest_connection_invalid_http_gets_400(running: Running) -> None:
    response = await exchange(
        running, publish_request("c") + b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 400"
    )
    assert b"HTTP/1.1 200 OK" in response
    assert b"HTTP/1.1 400 Bad Request" in response


async def test_rest_connection_can_be_upgraded_to_a_websocket_after_rest_calls(
    running: Running,
) -> None:
    # Proxies (Caddy, nginx) reuse pooled keep-alive upstream connections for upgrades.
    upgrade = (
        b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(publish_request("c"))
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"{}")).startswith(b"HTTP/1.1 200 OK")
            writer.write(upgrade)
            switched = await reader.readuntil(b"connection_established")
        assert switched.startswith(b"HTTP/1.1 101 Switching Protocols")
    finally:
        writer.close()


async def test_rest_connection_hands_a_request_for_another_route_to_uvicorn() -> None:
    # A proxy's pooled upstream connection began with REST calls, then carries a request
    # for the console: it must be served by the app, not answered 404 by the REST path.
    config = replace(make_config(), console=ConsoleConfig(enabled=True, password="x" * 12))
    async with serve(config) as r:
        request = publish_request("c") + b"GET /console/login HTTP/1.1\r\nHost: x\r\n\r\n"
        response = await exchange(r, request, b"</html>")
    assert response.startswith(b"HTTP/1.1 200 OK")
    assert response.count(b"HTTP/1.1 200") == 2
    assert b"<form" in response


async def test_rest_connection_keeps_order_when_a_foreign_request_follows_a_pipeline(
    running: Running,
) -> None:
    requests = publish_request("a") + publish_request("b") + b"GET /elsewhere HTTP/1.1\r\n\r\n"
    response = await exchange(running, requests, b"HTTP/1.1 ", 3)
    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert response.index(b"HTTP/1.1 404") > response.rindex(b"HTTP/1.1 200 OK")
