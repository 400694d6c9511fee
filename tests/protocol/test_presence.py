"""Presence members and the ``subscription_succeeded`` presence payload (PROTOCOL.md §1.8)."""

from __future__ import annotations

import orjson
import pytest

from pusherd.protocol import transitions
from pusherd.protocol.presence import (
    MAX_USER_ID_LENGTH,
    MEMBER_EVENT_PREFIX,
    Member,
    member_news,
    parse_member,
    presence_payload,
)

__all__: list[str] = []

LIMIT = 1024


def test_parse_member_string_id_with_info() -> None:
    member = parse_member('{"user_id":"abc","user_info":{"name":"Ann"}}', LIMIT)
    assert member == Member(user_id="abc", user_info={"name": "Ann"})


def test_parse_member_numeric_id_normalised_to_string() -> None:
    member = parse_member('{"user_id":10,"user_info":{"name":"Mr. Channels"}}', LIMIT)
    assert member.user_id == "10"
    assert member.user_info == {"name": "Mr. Channels"}


def test_parse_member_without_info() -> None:
    assert parse_member('{"user_id":"1"}', LIMIT) == Member(user_id="1", user_info=None)


@pytest.mark.parametrize(
    "channel_data",
    [
        "",
        "not json",
        "[]",
        '"1"',
        "1",
        "null",
        "{}",
        '{"user_id":null}',
        '{"user_id":""}',
        '{"user_id":true}',
        '{"user_id":false}',
        '{"user_id":[1]}',
        '{"user_id":{"id":1}}',
        '{"user_id":1.5}',
        '{"user_info":{"name":"x"}}',
    ],
)
def test_parse_member_rejects_unusable_data(channel_data: str) -> None:
    with pytest.raises(ValueError):
        parse_member(channel_data, LIMIT)


def test_parse_member_user_id_length_limit() -> None:
    assert MAX_USER_ID_LENGTH == 128
    ok = "u" * 128
    assert parse_member(orjson.dumps({"user_id": ok}).decode(), LIMIT).user_id == ok
    with pytest.raises(ValueError):
        parse_member(orjson.dumps({"user_id": "u" * 129}).decode(), LIMIT)


def test_parse_member_user_info_size_limit() -> None:
    info_ok = {"n": "x" * (LIMIT - 20)}
    assert len(orjson.dumps(info_ok)) <= LIMIT
    parse_member(orjson.dumps({"user_id": "1", "user_info": info_ok}).decode(), LIMIT)
    info_big = {"n": "x" * LIMIT}
    with pytest.raises(ValueError):
        parse_member(orjson.dumps({"user_id": "1", "user_info": info_big}).decode(), LIMIT)


def test_member_json_round_trip() -> None:
    member = Member(user_id="7", user_info={"name": "Z", "tags": [1, 2]})
    assert Member.from_json(member.to_json()) == member
    assert Member.from_json(member.to_json().decode()) == member
    assert Member.from_json(Member("8").to_json()) == Member("8", None)


def test_presence_payload_shape() -> None:
    payload = presence_payload({"1": {"name": "A"}, "2": None})
    assert payload == {
        "presence": {
            "ids": ["1", "2"],
            "hash": {"1": {"name": "A"}, "2": None},
            "count": 2,
        }
    }


def test_presence_payload_empty() -> None:
    assert presence_payload({}) == {"presence": {"ids": [], "hash": {}, "count": 0}}


def _added(user_id: str) -> bytes:
    return orjson.dumps(
        {
            "event": "pusher_internal:member_added",
            "channel": "presence-r",
            "data": orjson.dumps({"user_id": user_id}).decode(),
        }
    )


def _removed(user_id: str) -> bytes:
    return orjson.dumps(
        {
            "event": "pusher_internal:member_removed",
            "channel": "presence-r",
            "data": orjson.dumps({"user_id": user_id}).decode(),
        }
    )


def test_member_news_drops_what_the_member_list_already_shows() -> None:
    held = [_added("alice"), _removed("carol")]
    assert member_news(held, {"alice": None, "bob": None}) == []


def test_member_news_keeps_joins_and_leaves_after_the_list_was_read() -> None:
    held = [_added("dave"), _removed("alice")]
    assert member_news(held, {"alice": None, "bob": None}) == held


def test_member_news_tells_only_the_last_event_of_each_user() -> None:
    # alice left and came back before the list was read; erin came and went after
    held = [_removed("alice"), _added("alice"), _added("erin"), _removed("erin")]
    assert member_news(held, {"alice": None}) == []
    assert member_news([_added("erin"), _removed("erin")], {"erin": None}) == [_removed("erin")]


def test_member_news_keeps_an_apps_own_event_under_a_member_events_name() -> None:
    # the REST API takes any event name: such an event is not a member change
    odd = [
        b'{"event":"pusher_internal:member_added","channel":"presence-r","data":"not json"}',
        b'{"event":"pusher_internal:member_added","channel":"presence-r","data":"[1]"}',
        b'{"event":"pusher_internal:member_addedx","channel":"presence-r",'
        b'"data":"{\\"user_id\\":\\"z\\"}"}',
        b'{"event":"pusher_internal:member_removed","channel":"presence-r"}',
    ]
    assert member_news([*odd, _added("alice")], {"alice": None}) == odd


def test_member_events_begin_with_the_prefix_the_hub_looks_for() -> None:
    assert transitions.member_added("presence-r", Member("7")).startswith(MEMBER_EVENT_PREFIX)
    assert transitions.member_removed("presence-r", "7").startswith(MEMBER_EVENT_PREFIX)
    assert not transitions.subscription_count("presence-r", 1).startswith(MEMBER_EVENT_PREFIX)
