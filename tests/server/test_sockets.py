"""The node's sockets: the sweep (pings, 4201, slow sockets), greeting, ids, health."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx

from pusherd.protocol.messages import encode_event
from pusherd.server.app import build
from tests.server.conftest import Client, Running, make_config, serve


async def test_sweep_pings_idle_sockets_then_closes_silent_ones_with_4201(
    running: Running,
) -> None:
    parts = running.parts
    async with Client.open(running.url()) as client:
        await client.established()
        parts.sockets.sweep(parts.clock() + 121)  # idle longer than activity_timeout (120 s)
        assert await client.recv() == {"event": "pusher:ping", "data": "{}"}
        parts.sockets.sweep(parts.clock() + 121 + 31)  # no answer within pong_timeout (30 s)
        message = await client.recv()
        assert message["data"]["code"] == 4201
        assert (await client.closed())[0] == 4201


async def test_sweep_keeps_sockets_that_answer_the_ping(running: Running) -> None:
    parts = running.parts
    async with Client.open(running.url()) as client:
        await client.established()
        parts.sockets.sweep(parts.clock() + 121)
        assert (await client.recv())["event"] == "pusher:ping"
        await client.send("pusher:pong")
        await client.send("pusher:ping")
        assert (await client.recv())["event"] == "pusher:pong"  # the pong was processed
        parts.sockets.sweep(parts.clock() + 31)
        await client.send("pusher:ping")
        assert (await client.recv())["event"] == "pusher:pong"


async def test_slow_consumer_is_cut_off_and_others_get_every_event() -> None:
    async with serve(make_config(max_write_buffer_kb=64)) as r:
        # A raw socket that subscribes and then never reads again.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", r.port))
        stalled, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(
                b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            async with asyncio.timeout(5):
                await stalled.readuntil(b"connection_established")
            payload = json.dumps({"event": "pusher:subscribe", "data": {"channel": "firehose"}})
            writer.write(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload.encode())
            async with Client.open(r.url()) as reader:
                await reader.established()
                await reader.subscribe("firehose")
                async with asyncio.timeout(5):
                    while r.parts.hub.local_count("12345", "firehose") < 2:
                        await asyncio.sleep(0.01)
                sdk = r.sdk()
                blob = "x" * 9000
                for batch in range(100):
                    events = [
                        {"channel": "firehose", "name": "big", "data": f"{batch}.{i}:{blob}"}
                        for i in range(10)
                    ]
                    await asyncio.to_thread(sdk.trigger_batch, events)
                    for i in range(10):
                        message = await reader.recv()
                        assert message["data"].startswith(f"{batch}.{i}:")
                cut = [c for c in r.parts.sockets.connections if c.close_code == 4100]
                assert len(cut) == 1
                assert cut[0].transport.get_write_buffer_size() < 1024 * 1024  # bounded
                metrics = r.parts.metrics.render().decode()
                assert 'pusherd_slow_consumer_disconnects_total{app_id="12345"} 1.0' in metrics
                # It never reads its close frame; the sweep drops it after a grace period.
                r.parts.sockets.sweep(r.parts.clock() + 60)
                async with asyncio.timeout(5):
                    while r.parts.hub.local_count("12345", "firehose") > 1:
                        await asyncio.sleep(0.01)
        finally:
            writer.close()


async def test_health_up_ready_and_metrics(running: Running) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as http:
        assert (await http.get("/up")).status_code == 200
        assert (await http.get("/ready")).json() == {"ready": True}
        async with Client.open(running.url()) as client:
            await client.established()
            text = (await http.get("/metrics")).text
            assert 'pusherd_connected{app_id="12345"} 1.0' in text
            assert "pusherd_new_connections_total" in text
        running.parts.sockets.draining = True
        assert (await http.get("/ready")).status_code == 503
        running.parts.sockets.draining = False


async def test_metrics_on_a_separate_port_and_publish_latency_recorded() -> None:
    from dataclasses import replace

    from pusherd.config import MetricsConfig
    from tests.server_process import free_port

    port = free_port()
    config = replace(make_config(), metrics=MetricsConfig(port=port))
    async with serve(config) as r:
        async with Client.open(r.url()) as client:
            await client.established()
            await client.subscribe("m")
            await asyncio.to_thread(r.sdk().trigger, "m", "e", {})
            await client.recv()
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200
            assert "pusherd_publish_to_write_seconds_count 1.0" in response.text
            assert (await http.get(f"http://127.0.0.1:{port}/other")).status_code == 404


async def test_metrics_count_channels_and_client_event_rate_limits(running: Running) -> None:
    from tests.server.conftest import private_auth

    async with Client.open(running.url()) as client:
        socket_id = await client.established()
        await client.subscribe("private-m", private_auth(socket_id, "private-m"))
        for index in range(11):
            await client.send("client-x", {"i": index}, channel="private-m")
        assert (await client.recv())["data"]["code"] == 4301
        text = running.parts.metrics.render().decode()
        assert 'pusherd_channels{app_id="12345"} 1.0' in text
        assert 'pusherd_subscriptions{app_id="12345"} 1.0' in text
        assert 'pusherd_rate_limited_total{app_id="12345",limit="client_events"} 1.0' in text


def test_connection_established_is_spliced_byte_for_byte_as_encode_event_writes_it() -> None:
    sockets = build(make_config(activity_timeout=37)).sockets
    for _ in range(50):
        socket_id = sockets.next_id()
        head, tail = sockets._greeting
        assert head + socket_id.encode() + tail == encode_event(
            "pusher:connection_established", {"socket_id": socket_id, "activity_timeout": 37}
        )
