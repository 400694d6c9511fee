"""Session-wide fixtures: the Redis topologies (``tests/redis_topology.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_topology import Topologies, topologies

__all__: list[str] = []


@pytest.fixture(scope="session")
def redis_topologies() -> Iterator[Topologies]:
    """Single, TLS, Sentinel and Cluster deployments, each started on first use."""
    yield from topologies()
