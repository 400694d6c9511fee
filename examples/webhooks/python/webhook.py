"""A Starlette receiver for pusherd (and Pusher) webhooks: signature check and de-duplication.

pusherd signs every POST: ``X-Pusher-Key`` is the app key and ``X-Pusher-Signature`` the hex
HMAC-SHA256 of the raw body keyed with the app secret. Delivery is at least once, so each
event ``id`` is handled once. Run it::

    PUSHER_APP_KEY=... PUSHER_APP_SECRET=... PORT=3000 python webhook.py

FastAPI works the same way: read ``await request.body()`` and call ``process``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["MemoryClaims", "create_app", "verify"]

Event = dict[str, Any]


def verify(
    raw_body: bytes, key_header: str | None, signature_header: str | None, key: str, secret: str
) -> bool:
    """True if the POST was signed by this app; both headers compared in constant time."""
    if key_header is None or signature_header is None:
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    key_ok = hmac.compare_digest(key_header.encode(), key.encode())
    signature_ok = hmac.compare_digest(signature_header.lower().encode(), expected.encode())
    return key_ok and signature_ok


class MemoryClaims:
    """Event ids seen in the last ``ttl`` seconds, in this process.

    With several processes, use a shared store instead (Redis ``SET key 1 NX EX 600``).
    """

    def __init__(self, ttl: float = 600.0) -> None:
        self.ttl = ttl
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def __call__(self, event_id: str) -> bool:
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if event_id in self._seen:
            return False
        self._seen[event_id] = now + self.ttl
        return True


def create_app(
    key: str,
    secret: str,
    on_event: Callable[[Event], Awaitable[None]],
    claim: Callable[[str], Awaitable[bool]] | None = None,
    path: str = "/pusher/webhook",
) -> Starlette:
    """A Starlette app answering ``POST path``."""
    claims = claim or MemoryClaims()

    async def receive(request: Request) -> JSONResponse:
        raw = await request.body()
        headers = request.headers
        if not verify(
            raw, headers.get("x-pusher-key"), headers.get("x-pusher-signature"), key, secret
        ):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            events = json.loads(raw)["events"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "no events"}, status_code=400)
        handled = duplicates = 0
        for event in events:
            event_id = str(event.get("id", ""))
            if not event_id or not await claims(event_id):
                duplicates += 1
                continue
            await on_event(event)
            handled += 1
        # Any 2xx acknowledges the whole POST; anything else makes pusherd retry it.
        return JSONResponse({"ok": True, "handled": handled, "duplicates": duplicates})

    return Starlette(routes=[Route(path, receive, methods=["POST"])])


async def _print_event(event: Event) -> None:
    print(json.dumps({"handled": event["id"], "event": event}), flush=True)


if __name__ == "__main__":
    import uvicorn

    app = create_app(os.environ["PUSHER_APP_KEY"], os.environ["PUSHER_APP_SECRET"], _print_event)
    port = int(os.environ.get("PORT", "3000"))
    print(json.dumps({"listening": port}), flush=True)
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=port, log_level="warning")
    sys.exit(0)
