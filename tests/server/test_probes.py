"""``/up`` (alive), ``/ready`` (accepting sockets), ``/health`` (status JSON) and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pusherd.brokers.memory import MemoryBroker
from pusherd.config import ScalingConfig
from pusherd.metrics import CONTENT_TYPE
from pusherd.server.app import Parts, PusherdApp, build, create_app
from pusherd.server.node import Node
from tests.server.conftest import asgi_client, make_config, serve
from tests.server_process import free_port


class SwitchableBroker(MemoryBroker):
    """The memory broker with a reachability switch, as a network broker would have."""

    reachable = True

    @property
    def ready(self) -> bool:
        return self.reachable


def switchable() -> tuple[Parts, SwitchableBroker, PusherdApp]:
    config = make_config()
    broker = SwitchableBroker()
    parts = build(config, broker=broker)
    return parts, broker, create_app(config, parts)


@contextlib.asynccontextmanager
async def started(node: Node) -> AsyncIterator[Node]:
    await node.start()
    try:
        yield node
    finally:
        await node.stop(0.2)


async def test_up_is_200_whether_the_node_is_starting_running_or_draining() -> None:
    parts, _, app = switchable()
    async with asgi_client(app) as http:
        before = await http.get("/up")
        async with started(parts.node):
            running = await http.get("/up")
        after = await http.get("/up")
    for response in (before, running, after):
        assert response.status_code == 200
        assert response.json() == {"health": "OK"}
        assert response.headers["content-type"] == "application/json"


async def test_ready_is_503_starting_until_the_node_has_started() -> None:
    parts, _, app = switchable()
    async with asgi_client(app) as http:
        response = await http.get("/ready")
        assert response.status_code == 503
        assert response.json() == {"ready": False, "reason": "starting"}
        async with started(parts.node):
            response = await http.get("/ready")
            assert response.status_code == 200
            assert response.json() == {"ready": True}
            assert response.headers["content-type"] == "application/json"


async def test_ready_turns_503_draining_once_the_node_stops() -> None:
    parts, _, app = switchable()
    async with asgi_client(app) as http:
        async with started(parts.node):
            assert (await http.get("/ready")).status_code == 200
        response = await http.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "reason": "draining"}


async def test_ready_is_503_broker_while_the_broker_is_down_and_recovers_with_it() -> None:
    parts, broker, app = switchable()
    async with asgi_client(app) as http, started(parts.node):
        broker.reachable = False
        response = await http.get("/ready")
        assert response.status_code == 503
        assert response.json() == {"ready": False, "reason": "broker"}
        assert (await http.get("/up")).status_code == 200  # alive, just not accepting
        broker.reachable = True
        assert (await http.get("/ready")).json() == {"ready": True}


@pytest.mark.parametrize(
    ("started_", "draining", "reachable", "reason"),
    [
        (False, False, True, "starting"),
        (False, False, False, "starting"),
        (True, False, False, "broker"),
        (True, True, True, "draining"),
        (True, True, False, "draining"),
        (False, True, False, "draining"),
    ],
)
def test_readiness_names_draining_before_starting_before_broker(
    started_: bool, draining: bool, reachable: bool, reason: str
) -> None:
    parts, broker, _ = switchable()
    parts.node.readiness.started, parts.sockets.draining = started_, draining
    broker.reachable = reachable
    assert parts.node.readiness.answer() == (503, {"ready": False, "reason": reason})


def test_readiness_is_200_only_when_started_not_draining_and_the_broker_is_up() -> None:
    parts, _, _ = switchable()
    parts.node.readiness.started = True
    assert parts.node.readiness.answer() == (200, {"ready": True})


async def test_metrics_probe_serves_the_node_metrics_as_prometheus_text() -> None:
    parts, _, app = switchable()
    parts.metrics.connection_opened("12345")
    parts.metrics.rate_limited("12345", "client_events")
    async with asgi_client(app) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert values[("pusherd_connected", (("app_id", "12345"),))] == 1
    key = ("pusherd_rate_limited_total", (("app_id", "12345"), ("limit", "client_events")))
    assert values[key] == 1


async def test_probes_over_a_real_socket_report_broker_when_redis_is_unreachable() -> None:
    scaling = ScalingConfig(
        driver="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0", node_id="health-test"
    )
    async with serve(replace(make_config(), scaling=scaling)) as r:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{r.port}") as http:
            ready = await http.get("/ready")
            up = await http.get("/up")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "reason": "broker"}
    assert up.status_code == 200


async def test_health_reports_status_uptime_version_node_and_connections() -> None:
    from datetime import UTC, datetime

    from pusherd import __version__
    from tests.server.conftest import Client

    async with serve(make_config()) as r:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{r.port}") as http:
            empty = await http.get("/health")
            async with Client.open(r.url()) as client:
                await client.established()
                busy = await http.get("/health")
    assert empty.status_code == busy.status_code == 200
    body = busy.json()
    assert set(body) == {"status", "timestamp", "uptime", "version", "node_id", "connections"}
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["node_id"] == r.parts.config.scaling.node_id
    assert (empty.json()["connections"], body["connections"]) == (0, 1)
    assert body["uptime"] >= empty.json()["uptime"] > 0
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


async def test_health_is_503_with_the_reason_while_draining() -> None:
    parts, _, app = switchable()
    async with asgi_client(app) as http:
        starting = await http.get("/health")
        async with started(parts.node):
            pass
        draining = await http.get("/health")
    assert (starting.status_code, starting.json()["status"]) == (503, "starting")
    assert (draining.status_code, draining.json()["status"]) == (503, "draining")


async def test_metrics_count_errors_message_sizes_and_users_over_real_sockets(
    server_driver: str,
) -> None:
    import orjson

    from tests.server.conftest import Client, private_auth

    def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async with serve(make_config()) as r:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{r.port}") as http:
            async with Client.open(r.url()) as ann, Client.open(r.url()) as bob:
                ann_id, bob_id = await ann.established(), await bob.established()
                for socket_id, client, user in ((ann_id, ann, "ann"), (bob_id, bob, "ann")):
                    data = orjson.dumps({"user_id": user}).decode()
                    auth = private_auth(socket_id, "presence-room", data)
                    reply = await client.subscribe("presence-room", auth, data)
                    # On Redis, ann's own member_added can reach bob's freshly indexed socket
                    # just before bob's subscription_succeeded (pub/sub is asynchronous).
                    for _ in range(3):
                        if reply["event"] != "pusher_internal:member_added":
                            break
                        reply = await client.recv()
                    assert reply["event"] == "pusher_internal:subscription_succeeded"
                refused = await ann.subscribe("private-x", "app-key:bad")
                assert refused["event"] == "pusher:subscription_error"
                await ann.recv()  # the pusher:error that follows
                await asyncio.to_thread(r.sdk().trigger, "presence-room", "e", {"n": "x" * 700})
                await ann.recv()
                await bob.recv()
                during = samples((await http.get("/metrics")).text)
            after = samples((await http.get("/metrics")).text)
    if server_driver == "memory":  # redis: counted cluster-wide per heartbeat (tests/brokers)
        assert during[("pusherd_users_online", (("app_id", "12345"),))] == 1
        assert after[("pusherd_users_online", (("app_id", "12345"),))] == 0
    assert during[("pusherd_errors_total", (("code", "4009"),))] == 1
    sent = during[("pusherd_message_size_bytes_count", (("direction", "sent"),))]
    assert sent >= 2
    assert (
        during[("pusherd_message_size_bytes_bucket", (("direction", "sent"), ("le", "512.0")))] == 0
    )
    received = during[("pusherd_message_size_bytes_count", (("direction", "received"),))]
    assert received == 3
    assert during[("pusherd_message_size_bytes_count", (("direction", "rest"),))] == 1
