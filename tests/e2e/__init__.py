"""End-to-end conformance tests: the real pusher-js, Laravel Echo and Python SDK clients."""

from __future__ import annotations

__all__: list[str] = []
