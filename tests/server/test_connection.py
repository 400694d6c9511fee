"""One socket's life over a real loopback connection: handshake, errors, bad input."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from dataclasses import replace
from typing import Any

import pytest

from pusherd.server import linger
from tests.server.conftest import APP, Client, Running, make_config, serve
from tests.server.raw_ws import RawWebSocket, masked_frame


async def test_connection_established_has_socket_id_and_activity_timeout(
    running: Running,
) -> None:
    async with Client.open(running.url()) as client:
        message = await client.recv()
        assert message["event"] == "pusher:connection_established"
        assert isinstance(message["data"], str)  # double-encoded, as pusher-js expects
        data = json.loads(message["data"])
        assert re.fullmatch(r"\d+\.\d+", data["socket_id"])
        assert data["activity_timeout"] == 120


async def test_connection_socket_ids_are_unique(running: Running) -> None:
    ids = set()
    for _ in range(5):
        async with Client.open(running.url()) as client:
            ids.add(await client.established())
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("key", "query", "code"),
    [
        ("unknown", "?protocol=7", 4001),
        ("app-key", "?protocol=3", 4007),
        ("app-key", "?protocol=abc", 4006),
        ("app-key", "", 4008),
    ],
)
async def test_connection_fatal_handshake_errors_send_error_then_close_with_code(
    running: Running, key: str, query: str, code: int
) -> None:
    async with Client.open(running.url(key, query)) as client:
        message = await client.recv()
        assert message == {
            "event": "pusher:error",
            "data": {"code": code, "message": message["data"]["message"]},
        }
        assert (await client.closed())[0] == code


async def test_connection_without_protocol_but_with_version_is_accepted(running: Running) -> None:
    async with Client.open(running.url(query="?client=js&version=8.4.0")) as client:
        await client.established()


async def test_connection_to_unknown_path_is_closed_with_4005(running: Running) -> None:
    async with Client.open(f"ws://127.0.0.1:{running.port}/socket/app-key") as client:
        assert (await client.recv())["data"]["code"] == 4005
        assert (await client.closed())[0] == 4005


async def test_connection_to_disabled_app_is_closed_with_4003() -> None:
    async with serve(make_config(replace(APP, enabled=False))) as r, Client.open(r.url()) as c:
        assert (await c.recv())["data"]["code"] == 4003
        assert (await c.closed())[0] == 4003


async def test_connection_origin_not_allowed_is_closed_with_4009() -> None:
    app = replace(APP, allowed_origins=("https://*.example.com",))
    async with serve(make_config(app)) as r:
        async with Client.open(r.url(), origin="https://evil.test") as client:
            assert (await client.recv())["data"]["code"] == 4009
            assert (await client.closed())[0] == 4009
        async with Client.open(r.url(), origin="https://app.example.com") as client:
            await client.established()


async def test_connection_over_node_capacity_is_closed_with_4100() -> None:
    async with serve(make_config(max_connections=1)) as r, Client.open(r.url()) as first:
        await first.established()
        async with Client.open(r.url()) as second:
            assert (await second.recv())["data"]["code"] == 4100
            assert (await second.closed())[0] == 4100


async def test_connection_over_app_quota_is_closed_with_4004() -> None:
    async with serve(make_config(replace(APP, max_connections=1))) as r:
        async with Client.open(r.url()) as first:
            await first.established()
            async with Client.open(r.url()) as second:
                assert (await second.recv())["data"]["code"] == 4004
                assert (await second.closed())[0] == 4004
        # the slot is released when the first socket leaves
        async with asyncio.timeout(5):
            while await r.parts.broker.connection_count(APP.id):
                await asyncio.sleep(0.02)
        async with Client.open(r.url()) as third:
            await third.established()


async def test_connection_answers_pusher_ping_with_pong(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.send("pusher:ping")
        assert await client.recv() == {"event": "pusher:pong", "data": "{}"}


async def test_connection_answers_protocol_ping_frames(running: Running) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        pong = await client.ws.ping(b"abc")
        async with asyncio.timeout(5):
            await pong


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("not json", "Invalid JSON"),
        ("[1, 2]", "must be JSON objects"),
        ('{"event": 5}', "'event'"),
        ('{"event": "pusher:subscribe", "data": [1]}', "'data'"),
        ('{"event": "pusher:subscribe", "data": "not json"}', "'data'"),
        ('{"event": "pusher:nonsense", "data": {}}', "Unsupported event"),
        ('{"event": "x", "channel": 5}', "'channel'"),
    ],
)
async def test_connection_bad_messages_get_an_error_and_the_socket_stays_open(
    running: Running, frame: str, fragment: str
) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.ws.send(frame)
        message = await client.recv()
        assert message["event"] == "pusher:error"
        assert message["data"]["code"] is None
        assert fragment in message["data"]["message"]
        await client.send("pusher:ping")
        assert (await client.recv())["event"] == "pusher:pong"


def _nested(depth: int, leaf: str = '"x"') -> str:
    return '{"a":' * depth + leaf + "}" * depth


def _raw(event: str, data: str | None = None, channel: str | None = None) -> str:
    """A client frame with ``data`` given as raw JSON text (so it can nest deep)."""
    fields = ['"event":' + json.dumps(event)]
    if channel is not None:
        fields.append('"channel":' + json.dumps(channel))
    if data is not None:
        fields.append('"data":' + data)
    return "{" + ",".join(fields) + "}"


_DEEP = "nested deeper than 64 levels"
_SUB = "pusher:subscribe"
_UNSUB = "pusher:unsubscribe"


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        # item 2: any field nested deep (1006 without a word before)
        (_raw(_SUB, '{"channel":' + _nested(1000) + "}"), _DEEP),
        (_raw(_SUB, '{"channel":' + _nested(70) + "}"), _DEEP),
        (_raw(_SUB, '{"channel":"private-a","auth":' + _nested(1000) + "}"), _DEEP),
        (_raw(_SUB, '{"channel":"presence-a","channel_data":' + _nested(500) + "}"), _DEEP),
        (_raw("client-x", _nested(300), "private-a"), _DEEP),
        (_raw("pusher:signin", '{"auth":"app-key:0","user_data":' + _nested(800) + "}"), _DEEP),
        (_raw(_SUB, json.dumps('{"channel":' + _nested(1000) + "}")), _DEEP),
        (_raw(_SUB, '{"channel":[' + ",".join(["1"] * 20000) + "]}"), "non-empty string"),
        # item 3: malformed unsubscribes and client events (ignored silently before)
        (_raw(_UNSUB), "'data' must be a JSON object"),
        (_raw(_UNSUB, "7"), "'data' must be a JSON object"),
        (_raw(_UNSUB, "{}"), "non-empty string"),
        (_raw(_UNSUB, '{"channel":5}'), "non-empty string"),
        (_raw(_UNSUB, '{"channel":""}'), "non-empty string"),
        (_raw(_UNSUB, '{"channel":"' + "x" * 201 + '"}'), "200 characters"),
        (_raw(_UNSUB, '{"channel":"a b"}'), "may only contain"),
        (_raw(_UNSUB, '{"channel":{"c":{"d":"e"}}}'), "non-empty string"),
        (_raw(_UNSUB, '{"channel":' + _nested(1000) + "}"), _DEEP),
        (_raw("client-x", None, "private-a"), "'data' is required"),
        (_raw("client-", "{}", "private-a"), "a name after 'client-'"),
    ],
)
async def test_connection_hostile_messages_get_an_error_and_the_socket_stays_open(
    running: Running, frame: str, fragment: str
) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.ws.send(frame)
        message = await client.recv()
        if message["event"] == "pusher:subscription_error":
            message = await client.recv()
        assert message["event"] == "pusher:error"
        assert message["data"]["code"] in (None, 4009)
        assert fragment in message["data"]["message"]
        await client.send("pusher:ping")
        assert (await client.recv())["event"] == "pusher:pong"


async def test_connection_100000_deep_array_gets_the_same_answer_as_1000_deep() -> None:
    answers = []
    async with serve(make_config(max_message_size_kb=1024)) as running:
        async with Client.open(running.url()) as client:
            await client.established()
            for depth in (1000, 100_000):
                arrays = "[" * depth + "]" * depth
                await client.ws.send(_raw(_SUB, '{"channel":' + arrays + "}"))
                answers.append(await client.recv())
            await client.send("pusher:ping")
            assert (await client.recv())["event"] == "pusher:pong"
    assert answers[0] == answers[1]
    assert answers[0]["data"] == {"code": None, "message": f"Invalid message: JSON {_DEEP}"}


async def test_connection_unsubscribe_from_channel_not_joined_stays_silent(
    running: Running,
) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.send("pusher:unsubscribe", {"channel": "never-joined"})
        await client.send("pusher:ping")
        assert (await client.recv())["event"] == "pusher:pong"


async def test_connection_binary_frames_get_an_error_and_the_socket_stays_open(
    running: Running,
) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.ws.send(b'{"event":"pusher:ping"}')
        message = await client.recv()
        assert message["event"] == "pusher:error"
        assert "Binary" in message["data"]["message"]
        await client.send("pusher:ping")
        assert (await client.recv())["event"] == "pusher:pong"


async def test_connection_oversized_frame_is_closed_with_1009(running: Running) -> None:
    async with Client.open(running.url(), max_size=None) as client:
        await client.established()
        await client.ws.send("x" * (200 * 1024))
        code, _ = await client.closed()
        assert code == 1009


async def test_connection_subscribe_with_wrong_types_gets_subscription_error(
    running: Running,
) -> None:
    async with Client.open(running.url()) as client:
        await client.established()
        await client.send("pusher:subscribe", {"channel": 42})
        first = await client.recv()
        assert first["event"] == "pusher:subscription_error"
        assert first["channel"] == "42"
        assert first["data"]["status"] == 400
        assert (await client.recv())["event"] == "pusher:error"
        await client.send("pusher:subscribe", {"channel": "#secret"})
        assert (await client.recv())["event"] == "pusher:subscription_error"
        assert (await client.recv())["event"] == "pusher:error"
        ok = await client.subscribe("still-works")
        assert ok["event"] == "pusher_internal:subscription_succeeded"


async def test_connection_subscribe_flood_is_bounded_and_others_unaffected(
    running: Running,
) -> None:
    async with Client.open(running.url()) as flooder, Client.open(running.url()) as other:
        await flooder.established()
        await other.established()
        assert (await other.subscribe("calm"))["event"].endswith("subscription_succeeded")
        for index in range(1100):
            await flooder.send("pusher:subscribe", {"channel": f"flood-{index}", "auth": ""})
        succeeded = errors = 0
        async with asyncio.timeout(20):
            while succeeded + errors < 1100:
                message = await flooder.recv()
                if message["event"] == "pusher_internal:subscription_succeeded":
                    succeeded += 1
                elif message["event"] == "pusher:subscription_error":
                    errors += 1
        assert succeeded == 1000
        assert errors == 100
        await asyncio.to_thread(running.sdk().trigger, "calm", "still", "here")
        assert (await other.recv())["event"] == "still"


async def test_connection_plain_http_upgrade_with_wrong_version_gets_426(
    running: Running,
) -> None:
    def request() -> bytes:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
            sock.sendall(
                b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 8\r\n\r\n"
            )
            return sock.recv(4096)

    response = await asyncio.to_thread(request)
    assert response.startswith(b"HTTP/1.1 426")
    assert b"sec-websocket-version: 13" in response.lower()


async def test_connection_server_shutdown_closes_sockets_with_4200() -> None:
    async with serve(make_config()) as r, Client.open(r.url()) as client:
        await client.established()
        await r.parts.node.stop(1.0)
        message = await client.recv()
        assert message["data"]["code"] == 4200
        assert (await client.closed())[0] == 4200


async def test_connection_frames_sent_right_behind_the_upgrade_head_are_not_dropped(
    running: Running,
) -> None:
    payload = json.dumps({"event": "pusher:subscribe", "data": {"channel": "eager"}}).encode()
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def request() -> bytes:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
            sock.sendall(
                b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n" + frame
            )
            received = b""
            for _ in range(50):  # bounded: a few reads at most
                chunk = sock.recv(4096)
                received += chunk
                if not chunk or b"subscription_succeeded" in received:
                    break
            return received

    received = await asyncio.to_thread(request)
    assert received.startswith(b"HTTP/1.1 101")
    assert b"pusher:connection_established" in received
    assert b"pusher_internal:subscription_succeeded" in received
    assert received.index(b"connection_established") < received.index(b"subscription_succeeded")


async def test_connection_oversized_frame_in_one_write_still_gets_its_close_frame(
    running: Running,
) -> None:
    # The rest of the frame is still arriving when the server gives up on it: without a
    # lingering close the kernel resets the socket and the client never sees 1009.
    def attack() -> tuple[int, list[dict[str, Any]]]:
        raw = RawWebSocket(running.port)
        try:
            assert raw.message()["event"] == "pusher:connection_established"
            raw.sock.sendall(masked_frame(0x1, b"x" * (1024 * 1024)))
            code, messages = raw.close_code()
            raw.answer_close_and_expect_eof()
            return code, messages
        finally:
            raw.close()

    code, messages = await asyncio.to_thread(attack)
    assert code == 1009
    assert [m["event"] for m in messages] == ["pusher:error"]


async def test_connection_protocol_error_mid_burst_still_gets_its_close_frame(
    running: Running,
) -> None:
    # A 1002 decided in the middle of a burst: the frames behind the bad one are read and
    # dropped until the client answers the close, so the close frame is not lost.
    def burst() -> tuple[int, list[dict[str, Any]]]:
        raw = RawWebSocket(running.port)
        try:
            assert raw.message()["event"] == "pusher:connection_established"
            ping = masked_frame(0x1, json.dumps({"event": "pusher:ping", "data": {}}).encode())
            unmasked = bytes((0x81, 2)) + b"{}"
            filler = masked_frame(0x2, b"\0" * 60_000)
            raw.sock.sendall(ping * 50 + unmasked + ping * 50 + filler * 16)
            code, messages = raw.close_code()
            raw.answer_close_and_expect_eof()
            return code, messages
        finally:
            raw.close()

    code, messages = await asyncio.to_thread(burst)
    assert code == 1002
    assert [m["event"] for m in messages] == ["pusher:pong"] * 50


async def test_connection_lingering_close_gives_up_on_a_client_that_never_answers(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(linger, "LINGER_SECONDS", 0.2)

    def silent() -> bytes:
        raw = RawWebSocket(running.port)
        try:
            assert raw.message()["event"] == "pusher:connection_established"
            raw.send(0x1, b"x" * (200 * 1024))
            code, _ = raw.close_code()
            assert code == 1009
            # No close frame from us: the server closes TCP on its own, bounded in time.
            return raw.sock.recv(65536)
        finally:
            raw.close()

    assert await asyncio.to_thread(silent) == b""
