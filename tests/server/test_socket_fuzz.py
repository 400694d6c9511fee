"""Socket-level fuzzing: attackers throw random frames at a live server (issue 11).

Several raw-TCP attackers send a few thousand frames (valid and broken WebSocket
frames, random Pusher JSON, deep and huge values, random bytes) while a bystander
subscribed to ``seq`` receives numbered events published through the REST API. The
server may close attackers; it must never crash, log an error, or lose or reorder one
of the bystander's events, and every text frame an attacker gets back is a Pusher
message. The frame count follows the hypothesis profile (``make fuzz`` runs 10x);
``PUSHERD_FUZZ_SEED`` replays a run (the seed is in every failure message).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import struct
import time
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest

from tests.fuzz_profiles import PROFILE
from tests.server.conftest import APP, TIMEOUT, Client, Running

__all__: list[str] = []

pytestmark = pytest.mark.fuzz

FRAMES = 50_000 if PROFILE == "fuzz" else 5_000
ATTACKERS = 4
EVENTS = 500 if PROFILE == "fuzz" else 100
CHANNELS = ["seq", "news", "private-a", "presence-a", "private-encrypted-a", "#server-to-user-1"]


# attacker frames -------------------------------------------------------------------------
def masked(
    opcode: int, payload: bytes, rng: random.Random, fin: bool = True, rsv: int = 0
) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, 0xFE, length)
    else:
        header = struct.pack("!BBQ", first, 0xFF, length)
    mask = rng.randbytes(4)
    body = int.from_bytes(payload, "little") ^ int.from_bytes(
        (mask * (length // 4 + 1))[:length], "little"
    )
    return header + mask + body.to_bytes(length, "little")


def nested(rng: random.Random) -> str:
    depth = rng.choice([10, 63, 64, 65, 254, 255, 256, 500, 1000, 1023, 1025, 5000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + json.dumps(rng.choice([1, "x", None, {}])) + closer * depth


def random_json(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if roll < 0.1 and depth < 4:
        return "[" + ",".join(random_json(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    if roll < 0.2 and depth < 4:
        keys = ["channel", "auth", "data", "x"]
        items = (
            json.dumps(rng.choice(keys)) + ":" + random_json(rng, depth + 1)
            for _ in range(rng.randrange(4))
        )
        return "{" + ",".join(items) + "}"
    if roll < 0.4:
        return nested(rng)
    if roll < 0.45:
        return json.dumps("x" * rng.randrange(1000, 90_000))
    return json.dumps(
        rng.choice(
            [
                None,
                True,
                0,
                -1,
                1e308,
                "",
                "client-",
                "seq",
                rng.choice(CHANNELS),
                "a b",
                "x" * 201,
                rng.randbytes(8).hex(),
            ]
        )
    )


def pointed(rng: random.Random) -> bytes:
    """A known event with one field nested around a limit (64, 255, Python's 1000)."""
    value = nested(rng)
    return (
        rng.choice(
            [
                '{"event":"pusher:subscribe","data":{"channel":%s}}',
                '{"event":"pusher:subscribe","data":{"channel":"private-a","auth":%s}}',
                '{"event":"pusher:subscribe","data":{"channel":"presence-a","channel_data":%s}}',
                '{"event":"pusher:unsubscribe","data":{"channel":%s}}',
                '{"event":"pusher:signin","data":{"user_data":%s,"auth":"k:s"}}',
                '{"event":"client-x","channel":"private-a","data":%s}',
            ]
        )
        .replace("%s", value)
        .encode()
    )


def pusher_json(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return pointed(rng)
    event = rng.choice(
        [
            "pusher:subscribe",
            "pusher:unsubscribe",
            "pusher:signin",
            "pusher:ping",
            "pusher:pong",
            "client-x",
            "client-",
            "pusher:nope",
            "seq",
        ]
    )
    data_fields = {
        key: random_json(rng)
        for key in ("channel", "auth", "channel_data", "user_data")
        if rng.random() < 0.5
    }
    if rng.random() < 0.3:
        data_fields["channel"] = json.dumps(rng.choice(CHANNELS))
    data = "{" + ",".join(f'"{k}":{v}' for k, v in data_fields.items()) + "}"
    if rng.random() < 0.2:
        data = random_json(rng)
    elif rng.random() < 0.2:
        data = json.dumps(data)  # a JSON string of the object
    parts = [f'"event":{json.dumps(event)}']
    if rng.random() < 0.8:
        parts.append(f'"data":{data}')
    if rng.random() < 0.4:
        channel = json.dumps(rng.choice(CHANNELS)) if rng.random() < 0.7 else random_json(rng)
        parts.append(f'"channel":{channel}')
    text = "{" + ",".join(parts) + "}"
    raw = text.encode()
    if rng.random() < 0.1 and raw:  # flip a byte: broken JSON or invalid UTF-8
        index = rng.randrange(len(raw))
        raw = raw[:index] + bytes((raw[index] ^ (1 << rng.randrange(8)),)) + raw[index + 1 :]
    return raw


def attack_frame(rng: random.Random) -> bytes:
    """One random client frame: mostly valid, sometimes broken (which ends the socket)."""
    roll = rng.random()
    if roll < 0.62:
        return masked(0x1, pusher_json(rng), rng)
    if roll < 0.70:  # fragmented, with a ping in between
        payload = pusher_json(rng)
        cut = rng.randrange(len(payload) + 1)
        return (
            masked(0x1, payload[:cut], rng, fin=False)
            + masked(0x9, b"p", rng)
            + masked(0x0, payload[cut:], rng)
        )
    if roll < 0.78:
        return masked(rng.choice([0x9, 0xA]), rng.randbytes(rng.randrange(126)), rng)
    if roll < 0.82:
        return masked(0x2, pusher_json(rng), rng)
    if roll < 0.85:
        return bytes((0x81, 0x05)) + b"hello"  # unmasked
    if roll < 0.87:
        return masked(0x1, b"{}", rng, rsv=rng.randrange(1, 8))
    if roll < 0.89:
        return masked(rng.choice([0x3, 0x7, 0xB, 0xF]), b"{}", rng)
    if roll < 0.91:
        return masked(0x9, rng.randbytes(126), rng)  # control frame too long
    if roll < 0.93:
        return masked(0x0, b"orphan", rng)  # continuation with nothing open
    if roll < 0.95:
        return struct.pack("!BBQ", 0x81, 0xFF, rng.randrange(200_000, 1 << 62)) + rng.randbytes(4)
    if roll < 0.97:
        return masked(0x1, rng.randbytes(rng.randrange(200)), rng)  # not UTF-8 / not JSON
    if roll < 0.98:
        return masked(0x8, struct.pack("!H", rng.choice([1000, 1001, 3000, 4999, 5000, 0])), rng)
    return rng.randbytes(rng.randrange(1, 64))


# the attacker's side of the socket ---------------------------------------------------------
@dataclass
class Tally:
    frames: int = 0
    connections: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    texts: int = 0


def read_server_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Pop complete (unmasked) server frames off ``buffer``."""
    frames = []
    while len(buffer) >= 2:
        length = buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                break
            (length,) = struct.unpack_from("!H", buffer, 2)
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                break
            (length,) = struct.unpack_from("!Q", buffer, 2)
            offset = 10
        if len(buffer) < offset + length:
            break
        frames.append((buffer[0] & 0x0F, bytes(buffer[offset : offset + length])))
        del buffer[: offset + length]
    return frames


async def drain(
    reader: asyncio.StreamReader, tally: Tally, seed: int, closed: asyncio.Event
) -> None:
    """Read the server's frames until EOF; ``closed`` is set at its close frame."""
    buffer = bytearray()
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            buffer += chunk
            for opcode, payload in read_server_frames(buffer):
                if opcode == 0x1:
                    message = json.loads(payload)
                    assert isinstance(message, dict) and isinstance(message["event"], str), seed
                    tally.texts += 1
                elif opcode == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    tally.closes[code] = tally.closes.get(code, 0) + 1
                    closed.set()


async def open_raw(running: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /app/{APP.key}?protocol=7&client=js&version=8.4.0 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{running.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, head


async def attacker(
    running: Running,
    rng: random.Random,
    budget: list[int],
    tally: Tally,
    progress: asyncio.Condition,
    seed: int,
) -> None:
    while budget[0] > 0:
        reader, writer, _ = await open_raw(running)
        tally.connections += 1
        closed = asyncio.Event()
        reading = asyncio.create_task(drain(reader, tally, seed, closed))
        # After the server's close frame a careless client sends a few more batches (the
        # server reads and drops them, see server.linger), then goes and comes back.
        after_close = rng.randrange(4)
        try:
            while budget[0] > 0 and not reading.done():
                if closed.is_set():
                    if not after_close:
                        break
                    after_close -= 1
                batch = [attack_frame(rng) for _ in range(rng.randrange(1, 6))]
                budget[0] -= len(batch)
                tally.frames += len(batch)
                data = b"".join(batch)
                cut = rng.randrange(len(data) + 1)
                writer.write(data[:cut])
                await writer.drain()
                writer.write(data[cut:])
                await writer.drain()
                async with progress:
                    progress.notify_all()
                await asyncio.sleep(0)  # a yield (not a wait): let the server read it
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            async with asyncio.timeout(TIMEOUT):
                await reading


# the bystander -----------------------------------------------------------------------------
def signed_query(path: str, body: bytes) -> dict[str, str]:
    query = {
        "auth_key": APP.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    string = f"POST\n{path}\n" + "&".join(f"{k}={query[k]}" for k in sorted(query))
    query["auth_signature"] = hmac.new(
        APP.secret.encode(), string.encode(), hashlib.sha256
    ).hexdigest()
    return query


def _due(budget: list[int], left: int) -> bool:
    return budget[0] <= left


async def publish_numbered(
    running: Running, budget: list[int], progress: asyncio.Condition
) -> None:
    path = f"/apps/{APP.id}/events"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as http:
        for number in range(EVENTS):
            # Spread the events over the attack: event n goes out once n/EVENTS of it ran.
            async with progress:
                await progress.wait_for(partial(_due, budget, FRAMES - number * FRAMES // EVENTS))
            body = json.dumps({"name": "n", "channel": "seq", "data": str(number)}).encode()
            response = await http.post(path, params=signed_query(path, body), content=body)
            assert response.status_code == 200, response.text


async def test_socket_fuzz_attackers_never_harm_a_bystander(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    seed = int(os.environ.get("PUSHERD_FUZZ_SEED", random.randrange(1 << 32)))
    budget = [FRAMES]
    tally = Tally()
    progress = asyncio.Condition()
    async with Client.open(running.url()) as bystander:
        await bystander.established()
        assert (await bystander.subscribe("seq"))[
            "event"
        ] == "pusher_internal:subscription_succeeded"
        attackers = [
            asyncio.create_task(
                attacker(running, random.Random(seed + i), budget, tally, progress, seed)
            )
            for i in range(ATTACKERS)
        ]
        publisher = asyncio.create_task(publish_numbered(running, budget, progress))
        received: list[int] = []
        async with asyncio.timeout(120):
            while len(received) < EVENTS:
                message = await bystander.recv(timeout=60)
                assert message["event"] == "n", (seed, message)
                received.append(int(message["data"]))
            await publisher
            await asyncio.gather(*attackers)
        assert received == list(range(EVENTS)), f"seed {seed}"
        await bystander.send("pusher:ping")
        assert (await bystander.recv())["event"] == "pusher:pong"
    async with Client.open(running.url()) as late:  # the server still serves
        await late.established()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, (seed, [r.getMessage() for r in errors[:5]])
    assert tally.frames >= FRAMES
    assert tally.connections > ATTACKERS  # broken frames did get attackers closed
    assert tally.texts > 0
    print(f"socket fuzz seed {seed}: {tally}")
