from __future__ import annotations

import json

import pytest

from pusherd.brokers.base import ChannelStats
from pusherd.errors import ApiError
from pusherd.protocol import rest
from pusherd.protocol.history import HistoryRule

LIMIT = 10 * 1024


def _status(call: object, *args: object) -> int:
    with pytest.raises(ApiError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.status


def test_match_route_names_the_endpoint_and_its_path_groups() -> None:
    assert rest.match_route("POST", "/apps/1/events") == ("events", ("1",))
    assert rest.match_route("GET", "/apps/1/channels/c/users") == ("users", ("1", "c"))


def test_match_route_is_404_for_unknown_paths_and_405_for_wrong_methods() -> None:
    assert _status(rest.match_route, "GET", "/apps/1/nothing") == 404
    assert _status(rest.match_route, "GET", "/apps/1/events") == 405


def test_check_events_accepts_phps_singular_channel_and_encodes_object_data() -> None:
    body = json.dumps({"name": "e", "channel": "c", "data": {"a": 1}}).encode()
    event = rest.check_events(body, LIMIT)
    assert event.channels == ["c"] and event.data == '{"a":1}' and not event.info


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1]", 400),
        (b'{"channels": ["c"], "data": "{}"}', 400),
        (b'{"name": "e", "channels": ["c"]}', 400),
        (b'{"name": "e", "channels": [], "data": "{}"}', 400),
        (b'{"name": "e", "channels": ["bad name!"], "data": "{}"}', 400),
        (b'{"name": "e", "channels": ["c"], "data": "{}", "socket_id": "x"}', 400),
        (b'{"name": "e", "channels": ["c"], "data": "{}", "info": "user_count"}', 400),
        (json.dumps({"name": "e", "channels": ["c"], "data": "x" * (LIMIT + 1)}).encode(), 413),
    ],
)
def test_check_events_refuses_bad_bodies_with_their_status(body: bytes, status: int) -> None:
    assert _status(rest.check_events, body, LIMIT) == status


def test_check_batch_validates_every_item_and_the_size() -> None:
    item = {"name": "e", "channel": "c", "data": "{}"}
    assert len(rest.check_batch(json.dumps({"batch": [item, item]}).encode(), LIMIT)) == 2
    too_many = json.dumps({"batch": [item] * (rest.MAX_BATCH + 1)}).encode()
    assert _status(rest.check_batch, too_many, LIMIT) == 400
    assert _status(rest.check_batch, b'{"batch": [{"name": "e"}]}', LIMIT) == 400


def test_channels_query_allows_user_count_only_for_presence_prefixes() -> None:
    assert rest.channels_query({"filter_by_prefix": "presence-", "info": "user_count"}) == (
        "presence-",
        {"user_count"},
    )
    assert _status(rest.channels_query, {"info": "user_count"}) == 400


def test_channel_info_reports_what_was_asked() -> None:
    stats = ChannelStats(subscription_count=3, user_count=2)
    assert rest.channel_info(stats, {"subscription_count"}, with_occupied=True) == {
        "occupied": True,
        "subscription_count": 3,
    }
    cached = (b'{"event":"e","channel":"cache-c","data":"{}"}', 12.7)
    assert rest.channel_info(stats, {"cache"}, cached) == {"cache": {"data": "{}", "ttl": 12}}
    assert rest.channels_info({"c": stats}, {"user_count"}) == {"c": {"user_count": 2}}


def test_authenticate_finds_the_app_by_path_or_auth_key_and_checks_the_signature() -> None:
    import time as clock

    from pusherd.apps.base import App
    from pusherd.apps.static import StaticAppRegistry
    from pusherd.protocol.signing import sign, string_to_sign
    from pusherd.types import AppId, AppKey

    app = App(id=AppId("1"), key=AppKey("k"), secret="s")
    apps = StaticAppRegistry(
        (app, App(id=AppId("2"), key=AppKey("off"), secret="s", enabled=False))
    )
    now = clock.time()
    params = [("auth_key", "k"), ("auth_timestamp", str(int(now))), ("auth_version", "1.0")]
    signed = [
        *params,
        ("auth_signature", sign("s", string_to_sign("GET", "/apps/1/channels", params))),
    ]
    assert (
        rest.authenticate(
            apps, "channels", ("1",), "GET", "/apps/1/channels", signed, b"", now, 600
        )
        is app
    )
    assert (
        _status(
            rest.authenticate,
            apps,
            "channels",
            ("9",),
            "GET",
            "/apps/9/channels",
            signed,
            b"",
            now,
            600,
        )
        == 404
    )
    assert (
        _status(
            rest.authenticate,
            apps,
            "channels",
            ("1",),
            "GET",
            "/apps/1/channels",
            params,
            b"",
            now,
            600,
        )
        == 401
    )
    by_key = [("auth_key", "nope")]
    assert (
        _status(
            rest.authenticate,
            apps,
            "terminate_by_key",
            ("u",),
            "POST",
            "/users/u/terminate_connections",
            by_key,
            b"",
            now,
            600,
        )
        == 401
    )


