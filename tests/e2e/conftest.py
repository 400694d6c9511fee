"""Fixtures for the conformance suite: a pusherd server, Node clients and the Python SDK.

* ``target``: one ``pusherd serve`` for the session (three apps: the default app, an app with
  ``subscription_count`` and a disabled app). ``E2E_SERVER=host:port`` points the suite at an
  already running server instead (used to sanity-check the drivers against a peer server).
* ``launch``: starts ``node tests/js/driver.js`` with a spec and returns a ``NodeClient``, whose
  ``expect()`` awaits one JSON line matching a predicate, with a timeout.
* ``sdk``: the official ``pusher`` Python SDK configured for the default app.
* ``auth_endpoint``: a real HTTP auth backend on 127.0.0.1 (``/broadcasting/auth`` and
  ``/broadcasting/user-auth``) that signs with the Python SDK's ``authenticate`` helpers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pusher
import pytest

from tests.redis_server import RedisServer, running_redis
from tests.redis_topology import KINDS, SingleTopology, Topology
from tests.server_process import ServerProcess

__all__ = [
    "APP",
    "COUNT_APP",
    "DISABLED_APP",
    "HISTORY_RULES",
    "MASTER_KEY_B64",
    "AuthEndpoint",
    "NodeClient",
    "Target",
]

JS_DIR = Path(__file__).resolve().parent.parent / "js"
DRIVER = JS_DIR / "driver.js"

APP = {"id": "12345", "key": "app-key", "secret": "app-secret"}
COUNT_APP = {"id": "23456", "key": "count-key", "secret": "count-secret"}
DISABLED_APP = {"id": "34567", "key": "off-key", "secret": "off-secret"}
MASTER_KEY_B64 = base64.b64encode(secrets.token_bytes(32)).decode()

# Channel history for the default app (tests/e2e/test_history.py); first match wins.
HISTORY_RULES: list[dict[str, Any]] = [
    {"channel_prefix": "history-short-", "max_events": 3, "max_age": 2.0},
    {"channel_prefix": "history-", "max_events": 1000, "max_age": 600.0},
    {"channel_prefix": "presence-history-", "max_events": 50},
]

SERVER_CONFIG: dict[str, Any] = {
    "server": {"activity_timeout": 120},
    "apps": [
        {**APP, "enable_client_messages": True, "history": HISTORY_RULES},
        {**COUNT_APP, "subscription_count": True, "enable_client_messages": True},
        {**DISABLED_APP, "enabled": False},
    ],
}

DEFAULT_TIMEOUT = 5.0

Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class Target:
    """Where the server under test listens."""

    host: str
    port: int
    server: ServerProcess | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def describe(self) -> str:
        if self.server is None:
            return f"(external server {self.host}:{self.port}, no log)"
        return self.server.describe("server under test")


def _matches(event: dict[str, Any], pred: Predicate | None, fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        if event.get(key) != value:
            return False
    if pred is None:
        return True
    try:
        return bool(pred(event))
    except (KeyError, TypeError, AttributeError, IndexError):
        return False


def _short(event: dict[str, Any]) -> str:
    shown = {k: v for k, v in event.items() if k != "raw"}
    text = json.dumps(shown, ensure_ascii=False)
    return text if len(text) <= 400 else text[:400] + "..."


class NodeClient:
    """One driver process: commands go to its stdin, observations come from its stdout.

    ``expect()`` returns the first *unclaimed* line that matches and claims it, so an event
    that arrived before the call is found too, and two ``expect()`` calls never return the
    same line.
    """

    def __init__(self, name: str, proc: asyncio.subprocess.Process, target: Target) -> None:
        self.name = name
        self.proc = proc
        self.target = target
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._claimed: set[int] = set()
        self._changed = asyncio.Event()
        self._eof = False
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                event = {"t": "unparsed", "line": line.decode(errors="replace")}
            self.events.append(event)
            self._changed.set()
        self._eof = True
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                break
            self.stderr.append(line.decode(errors="replace").rstrip())

    # -- observing ---------------------------------------------------------------------------

    def seen(self, pred: Predicate | None = None, /, **fields: Any) -> list[dict[str, Any]]:
        """Every line so far (claimed or not) that matches."""
        return [e for e in self.events if _matches(e, pred, fields)]

    async def expect(
        self, pred: Predicate | None = None, /, *, timeout: float = DEFAULT_TIMEOUT, **fields: Any
    ) -> dict[str, Any]:
        """Await the first unclaimed line whose fields equal ``fields`` and satisfies ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, event in enumerate(self.events):
                if index not in self._claimed and _matches(event, pred, fields):
                    self._claimed.add(index)
                    return event
            remaining = deadline - loop.time()
            if self._eof or remaining <= 0:
                why = "the driver exited" if self._eof else f"nothing within {timeout}s"
                raise AssertionError(self.describe(f"{self.name}: expected {fields or ''}: {why}"))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def line(
        self, t: str, start: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> tuple[int, dict[str, Any]]:
        """Await the first line of type ``t`` at index ``start`` or later; return both.

        Unlike ``expect`` it looks at each line once, for drivers printing thousands.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = start
        while True:
            while index < len(self.events):
                event = self.events[index]
                if event.get("t") == t:
                    return index, event
                index += 1
            remaining = deadline - loop.time()
            if self._eof or remaining <= 0:
                why = "the driver exited" if self._eof else f"nothing within {timeout}s"
                raise AssertionError(self.describe(f"{self.name}: expected a {t} line: {why}"))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def event(
        self, channel: str, event: str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Await pusher-js emitting ``event`` on ``channel``."""
        return await self.expect(t="event", channel=channel, event=event, timeout=timeout)

    async def recv(
        self, event: str, channel: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Await a frame from the server (as sent on the wire) and return its parsed JSON."""

        def pred(line: dict[str, Any]) -> bool:
            msg = line["msg"]
            return bool(
                msg["event"] == event and (channel is None or msg.get("channel") == channel)
            )

        line = await self.expect(pred, t="ws_recv", timeout=timeout)
        return dict(line["msg"])

    def received(self, event: str, channel: str | None = None) -> list[dict[str, Any]]:
        """Every frame with this event name (and channel) received so far."""
        return [
            line["msg"]
            for line in self.seen(t="ws_recv")
            if isinstance(line.get("msg"), dict)
            and line["msg"].get("event") == event
            and (channel is None or line["msg"].get("channel") == channel)
        ]

    async def connected(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Await the ``connected`` state and return the socket id."""
        line = await self.expect(t="connected", timeout=timeout)
        return str(line["socket_id"])

    async def subscribed(self, channel: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return await self.event(channel, "pusher:subscription_succeeded", timeout)

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Await the WebSocket close as the client saw it (``code``, ``reason``)."""
        return await self.expect(t="ws_close", timeout=timeout)

    def describe(self, headline: str, last: int = 60) -> str:
        lines = [headline, f"  {self.name} observed ({len(self.events)} lines, last {last}):"]
        lines += ["    " + _short(e) for e in self.events[-last:]]
        if self.stderr:
            lines.append("  driver stderr:")
            lines += ["    " + line[:300] for line in self.stderr[-20:]]
        lines.append("  " + self.target.describe().replace("\n", "\n  "))
        return "\n".join(lines)

    # -- commanding --------------------------------------------------------------------------

    async def send(self, cmd: str, *, check: bool = True, **fields: Any) -> Any:
        """Send a command and return its result value (raise if it failed and ``check``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.proc.stdin.drain()
        result = await self.expect(t="result", cmd=cmd)
        if check and not result["ok"]:
            raise AssertionError(self.describe(f"{self.name}: command {cmd} failed: {result}"))
        return result if not check else result.get("value")

    async def subscribe(self, channel: str, *, bad: bool = False) -> None:
        await self.send("subscribe", channel=channel, bad=bad)

    async def close(self) -> None:
        """Ask the driver to disconnect and exit; kill it if it does not within 5 s."""
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError, AssertionError, RuntimeError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd":"exit"}\n')
                await self.proc.stdin.drain()
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def kill(self) -> None:
        """SIGKILL the driver: the server sees the TCP connection drop without a close frame."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- auth backend ------------------------------------------------------------------------------


class AuthEndpoint:
    """A Laravel-like auth backend on 127.0.0.1 signing with the Python SDK helpers.

    ``url(user_id)`` returns the channel auth URL for a user registered with ``add_user``;
    ``user_url(user_id)`` the user authentication (signin) URL. Every request is recorded.
    """

    def __init__(self, client: pusher.Pusher) -> None:
        self.client = client
        self.users: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                endpoint.requests.append({"path": self.path, "form": form})
                status, body = endpoint.answer(urlsplit(self.path).path, form, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add_user(self, user_id: str, user_info: dict[str, Any] | None = None, **extra: Any) -> None:
        self.users[user_id] = {
            "id": user_id,
            **({"user_info": user_info} if user_info else {}),
            **extra,
        }

    def url(self, user_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/broadcasting/auth?{urlencode({'user': user_id})}"

    def user_url(self, user_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/broadcasting/user-auth?{urlencode({'user': user_id})}"

    def answer(
        self, path: str, form: dict[str, str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        user = self.users.get(query.get("user", ""))
        if user is None:
            return 403, {"message": "unknown user"}
        socket_id = form.get("socket_id", "")
        if path == "/broadcasting/user-auth":
            return 200, self.client.authenticate_user(socket_id, user)
        channel = form.get("channel_name", "")
        custom = None
        if channel.startswith("presence-"):
            custom = {"user_id": user["id"]}
            if "user_info" in user:
                custom["user_info"] = user["user_info"]
        body = dict(self.client.authenticate(channel, socket_id, custom))
        if isinstance(body.get("shared_secret"), bytes):
            body["shared_secret"] = body["shared_secret"].decode()
        return 200, body

    def start(self) -> AuthEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """One server per broker: the suite runs on the memory and the redis driver."""
    external = os.environ.get("E2E_SERVER")
    if external:
        if request.param != "memory":
            pytest.skip("E2E_SERVER points the suite at one server")
        host, _, port = external.rpartition(":")
        yield Target(host or "127.0.0.1", int(port))
        return
    with contextlib.ExitStack() as stack:
        config = SERVER_CONFIG
        if request.param == "redis":
            redis = stack.enter_context(contextlib.contextmanager(running_redis)())
            config = {**config, "scaling": {"driver": "redis", "redis_url": redis.url}}
        server = ServerProcess(config)
        stack.callback(server.cleanup)
        server.start()
        yield Target(server.host, server.port, server)


def make_sdk(target: Target, app: dict[str, str] = APP) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=app["id"],
        key=app["key"],
        secret=app["secret"],
        host=target.host,
        port=target.port,
        ssl=False,
        encryption_master_key_base64=MASTER_KEY_B64,
    )


def close_sdk(client: pusher.Pusher) -> None:
    for part in (client._pusher_client, client._authentication_client):
        session = getattr(getattr(part, "http", None), "session", None)
        if session is not None:
            session.close()


@pytest.fixture
def sdk(target: Target) -> Iterator[pusher.Pusher]:
    client = make_sdk(target)
    yield client
    close_sdk(client)


@pytest.fixture
def count_sdk(target: Target) -> Iterator[pusher.Pusher]:
    client = make_sdk(target, COUNT_APP)
    yield client
    close_sdk(client)


@pytest.fixture
def auth_endpoint(sdk: pusher.Pusher) -> Iterator[AuthEndpoint]:
    endpoint = AuthEndpoint(sdk).start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def uid() -> str:
    """A short unique suffix for channel names, so tests sharing a server never collide."""
    return uuid.uuid4().hex[:10]


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (JS_DIR / "node_modules" / "pusher-js").is_dir():
        pytest.skip("tests/js/node_modules is missing (run `make js-deps`)")
    return node


Launch = Callable[..., Awaitable[NodeClient]]


@pytest.fixture
async def launch(target: Target) -> AsyncIterator[Launch]:
    """Start a driver: ``await launch(user={"id": "1"})``; all are closed at teardown."""
    node = _node_or_skip()
    clients: list[NodeClient] = []

    async def start(
        name: str | None = None, *, app: dict[str, str] = APP, **spec: Any
    ) -> NodeClient:
        full = {
            "host": target.host,
            "port": target.port,
            "key": app["key"],
            "secret": app["secret"],
            "master_key_base64": MASTER_KEY_B64,
            **spec,
        }
        proc = await asyncio.create_subprocess_exec(
            node,
            str(DRIVER),
            json.dumps(full),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        client = NodeClient(name or f"client{len(clients) + 1}", proc, target)
        clients.append(client)
        await client.expect(t="ready", timeout=15)
        return client

    yield start
    await asyncio.gather(*(c.close() for c in clients))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server per cluster test module (skipped where none is installed)."""
    yield from running_redis()


@pytest.fixture(
    scope="module",
    params=[
        "single",
        *(pytest.param(kind, marks=pytest.mark.topology) for kind in KINDS if kind != "single"),
    ],
)
def deployment(request: pytest.FixtureRequest) -> Topology:
    """The Redis the module's nodes use: its own server (``single``), or the session's
    TLS, Sentinel or Cluster deployment, emptied first."""
    if request.param == "single":
        return SingleTopology(request.getfixturevalue("redis_server"))
    topology: Topology = request.getfixturevalue("redis_topologies").get(request.param)
    heal = getattr(topology, "heal", None)
    if heal is not None:
        heal()
    topology.flushall()
    return topology
