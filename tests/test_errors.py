"""The error tree and the Pusher codes each error carries."""

from __future__ import annotations

import pytest

from pusherd.brokers import create_broker
from pusherd.errors import (
    ApiError,
    BrokerError,
    ClientEventError,
    CloseCode,
    ConfigError,
    ConnectionError_,
    PusherdError,
    PusherError,
    SubscriptionError,
)

__all__: list[str] = []


def test_errors_tree() -> None:
    for base in (ConfigError, BrokerError, PusherError):
        assert issubclass(base, PusherdError)
    for cls in (ConnectionError_, SubscriptionError, ClientEventError, ApiError):
        assert issubclass(cls, PusherError)
    assert issubclass(PusherdError, Exception)


def test_errors_pusher_error_default_code_is_null() -> None:
    error = PusherError("bad")
    assert error.message == "bad"
    assert error.code is None
    assert str(error) == "bad"


def test_errors_connection_error_carries_close_code() -> None:
    error = ConnectionError_("Application does not exist", CloseCode.APP_NOT_FOUND)
    assert error.code == 4001
    assert error.message == "Application does not exist"


def test_errors_subscription_error_fields() -> None:
    error = SubscriptionError("Invalid signature", "private-x")
    assert (error.channel, error.status, error.code) == ("private-x", 401, None)
    error = SubscriptionError("Too many", "c", 403, CloseCode.UNAUTHORIZED)
    assert (error.status, error.code) == (403, 4009)


def test_errors_client_event_error_code() -> None:
    assert ClientEventError("x").code is None
    assert ClientEventError("x", CloseCode.CLIENT_EVENT_RATE_LIMIT).code == 4301


def test_errors_api_error_status() -> None:
    error = ApiError("Timestamp expired", 401)
    assert (error.status, error.code, error.message) == (401, None, "Timestamp expired")


def test_errors_close_codes_match_the_pusher_list() -> None:
    expected = {
        "SSL_ONLY": 4000,
        "APP_NOT_FOUND": 4001,
        "APP_DISABLED": 4003,
        "OVER_QUOTA": 4004,
        "PATH_NOT_FOUND": 4005,
        "INVALID_VERSION": 4006,
        "UNSUPPORTED_PROTOCOL": 4007,
        "NO_PROTOCOL": 4008,
        "UNAUTHORIZED": 4009,
        "OVER_CAPACITY": 4100,
        "RECONNECT": 4200,
        "PONG_TIMEOUT": 4201,
        "INACTIVITY": 4202,
        "CLIENT_EVENT_RATE_LIMIT": 4301,
        "WATCHLIST_LIMIT": 4302,
    }
    assert {code.name: code.value for code in CloseCode} == expected


def test_errors_permanent_codes_are_not_in_the_reconnect_range() -> None:
    for code in (CloseCode.APP_NOT_FOUND, CloseCode.APP_DISABLED, CloseCode.UNAUTHORIZED):
        assert 4000 <= code < 4100


def test_errors_create_broker_unknown_driver() -> None:
    with pytest.raises(ConfigError) as info:
        create_broker("kafka")
    assert "kafka" in str(info.value)
