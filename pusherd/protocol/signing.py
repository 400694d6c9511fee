"""Pusher signatures: channel auth, user auth, REST request signing and webhook bodies.

All are HMAC-SHA256 hex digests (Pusher "Authentication signatures" and "HTTP API
reference: Authentication"), compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import unquote

from pusherd.errors import ApiError

__all__ = [
    "auth_matches",
    "body_md5",
    "parse_query",
    "sign",
    "string_to_sign",
    "verify_request",
]


def sign(secret: str, message: str | bytes) -> str:
    """Return the hex HMAC-SHA256 of ``message`` under ``secret``."""
    data = message.encode() if isinstance(message, str) else message
    return hmac.digest(secret.encode(), data, "sha256").hex()


def auth_matches(key: str, secret: str, message: str, auth: object) -> bool:
    """Check an ``auth`` string ``"<key>:<hex signature of message>"`` in constant time.

    Both halves count: a signature made for another app's key is refused.
    """
    if not isinstance(auth, str):
        return False
    given_key, sep, given_sig = auth.partition(":")
    if not sep:
        return False
    expected = sign(secret, message)
    key_ok = hmac.compare_digest(given_key.encode(), key.encode())
    sig_ok = hmac.compare_digest(given_sig.encode("utf-8", "replace"), expected.encode())
    return key_ok and sig_ok


def body_md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Split a raw query string into percent-decoded pairs.

    ``+`` is kept as it is: the SDKs either escape values (PHP/Guzzle uses ``%20``) or
    send them raw (Node, Python), and none of them uses ``+`` for a space.
    """
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)) if "%" in part else (key, value))
    return pairs


def string_to_sign(method: str, path: str, params: Iterable[tuple[str, str]]) -> str:
    """Build ``METHOD\\npath\\nk=v&...`` with lower-cased, sorted keys, no escaping.

    Repeated keys (``channels[]=a&channels[]=b``) are joined with ``,`` as PHP does.
    """
    merged: dict[str, str] = {}
    for key, value in params:
        lowered = key.lower()
        if lowered == "auth_signature":
            continue
        merged[lowered] = merged[lowered] + "," + value if lowered in merged else value
    query = "&".join(f"{key}={merged[key]}" for key in sorted(merged))
    return f"{method.upper()}\n{path}\n{query}"


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # outside datetime's years 1-9999
        return str(timestamp)[:40]


def verify_request(
    key: str,
    secret: str,
    method: str,
    path: str,
    params: list[tuple[str, str]],
    body: bytes,
    now: float,
    window: int = 600,
) -> None:
    """Verify a signed REST request.

    Args:
        key, secret: the app's credentials (``auth_key`` must equal ``key``).
        method, path: the request; ``path`` is ``/apps/...`` with any mount prefix stripped.
        params: the percent-decoded query pairs.
        body: the raw body; ``body_md5``, when given, must match it (even when empty,
            as the Python SDK sends it on GET).
        now: the server time in unix seconds.
        window: allowed clock skew in seconds.

    Raises:
        ApiError: 401 with a Pusher-style text body.
    """
    values = {k.lower(): v for k, v in params}
    for required in ("auth_key", "auth_timestamp", "auth_version", "auth_signature"):
        if required not in values:
            raise ApiError(f"Missing required parameter: {required}", 401)
    if values["auth_version"] != "1.0":
        raise ApiError("Version not supported", 401)
    if not hmac.compare_digest(values["auth_key"].encode(), key.encode()):
        raise ApiError("Unknown auth_key", 401)
    try:
        timestamp = int(values["auth_timestamp"])
    except ValueError:
        raise ApiError("Invalid auth_timestamp", 401) from None
    if abs(timestamp - now) >= window:
        raise ApiError(
            f"Timestamp expired: Given timestamp ({_iso(timestamp)}) not within {window}s "
            f"of server time ({_iso(now)})",
            401,
        )
    if body and "body_md5" not in values:
        raise ApiError("Missing required parameter: body_md5", 401)
    if "body_md5" in values and not hmac.compare_digest(
        values["body_md5"].encode(), body_md5(body).encode()
    ):
        raise ApiError("Invalid body_md5: it does not match the request body", 401)
    expected_string = string_to_sign(method, path, params)
    expected = sign(secret, expected_string)
    given = values["auth_signature"]
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        raise ApiError(
            f"Invalid signature: you should have sent HmacSHA256Hex({expected_string!r}, "
            f'your_secret_key), but you sent "{given}"',
            401,
        )
