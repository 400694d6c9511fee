"""The ``allowed_origins`` check: ``*``, exact origins, bare hosts and ``*.`` wildcards."""

from __future__ import annotations

import pytest

from pusherd.protocol.origins import origin_allowed

__all__: list[str] = []


@pytest.mark.parametrize("origin", [None, "", "https://anything.test", "null", "file://"])
def test_origin_allowed_star_allows_everything(origin: str | None) -> None:
    assert origin_allowed(origin, ("*",))
    assert origin_allowed(origin, ("https://a.example.com", "*"))


@pytest.mark.parametrize("origin", [None, ""])
def test_origin_allowed_missing_origin_only_with_star(origin: str | None) -> None:
    assert not origin_allowed(origin, ("https://app.example.com",))
    assert not origin_allowed(origin, ("app.example.com",))
    assert not origin_allowed(origin, ("*.example.com",))
    assert not origin_allowed(origin, ())


def test_origin_allowed_exact_origin() -> None:
    allowed = ("https://app.example.com",)
    assert origin_allowed("https://app.example.com", allowed)
    assert origin_allowed("HTTPS://App.Example.com", allowed)
    assert not origin_allowed("http://app.example.com", allowed)
    assert not origin_allowed("https://evil.example.com", allowed)
    assert not origin_allowed("https://app.example.com.evil.test", allowed)
    assert not origin_allowed("https://xapp.example.com", allowed)


def test_origin_allowed_exact_origin_trailing_slash_in_entry() -> None:
    assert origin_allowed("https://app.example.com", ("https://app.example.com/",))


def test_origin_allowed_exact_origin_with_port() -> None:
    allowed = ("http://localhost:3000",)
    assert origin_allowed("http://localhost:3000", allowed)
    assert not origin_allowed("http://localhost:3001", allowed)
    assert not origin_allowed("http://localhost", allowed)


def test_origin_allowed_bare_host_any_scheme_and_port() -> None:
    allowed = ("app.example.com",)
    assert origin_allowed("https://app.example.com", allowed)
    assert origin_allowed("http://app.example.com", allowed)
    assert origin_allowed("http://app.example.com:8080", allowed)
    assert not origin_allowed("https://other.example.com", allowed)
    assert not origin_allowed("https://sub.app.example.com", allowed)


def test_origin_allowed_bare_host_with_port() -> None:
    allowed = ("localhost:5173",)
    assert origin_allowed("http://localhost:5173", allowed)
    assert origin_allowed("https://localhost:5173", allowed)
    assert not origin_allowed("http://localhost:5174", allowed)
    assert not origin_allowed("http://localhost", allowed)


def test_origin_allowed_scheme_wildcard_matches_subdomains_only() -> None:
    allowed = ("https://*.example.com",)
    assert origin_allowed("https://a.example.com", allowed)
    assert origin_allowed("https://a.b.example.com", allowed)
    assert not origin_allowed("https://example.com", allowed)
    assert not origin_allowed("http://a.example.com", allowed)
    assert not origin_allowed("https://a.example.com.evil.test", allowed)
    assert not origin_allowed("https://aexample.com", allowed)
    assert not origin_allowed("https://a.notexample.com", allowed)


def test_origin_allowed_bare_wildcard_any_scheme() -> None:
    allowed = ("*.example.com",)
    assert origin_allowed("https://a.example.com", allowed)
    assert origin_allowed("http://a.example.com", allowed)
    assert not origin_allowed("https://example.com", allowed)
    assert not origin_allowed("https://evilexample.com", allowed)


def test_origin_allowed_bare_wildcard_matches_origin_with_port() -> None:
    assert origin_allowed("https://a.example.com:8443", ("*.example.com",))


def test_origin_allowed_scheme_wildcard_matches_origin_with_port() -> None:
    assert origin_allowed("https://a.example.com:8443", ("https://*.example.com",))


def test_origin_allowed_wildcard_with_port_does_not_match_apex_with_port() -> None:
    assert not origin_allowed("https://example.com:8443", ("*.example.com",))


def test_origin_allowed_rejects_malformed_origin() -> None:
    allowed = ("app.example.com",)
    assert not origin_allowed("app.example.com", allowed)
    assert not origin_allowed("null", allowed)
    assert not origin_allowed("https://", allowed)


def test_origin_allowed_any_entry_matches() -> None:
    allowed = ("https://one.test", "two.test", "*.three.test")
    assert origin_allowed("https://one.test", allowed)
    assert origin_allowed("http://two.test", allowed)
    assert origin_allowed("http://x.three.test", allowed)
    assert not origin_allowed("http://one.test", allowed)
