"""``/up`` (alive), ``/ready`` (accepting sockets) and ``/metrics``: the probes."""

from __future__ import annotations

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
