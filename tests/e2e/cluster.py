"""Helpers for the cluster suites: ``pusherd serve`` nodes on one redis-server, clients.

* ``node_config`` / ``start_nodes``: several ``ServerProcess`` with ``driver = "redis"``,
  started in parallel (each start waits for ``/up`` in its own thread).
* ``Client``: a raw Pusher protocol client (``websockets``) whose ``expect`` awaits the
  next unclaimed frame with an event and channel, and ``nothing`` makes a bounded
  negative check.
* ``sdk``: the official ``pusher`` SDK pointed at one node (close it with ``close_sdk``).
* ``launch_js``: a pusher-js client (``tests/js/driver.js``) connected to one node.
* ``http_get``: a plain GET (``/ready``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import shutil
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pusher
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pusherd.protocol.channels import SERVER_TO_USER_PREFIX
from tests.e2e.conftest import DRIVER, JS_DIR, NodeClient, Target, close_sdk, make_sdk
from tests.redis_topology import Topology
from tests.server.conftest import private_auth, user_auth
from tests.server_process import ServerProcess, ServerStartError

__all__ = [
    "APP",
    "INTERVAL",
    "TIMEOUT",
    "WAIT",
    "Client",
    "close_sdk",
    "deployment_config",
    "http_get",
    "launch_js",
    "node_config",
    "private_auth",
    "rest",
    "sdk",
    "start_nodes",
    "stop_nodes",
    "user_auth",
]

APP = {"id": "12345", "key": "app-key", "secret": "app-secret"}
INTERVAL = 0.5  # heartbeat_interval
TIMEOUT = 2.0  # node_timeout
WAIT = 5.0  # every wait for something that must happen gives up after this


def node_config(
    redis_url: str, node_id: str, apps: list[dict[str, Any]], **scaling: Any
) -> dict[str, Any]:
    """A node's config; ``scaling`` adds or replaces ``[scaling]`` keys (prefix, driver…)."""
    return {
        "scaling": {
            "driver": "redis",
            "redis_url": redis_url,
            "node_id": node_id,
            "heartbeat_interval": INTERVAL,
            "node_timeout": TIMEOUT,
            **scaling,
        },
        "webhooks": {"delay": 0, "batch_window_ms": 10},
        "server": {"shutdown_grace": 2.0},
        "apps": apps,
    }


def deployment_config(
    deployment: Topology, node_id: str, apps: list[dict[str, Any]], **scaling: Any
) -> dict[str, Any]:
    """``node_config`` for a node on ``deployment`` (its driver, URL, TLS, sentinels)."""
    settings = {**deployment.scaling(), **scaling}
    return node_config(settings.pop("redis_url"), node_id, apps, **settings)


