"""Brokers by name, imported only when chosen (so ``redis`` stays optional at runtime)."""

from __future__ import annotations

import importlib
from typing import Any, cast

from pusherd.brokers.base import Broker, Envelope, EnvelopeKind
from pusherd.errors import ConfigError

__all__ = ["BROKERS", "Broker", "Envelope", "EnvelopeKind", "create_broker"]

BROKERS = {
    "memory": "pusherd.brokers.memory:MemoryBroker",
    "redis": "pusherd.brokers.redis:RedisBroker",
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
