from __future__ import annotations

import json

from pusherd.protocol import transitions
from pusherd.protocol.actions import ClientEvent
from pusherd.protocol.presence import Member


def _decoded(raw: bytes) -> dict[str, object]:
    message: dict[str, object] = json.loads(raw)
    return message


def test_subscription_succeeded_carries_members_only_on_presence() -> None:
    plain = _decoded(transitions.subscription_succeeded("news"))
    assert plain == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "news",
        "data": "{}",
    }
    presence = _decoded(transitions.subscription_succeeded("presence-r", {"1": {"n": 1}}))
    assert json.loads(str(presence["data"])) == {
        "presence": {"ids": ["1"], "hash": {"1": {"n": 1}}, "count": 1}
    }


def test_member_added_omits_missing_user_info() -> None:
    bare = _decoded(transitions.member_added("presence-r", Member("7", None)))
    assert json.loads(str(bare["data"])) == {"user_id": "7"}
    full = _decoded(transitions.member_added("presence-r", Member("7", {"name": "Ann"})))
    assert json.loads(str(full["data"])) == {"user_id": "7", "user_info": {"name": "Ann"}}


def test_watchlist_events_lists_who_is_online_and_offline() -> None:
    raw = _decoded(transitions.watchlist_events(["a", "b", "c"], {"b"}))
    assert json.loads(str(raw["data"])) == {
        "events": [
            {"name": "online", "user_ids": ["b"]},
            {"name": "offline", "user_ids": ["a", "c"]},
        ]
    }


def test_held_marks_name_the_webhook_channel_and_user() -> None:
    assert transitions.held_mark("channel_vacated", "c") == "held:channel_vacated:c"
    assert transitions.held_mark("member_removed", "c", "u") == "held:member_removed:c:u"


def test_client_event_webhook_sends_data_as_a_string_with_socket_and_user() -> None:
    action = ClientEvent("private-c", "client-x", {"a": 1}, "u1", b"")
    assert transitions.client_event_webhook(action, "1.2") == {
        "name": "client_event",
        "channel": "private-c",
        "event": "client-x",
        "data": '{"a":1}',
        "socket_id": "1.2",
        "user_id": "u1",
    }


def test_count_throttle_passes_small_channels_and_spaces_out_busy_ones() -> None:
    throttle = transitions.CountThrottle()
    assert all(throttle.due("1", "small", 100, 0.0) for _ in range(3))
    assert throttle.due("1", "busy", 101, 0.0)
    assert not throttle.due("1", "busy", 102, 4.9)
    assert throttle.due("1", "busy", 103, 5.1)
    assert not throttle.due("1", "gone", -1, 0.0)
