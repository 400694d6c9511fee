"""Identifier types and the JSON alias shared by every layer."""

from __future__ import annotations

from typing import Any, NewType, TypeAlias

__all__ = ["JSON", "AppId", "AppKey"]

AppId = NewType("AppId", str)
AppKey = NewType("AppKey", str)

JSON: TypeAlias = Any
