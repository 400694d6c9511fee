"""End-to-end encrypted channels (``private-encrypted-…``) from the tools' side.

The server never sees plaintext: publishers encrypt with a per-channel key and clients
decrypt. Pusher derives that key as ``SHA-256(channel name + master key)`` and seals
each payload with NaCl ``secretbox`` (XSalsa20-Poly1305), sending
``{"nonce": b64, "ciphertext": b64}`` as the event data. ``secretbox`` comes from PyNaCl
(``pip install 'pusherd[encryption]'``); without it the tools print ciphertext and say so.

The master key is the app's ``encryption_master_key_base64`` in the config, or
``$PUSHERD_ENCRYPTION_MASTER_KEY_BASE64`` / ``$PUSHER_ENCRYPTION_MASTER_KEY_BASE64``
(the name Laravel apps use).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
from collections.abc import Mapping
from typing import Any

import orjson

from pusherd.apps.base import App
from pusherd.errors import ConfigError

__all__ = [
    "CryptoUnavailable",
    "decrypt",
    "encrypt",
    "master_key",
    "secretbox_available",
    "shared_secret",
]

_ENV_NAMES = ("PUSHERD_ENCRYPTION_MASTER_KEY_BASE64", "PUSHER_ENCRYPTION_MASTER_KEY_BASE64")


class CryptoUnavailable(RuntimeError):
    """PyNaCl is not installed, so ``secretbox`` cannot be opened or sealed."""


def master_key(app: App, environ: Mapping[str, str]) -> bytes | None:
    """The app's 32-byte encryption master key, or None when none is configured."""
    raw = app.encryption_master_key_base64
    if not raw:
        raw = next((environ[name] for name in _ENV_NAMES if environ.get(name)), "")
    if not raw:
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("the encryption master key is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(f"the encryption master key must be 32 bytes, got {len(key)}")
    return key


def shared_secret(channel: str, key: bytes) -> bytes:
    """The per-channel key: ``SHA-256(channel name + master key)``."""
    return hashlib.sha256(channel.encode() + key).digest()


def _secretbox() -> Any:
    try:
        return importlib.import_module("nacl.secret")
    except ImportError:
        raise CryptoUnavailable(
            "PyNaCl is not installed (pip install 'pusherd[encryption]')"
        ) from None


def secretbox_available() -> bool:
    try:
        _secretbox()
    except CryptoUnavailable:
        return False
    return True


def encrypt(channel: str, key: bytes, data: str) -> str:
    """Seal ``data`` for ``channel``; return the event data a client expects."""
    box = _secretbox().SecretBox(shared_secret(channel, key))
    sealed = box.encrypt(data.encode())
    return orjson.dumps(
        {
            "nonce": base64.b64encode(sealed.nonce).decode(),
            "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
        }
    ).decode()


def decrypt(channel: str, key: bytes, data: object) -> str:
    """Open an encrypted event's data; raise ValueError if it is not a sealed payload."""
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ValueError("not an encrypted payload") from None
    if not isinstance(data, dict) or not {"nonce", "ciphertext"} <= set(data):
        raise ValueError("not an encrypted payload")
    box = _secretbox().SecretBox(shared_secret(channel, key))
    try:
        nonce = base64.b64decode(data["nonce"])
        ciphertext = base64.b64decode(data["ciphertext"])
        plain: bytes = box.decrypt(ciphertext, nonce)
    except Exception as exc:  # nacl's CryptoError, or bad base64
        raise ValueError(f"cannot decrypt: {type(exc).__name__}") from None
    return plain.decode("utf-8", "replace")
