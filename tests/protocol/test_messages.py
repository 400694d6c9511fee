"""Client messages in, server messages out (PROTOCOL.md §1.2, §1.3, §1.5, §1.19)."""

from __future__ import annotations

import json

import orjson
import pytest

from pusherd.errors import PusherError
from pusherd.protocol.messages import (
    MAX_JSON_DEPTH,
    ClientMessage,
    data_object,
    encode_channel_event,
    encode_error,
    encode_event,
    json_preview,
    load_json,
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


# nesting -----------------------------------------------------------------------------
def _nested(depth: int, kind: str = "object") -> str:
    if kind == "object":
        return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("kind", ["object", "array"])
def test_load_json_accepts_exactly_the_depth_limit(kind: str) -> None:
    value = load_json(_nested(MAX_JSON_DEPTH, kind))
    for _ in range(MAX_JSON_DEPTH - 1):
        value = value["a"] if kind == "object" else value[0]
    assert value in ({}, [])


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 1000, 1025, 100_000])
@pytest.mark.parametrize("kind", ["object", "array"])
def test_load_json_refuses_deeper_values_with_one_answer(depth: int, kind: str) -> None:
    with pytest.raises(ValueError, match=rf"^nested deeper than {MAX_JSON_DEPTH} levels$"):
        load_json(_nested(depth, kind))
    with pytest.raises(ValueError, match=r"^nested deeper"):
        load_json(_nested(depth, kind).encode())


def test_load_json_counts_depth_not_brackets() -> None:
    wide = "[" + ",".join(["[[1]]"] * 5000) + "]"
    assert len(load_json(wide)) == 5000
    strings = orjson.dumps({"s": "[" * 10_000, "t": ["{" * 10_000]})
    assert load_json(strings)["s"] == "[" * 10_000


def test_load_json_refuses_invalid_json() -> None:
    with pytest.raises(ValueError, match=r"^not valid JSON$"):
        load_json(b"{nope")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 300, 1000, 100_000])
def test_parse_client_message_refuses_deep_nesting_with_one_clean_error(depth: int) -> None:
    raw = '{"event":"pusher:subscribe","data":{"channel":' + _nested(depth, "array") + "}}"
    with pytest.raises(PusherError) as info:
        parse_client_message(raw.encode())
    assert info.value.code is None
    assert info.value.message == f"Invalid message: JSON nested deeper than {MAX_JSON_DEPTH} levels"


def test_data_object_refuses_deep_nesting_inside_string_data() -> None:
    message = parse_client_message(
        orjson.dumps({"event": "pusher:subscribe", "data": '{"channel":' + _nested(500) + "}"})
    )
    with pytest.raises(PusherError, match="nested deeper than"):
        data_object(message)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("x" * 500, "x" * 200),
        (None, "null"),
        (True, "true"),
        (12, "12"),
        ([[[]]], "an array"),
        ({"a": {"b": 1}}, "an object"),
    ],
)
def test_json_preview_never_reprs_containers(value: object, shown: str) -> None:
    assert json_preview(value) == shown
