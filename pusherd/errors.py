"""Errors raised inside pusherd, each carrying the Pusher code it maps to.

The tree::

    PusherdError
    ├── ConfigError                 a bad config file or environment (CLI exit 1)
    ├── BrokerError                 the shared backend (Redis) failed
    └── PusherError                 anything a client is told about (code, message)
        ├── ConnectionError_        fatal: ``pusher:error`` then close with ``code``
        │   (4001 unknown app, 4003 disabled, 4004 quota, 4005 path, 4007/4008
        │   protocol, 4009 unauthorized, 4100 capacity, 4200 shutdown, 4201 pong)
        ├── SubscriptionError       a subscribe failed: ``pusher:subscription_error``
        │                           on the channel (plus ``pusher:error``), socket kept
        ├── ClientEventError        a client event was refused: ``pusher:error``, kept
        └── ApiError                a REST request failed: HTTP ``status`` + text body

Exactly one function in the I/O layer turns a ``PusherError`` into frames or an
HTTP response (``pusherd.server.connection`` and ``pusherd.server.http_api``).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ApiError",
    "BrokerError",
    "ClientEventError",
    "CloseCode",
    "ConfigError",
    "ConnectionError_",
    "PusherError",
    "PusherdError",
    "SubscriptionError",
]


class CloseCode(IntEnum):
    """Pusher close codes (Pusher protocol, "Error Codes")."""

    SSL_ONLY = 4000
    APP_NOT_FOUND = 4001
    APP_DISABLED = 4003
    OVER_QUOTA = 4004
    PATH_NOT_FOUND = 4005
    INVALID_VERSION = 4006
    UNSUPPORTED_PROTOCOL = 4007
    NO_PROTOCOL = 4008
    UNAUTHORIZED = 4009
    OVER_CAPACITY = 4100
    RECONNECT = 4200
    PONG_TIMEOUT = 4201
    INACTIVITY = 4202
    CLIENT_EVENT_RATE_LIMIT = 4301
    WATCHLIST_LIMIT = 4302


class PusherdError(Exception):
    """Root of every error pusherd raises on purpose."""


class ConfigError(PusherdError):
    """The configuration is invalid; the message says where and why."""


class BrokerError(PusherdError):
    """The shared-state backend failed or is unreachable."""


class PusherError(PusherdError):
    """An error a client is told about.

    Args:
        message: human-readable text sent to the client.
        code: the Pusher error code, or ``None`` for hosted Pusher's ``code: null``.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ConnectionError_(PusherError):
    """A fatal error: the socket gets ``pusher:error`` and is closed with ``code``."""

    code: int

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)


class SubscriptionError(PusherError):
    """A subscription was refused; the socket stays open.

    Args:
        channel: the channel the client tried to join.
        status: HTTP-like status for ``pusher:subscription_error`` (401, 403, 413…).
    """

    def __init__(
        self, message: str, channel: str, status: int = 401, code: int | None = None
    ) -> None:
        super().__init__(message, code)
        self.channel = channel
        self.status = status


class ClientEventError(PusherError):
    """A client event was refused; the socket stays open."""


class ApiError(PusherError):
    """A REST API request failed with ``status`` and a plain-text message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, None)
        self.status = status
