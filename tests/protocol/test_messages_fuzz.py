"""Property-based fuzzing of ``parse_client_message`` and ``data_object`` (issue 11).

Whatever the bytes, the outcome is a ``ClientMessage`` or a ``PusherError`` with code
null, and the error always encodes into a ``pusher:error`` frame.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pusherd.errors import PusherError
from pusherd.protocol.messages import (
    MAX_JSON_DEPTH,
    ClientMessage,
    data_object,
    encode_error,
    parse_client_message,
)
from tests.protocol.json_strategies import json_texts, mutated, nested_text

__all__: list[str] = []

pytestmark = pytest.mark.fuzz


def parse_outcome(raw: bytes | str) -> ClientMessage | PusherError:
    try:
        message = parse_client_message(raw)
    except PusherError as exc:
        assert type(exc) is PusherError
        assert exc.code is None
        assert exc.message
        assert orjson.loads(encode_error(exc.message, exc.code))["event"] == "pusher:error"
        return exc
    assert isinstance(message.event, str)
    assert message.event
    assert message.channel is None or isinstance(message.channel, str)
    try:
        data = data_object(message)
    except PusherError as exc:
        assert exc.message.startswith(f"Invalid {message.event}: 'data' must be a JSON object")
        encode_error(exc.message, exc.code)
    else:
        assert isinstance(data, dict)
        orjson.dumps(data)  # nothing decoded is too deep to encode again
    return message


@st.composite
def message_texts(draw: st.DrawFn) -> str:
    """A JSON object with ``event``/``channel``/``data`` (and junk) of any shape."""
    fields = []
    for key in ("event", "channel", "data", "extra"):
        if draw(st.booleans()):
            if key == "event" and draw(st.booleans()):
                value = orjson.dumps(
                    draw(st.sampled_from(["pusher:subscribe", "pusher:ping", "client-x"]))
                ).decode()
            else:
                value = draw(json_texts)
            fields.append(orjson.dumps(key).decode() + ":" + value)
    return "{" + ",".join(fields) + "}"


@given(st.binary(max_size=400))
def test_parse_client_message_random_bytes(raw: bytes) -> None:
    parse_outcome(raw)


@given(json_texts)
def test_parse_client_message_any_json_value(text: str) -> None:
    outcome = parse_outcome(text)
    if not text.startswith("{"):
        assert isinstance(outcome, PusherError)


@given(message_texts())
def test_parse_client_message_objects_with_fields_of_any_shape(text: str) -> None:
    parse_outcome(text)
    parse_outcome(text.encode())


@given(message_texts().flatmap(mutated))
def test_parse_client_message_mutated_messages(raw: bytes) -> None:
    parse_outcome(raw)


def depth_of(value: object) -> int:
    """How deep containers nest in ``value`` (iterative: the value may be deep)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


@given(nested_text())
def test_parse_client_message_deep_data_is_one_clean_error(nested: str) -> None:
    raw = '{"event":"client-x","channel":"private-a","data":' + nested + "}"
    outcome = parse_outcome(raw)
    if isinstance(outcome, PusherError):
        assert outcome.message == (
            f"Invalid message: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )
    else:
        assert depth_of(outcome.data) + 1 <= MAX_JSON_DEPTH
        orjson.dumps({"event": outcome.event, "data": outcome.data})
