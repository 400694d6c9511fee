"""The bytes of one webhook POST: JSON body, Pusher signature and headers.

Built once per POST and re-sent unchanged on every retry, so a receiver can de-duplicate on
the event ``id`` or the ``X-Pusherd-Delivery`` header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from pusherd.protocol.signing import sign

__all__ = ["RESERVED_HEADERS", "build_request", "sign"]

# Headers the sender owns; a target's extra headers cannot replace them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "x-pusher-key", "x-pusher-signature", "x-pusherd-delivery"}
)


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
    headers["X-Pusher-Signature"] = sign(secret, body)  # HMAC-SHA256 hex of the raw body
    headers["X-Pusherd-Delivery"] = delivery_id
    return body, headers
