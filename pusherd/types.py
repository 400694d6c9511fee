"""Identifier types and JSON aliases shared by every layer."""

from __future__ import annotations

from typing import Any, NewType, TypeAlias

__all__ = ["JSON", "AppId", "AppKey", "ChannelName", "JSONDict", "SocketId", "UserId"]

AppId = NewType("AppId", str)
AppKey = NewType("AppKey", str)
SocketId = NewType("SocketId", str)
ChannelName = NewType("ChannelName", str)
UserId = NewType("UserId", str)

JSON: TypeAlias = Any
JSONDict: TypeAlias = dict[str, Any]
