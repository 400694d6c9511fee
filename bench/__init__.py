"""Benchmark harness: pusherd against soketi, side by side (``python -m bench.compare``).

Not part of the installed package and not run by ``make test`` (one smoke test excepted).
"""

from __future__ import annotations

__all__: list[str] = []
