"""An app registry built from the ``[[apps]]`` tables of the config file."""

from __future__ import annotations

from collections.abc import Iterable

from pusherd.apps.base import App

__all__ = ["StaticAppRegistry"]


class StaticAppRegistry:
    """Apps held in memory, indexed by id and by key; ``replace`` swaps them on reload."""

    def __init__(self, apps: Iterable[App]) -> None:
        self._by_id: dict[str, App] = {}
        self._by_key: dict[str, App] = {}
        self.replace(apps)

    def replace(self, apps: Iterable[App]) -> None:
        """Swap in a new set of apps (SIGHUP reload) without touching sockets."""
        apps = list(apps)
        self._by_id = {app.id: app for app in apps}
        self._by_key = {app.key: app for app in apps}

    def by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    def by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    def all(self) -> list[App]:
        return list(self._by_id.values())

    def __repr__(self) -> str:
        return f"StaticAppRegistry(ids={sorted(self._by_id)!r})"
