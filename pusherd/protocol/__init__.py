"""The sans-I/O Pusher protocol core: stdlib and orjson only, no sockets, no clock."""

from __future__ import annotations

__all__: list[str] = []