def start_nodes(configs: Iterable[dict[str, Any]]) -> list[ServerProcess]:
    """Start one ``pusherd serve`` per config, in parallel; all up or none left running."""
    configs = list(configs)
    nodes = [ServerProcess(config) for config in configs]
    errors: list[BaseException] = []

    def start(index: int) -> None:
        for attempt in range(2):
            try:
                nodes[index].start()
                return
            except ServerStartError as exc:
                # the free port picked a moment ago was taken meanwhile: pick another once
                if attempt or "already in use" not in str(exc):
                    errors.append(exc)
                    return
                nodes[index].cleanup()
                nodes[index] = ServerProcess(configs[index])
            except BaseException as exc:  # reported below, after every thread ended
                errors.append(exc)
                return

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(nodes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        stop_nodes(nodes)
        raise errors[0]
    return nodes


def stop_nodes(nodes: Iterable[ServerProcess]) -> None:
    for node in nodes:
        node.cleanup()


def sdk(node: ServerProcess, app: dict[str, str] = APP) -> pusher.Pusher:
    return make_sdk(Target(node.host, node.port, node), app)


@contextlib.contextmanager
def rest(node: ServerProcess, app: dict[str, str] = APP) -> Iterator[pusher.Pusher]:
    client = sdk(node, app)
    try:
        yield client
    finally:
        close_sdk(client)


def http_get(node: ServerProcess, path: str) -> int:
    conn = http.client.HTTPConnection(node.host, node.port, timeout=WAIT)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


class Client:
    """A raw Pusher protocol client: frames kept in arrival order, claimed by ``expect``."""

    def __init__(self, ws: ClientConnection, socket_id: str, key: str) -> None:
        self.ws = ws
        self.socket_id = socket_id
        self.key = key
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, node: ServerProcess, app: dict[str, str] = APP) -> Client:
        ws = await connect(
            f"{node.ws_url}/app/{app['key']}?protocol=7&client=py&version=1", open_timeout=WAIT
        )
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        except BaseException:
            await ws.close()
            raise
        if first["event"] != "pusher:connection_established":
            await ws.close()
            raise AssertionError(first)
        return cls(ws, json.loads(first["data"])["socket_id"], app["key"])

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, event: str, data: Any, channel: str | None = None) -> None:
        message: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            message["channel"] = channel
        await self.ws.send(json.dumps(message))

    def _claim(self, event: str, channel: str | None) -> dict[str, Any] | None:
        for frame in self.frames:
            if frame["event"] == event and frame.get("channel") == channel:
                self.frames.remove(frame)
                return frame
        return None

    async def expect(
        self, event: str, channel: str | None = None, timeout: float = WAIT
    ) -> dict[str, Any]:
        """Return (and claim) the first unclaimed frame with this event and channel."""
        try:
            async with asyncio.timeout(timeout):
                while (frame := self._claim(event, channel)) is None:
                    self.frames.append(json.loads(await self.ws.recv()))
        except TimeoutError:
            raise AssertionError(
                f"{event} on {channel} not received within {timeout} s; got {self.frames}"
            ) from None
        return frame

    async def nothing(self, event: str, channel: str | None = None, wait: float = 0.3) -> None:
        """Assert no frame with this event and channel arrives within ``wait`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while True:
                    self.frames.append(json.loads(await self.ws.recv()))
        assert self._claim(event, channel) is None, f"unexpected {event} on {channel}"

    async def closed(self, timeout: float = WAIT) -> int:
        """Wait for the server to close the socket; return the close code."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    self.frames.append(json.loads(await self.ws.recv()))
        assert self.ws.close_code is not None
        return self.ws.close_code

    async def subscribe(
        self, channel: str, channel_data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Subscribe (signing private and presence channels); return the succeeded data."""
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            encoded = json.dumps(channel_data) if channel_data is not None else None
            data["auth"] = private_auth(self.socket_id, channel, encoded)
            if encoded is not None:
                data["channel_data"] = encoded
        await self.send("pusher:subscribe", data)
        frame = await self.expect("pusher_internal:subscription_succeeded", channel)
        loaded: dict[str, Any] = json.loads(frame["data"])
        return loaded

    async def sign_in(self, user: dict[str, Any]) -> None:
        user_data = json.dumps(user)
        auth = user_auth(self.socket_id, user_data)
        await self.send("pusher:signin", {"auth": auth, "user_data": user_data})
        await self.expect("pusher:signin_success")
        # like pusher-js: signin_success goes out before the node has subscribed to the
        # user's channels in Redis; the reply to this subscribe comes after it has (the
        # socket's actions run in order), so a terminate or send_to_user issued on
        # another node from now on reaches this socket
        await self.subscribe(SERVER_TO_USER_PREFIX + str(user["id"]))


async def launch_js(node: ServerProcess, name: str, **spec: Any) -> NodeClient:
    """Start a pusher-js driver connected to ``node`` (skip if node is missing)."""
    binary = shutil.which("node")
    if binary is None or not (JS_DIR / "node_modules" / "pusher-js").is_dir():
        pytest.skip("node or tests/js/node_modules is missing")
    full = {"host": node.host, "port": node.port, "key": APP["key"], "secret": APP["secret"]}
    proc = await asyncio.create_subprocess_exec(
        binary,
        str(DRIVER),
        json.dumps({**full, **spec}),
        cwd=JS_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    client = NodeClient(name, proc, Target(node.host, node.port, node))
    await client.expect(t="ready", timeout=15)
    return client
