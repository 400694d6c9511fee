"""Brokers by name, imported only when chosen (so ``redis`` stays optional at runtime)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

from pusherd.brokers.base import Broker, Envelope, EnvelopeKind
from pusherd.errors import ConfigError

if TYPE_CHECKING:
    from pusherd.config import ScalingConfig
    from pusherd.metrics import Metrics

__all__ = ["BROKERS", "Broker", "Envelope", "EnvelopeKind", "broker_for", "create_broker"]

BROKERS = {
    "memory": "pusherd.brokers.memory:MemoryBroker",
    "redis": "pusherd.brokers.redis:RedisBroker",
    "redis-sentinel": "pusherd.brokers.redis:RedisBroker",
    "redis-cluster": "pusherd.brokers.redis:RedisBroker",
}


def create_broker(driver: str, **options: Any) -> Broker:
    """Import and build the broker named ``driver`` with keyword ``options``.

    Raises:
        ConfigError: the driver name is unknown.
    """
    try:
        target = BROKERS[driver]
    except KeyError:
        raise ConfigError(f"unknown scaling driver {driver!r}") from None
    module_name, attr = target.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return cast(Broker, factory(**options))


def broker_for(scaling: ScalingConfig, metrics: Metrics | None = None) -> Broker:
    """Build the broker ``[scaling]`` describes (nothing is connected yet)."""
    if scaling.driver == "memory":
        return create_broker("memory", metrics=metrics)
    from pusherd.brokers.redis_connect import RedisTarget

    target = RedisTarget.of(scaling)
    return create_broker(
        scaling.driver,
        node_id=scaling.node_id,
        heartbeat_interval=scaling.heartbeat_interval,
        node_timeout=scaling.node_timeout,
        metrics=metrics,
        prefix=scaling.prefix,
        target=target,
    )
