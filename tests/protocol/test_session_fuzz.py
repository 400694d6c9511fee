"""Property-based fuzzing of ``Session.handle`` with client messages of every shape.

The allowed outcomes of a message are actions or a ``PusherError``. A message that is
not a valid, known event never comes back with no actions and no error ("silently
ignored"): the only silent messages are ``pusher:pong`` and an unsubscribe from a
well-formed channel the socket is not on. Sequences run against one session, with
correctly signed subscribes and sign-ins mixed in, so the deep branches (presence
members, signed-in users, client events on joined channels) get hostile input too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pusherd.apps.base import App
from pusherd.errors import PusherError, SubscriptionError
from pusherd.protocol.actions import ClientEvent, Send, SignIn, Subscribe, Unsubscribe
from pusherd.protocol.channels import channel_name_error
from pusherd.protocol.messages import encode_error, parse_client_message
from pusherd.protocol.session import MAX_CHANNELS_PER_SOCKET, Session
from pusherd.types import AppId, AppKey
from tests.fuzz_profiles import share
from tests.protocol.json_strategies import json_texts, json_values, mutated, nested_text

__all__: list[str] = []

pytestmark = pytest.mark.fuzz

SOCKET_ID = "1234.5678"
APP = App(id=AppId("1"), key=AppKey("app-key"), secret="app-secret")
EVENTS = [
    "pusher:subscribe",
    "pusher:unsubscribe",
    "pusher:signin",
    "pusher:ping",
    "pusher:pong",
    "client-x",
    "client-",
    "client-" + "y" * 200,
    "pusher:other",
    "pusher_internal:member_added",
]
CHANNELS = [
    "news",
    "cache-news",
    "private-a",
    "private-cache-a",
    "private-encrypted-a",
    "presence-a",
    "presence-cache-a",
    "#server-to-user-1",
    "#server-to-user-u",
    "",
    "#nope",
    "bad name",
    "x" * 201,
]


def _auth(string: str, secret: str = APP.secret) -> str:
    return APP.key + ":" + hmac.new(secret.encode(), string.encode(), hashlib.sha256).hexdigest()


def _text(value: object) -> str:
    return orjson.dumps(value).decode()


def _frame(event: str, data: str | None, channel: str | None = None) -> str:
    fields = ['"event":' + _text(event)]
    if channel is not None:
        fields.append('"channel":' + channel)
    if data is not None:
        fields.append('"data":' + data)
    return "{" + ",".join(fields) + "}"


def _object(draw: st.DrawFn, fields: dict[str, str]) -> str:
    """A data object from raw JSON field texts, sent as an object or a JSON string."""
    text = "{" + ",".join(_text(k) + ":" + v for k, v in fields.items()) + "}"
    return _text(text) if draw(st.integers(min_value=0, max_value=3)) == 0 else text


any_text = json_texts | st.sampled_from(CHANNELS).map(_text)


@st.composite
def user_json(draw: st.DrawFn, id_key: str) -> str:
    """``channel_data`` / ``user_data`` text: mostly well-formed, with hostile parts."""
    parts = []
    if draw(st.integers(min_value=0, max_value=5)):
        parts.append(_text(id_key) + ":" + draw(st.sampled_from(['"1"', '"u"', "7"]) | any_text))
    if draw(st.booleans()):
        parts.append('"user_info":' + draw(any_text | nested_text()))
    if id_key == "id" and draw(st.booleans()):
        parts.append('"watchlist":' + draw(any_text))
    text = "{" + ",".join(parts) + "}"
    return draw(
        st.just(text) | st.just(text).flatmap(mutated).map(lambda b: b.decode("utf-8", "replace"))
    )


@st.composite
def signed_subscribe(draw: st.DrawFn) -> str:
    channel = draw(st.sampled_from(CHANNELS))
    fields = {"channel": _text(channel)}
    channel_data = draw(st.none() | user_json("user_id"))
    string = f"{SOCKET_ID}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    fields["auth"] = _text(_auth(string, draw(st.sampled_from([APP.secret, APP.secret, "wrong"]))))
    if channel_data is not None:
        fields["channel_data"] = _text(channel_data)
    return _frame("pusher:subscribe", _object(draw, fields))


@st.composite
def signed_signin(draw: st.DrawFn) -> str:
    user_data = draw(user_json("id"))
    fields = {
        "user_data": _text(user_data),
        "auth": _text(_auth(f"{SOCKET_ID}::user::{user_data}")),
    }
    return _frame("pusher:signin", _object(draw, fields))


@st.composite
def shaped(draw: st.DrawFn) -> str:
    """A known or unknown event whose fields take any shape."""
    event = draw(st.sampled_from(EVENTS) | st.text(max_size=20))
    fields = {
        key: draw(any_text | nested_text())
        for key in ("channel", "auth", "channel_data", "user_data")
        if draw(st.booleans())
    }
    data = draw(st.none() | st.just(_object(draw, fields)) | any_text | nested_text())
    channel = draw(st.none() | any_text)
    return _frame(event, data, channel)


@st.composite
def client_events(draw: st.DrawFn) -> str:
    event = draw(st.sampled_from(["client-x", "client-", "client-" + "z" * 201]))
    channel = draw(st.sampled_from(CHANNELS).map(_text) | any_text)
    data = draw(st.none() | json_values.map(_text) | nested_text() | json_texts)
    return _frame(event, data, channel)


frames = st.one_of(
    signed_subscribe(),
    signed_signin(),
    shaped(),
    client_events(),
    shaped().flatmap(mutated).map(lambda b: b.decode("utf-8", "replace")),
    st.binary(max_size=100).map(lambda b: b.decode("utf-8", "replace")),
)


def handle(session: Session, raw: str, now: float) -> None:
    """Run one frame as the connection does and check the outcome is allowed."""
    before = dict(session.channels)
    try:
        message = parse_client_message(raw.encode())
        actions = session.handle(message, now)
    except PusherError as exc:
        assert exc.message
        encode_error(exc.message, exc.code)  # the frame the connection sends
        if isinstance(exc, SubscriptionError):
            orjson.dumps({"channel": exc.channel, "data": {"error": exc.message}})
            assert len(exc.channel) <= 200
        return
    for action in actions:
        assert type(action) in (Send, Subscribe, Unsubscribe, ClientEvent, SignIn)
        if isinstance(action, Send | ClientEvent):
            assert isinstance(orjson.loads(action.payload), dict)
        if isinstance(action, Subscribe | Unsubscribe) and action.member is not None:
            action.member.to_json()
    if not actions:
        silent_ok = message.event == "pusher:pong" or (
            message.event == "pusher:unsubscribe"
            and isinstance(message.data, dict | str)
            and _unsubscribe_channel_ok(message, before)
        )
        assert silent_ok, f"silently ignored: {raw[:300]!r}"
    assert len(session.channels) <= MAX_CHANNELS_PER_SOCKET
    for channel in session.channels:
        assert channel_name_error(channel) is None
    if session.user_id is not None:
        orjson.dumps({"user_id": session.user_id, "user_info": session.user_info})


def _unsubscribe_channel_ok(message: object, before: Mapping[str, object]) -> bool:
    data = getattr(message, "data", None)
    if isinstance(data, str):
        data = orjson.loads(data)
    channel = data.get("channel") if isinstance(data, dict) else None
    return (
        isinstance(channel, str) and channel_name_error(channel) is None and channel not in before
    )


@share(0.5)
@given(st.lists(frames, min_size=1, max_size=12), st.booleans())
def test_session_handles_sequences_of_hostile_messages(messages: list[str], enabled: bool) -> None:
    app = replace(APP, enable_client_messages=enabled, enable_user_authentication=not enabled)
    session = Session(app, SOCKET_ID, 0.0)
    for index, raw in enumerate(messages):
        handle(session, raw, index * 0.5)


@share(0.5)
@given(
    st.lists(st.sampled_from(CHANNELS[:7]), min_size=1, max_size=4),
    st.lists(client_events(), max_size=8),
)
def test_session_client_events_on_joined_channels(channels: list[str], events: list[str]) -> None:
    session = Session(APP, SOCKET_ID, 0.0)
    session.handle(
        parse_client_message(
            _frame(
                "pusher:signin",
                _text(
                    {"user_data": '{"id":"1"}', "auth": _auth(f'{SOCKET_ID}::user::{{"id":"1"}}')}
                ),
            )
        ),
        0.0,
    )
    for channel in channels:
        channel_data = (
            '{"user_id":"1","user_info":{"n":1}}' if channel.startswith("presence") else None
        )
        string = f"{SOCKET_ID}:{channel}" + (f":{channel_data}" if channel_data else "")
        data = {"channel": channel, "auth": _auth(string)}
        if channel_data:
            data["channel_data"] = channel_data
        session.handle(parse_client_message(_frame("pusher:subscribe", _text(data))), 0.0)
    for index, raw in enumerate(events):
        handle(session, raw, 10.0 + index)