def test_idempotency_key_refuses_empty_long_and_non_string_keys() -> None:
    assert rest.idempotency_key("a" * 200) == "a" * 200
    for bad in ("", "a" * 201, 7, None):
        with pytest.raises(ApiError):
            rest.idempotency_key(bad)


def test_check_events_refuses_a_bad_idempotency_key_with_400() -> None:
    body = json.dumps({"name": "e", "channel": "c", "data": "", "idempotency_key": ""})
    assert _status(rest.check_events, body.encode(), LIMIT) == 400
    body = json.dumps({"name": "e", "channel": "c", "data": "", "idempotency_key": "k"})
    assert rest.check_events(body.encode(), LIMIT).idempotency_key == "k"


def test_route_takes_the_prefix_off_then_names_the_endpoint() -> None:
    assert rest.route("POST", "/apps/1/events", "") == ("/apps/1/events", "events", ("1",))
    assert rest.route("GET", "/p/apps/1/channels/c", "/p") == (
        "/apps/1/channels/c",
        "channel",
        ("1", "c"),
    )


def test_route_is_404_outside_the_prefix_and_405_for_a_wrong_method() -> None:
    assert _status(rest.route, "POST", "/apps/1/events", "/p") == 404
    assert _status(rest.route, "POST", "/px/apps/1/events", "/p") == 404
    assert _status(rest.route, "GET", "/p/apps/1/nothing", "/p") == 404
    assert _status(rest.route, "GET", "/p/apps/1/events", "/p") == 405


def test_presence_channel_param_accepts_presence_channels_only() -> None:
    assert rest.presence_channel_param("presence-room") == "presence-room"
    assert _status(rest.presence_channel_param, "private-room") == 400
    assert _status(rest.presence_channel_param, "room") == 400
    assert _status(rest.presence_channel_param, "presence-" + "x" * 200) == 400


def test_history_query_reads_the_rules_max_events_unless_limit_asks_fewer() -> None:
    rules = (HistoryRule(channel_prefix="chat-", max_events=20, max_age=60.0),)
    assert rest.history_query(rules, "chat-1", {}) == (rules[0], 20)
    assert rest.history_query(rules, "chat-1", {"limit": "5"}) == (rules[0], 5)
    assert rest.history_query(rules, "chat-1", {"limit": "500"}) == (rules[0], 20)


def test_history_query_is_404_without_a_rule_and_400_for_a_bad_limit() -> None:
    rules = (HistoryRule(channel_prefix="chat-"),)
    assert _status(rest.history_query, rules, "news", {}) == 404
    assert _status(rest.history_query, (), "chat-1", {}) == 404
    for bad in ("0", "-1", "x", "", "1.5"):
        assert _status(rest.history_query, rules, "chat-1", {"limit": bad}) == 400


def test_check_events_takes_the_idempotency_key_header_when_the_body_has_none() -> None:
    plain = json.dumps({"name": "e", "channel": "c", "data": ""}).encode()
    keyed = json.dumps({"name": "e", "channel": "c", "data": "", "idempotency_key": "body"})
    assert rest.check_events(plain, LIMIT).idempotency_key is None
    assert rest.check_events(plain, LIMIT, b"header").idempotency_key == "header"
    assert rest.check_events(keyed.encode(), LIMIT, b"header").idempotency_key == "body"


def test_check_events_checks_the_idempotency_key_header_after_the_body() -> None:
    plain = json.dumps({"name": "e", "channel": "c", "data": ""}).encode()
    keyed = json.dumps({"name": "e", "channel": "c", "data": "", "idempotency_key": "k"})
    assert _status(rest.check_events, plain, LIMIT, b"") == 400
    assert _status(rest.check_events, plain, LIMIT, b"x" * 201) == 400
    assert rest.check_events(keyed.encode(), LIMIT, b"").idempotency_key == "k"  # not used
    no_name = json.dumps({"channel": "c", "data": ""}).encode()
    with pytest.raises(ApiError, match="name"):
        rest.check_events(no_name, LIMIT, b"")
