"""``build``/``create_app``/``uvicorn_protocols``: how config becomes a served node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from starlette.types import Message

from pusherd.apps.base import App
from pusherd.brokers.memory import MemoryBroker
from pusherd.brokers.redis import RedisBroker
from pusherd.config import MetricsConfig, ScalingConfig
from pusherd.errors import ConfigError
from pusherd.server.app import Parts, PusherdApp, build, create_app, uvicorn_protocols
from pusherd.server.front_door import Upgrade
from pusherd.types import AppId, AppKey
from tests.server.conftest import APP, TIMEOUT, asgi_client, make_config
from tests.server_process import free_port

OTHER = App(id=AppId("67890"), key=AppKey("other-key"), secret="other-secret")


@contextlib.asynccontextmanager
async def lifespan(app: PusherdApp) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol as uvicorn does: startup, then shutdown."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        await outbox.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    try:
        await inbox.put({"type": "lifespan.startup"})
        async with asyncio.timeout(TIMEOUT):
            assert (await outbox.get())["type"] == "lifespan.startup.complete"
        yield
        await inbox.put({"type": "lifespan.shutdown"})
        async with asyncio.timeout(TIMEOUT):
            assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    finally:
        async with asyncio.timeout(TIMEOUT):
            await task


async def test_build_uses_the_memory_driver_and_the_configured_apps() -> None:
    parts = build(make_config(APP, OTHER))
    assert isinstance(parts.broker, MemoryBroker)
    assert parts.apps.by_key("app-key") == APP
    assert parts.apps.by_id("67890") == OTHER
    assert parts.apps.by_key("missing") is None
    assert not parts.node.started  # nothing is started
    assert not parts.node.ready


async def test_build_makes_the_redis_broker_without_connecting() -> None:
    scaling = ScalingConfig(
        driver="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0", node_id="node-a"
    )
    node = build(replace(make_config(), scaling=scaling))
    try:
        assert isinstance(node.broker, RedisBroker)
        assert node.broker.node_id == "node-a"
        assert not node.broker.ready
    finally:
        await node.broker.close()


def test_build_rejects_an_unknown_driver() -> None:
    config = replace(make_config(), scaling=ScalingConfig(driver="carrier-pigeon"))
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        build(config)


def test_build_metrics_use_the_configured_prefix() -> None:
    node = build(replace(make_config(), metrics=MetricsConfig(prefix="reverb_")))
    node.metrics.connection_opened("12345")
    text = node.metrics.render().decode()
    assert 'reverb_connected{app_id="12345"} 1.0' in text
    assert "pusherd_" not in text


def test_create_app_wires_the_parts_into_app_state_and_the_rest_api() -> None:
    config = make_config()
    parts = build(config)
    app = create_app(config, parts)
    assert app.state.parts is parts
    assert parts.rest is not None  # the front door hands REST sockets to it
    own = create_app(config)  # without parts, it builds them from the config
    assert isinstance(own.state.parts, Parts)
    assert own.state.parts is not parts
    assert own.state.parts.rest is not None


async def test_app_routes_probes_metrics_and_the_rest_api() -> None:
    app = create_app(make_config())
    async with asgi_client(app) as http:
        assert (await http.get("/up")).json() == {"health": "OK"}
        assert (await http.get("/ready")).status_code == 503  # not started: no lifespan
        assert "pusherd_connected" in (await http.get("/metrics")).text
        # Unsigned REST calls reach the REST API, which refuses them itself.
        assert (await http.post("/apps/12345/events", content=b"{}")).status_code == 401
        assert (await http.get("/apps/12345/channels")).status_code == 401
        assert (await http.get("/nowhere")).status_code == 404


async def test_path_prefix_moves_the_rest_api_and_keeps_root_probes() -> None:
    app = create_app(make_config(path_prefix="/ws"))
    async with asgi_client(app) as http:
        for path in ("/ws/up", "/up"):
            assert (await http.get(path)).json() == {"health": "OK"}, path
        for path in ("/ws/ready", "/ready"):
            assert (await http.get(path)).json()["ready"] is False, path
        for path in ("/ws/metrics", "/metrics"):
            assert "pusherd_connected" in (await http.get(path)).text, path
        assert (await http.post("/ws/apps/12345/events", content=b"{}")).status_code == 401
        assert (await http.post("/apps/12345/events", content=b"{}")).status_code == 404


async def test_disabled_metrics_have_no_route_but_probes_stay() -> None:
    config = replace(make_config(path_prefix="/ws"), metrics=MetricsConfig(enabled=False))
    app = create_app(config)
    async with asgi_client(app) as http:
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/ws/metrics")).status_code == 404
        assert (await http.get("/up")).status_code == 200


async def test_lifespan_starts_the_node_and_shutdown_drains_it() -> None:
    config = make_config()
    parts = build(config)
    app = create_app(config, parts)
    async with asgi_client(app) as http:
        async with lifespan(app):
            assert parts.node.ready
            assert (await http.get("/ready")).json() == {"ready": True}
        assert parts.sockets.draining
        assert (await http.get("/ready")).json() == {"ready": False, "reason": "draining"}


def test_uvicorn_protocols_gives_an_http_front_door_and_a_ws_protocol_for_the_node() -> None:
    parts = build(make_config())
    protocols = uvicorn_protocols(parts)
    assert set(protocols) == {"http", "ws"}
    front_door = protocols["http"](config=None, server_state=None, app_state={})
    assert isinstance(front_door, asyncio.Protocol)
    connection = protocols["ws"](config=None, server_state=None, app_state={})
    assert isinstance(connection, Upgrade)
    assert connection._upgrades is parts.door.upgrades
