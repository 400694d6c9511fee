"""Smoke test of ``bench.history_memory``: it runs and its accounting matches the store."""

from __future__ import annotations

import asyncio

from bench.history_memory import _fill
from pusherd.protocol.history import ENTRY_OVERHEAD, RING_OVERHEAD

__all__: list[str] = []


def test_history_memory_fill_keeps_everything_within_a_large_budget() -> None:
    result = asyncio.run(_fill(channels=20, events=5, size=100, budget=1 << 30))

    assert result["events_kept"] == 100
    expected = 100 * (100 + ENTRY_OVERHEAD) + 20 * RING_OVERHEAD
    assert result["accounted_mib"] * 1024 * 1024 == expected


def test_history_memory_fill_evicts_down_to_a_small_budget() -> None:
    budget = 10 * (100 + ENTRY_OVERHEAD) + 10 * RING_OVERHEAD
    result = asyncio.run(_fill(channels=20, events=5, size=100, budget=budget))

    assert result["events_kept"] < 100
    assert result["accounted_mib"] * 1024 * 1024 <= budget
