"""The event creator: check the console's form, sign it as the app's backend would.

The console publishes through ``RestApi.handle`` with a request signed by the app's own
secret (stdlib HMAC, ``protocol.signing``), so a console event goes through exactly the
checks, limits, cache writes and lifecycle records of ``POST /apps/{id}/events``.
"""

from __future__ import annotations

from typing import Any

import orjson

from pusherd.apps.base import App
from pusherd.protocol.signing import body_md5, sign, string_to_sign

__all__ = ["event_from_form", "signed_query"]


def event_from_form(form: Any) -> tuple[dict[str, Any] | None, str]:
    """Check the event creator's form; return the ``POST /events`` body or a problem."""
    if not isinstance(form, dict):
        return None, "The body must be a JSON object"
    channels = form.get("channels")
    if isinstance(channels, str):
        channels = [c.strip() for c in channels.split(",") if c.strip()]
    if not isinstance(channels, list) or not channels:
        return None, "Give at least one channel"
    name = form.get("name")
    if not isinstance(name, str) or not name:
        return None, "Give an event name"
    data = form.get("data", "")
    if not isinstance(data, str):
        return None, "data must be JSON text"
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, f"data is not valid JSON: {exc}"
    event: dict[str, Any] = {"name": name, "channels": channels, "data": data}
    socket_id = form.get("socket_id")
    if socket_id:
        event["socket_id"] = socket_id
    return event, ""


def signed_query(app: App, method: str, path: str, body: bytes, timestamp: int) -> bytes:
    """Return the query string of a REST request signed with ``app``'s secret."""
    params = [
        ("auth_key", app.key),
        ("auth_timestamp", str(timestamp)),
        ("auth_version", "1.0"),
        ("body_md5", body_md5(body)),
    ]
    signature = sign(app.secret, string_to_sign(method, path, params))
    return ("&".join(f"{k}={v}" for k, v in params) + f"&auth_signature={signature}").encode()
