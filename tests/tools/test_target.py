"""Which app and node the client verbs use, and the REST signature they send."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from pusherd.apps.base import App
from pusherd.config import Config, ServerConfig, TlsConfig
from pusherd.errors import ApiError, ConfigError
from pusherd.protocol.signing import parse_query, verify_request
from pusherd.tools.target import pick_app, resolve_target
from pusherd.types import AppId, AppKey

__all__: list[str] = []

ONE = App(id=AppId("1"), key=AppKey("k1"), secret="s1")
TWO = App(id=AppId("2"), key=AppKey("k2"), secret="s2")


def test_target_pick_app_by_id_or_key_and_needs_choice_among_several() -> None:
    config = Config(apps=(ONE, TWO))
    assert pick_app(config, "2") is TWO
    assert pick_app(config, "k1") is ONE
    with pytest.raises(ConfigError, match="several apps"):
        pick_app(config, None)
    with pytest.raises(ConfigError, match="no app"):
        pick_app(config, "3")


def test_target_any_address_is_reached_on_loopback_with_prefix_and_tls() -> None:
    server = ServerConfig(host="0.0.0.0", port=6001, path_prefix="/ws")
    assert resolve_target(Config(server=server, apps=(ONE,))).http_url == (
        "http://127.0.0.1:6001/ws"
    )
    tls = replace(server, host="::", tls=TlsConfig("c", "k"))
    target = resolve_target(Config(server=tls, apps=(ONE,)))
    assert target.http_url == "https://[::1]:6001/ws"
    assert target.ws_url == "wss://[::1]:6001/ws"
    with pytest.raises(ConfigError):
        resolve_target(Config(apps=(ONE,)), url="ftp://x")


def test_target_signed_path_passes_server_verification() -> None:
    target = resolve_target(Config(apps=(ONE,)))
    body = b'{"name":"e","channels":["a b"],"data":"{}"}'
    signed = target.signed_path("POST", "/apps/1/events", body, {"info": "user_count"})
    path, _, query = signed.partition("?")
    params = parse_query(query)
    verify_request("k1", "s1", "POST", path, params, body, now=time.time())
    with pytest.raises(ApiError):
        verify_request("k1", "other", "POST", path, params, body, now=time.time())
