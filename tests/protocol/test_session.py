"""One socket's Pusher state machine: ``Session.handle`` (PROTOCOL.md §1.4, §1.7–1.13)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from typing import Any

import orjson
import pytest

from pusherd.apps.base import App
from pusherd.errors import ClientEventError, PusherError, SubscriptionError
from pusherd.protocol.actions import ClientEvent, Send, SignIn, Subscribe, Unsubscribe
from pusherd.protocol.channels import ChannelKind
from pusherd.protocol.messages import ClientMessage
from pusherd.protocol.presence import Member
from pusherd.protocol.session import (
    MAX_CHANNELS_PER_SOCKET,
    MAX_WATCHLIST,
    Session,
    distinct_users,
)
from pusherd.types import AppId, AppKey

__all__: list[str] = []

SOCKET_ID = "1234.5678"
APP = App(id=AppId("12345"), key=AppKey("app-key"), secret="app-secret")


def _sig(message: str, secret: str = "app-secret") -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _auth(message: str, key: str = "app-key", secret: str = "app-secret") -> str:
    return f"{key}:{_sig(message, secret)}"


def _session(app: App = APP, now: float = 0.0) -> Session:
    return Session(app, SOCKET_ID, now)


def _msg(event: str, data: Any = None, channel: str | None = None) -> ClientMessage:
    return ClientMessage(event=event, channel=channel, data=data)


def _subscribe(session: Session, channel: str, now: float = 0.0, **extra: Any) -> list[Any]:
    return session.handle(_msg("pusher:subscribe", {"channel": channel, **extra}), now)


def _subscribe_private(session: Session, channel: str) -> list[Any]:
    return _subscribe(session, channel, auth=_auth(f"{SOCKET_ID}:{channel}"))


def _subscribe_presence(session: Session, channel: str, channel_data: str) -> list[Any]:
    auth = _auth(f"{SOCKET_ID}:{channel}:{channel_data}")
    return _subscribe(session, channel, auth=auth, channel_data=channel_data)


def _signin(session: Session, user_data: str, auth: str | None = None) -> list[Any]:
    if auth is None:
        auth = _auth(f"{SOCKET_ID}::user::{user_data}")
    return session.handle(_msg("pusher:signin", {"auth": auth, "user_data": user_data}), 0.0)


def _client_event(
    session: Session,
    channel: str | None,
    data: Any = None,
    now: float = 0.0,
    name: str = "client-x",
) -> list[Any]:
    return session.handle(_msg(name, data, channel), now)


# ping ------------------------------------------------------------------------------------
def test_session_ping_answers_pong() -> None:
    actions = _session().handle(_msg("pusher:ping", {}), 0.0)
    assert len(actions) == 1
    assert isinstance(actions[0], Send)
    message = orjson.loads(actions[0].payload)
    assert message["event"] == "pusher:pong"
    assert set(message) <= {"event", "data"}


def test_session_pong_does_nothing() -> None:
    assert _session().handle(_msg("pusher:pong", {}), 0.0) == []


def test_session_unknown_pusher_event_is_refused() -> None:
    with pytest.raises(PusherError) as info:
        _session().handle(_msg("pusher:foo", {}), 0.0)
    assert not isinstance(info.value, SubscriptionError | ClientEventError)


@pytest.mark.parametrize("event", ["pusher_internal:member_added", "my-event", "foo"])
def test_session_other_events_are_refused(event: str) -> None:
    with pytest.raises(PusherError):
        _session().handle(_msg(event, {}), 0.0)


# subscribe -------------------------------------------------------------------------------
def test_session_public_subscribe() -> None:
    session = _session()
    assert _subscribe(session, "my-channel", auth="") == [
        Subscribe("my-channel", ChannelKind.PUBLIC, None)
    ]
    assert "my-channel" in session.channels


def test_session_subscribe_accepts_string_data() -> None:
    session = _session()
    actions = session.handle(_msg("pusher:subscribe", '{"channel":"news"}'), 0.0)
    assert actions == [Subscribe("news", ChannelKind.PUBLIC, None)]


def test_session_public_cache_subscribe_needs_no_auth() -> None:
    assert _subscribe(_session(), "cache-x") == [Subscribe("cache-x", ChannelKind.CACHE, None)]


@pytest.mark.parametrize("data", [None, "not json", [1], {"channel": 5}, {"channel": ""}, {}])
def test_session_subscribe_with_bad_data_is_refused(data: Any) -> None:
    with pytest.raises(PusherError):
        _session().handle(_msg("pusher:subscribe", data), 0.0)


@pytest.mark.parametrize("channel", ["bad channel", "x" * 201, "#foo", "ch/1"])
def test_session_subscribe_invalid_name_is_subscription_error(channel: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), channel)
    assert info.value.status == 400


def test_session_private_subscribe_with_valid_auth() -> None:
    session = _session()
    assert _subscribe_private(session, "private-chat") == [
        Subscribe("private-chat", ChannelKind.PRIVATE, None)
    ]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "app-key:" + "0" * 64,
        _auth("9999.1:private-chat"),
        _auth(f"{SOCKET_ID}:private-other"),
        _auth(f"{SOCKET_ID}:private-chat", secret="other-secret"),
        _auth(f"{SOCKET_ID}:private-chat", key="other-key"),
        _sig(f"{SOCKET_ID}:private-chat"),
        5,
    ],
)
def test_session_private_subscribe_with_invalid_auth(auth: Any) -> None:
    session = _session()
    with pytest.raises(SubscriptionError) as info:
        _subscribe(session, "private-chat", auth=auth)
    assert info.value.status == 401
    assert info.value.channel == "private-chat"
    assert info.value.message.startswith("Invalid signature")
    assert "app-secret" not in info.value.message
    assert "private-chat" not in session.channels


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        ("private-encrypted-x", ChannelKind.PRIVATE_ENCRYPTED),
        ("private-encrypted-cache-x", ChannelKind.PRIVATE_ENCRYPTED_CACHE),
        ("private-cache-x", ChannelKind.PRIVATE_CACHE),
    ],
)
def test_session_private_like_channels_need_auth(channel: str, kind: ChannelKind) -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), channel, auth="")
    assert info.value.status == 401
    assert _subscribe_private(_session(), channel) == [Subscribe(channel, kind, None)]


def test_session_presence_subscribe_parses_member() -> None:
    session = _session()
    channel_data = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}'
    actions = _subscribe_presence(session, "presence-room", channel_data)
    member = Member("10", {"name": "Mr. Channels"})
    assert actions == [Subscribe("presence-room", ChannelKind.PRESENCE, member)]
    assert session.channels["presence-room"] == member


def test_session_presence_cache_subscribe() -> None:
    actions = _subscribe_presence(_session(), "presence-cache-r", '{"user_id":"u"}')
    assert actions == [Subscribe("presence-cache-r", ChannelKind.PRESENCE_CACHE, Member("u"))]


def test_session_presence_signature_covers_channel_data() -> None:
    channel_data = '{"user_id":"1"}'
    auth = _auth(f"{SOCKET_ID}:presence-room:{channel_data}")
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), "presence-room", auth=auth, channel_data='{"user_id":"2"}')
    assert info.value.status == 401
    assert info.value.message.startswith("Invalid signature")


def test_session_presence_private_style_signature_with_channel_data_is_refused() -> None:
    with pytest.raises(SubscriptionError):
        _subscribe(
            _session(),
            "presence-room",
            auth=_auth(f"{SOCKET_ID}:presence-room"),
            channel_data='{"user_id":"1"}',
        )


def test_session_presence_needs_channel_data_when_not_signed_in() -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), "presence-room", auth=_auth(f"{SOCKET_ID}:presence-room"))
    assert info.value.channel == "presence-room"


@pytest.mark.parametrize("channel_data", ['{"user_id":""}', '{"name":"x"}', "nope", "[]"])
def test_session_presence_bad_channel_data_is_refused(channel_data: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe_presence(_session(), "presence-room", channel_data)
    assert info.value.status == 400


def test_session_presence_channel_data_must_be_a_string() -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(
            _session(),
            "presence-room",
            auth=_auth(f"{SOCKET_ID}:presence-room"),
            channel_data={"user_id": "1"},
        )
    assert info.value.status == 400


def test_session_presence_member_info_too_large() -> None:
    channel_data = orjson.dumps({"user_id": "1", "user_info": {"a": "x" * 2000}}).decode()
    with pytest.raises(SubscriptionError) as info:
        _subscribe_presence(_session(), "presence-room", channel_data)
    assert info.value.status == 400


def test_session_presence_falls_back_to_signed_in_user() -> None:
    session = _session()
    _signin(session, '{"id":"42","user_info":{"name":"Ann"}}')
    actions = _subscribe(session, "presence-room", auth=_auth(f"{SOCKET_ID}:presence-room"))
    assert actions == [
        Subscribe("presence-room", ChannelKind.PRESENCE, Member("42", {"name": "Ann"}))
    ]


def test_session_presence_channel_data_overrides_signed_in_user() -> None:
    session = _session()
    _signin(session, '{"id":"42"}')
    actions = _subscribe_presence(session, "presence-room", '{"user_id":"7"}')
    assert actions == [Subscribe("presence-room", ChannelKind.PRESENCE, Member("7"))]


def test_session_resubscribe_returns_subscribe_again() -> None:
    session = _session()
    channel_data = '{"user_id":"1"}'
    first = _subscribe_presence(session, "presence-room", channel_data)
    assert _subscribe_presence(session, "presence-room", channel_data) == first
    assert _subscribe(session, "news") == _subscribe(session, "news")
    assert len(session.channels) == 2


def test_session_unsubscribe() -> None:
    session = _session()
    _subscribe_presence(session, "presence-room", '{"user_id":"1"}')
    _subscribe(session, "news")
    assert session.handle(_msg("pusher:unsubscribe", {"channel": "presence-room"}), 0.0) == [
        Unsubscribe("presence-room", ChannelKind.PRESENCE, Member("1"))
    ]
    assert session.handle(_msg("pusher:unsubscribe", {"channel": "news"}), 0.0) == [
        Unsubscribe("news", ChannelKind.PUBLIC, None)
    ]
    assert session.channels == {}


@pytest.mark.parametrize("channel", ["never-joined", "private-x", "#server-to-user-1"])
def test_session_unsubscribe_well_formed_unknown_channel_does_nothing(channel: str) -> None:
    session = _session()
    _subscribe(session, "news")
    assert session.handle(_msg("pusher:unsubscribe", {"channel": channel}), 0.0) == []
    assert "news" in session.channels


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (None, "'data' must be a JSON object"),
        ("not json", "'data' must be a JSON object"),
        ([1, 2], "'data' must be a JSON object"),
        (7, "'data' must be a JSON object"),
        ({}, "non-empty string"),
        ({"channel": 5}, "non-empty string"),
        ({"channel": ""}, "non-empty string"),
        ({"channel": None}, "non-empty string"),
        ({"channel": ["news"]}, "non-empty string"),
        ({"channel": {"a": {"b": "news"}}}, "non-empty string"),
        ({"channel": "x" * 201}, "longer than 200 characters"),
        ({"channel": "bad channel!"}, "may only contain"),
        ({"channel": "#reserved"}, "reserved"),
    ],
)
def test_session_malformed_unsubscribe_is_refused_with_code_null(data: Any, names: str) -> None:
    session = _session()
    _subscribe(session, "news")
    with pytest.raises(PusherError) as info:
        session.handle(_msg("pusher:unsubscribe", data), 0.0)
    assert type(info.value) is PusherError
    assert info.value.code is None
    assert info.value.message.startswith("Invalid pusher:unsubscribe: ")
    assert names in info.value.message
    assert "news" in session.channels


def test_session_leave_all_and_forget() -> None:
    session = _session()
    _subscribe(session, "a")
    _subscribe_presence(session, "presence-b", '{"user_id":"1"}')
    session.forget("a")
    session.forget("never")
    assert session.leave_all() == [Unsubscribe("presence-b", ChannelKind.PRESENCE, Member("1"))]
    assert session.channels == {}
    assert session.leave_all() == []


def test_session_channel_limit_per_socket() -> None:
    session = _session()
    for index in range(MAX_CHANNELS_PER_SOCKET):
        _subscribe(session, f"ch-{index}")
    with pytest.raises(SubscriptionError) as info:
        _subscribe(session, "one-too-many")
    assert info.value.status == 403
    assert "one-too-many" not in session.channels
    # already joined channels can still be re-subscribed
    assert _subscribe(session, "ch-0") == [Subscribe("ch-0", ChannelKind.PUBLIC, None)]


# server-to-user --------------------------------------------------------------------------
def test_session_server_to_user_needs_signin() -> None:
    with pytest.raises(SubscriptionError):
        _subscribe(_session(), "#server-to-user-1", auth="")


def test_session_server_to_user_only_for_self() -> None:
    session = _session()
    _signin(session, '{"id":"1"}')
    assert _subscribe(session, "#server-to-user-1", auth="") == [
        Subscribe("#server-to-user-1", ChannelKind.SERVER_TO_USER, None)
    ]
    with pytest.raises(SubscriptionError):
        _subscribe(session, "#server-to-user-2", auth="")
    with pytest.raises(SubscriptionError):
        _subscribe(session, "#server-to-user-11", auth="")


# signin ----------------------------------------------------------------------------------
def test_session_signin_success() -> None:
    session = _session()
    user_data = '{"id":"12345","user_info":{"name":"Ann"}}'
    actions = _signin(session, user_data)
    assert len(actions) == 2
    assert isinstance(actions[0], Send)
    assert orjson.loads(actions[0].payload) == {
        "event": "pusher:signin_success",
        "data": {"user_data": user_data},
    }
    assert actions[1] == SignIn("12345", ())
    assert session.user_id == "12345"


def test_session_signin_keeps_user_data_string_exactly() -> None:
    user_data = '{ "id" : "1",  "x": "é" }'
    actions = _signin(_session(), user_data)
    assert orjson.loads(actions[0].payload)["data"]["user_data"] == user_data


def test_session_signin_accepts_string_data() -> None:
    user_data = '{"id":"1"}'
    data = orjson.dumps({"auth": _auth(f"{SOCKET_ID}::user::{user_data}"), "user_data": user_data})
    actions = _session().handle(_msg("pusher:signin", data.decode()), 0.0)
    assert actions[-1] == SignIn("1", ())


def test_session_signin_watchlist() -> None:
    actions = _signin(_session(), '{"id":"1","watchlist":["2","3",4,"2"]}')
    assert actions[-1] == SignIn("1", ("2", "3", "4"))


@pytest.mark.parametrize(
    "auth",
    [
        "",
        "app-key:" + "0" * 64,
        _auth('9.9::user::{"id":"1"}'),
        _auth(f'{SOCKET_ID}::user::{{"id":"1"}}', secret="x"),
        _auth(f'{SOCKET_ID}::user::{{"id":"1"}}', key="other-key"),
        _auth(f'{SOCKET_ID}:user:{{"id":"1"}}'),
    ],
)
def test_session_signin_invalid_signature(auth: str) -> None:
    session = _session()
    with pytest.raises(PusherError):
        _signin(session, '{"id":"1"}', auth=auth)
    assert session.user_id is None


@pytest.mark.parametrize(
    "user_data", ['{"name":"x"}', '{"id":""}', '{"id":1}', '{"id":null}', "[]", "not json"]
)
def test_session_signin_needs_string_id(user_data: str) -> None:
    session = _session()
    with pytest.raises(PusherError):
        _signin(session, user_data)
    assert session.user_id is None


@pytest.mark.parametrize("data", [{"auth": "x"}, {"auth": "x", "user_data": {"id": "1"}}, None])
def test_session_signin_needs_user_data_string(data: Any) -> None:
    with pytest.raises(PusherError):
        _session().handle(_msg("pusher:signin", data), 0.0)


def test_session_signin_as_another_user_is_refused() -> None:
    session = _session()
    _signin(session, '{"id":"1"}')
    with pytest.raises(PusherError):
        _signin(session, '{"id":"2"}')
    assert session.user_id == "1"


def test_session_signin_again_as_same_user_does_not_sign_in_twice() -> None:
    session = _session()
    _signin(session, '{"id":"1"}')
    actions = _signin(session, '{"id":"1"}')
    assert not any(isinstance(action, SignIn) for action in actions)
    assert orjson.loads(actions[0].payload)["event"] == "pusher:signin_success"


def test_session_signin_watchlist_over_limit() -> None:
    ids = [str(n) for n in range(MAX_WATCHLIST + 20)]
    user_data = orjson.dumps({"id": "me", "watchlist": ids}).decode()
    actions = _signin(_session(), user_data)
    assert len(actions) == 3
    assert orjson.loads(actions[0].payload)["event"] == "pusher:signin_success"
    error = orjson.loads(actions[1].payload)
    assert error["event"] == "pusher:error"
    assert error["data"]["code"] == 4302
    assert actions[2] == SignIn("me", tuple(ids[:MAX_WATCHLIST]))


def test_session_signin_watchlist_at_limit_has_no_error() -> None:
    ids = [str(n) for n in range(MAX_WATCHLIST)]
    actions = _signin(_session(), orjson.dumps({"id": "me", "watchlist": ids}).decode())
    assert len(actions) == 2
    assert actions[1] == SignIn("me", tuple(ids))


# authorized connections ------------------------------------------------------------------
def test_session_authorized_by_default_without_user_authentication() -> None:
    assert _session().authorized


def test_session_authorized_flips_on_signin() -> None:
    session = _session(replace(APP, enable_user_authentication=True))
    assert not session.authorized
    _subscribe(session, "public")
    assert not session.authorized
    with pytest.raises(PusherError):
        _signin(session, '{"id":"1"}', auth="app-key:bad")
    assert not session.authorized
    _signin(session, '{"id":"1"}')
    assert session.authorized


def test_session_authorized_flips_on_private_subscribe() -> None:
    session = _session(replace(APP, enable_user_authentication=True))
    with pytest.raises(SubscriptionError):
        _subscribe(session, "private-x", auth="app-key:bad")
    assert not session.authorized
    _subscribe_private(session, "private-x")
    assert session.authorized


def test_session_authorized_flips_on_presence_subscribe() -> None:
    session = _session(replace(APP, enable_user_authentication=True))
    _subscribe_presence(session, "presence-x", '{"user_id":"1"}')
    assert session.authorized


# client events ---------------------------------------------------------------------------
def test_session_client_event_on_private_channel() -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    actions = _client_event(session, "private-chat", {"text": "hi"}, name="client-typing")
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, ClientEvent)
    assert action.channel == "private-chat"
    assert action.event == "client-typing"
    assert action.data == {"text": "hi"}
    assert action.user_id is None
    assert orjson.loads(action.payload) == {
        "event": "client-typing",
        "channel": "private-chat",
        "data": {"text": "hi"},
    }


def test_session_client_event_string_data_relayed_as_sent() -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    (action,) = _client_event(session, "private-chat", '{"a":1}')
    assert orjson.loads(action.payload)["data"] == '{"a":1}'


def test_session_client_event_on_presence_adds_user_id() -> None:
    session = _session()
    _subscribe_presence(session, "presence-room", '{"user_id":10}')
    (action,) = _client_event(session, "presence-room", {"a": [1, 2]})
    assert action.user_id == "10"
    assert orjson.loads(action.payload) == {
        "event": "client-x",
        "channel": "presence-room",
        "data": {"a": [1, 2]},
        "user_id": "10",
    }


def test_session_client_event_on_private_cache_channel() -> None:
    session = _session()
    _subscribe_private(session, "private-cache-x")
    assert isinstance(_client_event(session, "private-cache-x", {})[0], ClientEvent)


def test_session_client_event_disabled_for_app() -> None:
    session = _session(replace(APP, enable_client_messages=False))
    _subscribe_private(session, "private-chat")
    with pytest.raises(ClientEventError):
        _client_event(session, "private-chat", {})


def test_session_client_event_not_subscribed_hosted_message() -> None:
    session = _session()
    _subscribe_private(session, "private-other")
    with pytest.raises(ClientEventError) as info:
        _client_event(session, "private-chat", {})
    assert info.value.message == (
        "Cannot broadcast client event (connection not subscribed to channel private-chat)"
    )


def test_session_client_event_named_only_client_dash_is_refused() -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    with pytest.raises(ClientEventError) as info:
        _client_event(session, "private-chat", {}, name="client-")
    assert info.value.code is None
    assert "a name after 'client-'" in info.value.message


@pytest.mark.parametrize("channel", ["private-chat", "private-other", None])
def test_session_client_event_without_data_is_refused(channel: str | None) -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    with pytest.raises(ClientEventError) as info:
        _client_event(session, channel, None, name="client-typing")
    assert info.value.code is None
    assert info.value.message == "Invalid client event client-typing: 'data' is required"


def test_session_client_event_without_channel() -> None:
    with pytest.raises(ClientEventError):
        _client_event(_session(), None, {})


@pytest.mark.parametrize("channel", ["public", "cache-x"])
def test_session_client_event_on_public_channel_refused(channel: str) -> None:
    session = _session()
    _subscribe(session, channel)
    with pytest.raises(ClientEventError):
        _client_event(session, channel, {})


@pytest.mark.parametrize("channel", ["private-encrypted-x", "private-encrypted-cache-x"])
def test_session_client_event_on_encrypted_channel_refused(channel: str) -> None:
    session = _session()
    _subscribe_private(session, channel)
    with pytest.raises(ClientEventError) as info:
        _client_event(session, channel, {})
    assert "encrypted" in info.value.message


def test_session_client_event_name_too_long() -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    with pytest.raises(ClientEventError):
        _client_event(session, "private-chat", {}, name="client-" + "x" * 200)


def test_session_client_event_rate_limit() -> None:
    session = _session(now=100.0)
    _subscribe_private(session, "private-chat")
    for _ in range(10):
        _client_event(session, "private-chat", {}, now=100.0)
    with pytest.raises(ClientEventError) as info:
        _client_event(session, "private-chat", {}, now=100.0)
    assert info.value.code == 4301
    with pytest.raises(ClientEventError):
        _client_event(session, "private-chat", {}, now=100.05)
    for _ in range(10):
        _client_event(session, "private-chat", {}, now=101.5)
    with pytest.raises(ClientEventError) as info:
        _client_event(session, "private-chat", {}, now=101.5)
    assert info.value.code == 4301


def test_session_client_event_sustained_rate_is_ten_per_second() -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    allowed = 0
    for step in range(500):  # 5 seconds in 10 ms steps
        try:
            _client_event(session, "private-chat", {}, now=step / 100)
        except ClientEventError as exc:
            assert exc.code == 4301
        else:
            allowed += 1
    assert 55 <= allowed <= 61


def test_session_client_event_rate_limit_zero_is_unlimited() -> None:
    session = _session(replace(APP, max_client_events_per_second=0))
    _subscribe_private(session, "private-chat")
    for _ in range(50):
        _client_event(session, "private-chat", {}, now=0.0)


def test_session_client_event_custom_rate() -> None:
    session = _session(replace(APP, max_client_events_per_second=2))
    _subscribe_private(session, "private-chat")
    _client_event(session, "private-chat", {})
    _client_event(session, "private-chat", {})
    with pytest.raises(ClientEventError):
        _client_event(session, "private-chat", {})


def test_session_client_event_payload_size_limit() -> None:
    session = _session()
    _subscribe_private(session, "private-chat")
    (action,) = _client_event(session, "private-chat", {"d": "x" * 9000})
    assert isinstance(action, ClientEvent)
    with pytest.raises(ClientEventError):
        _client_event(session, "private-chat", {"d": "x" * 11 * 1024})


def test_session_repr_has_no_secret() -> None:
    assert "app-secret" not in repr(_session())


def test_session_presence_signed_in_fallback_enforces_user_info_limit() -> None:
    session = _session()
    user_data = orjson.dumps({"id": "1", "user_info": {"bio": "x" * 2000}}).decode()
    _signin(session, user_data)
    with pytest.raises(SubscriptionError) as info:
        _subscribe(session, "presence-room", auth=_auth(f"{SOCKET_ID}:presence-room"))
    assert info.value.status == 400


def test_session_presence_signed_in_fallback_enforces_user_id_length() -> None:
    session = _session()
    _signin(session, orjson.dumps({"id": "u" * 129}).decode())
    with pytest.raises(SubscriptionError) as info:
        _subscribe(session, "presence-room", auth=_auth(f"{SOCKET_ID}:presence-room"))
    assert info.value.status == 400


# hostile values ---------------------------------------------------------------------------
def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "channel", [_deep(60), [[["news"]]], list(range(100_000)), {"channel": "news"}, None]
)
def test_session_subscribe_with_container_channel_is_refused_without_a_channel(
    channel: Any,
) -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), channel)
    assert info.value.channel == ""  # no repr of the value: only pusher:error goes out
    assert info.value.status == 400
    assert info.value.message == "Invalid channel: channel name must be a non-empty string"


@pytest.mark.parametrize(("channel", "named"), [(42, "42"), (True, "true"), ("x" * 300, "x" * 200)])
def test_session_subscribe_with_bad_scalar_channel_names_it(channel: Any, named: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), channel)
    assert info.value.channel == named
    assert info.value.status == 400


def test_session_presence_channel_data_nested_too_deep_is_refused() -> None:
    channel_data = '{"user_id":"1","user_info":' + '{"a":' * 300 + "1" + "}" * 300 + "}"
    with pytest.raises(SubscriptionError) as info:
        _subscribe_presence(_session(), "presence-room", channel_data)
    assert info.value.status == 400
    assert "nested deeper than" in info.value.message


def test_session_signin_user_info_nested_too_deep_is_refused() -> None:
    user_data = '{"id":"1","user_info":' + "[" * 300 + "]" * 300 + "}"
    session = _session()
    with pytest.raises(PusherError) as info:
        _signin(session, user_data)
    assert "nested deeper than" in info.value.message
    assert session.user_id is None


@pytest.mark.parametrize("auth", [_deep(60), ["a"] * 10_000, 12, None])
def test_session_subscribe_with_non_string_auth_is_refused(auth: Any) -> None:
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), "private-chat", auth=auth)
    assert info.value.status == 401
    assert info.value.message.endswith("but got ")


def test_session_bad_signature_echo_of_a_huge_channel_data_is_cut() -> None:
    channel_data = '{"user_id":"1","user_info":"' + "x" * 50_000 + '"}'
    with pytest.raises(SubscriptionError) as info:
        _subscribe(_session(), "presence-room", auth="app-key:0", channel_data=channel_data)
    assert info.value.status == 401
    assert f"of {SOCKET_ID}:presence-room:" + '{"user_id":"1"' in info.value.message
    assert len(info.value.message) < 1200


def test_session_distinct_users_counts_each_user_once_per_app() -> None:
    app_a = App(id=AppId("a"), key=AppKey("ka"), secret="s")
    app_b = App(id=AppId("b"), key=AppKey("kb"), secret="s")
    one = Session(app_a, "1.1", 0.0)
    one.user_id = "u1"
    one.channels = {"presence-x": Member("u1", None), "presence-y": Member("u2", None)}
    two = Session(app_a, "1.2", 0.0)
    two.channels = {"presence-x": Member("u2", None), "public": None}
    three = Session(app_b, "1.3", 0.0)
    three.user_id = "u1"
    anonymous = Session(app_b, "1.4", 0.0)
    anonymous.channels = {"public": None}
    assert distinct_users([one, two, three, anonymous, None]) == {"a": 2, "b": 1}
