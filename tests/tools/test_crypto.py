"""Encrypted channel payloads: sealed and opened like Pusher's SDKs do."""

from __future__ import annotations

import base64
import secrets

import orjson
import pusher
import pytest

from pusherd.apps.base import App
from pusherd.errors import ConfigError
from pusherd.tools.crypto import decrypt, encrypt, master_key, shared_secret
from pusherd.types import AppId, AppKey

__all__: list[str] = []

KEY = secrets.token_bytes(32)
KEY_B64 = base64.b64encode(KEY).decode()


def test_crypto_round_trip_and_wrong_channel_fails() -> None:
    sealed = encrypt("private-encrypted-a", KEY, '{"x":1}')
    assert decrypt("private-encrypted-a", KEY, sealed) == '{"x":1}'
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt("private-encrypted-b", KEY, sealed)
    with pytest.raises(ValueError, match="not an encrypted payload"):
        decrypt("private-encrypted-a", KEY, '{"plain": true}')


def test_crypto_opens_what_the_python_sdk_sealed() -> None:
    client = pusher.Pusher(app_id="1", key="k", secret="s", encryption_master_key_base64=KEY_B64)
    from pusher.crypto import encrypt as sdk_encrypt

    sealed = sdk_encrypt(
        "private-encrypted-z", '{"y":2}', client._pusher_client._encryption_master_key
    )
    assert decrypt("private-encrypted-z", KEY, orjson.dumps(sealed).decode()) == '{"y":2}'
    assert len(shared_secret("private-encrypted-z", KEY)) == 32


def test_crypto_master_key_from_config_then_environment() -> None:
    app = App(id=AppId("1"), key=AppKey("k"), secret="s")
    assert master_key(app, {}) is None
    assert master_key(app, {"PUSHER_ENCRYPTION_MASTER_KEY_BASE64": KEY_B64}) == KEY
    configured = App(
        id=AppId("1"), key=AppKey("k"), secret="s", encryption_master_key_base64=KEY_B64
    )
    assert master_key(configured, {"PUSHERD_ENCRYPTION_MASTER_KEY_BASE64": "zz"}) == KEY
    with pytest.raises(ConfigError, match="32 bytes"):
        master_key(app, {"PUSHERD_ENCRYPTION_MASTER_KEY_BASE64": base64.b64encode(b"s").decode()})
