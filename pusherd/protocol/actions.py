"""What a ``Session`` asks the I/O layer to do, as plain values.

The session decides; the connection carries out. Actions that need the cluster
(``Subscribe``, ``Unsubscribe``, ``ClientEvent``, ``SignIn``) are executed in order
by the connection, which talks to the broker and hub.

Actions are treated as immutable but not declared ``frozen``: a frozen dataclass sets
each field through ``object.__setattr__`` and costs three times as much to build, and
one is built for every subscribe and every leave. The same holds for the other values
built on every connect (``frames.Message``, ``messages.ClientMessage``,
``handshake.Request``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pusherd.protocol.channels import ChannelKind
from pusherd.protocol.presence import Member
from pusherd.types import JSON

__all__ = ["Action", "ClientEvent", "Send", "SignIn", "Subscribe", "Unsubscribe"]


@dataclass(slots=True)
class Send:
    """Write ``payload`` (a JSON text message) to this socket."""

    payload: bytes


@dataclass(slots=True)
class Subscribe:
    """Join ``channel``; ``member`` is set for presence channels."""

    channel: str
    kind: ChannelKind
    member: Member | None = None


@dataclass(slots=True)
class Unsubscribe:
    """Leave ``channel``; ``member`` is the presence member this socket had joined as."""

    channel: str
    kind: ChannelKind
    member: Member | None = None


@dataclass(slots=True)
class ClientEvent:
    """Relay a ``client-*`` event to the channel's other subscribers.

    ``payload`` is the message others receive (``user_id`` included on presence).
    """

    channel: str
    event: str
    data: JSON
    user_id: str | None
    payload: bytes


@dataclass(slots=True)
class SignIn:
    """The socket signed in as ``user_id``; ``watchlist`` holds at most 100 ids."""

    user_id: str
    watchlist: tuple[str, ...]


Action = Send | Subscribe | Unsubscribe | ClientEvent | SignIn
