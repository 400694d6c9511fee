"""One socket's Pusher state machine: client messages in, actions out.

``Session.handle(message, now)`` validates a client message against the app's rules
(Pusher protocol v7: subscribe/unsubscribe, ping, signin, client events) and returns
the ``Action``s the I/O layer carries out. Refusals are raised as ``PusherError``s;
the connection turns them into frames. Time is passed in, never read.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from pusherd.apps.base import App
from pusherd.errors import ClientEventError, CloseCode, PusherError, SubscriptionError
from pusherd.protocol.actions import Action, ClientEvent, Send, SignIn, Subscribe, Unsubscribe
from pusherd.protocol.channels import (
    SERVER_TO_USER_PREFIX,
    ChannelKind,
    channel_kind,
    channel_name_error,
)
from pusherd.protocol.messages import (
    ClientMessage,
    data_object,
    encode_error,
    encode_event,
    json_preview,
    load_json,
)
from pusherd.protocol.presence import Member, parse_member
from pusherd.protocol.ratelimit import TokenBucket
from pusherd.protocol.signing import auth_matches

__all__ = ["MAX_CHANNELS_PER_SOCKET", "MAX_WATCHLIST", "PONG", "Session", "distinct_users"]

MAX_CHANNELS_PER_SOCKET = 1000
MAX_WATCHLIST = 100
PONG = encode_event("pusher:pong", {})


class Session:
    """The protocol state of one connection.

    Args:
        app: the app the socket connected to.
        socket_id: this connection's id (``\\d+\\.\\d+``).
        now: the time the connection opened (seconds, any monotonic origin).
    """

    __slots__ = (
        "_client_events",
        "app",
        "authorized",
        "channels",
        "opened_at",
        "socket_id",
        "user_id",
        "user_info",
    )

    def __init__(self, app: App, socket_id: str, now: float) -> None:
        self.app = app
        self.socket_id = socket_id
        self.opened_at = now
        # channel -> presence member (None for other kinds)
        self.channels: dict[str, Member | None] = {}
        self.user_id: str | None = None
        self.user_info: object = None
        self.authorized = not app.enable_user_authentication
        # Made on the first client event: most sockets never send one.
        self._client_events: TokenBucket | None = None

    def __repr__(self) -> str:
        return f"Session(app={self.app.id!r}, socket_id={self.socket_id!r})"

    def handle(self, message: ClientMessage, now: float) -> list[Action]:
        """Handle one client message.

        Raises:
            SubscriptionError: a subscribe was refused (socket stays open).
            ClientEventError: a client event was refused (socket stays open).
            PusherError: any other bad message (socket stays open).
        """
        event = message.event
        if event == "pusher:ping":
            return [Send(PONG)]
        if event == "pusher:pong":
            return []
        if event == "pusher:subscribe":
            return self._subscribe(message)
        if event == "pusher:unsubscribe":
            return self._unsubscribe(message)
        if event == "pusher:signin":
            return self._signin(message)
        if event.startswith("client-"):
            return self._client_event(message, now)
        raise PusherError(f"Unsupported event: {event[:64]}")

    # subscribe / unsubscribe --------------------------------------------------------
    def _subscribe(self, message: ClientMessage) -> list[Action]:
        data = data_object(message)
        channel = data.get("channel")
        error = channel_name_error(channel)
        if error is not None:
            # A string or a number names a channel pusher-js can route the error to
            # (its channel map coerces keys); containers are never repr'd: they may
            # be huge or nested 64 deep, so they get only the pusher:error.
            named = json_preview(channel) if isinstance(channel, str | int | float) else ""
            raise SubscriptionError(f"Invalid channel: {error}", named, 400)
        assert isinstance(channel, str)
        kind = channel_kind(channel)
        if channel in self.channels:
            return [Subscribe(channel, kind, self.channels[channel])]
        if len(self.channels) >= MAX_CHANNELS_PER_SOCKET:
            raise SubscriptionError(
                f"Too many channels: at most {MAX_CHANNELS_PER_SOCKET} per connection",
                channel,
                403,
            )
        member: Member | None = None
        if kind is ChannelKind.SERVER_TO_USER:
            if self.user_id is None or channel != SERVER_TO_USER_PREFIX + self.user_id:
                raise SubscriptionError(
                    "Cannot subscribe to another user's channel (sign in as that user first)",
                    channel,
                    403,
                    CloseCode.UNAUTHORIZED,
                )
        elif kind.needs_auth:
            member = self._check_auth(channel, kind, data)
            self.authorized = True
        self.channels[channel] = member
        return [Subscribe(channel, kind, member)]

    def _check_auth(
        self, channel: str, kind: ChannelKind, data: dict[str, object]
    ) -> Member | None:
        auth = data.get("auth")
        channel_data = data.get("channel_data")
        if channel_data is not None and not isinstance(channel_data, str):
            raise SubscriptionError("Invalid channel_data: must be a JSON string", channel, 400)
        key, secret = self.app.key, self.app.secret
        if kind.is_presence and channel_data is None and self.user_id is None:
            raise SubscriptionError(
                "Presence channels need channel_data (or a signed-in user)", channel, 400
            )
        if kind.is_presence and channel_data is not None:
            string = f"{self.socket_id}:{channel}:{channel_data}"
        else:
            string = f"{self.socket_id}:{channel}"
        if not auth_matches(key, secret, string, auth):
            given = auth if isinstance(auth, str) else ""
            raise SubscriptionError(
                # The string is echoed for debugging, cut so a huge channel_data is not
                # sent back twice (subscription_error and pusher:error).
                "Invalid signature: Expected HMAC SHA256 hex digest of "
                f"{_cut(string, 1000)}, but got {given.partition(':')[2][:80]}",
                channel,
                401,
                CloseCode.UNAUTHORIZED,
            )
        if not kind.is_presence:
            return None
        if channel_data is None:
            assert self.user_id is not None
            # The signed-in user stands in for channel_data, under the same limits.
            channel_data = orjson.dumps(
                {"user_id": self.user_id, "user_info": self.user_info}
            ).decode()
        try:
            return parse_member(channel_data, self.app.max_presence_member_bytes)
        except ValueError as exc:
            raise SubscriptionError(f"Invalid channel_data: {exc}", channel, 400) from None

    def _unsubscribe(self, message: ClientMessage) -> list[Action]:
        data = data_object(message)
        channel = data.get("channel")
        if not isinstance(channel, str) or channel not in self.channels:
            error = channel_name_error(channel)
            if error is not None:
                raise PusherError(f"Invalid pusher:unsubscribe: {error}")
            return []  # a well-formed channel this socket is not on: silent, as on Pusher
        assert isinstance(channel, str)
        member = self.channels.pop(channel)
        return [Unsubscribe(channel, channel_kind(channel), member)]

    def unavailable(self, action: Action) -> PusherError:
        """The error for ``action`` when the cluster could not be reached (503).

        A channel the action was about is forgotten, so the client can try again.
        """
        channel = getattr(action, "channel", None)
        if channel is None:
            return PusherError("Temporarily unavailable, try again")
        self.forget(channel)
        return SubscriptionError("Temporarily unavailable, try again", channel, 503)

    def forget(self, channel: str) -> None:
        """Drop ``channel`` after the cluster refused the subscription (presence full)."""
        self.channels.pop(channel, None)

    def leave_all(self) -> list[Unsubscribe]:
        """Return an ``Unsubscribe`` for every channel (the socket is closing)."""
        actions = [Unsubscribe(ch, channel_kind(ch), m) for ch, m in self.channels.items()]
        self.channels.clear()
        return actions

    # signin -------------------------------------------------------------------------
    def _signin(self, message: ClientMessage) -> list[Action]:
        data = data_object(message)
        user_data = data.get("user_data")
        if not isinstance(user_data, str):
            raise PusherError(
                "Invalid pusher:signin: user_data must be a JSON string", CloseCode.UNAUTHORIZED
            )
        string = f"{self.socket_id}::user::{user_data}"
        if not auth_matches(self.app.key, self.app.secret, string, data.get("auth")):
            raise PusherError("Invalid signature for pusher:signin", CloseCode.UNAUTHORIZED)
        try:
            user = load_json(user_data)
        except ValueError as exc:
            raise PusherError(
                f"Invalid user_data: must be a JSON object ({exc})", CloseCode.UNAUTHORIZED
            ) from None
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, str) or not user_id:
            raise PusherError(
                "Invalid user_data: 'id' must be a non-empty string", CloseCode.UNAUTHORIZED
            )
        assert isinstance(user, dict)
        if self.user_id is not None and self.user_id != user_id:
            raise PusherError(
                "This connection is already signed in as another user", CloseCode.UNAUTHORIZED
            )
        watchlist_raw = user.get("watchlist") or []
        if not isinstance(watchlist_raw, list):
            watchlist_raw = []
        watchlist = tuple(
            dict.fromkeys(
                str(w)
                for w in watchlist_raw
                if isinstance(w, str | int) and not isinstance(w, bool)
            )
        )
        actions: list[Action] = [
            Send(encode_event("pusher:signin_success", {"user_data": user_data}, as_string=False))
        ]
        if len(watchlist) > MAX_WATCHLIST:
            actions.append(
                Send(
                    encode_error(
                        "Watchlist limit exceeded: only the first "
                        f"{MAX_WATCHLIST} user ids are watched",
                        CloseCode.WATCHLIST_LIMIT,
                    )
                )
            )
            watchlist = watchlist[:MAX_WATCHLIST]
        first_time = self.user_id is None
        self.user_id = user_id
        self.user_info = user.get("user_info")
        self.authorized = True
        if first_time:
            actions.append(SignIn(user_id, watchlist))
        return actions

    # client events ------------------------------------------------------------------
    def _client_event(self, message: ClientMessage, now: float) -> list[Action]:
        channel = message.channel
        app = self.app
        if not app.enable_client_messages:
            raise ClientEventError("Client events are not enabled for this app")
        if message.event == "client-":
            raise ClientEventError("Invalid client event: a name after 'client-' is required")
        if message.data is None:
            raise ClientEventError(
                f"Invalid client event {message.event[:200]}: 'data' is required"
            )
        if channel is None:
            raise ClientEventError("Client events need a channel")
        if channel not in self.channels:
            raise ClientEventError(
                "Cannot broadcast client event (connection not subscribed to channel "
                f"{channel[:200]})"
            )
        kind = channel_kind(channel)
        if not kind.allows_client_events:
            raise ClientEventError(
                "Client events are only allowed on private and presence channels"
                + (" (not encrypted ones)" if kind.is_encrypted else "")
            )
        if len(message.event) > 200:
            raise ClientEventError("Client event name longer than 200 characters")
        bucket = self._client_events
        if bucket is None:
            bucket = self._client_events = TokenBucket(app.max_client_events_per_second, now)
        if not bucket.take(1, now):
            raise ClientEventError(
                "Client event rejected due to rate limit: at most "
                f"{app.max_client_events_per_second} per second",
                CloseCode.CLIENT_EVENT_RATE_LIMIT,
            )
        member = self.channels[channel]
        user_id = member.user_id if member is not None else None
        # The data goes out as the client sent it (object or string), like hosted Pusher.
        relayed: dict[str, object] = {"event": message.event, "channel": channel}
        if message.data is not None:
            relayed["data"] = message.data
        if user_id is not None:
            relayed["user_id"] = user_id
        payload = orjson.dumps(relayed)
        if len(payload) > app.max_event_payload_bytes + 512:
            raise ClientEventError(f"Client event data larger than {app.max_event_payload_kb} KB")
        return [ClientEvent(channel, message.event, message.data, user_id, payload)]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def distinct_users(sessions: Iterable[Session | None]) -> dict[str, int]:
    """Distinct users per app: signed in (``pusher:signin``) or members of a presence channel.

    A user with several sockets, or in several presence channels, counts once per app.
    """
    users: dict[str, set[str]] = {}
    for session in sessions:
        if session is None:
            continue
        ids = {member.user_id for member in session.channels.values() if member is not None}
        if session.user_id is not None:
            ids.add(session.user_id)
        if ids:
            users.setdefault(session.app.id, set()).update(ids)
    return {app_id: len(ids) for app_id, ids in users.items()}
