"""The bytes of one webhook POST: JSON body, Pusher signature and headers.

Built once per POST and re-sent unchanged on every retry, so a receiver can de-duplicate on
the event ``id`` or the ``X-Pusherd-Delivery`` header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

__all__ = ["RESERVED_HEADERS", "build_request", "sign"]

# Headers the sender owns; a target's extra headers cannot replace them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "x-pusher-key", "x-pusher-signature", "x-pusherd-delivery"}
)


def sign(secret: str, body: bytes) -> str:
    """Return ``HMAC-SHA256-hex(secret, body)``, Pusher's ``X-Pusher-Signature``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_request(
    *,
    key: str,
    secret: str,
    time_ms: int,
    events: Sequence[dict[str, Any]],
    extra_headers: Iterable[tuple[str, str]],
    delivery_id: str,
) -> tuple[bytes, dict[str, str]]:
    """Return the body and headers of a POST carrying ``events``.

    ``Content-Type`` is exactly ``application/json``: the Node SDK rejects any suffix.
    """
    body = orjson.dumps({"time_ms": time_ms, "events": events})
    headers = {"Content-Type": "application/json"}
    headers.update((k, v) for k, v in extra_headers if k.lower() not in RESERVED_HEADERS)
    headers["X-Pusher-Key"] = key
    headers["X-Pusher-Signature"] = sign(secret, body)
    headers["X-Pusherd-Delivery"] = delivery_id
    return body, headers
