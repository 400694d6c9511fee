"""The thin I/O layer: Starlette app, WebSocket connections, hub and REST API."""

from __future__ import annotations

__all__: list[str] = []
