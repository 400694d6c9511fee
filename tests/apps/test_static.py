"""``StaticAppRegistry``: lookups by id and key, reload by ``replace``."""

from __future__ import annotations

from pusherd.apps.base import App
from pusherd.apps.static import StaticAppRegistry
from pusherd.types import AppId, AppKey

__all__: list[str] = []

ONE = App(id=AppId("1"), key=AppKey("key-1"), secret="secret-one-abc")
TWO = App(id=AppId("2"), key=AppKey("key-2"), secret="secret-two-def")


def test_static_registry_finds_by_id_and_key() -> None:
    registry = StaticAppRegistry([ONE, TWO])
    assert registry.by_id("1") is ONE
    assert registry.by_id("2") is TWO
    assert registry.by_key("key-1") is ONE
    assert registry.by_key("key-2") is TWO
    assert registry.all() == [ONE, TWO]


def test_static_registry_unknown_lookups() -> None:
    registry = StaticAppRegistry([ONE])
    assert registry.by_id("key-1") is None
    assert registry.by_key("1") is None
    assert registry.by_id("") is None
    assert registry.by_key("KEY-1") is None


def test_static_registry_accepts_a_generator() -> None:
    registry = StaticAppRegistry(app for app in (ONE, TWO))
    assert registry.all() == [ONE, TWO]


def test_static_registry_replace_swaps_apps() -> None:
    registry = StaticAppRegistry([ONE])
    registry.replace([TWO])
    assert registry.by_id("1") is None
    assert registry.by_key("key-1") is None
    assert registry.by_id("2") is TWO
    assert registry.all() == [TWO]


def test_static_registry_empty() -> None:
    registry = StaticAppRegistry([])
    assert registry.all() == []
    assert registry.by_id("1") is None


def test_static_registry_repr_has_no_secrets_or_keys() -> None:
    text = repr(StaticAppRegistry([ONE, TWO]))
    assert "secret-one-abc" not in text
    assert "secret-two-def" not in text
    assert "1" in text
