"""``describe``: every lifecycle record becomes a line with its fields, payloads bounded."""

from __future__ import annotations

import orjson

from pusherd.console.lines import KINDS, MAX_DATA, TYPES, describe
from pusherd.lifecycle import (
    ApiMessage,
    ClientEventSent,
    MemberAdded,
    SocketClosed,
    SubscriptionRefused,
    WebhookAttempt,
)
from pusherd.protocol.messages import encode_channel_event


def test_describe_stamps_type_app_node_and_time() -> None:
    line = describe(MemberAdded("1", "presence-x", "7"), "node-a", 123)
    assert line == {
        "type": "member_added",
        "app_id": "1",
        "node": "node-a",
        "t": 123,
        "channel": "presence-x",
        "user_id": "7",
    }


def test_describe_api_message_shows_the_event_data_and_size() -> None:
    payload = encode_channel_event("shipped", "orders", '{"id":7}')
    line = describe(ApiMessage("1", "orders", "shipped", payload, "1.2"), "n", 0)
    assert (line["channel"], line["event"], line["socket_id"]) == ("orders", "shipped", "1.2")
    assert line["data"] == '{"id":7}' and line["size"] == len(payload)
    assert "truncated" not in line


def test_describe_cuts_large_data_and_says_so() -> None:
    payload = orjson.dumps({"event": "client-big", "channel": "c", "data": {"x": "y" * 10_000}})
    line = describe(ClientEventSent("1", "1.2", "c", "client-big", payload, None), "n", 0)
    assert len(line["data"]) == MAX_DATA and line["truncated"] is True


def test_describe_close_without_reason_names_the_code() -> None:
    assert describe(SocketClosed("1", "1.2", 4201, "", 3.21), "n", 0)["reason"] == "pong timeout"
    assert describe(SocketClosed("1", "1.2", 1006, "", 0.0), "n", 0)["reason"] == "dropped"


def test_describe_refused_and_webhook_carry_their_outcome() -> None:
    refused = describe(
        SubscriptionRefused("1", "1.2", "private-a", "Invalid signature", 401), "n", 0
    )
    assert (refused["reason"], refused["status"]) == ("Invalid signature", 401)
    hook = describe(
        WebhookAttempt("1", "http://h/x", ("channel_occupied",), 500, 0.0123, 2, "retry"), "n", 0
    )
    assert hook["events"] == ["channel_occupied"] and hook["ms"] == 12.3
    assert (hook["status"], hook["attempt"], hook["outcome"]) == (500, 2, "retry")


def test_every_record_kind_has_a_line_type() -> None:
    assert len(KINDS) == len(set(TYPES)) == 14
