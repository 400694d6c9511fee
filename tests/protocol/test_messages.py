"""Client messages in, server messages out (PROTOCOL.md §1.2, §1.3, §1.5, §1.19)."""

from __future__ import annotations

import json

import orjson
import pytest

from pusherd.errors import PusherError
from pusherd.protocol.messages import (
    ClientMessage,
    data_object,
    encode_channel_event,
    encode_error,
    encode_event,
    parse_client_message,
)

__all__: list[str] = []


def test_parse_client_message_with_object_data() -> None:
    message = parse_client_message(
        b'{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"k:s"}}'
    )
    assert message == ClientMessage(
        event="pusher:subscribe", channel=None, data={"channel": "private-x", "auth": "k:s"}
    )
    assert data_object(message) == {"channel": "private-x", "auth": "k:s"}


def test_parse_client_message_with_string_data() -> None:
    message = parse_client_message('{"event":"pusher:subscribe","data":"{\\"channel\\":\\"a\\"}"}')
    assert message.data == '{"channel":"a"}'
    assert data_object(message) == {"channel": "a"}


def test_parse_client_message_keeps_client_event_channel_and_data() -> None:
    message = parse_client_message(b'{"event":"client-x","channel":"private-a","data":[1,2]}')
    assert message == ClientMessage(event="client-x", channel="private-a", data=[1, 2])


def test_parse_client_message_without_data() -> None:
    message = parse_client_message(b'{"event":"pusher:ping"}')
    assert message == ClientMessage(event="pusher:ping", channel=None, data=None)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"{",
        b"\xff\xfe",
        b"[]",
        b'"pusher:ping"',
        b"42",
        b"null",
        b"{}",
        b'{"data":{}}',
        b'{"event":""}',
        b'{"event":1}',
        b'{"event":null}',
        b'{"event":["pusher:ping"]}',
        b'{"event":"client-x","channel":1}',
        b'{"event":"client-x","channel":{"a":1}}',
        b'{"event":"client-x","channel":["a"]}',
        b"[" * 100_000,
        b'{"event":"x","data":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"event":"x","data":NaN}',
        b'{"event":"x"} trailing',
    ],
)
def test_parse_client_message_rejects_bad_frames_with_null_code(raw: bytes) -> None:
    with pytest.raises(PusherError) as info:
        parse_client_message(raw)
    assert info.value.code is None
    assert info.value.message


@pytest.mark.parametrize("data", [None, 1, "not json", "[1]", '"s"', [1], True])
def test_data_object_rejects_non_objects(data: object) -> None:
    with pytest.raises(PusherError) as info:
        data_object(ClientMessage(event="pusher:subscribe", channel=None, data=data))
    assert info.value.code is None
    assert "pusher:subscribe" in info.value.message


def test_encode_event_connection_established_data_is_a_json_string() -> None:
    raw = encode_event(
        "pusher:connection_established", {"socket_id": "123.456", "activity_timeout": 120}
    )
    decoded = orjson.loads(raw)
    assert decoded["event"] == "pusher:connection_established"
    assert isinstance(decoded["data"], str)
    assert orjson.loads(decoded["data"]) == {"socket_id": "123.456", "activity_timeout": 120}
    assert set(decoded) == {"event", "data"}


def test_encode_event_without_data_omits_field() -> None:
    assert orjson.loads(encode_event("pusher:pong")) == {"event": "pusher:pong"}


def test_encode_event_as_object() -> None:
    raw = encode_event("pusher:signin_success", {"user_data": '{"id":"1"}'}, as_string=False)
    assert orjson.loads(raw) == {
        "event": "pusher:signin_success",
        "data": {"user_data": '{"id":"1"}'},
    }


def test_encode_error_data_is_an_object() -> None:
    assert orjson.loads(encode_error("Application does not exist", 4001)) == {
        "event": "pusher:error",
        "data": {"code": 4001, "message": "Application does not exist"},
    }


def test_encode_error_null_code() -> None:
    raw = encode_error("Invalid signature", None)
    assert orjson.loads(raw) == {
        "event": "pusher:error",
        "data": {"code": None, "message": "Invalid signature"},
    }
    assert b'"code":null' in raw


def test_encode_channel_event_keeps_string_data_verbatim() -> None:
    data = '{"some": "data",  "spaced" : 1}'
    decoded = orjson.loads(encode_channel_event("my-event", "my-channel", data))
    assert decoded == {"event": "my-event", "channel": "my-channel", "data": data}


def test_encode_channel_event_keeps_non_json_string_verbatim() -> None:
    decoded = orjson.loads(encode_channel_event("e", "c", "plain text"))
    assert decoded["data"] == "plain text"


def test_encode_channel_event_encodes_objects_into_a_string() -> None:
    decoded = orjson.loads(
        encode_channel_event("pusher_internal:subscription_succeeded", "c", {"a": [1]})
    )
    assert isinstance(decoded["data"], str)
    assert orjson.loads(decoded["data"]) == {"a": [1]}


def test_encode_channel_event_user_id_and_no_data() -> None:
    assert orjson.loads(encode_channel_event("e", "presence-x", None, user_id="7")) == {
        "event": "e",
        "channel": "presence-x",
        "user_id": "7",
    }
    assert orjson.loads(encode_channel_event("pusher_internal:subscription_succeeded", "c")) == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "c",
    }


def test_error_messages_for_a_refused_subscription_name_its_channel_first() -> None:
    from pusherd.errors import SubscriptionError
    from pusherd.protocol.messages import error_messages

    first, second = error_messages(SubscriptionError("Invalid signature", "private-c", 401))
    assert json.loads(first) == {
        "event": "pusher:subscription_error",
        "channel": "private-c",
        "data": {"type": "AuthError", "error": "Invalid signature", "status": 401},
    }
    assert json.loads(second)["event"] == "pusher:error"


def test_error_messages_for_any_other_error_are_one_pusher_error() -> None:
    from pusherd.errors import PusherError
    from pusherd.protocol.messages import error_messages

    (only,) = error_messages(PusherError("Unsupported event: x"))
    assert json.loads(only) == {
        "event": "pusher:error",
        "data": {"code": None, "message": "Unsupported event: x"},
    }
