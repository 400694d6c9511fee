"""Suite-wide setup: the hypothesis profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says) and
the Redis topologies (``tests/redis_topology.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import fuzz_profiles
from tests.redis_topology import Topologies, topologies

__all__: list[str] = []

fuzz_profiles.load()


@pytest.fixture(scope="session")
def redis_topologies() -> Iterator[Topologies]:
    """Single, TLS, Sentinel and Cluster deployments, each started on first use."""
    yield from topologies()
