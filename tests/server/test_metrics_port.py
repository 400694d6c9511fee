"""``MetricsListener``: ``GET /metrics`` alone, on its own loopback port, until closed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pusherd.config import MetricsConfig
from pusherd.metrics import CONTENT_TYPE, Metrics
from pusherd.server.metrics_port import MetricsListener
from pusherd.server.probes import Probes
from tests.server.conftest import TIMEOUT, make_config, serve
from tests.server_process import free_port


def probes(metrics: Metrics) -> Probes:
    return Probes(lambda: (200, {"ready": True}), metrics, metrics_enabled=True)


@contextlib.asynccontextmanager
async def listening(metrics: Metrics | None = None) -> AsyncIterator[MetricsListener]:
    listener = MetricsListener(probes(metrics or Metrics()), "127.0.0.1", 0)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


async def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes and read until the listener closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(TIMEOUT):
            return await reader.read(-1)
    finally:
        writer.close()


async def refused(port: int) -> bool:
    try:
        async with asyncio.timeout(TIMEOUT):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def connected_value(text: str, app_id: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "pusherd_connected" and sample.labels == {"app_id": app_id}:
                return sample.value
    return None


async def test_port_zero_binds_a_free_loopback_port_and_reports_it() -> None:
    async with listening() as listener:
        assert listener.port != 0
        assert not await refused(listener.port)


async def test_get_metrics_returns_the_exposition_with_the_prometheus_content_type() -> None:
    metrics = Metrics()
    metrics.connection_opened("12345")
    async with listening(metrics) as listener:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{listener.port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["connection"] == "close"
    assert connected_value(response.text, "12345") == 1


async def test_each_scrape_renders_the_current_values() -> None:
    metrics = Metrics()
    async with listening(metrics) as listener, httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{listener.port}/metrics"
        assert connected_value((await http.get(url)).text, "12345") is None
        metrics.connection_opened("12345")
        metrics.connection_opened("12345")
        assert connected_value((await http.get(url)).text, "12345") == 2


async def test_a_query_string_on_metrics_is_ignored() -> None:
    async with listening() as listener, httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{listener.port}/metrics?name[]=x")
    assert response.status_code == 200
    assert "pusherd_connected" in response.text


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET / HTTP/1.1",
        b"GET /metrics/extra HTTP/1.1",
        b"GET /metricsx HTTP/1.1",
        b"GET /up HTTP/1.1",
        b"POST /metrics HTTP/1.1",
        b"HEAD /metrics HTTP/1.1",
        b"GARBAGE",
    ],
)
async def test_anything_but_get_metrics_is_a_404(request_line: bytes) -> None:
    async with listening() as listener:
        response = await exchange(listener.port, request_line + b"\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert response.endswith(b"\r\n\r\nNot found\n")
    assert b"pusherd_" not in response


async def test_one_answer_per_connection_then_the_listener_closes_it() -> None:
    async with listening() as listener:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        # Pipelined: only the first request is answered, then EOF (read(-1) returns).
        response = await exchange(listener.port, request + request)
    assert response.count(b"HTTP/1.1 200 OK") == 1
    assert b"connection: close\r\n" in response


async def test_a_client_that_hangs_up_mid_request_does_not_stop_the_listener() -> None:
    async with listening() as listener:
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /metr")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        response = await exchange(listener.port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_an_oversized_request_head_is_dropped_without_an_answer() -> None:
    async with listening() as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        try:
            # Longer than the stream reader's 64 KiB limit and never terminated.
            with contextlib.suppress(ConnectionError):
                writer.write(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"x" * 200_000)
                await writer.drain()
            with contextlib.suppress(ConnectionError):
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.read(-1) == b""
        finally:
            writer.close()
        response = await exchange(listener.port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_close_stops_accepting_connections_and_is_safe_before_start() -> None:
    never_started = MetricsListener(probes(Metrics()), "127.0.0.1", 0)
    await never_started.close()
    listener = MetricsListener(probes(Metrics()), "127.0.0.1", 0)
    await listener.start()
    port = listener.port
    await listener.close()
    assert await refused(port)


async def test_start_on_a_port_already_in_use_raises() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listener = MetricsListener(probes(Metrics()), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(OSError):
            await listener.start()


async def test_the_node_opens_the_metrics_port_from_config_and_closes_it_on_shutdown() -> None:
    port = free_port()
    config = replace(make_config(), metrics=MetricsConfig(port=port))
    async with serve(config) as r:
        assert r.parts.metrics_listener is not None
        assert r.parts.metrics_listener.port == port
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        # Same numbers as the main port: one Metrics per node.
        r.parts.metrics.connection_opened("12345")
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert connected_value(text, "12345") == 1
        r.parts.metrics.connection_closed("12345", 1000)
    assert await refused(port)


async def test_disabled_metrics_open_no_listener_even_with_a_port() -> None:
    port = free_port()
    config = replace(make_config(), metrics=MetricsConfig(enabled=False, port=port))
    async with serve(config) as r:
        assert r.parts.metrics_listener is None
        assert await refused(port)


async def test_the_metrics_port_binds_to_its_own_host_when_one_is_set() -> None:
    # The server listens on 127.0.0.1; metrics only on another loopback address.
    port = free_port()
    config = replace(make_config(), metrics=MetricsConfig(port=port, host="127.0.0.2"))
    async with serve(config) as r:
        assert r.parts.metrics_listener is not None
        assert r.parts.metrics_listener.host == "127.0.0.2"
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.2:{port}/metrics")
        assert response.status_code == 200
        assert await refused(port)  # nothing on 127.0.0.1:port
