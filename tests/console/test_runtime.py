"""``ConsoleRuntime.build``: nothing for a plain memory node, stats alone for Redis."""

from __future__ import annotations

from dataclasses import replace

from pusherd.brokers.bulletin import MemoryBulletin, RedisBulletin
from pusherd.config import Config, ConsoleConfig, ScalingConfig
from pusherd.console.runtime import ConsoleRuntime
from pusherd.lifecycle import Lifecycle
from pusherd.metrics import Metrics
from pusherd.server.app import build

ON = ConsoleConfig(enabled=True, password="twelve-chars")


def _build(config: Config) -> ConsoleRuntime | None:
    parts = build(config)
    shared = ConsoleRuntime.shared(config, Metrics(), parts.apps)
    if shared is None:
        return None
    return ConsoleRuntime.build(
        config,
        shared,
        lifecycle=Lifecycle(),
        apps=parts.apps,
        broker=parts.broker,
        rest=node_rest_unused,
    )


async def node_rest_unused(
    method: str, path: str, query: bytes, body: bytes | None
) -> tuple[int, bytes, bytes]:
    raise AssertionError("not called while building")


def test_runtime_is_not_built_for_a_memory_node_without_console() -> None:
    assert _build(Config()) is None


def test_runtime_for_redis_without_console_keeps_only_the_cluster_stats() -> None:
    runtime = _build(replace(Config(), scaling=ScalingConfig(driver="redis", node_id="n")))
    assert runtime is not None
    assert runtime.console is None and runtime.routes() == []
    assert isinstance(runtime.bulletin, RedisBulletin)


def test_runtime_routes_follow_the_listen_setting() -> None:
    main = _build(replace(Config(), console=ON))
    assert main is not None and isinstance(main.bulletin, MemoryBulletin)
    paths = {getattr(route, "path", "") for route in main.routes()}
    assert {"/console/", "/console/login", "/console/api/apps/{app_id}/stream"} <= paths
    hidden = _build(replace(Config(), console=replace(ON, listen="metrics")))
    assert hidden is not None and hidden.console is not None and hidden.routes() == []
