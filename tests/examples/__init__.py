"""Tests that run the deployment examples and the Echo example page for real."""

from __future__ import annotations

__all__: list[str] = []
