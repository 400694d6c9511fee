"""An in-process pusherd (uvicorn on 127.0.0.1:0) and a raw WebSocket test client.

In-process so tests can reach the node (its clock, sweep and counters) while clients
talk to it over real loopback sockets.

Every test that runs a server (through ``running`` or ``serve``) runs once per broker:
the memory driver and the redis driver against a real ``redis-server``, emptied before
each test, so the Redis-only branches (tasks per action, the inbox, paused reading,
node-level subscriptions) are exercised by the same assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pusher
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pusherd.apps.base import App
from pusherd.config import Config, ScalingConfig, ServerConfig, WebhookSettings
from pusherd.server.app import Parts, build, create_app, uvicorn_protocols
from pusherd.types import AppId, AppKey
from tests.redis_server import RedisServer, running_redis

TIMEOUT = 5.0
APP = App(id=AppId("12345"), key=AppKey("app-key"), secret="app-secret")


# The broker the current test's servers use; set by the ``server_driver`` fixture.
_broker: dict[str, str] = {"driver": "memory", "url": ""}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that starts a server once per broker (see the module docstring)."""
    if "running" in metafunc.fixturenames or "serve(" in inspect.getsource(metafunc.function):
        if "server_driver" not in metafunc.fixturenames:
            metafunc.fixturenames.append("server_driver")
        metafunc.parametrize(
            "server_driver",
            ["memory", pytest.param("redis", marks=pytest.mark.redis)],
            indirect=True,
        )


@pytest.fixture(scope="session")
def server_redis() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture
def server_driver(request: pytest.FixtureRequest) -> Iterator[str]:
    driver: str = getattr(request, "param", "memory")
    if driver == "redis":
        redis: RedisServer = request.getfixturevalue("server_redis")
        redis.start()  # a no-op unless a test left it stopped
        redis.flushall()
        _broker.update(driver="redis", url=redis.url)
    try:
        yield driver
    finally:
        _broker.update(driver="memory", url="")


def make_config(*apps: App, **server: Any) -> Config:
    webhooks = server.pop("webhooks", WebhookSettings())
    scaling = ScalingConfig()
    if _broker["driver"] == "redis":
        scaling = replace(scaling, driver="redis", redis_url=_broker["url"])
    return Config(
        server=replace(ServerConfig(), host="127.0.0.1", port=0, **server),
        scaling=scaling,
        apps=apps or (APP,),
        webhooks=webhooks,
    )


@dataclass
class Running:
    parts: Parts
    port: int

    def url(self, key: str = "app-key", query: str = "?protocol=7&client=js&version=8.4.0") -> str:
        return f"ws://127.0.0.1:{self.port}/app/{key}{query}"

    def sdk(self, app: App = APP) -> pusher.Pusher:
        return pusher.Pusher(
            app_id=app.id,
            key=app.key,
            secret=app.secret,
            host="127.0.0.1",
            port=self.port,
            ssl=False,
        )


@contextlib.asynccontextmanager
async def asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Talk to the ASGI app in process (httpx runs no lifespan: start the node yourself)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pusherd.test") as http:
        yield http


@contextlib.asynccontextmanager
async def serve(config: Config) -> AsyncIterator[Running]:
    """Run pusherd in this event loop until the block exits."""
    parts = build(config)
    app = create_app(config, parts)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            **uvicorn_protocols(parts),
            lifespan="on",
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(TIMEOUT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(parts, port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT * 2):
            await task


@pytest.fixture
async def running(server_driver: str) -> AsyncIterator[Running]:
    async with serve(make_config()) as r:
        yield r


class Client:
    """A raw Pusher client over the ``websockets`` library, strict about order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.socket_id = ""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, **kwargs: Any) -> AsyncIterator[Client]:
        async with connect(url, open_timeout=TIMEOUT, **kwargs) as ws:
            client = cls(ws)
            yield client

    async def established(self) -> str:
        message = await self.recv()
        assert message["event"] == "pusher:connection_established", message
        self.socket_id = json.loads(message["data"])["socket_id"]
        return self.socket_id

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            raw = await self.ws.recv()
        message: dict[str, Any] = json.loads(raw)
        return message

    async def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        message: dict[str, Any] = {"event": event, "data": {} if data is None else data}
        if channel is not None:
            message["channel"] = channel
        await self.ws.send(json.dumps(message))

    async def subscribe(
        self,
        channel: str,
        auth: str = "",
        channel_data: str | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel, "auth": auth}
        if channel_data is not None:
            data["channel_data"] = channel_data
        await self.send("pusher:subscribe", data)
        return await self.recv()

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Wait for the server to close; return (code, reason)."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.ws.recv()
        assert self.ws.close_code is not None
        return self.ws.close_code, self.ws.close_reason or ""

    async def nothing(self, wait: float = 0.2) -> None:
        """Assert no message arrives within ``wait`` seconds (a bounded negative check)."""
        with contextlib.suppress(TimeoutError):
            message = await self.recv(timeout=wait)
            raise AssertionError(f"unexpected message {message}")


def private_auth(
    socket_id: str, channel: str, channel_data: str | None = None, app: App = APP
) -> str:
    string = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    sig = hmac.new(app.secret.encode(), string.encode(), hashlib.sha256).hexdigest()
    return f"{app.key}:{sig}"


def user_auth(socket_id: str, user_data: str, app: App = APP) -> str:
    string = f"{socket_id}::user::{user_data}"
    return (
        app.key + ":" + hmac.new(app.secret.encode(), string.encode(), hashlib.sha256).hexdigest()
    )
