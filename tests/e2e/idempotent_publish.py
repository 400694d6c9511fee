"""Publishing with an idempotency key through the stock SDKs (helpers for the e2e tests).

* ``python_sdk_publish``: the Python SDK's own signed ``Request`` with ``idempotency_key``
  in the body (its ``trigger`` has no parameter for extra body fields).
* ``signed_post_with_header``: the same signed request sent by hand with an
  ``Idempotency-Key`` header (no SDK sends one).
* ``node_sdk_publish``: the Node SDK's ``trigger`` (extra params go into the body) or
  ``triggerBatch`` (extra item fields go into the item).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
from typing import Any

import pusher
import pytest
from pusher.http import POST, Request

from tests.e2e.conftest import JS_DIR

__all__ = ["node_sdk_publish", "python_sdk_publish", "signed_post_with_header"]


def _event(channel: str, event: str, data: Any, **extra: Any) -> dict[str, Any]:
    return {"name": event, "channels": [channel], "data": json.dumps(data), **extra}


def python_sdk_publish(
    sdk: pusher.Pusher, channel: str, event: str, data: Any, key: str, info: str = ""
) -> Any:
    client = sdk._pusher_client
    extra = {"idempotency_key": key, **({"info": info} if info else {})}
    request = Request(
        client, POST, f"/apps/{client.app_id}/events", _event(channel, event, data, **extra)
    )
    return client.http.send_request(request)


def signed_post_with_header(
    sdk: pusher.Pusher, host: str, port: int, channel: str, event: str, data: Any, key: str
) -> tuple[int, bytes]:
    client = sdk._pusher_client
    request = Request(client, POST, f"/apps/{client.app_id}/events", _event(channel, event, data))
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(
            "POST",
            request.signed_path,
            body=request.body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def node_sdk_publish(
    app: dict[str, str],
    host: str,
    port: int,
    channel: str,
    event: str,
    data: Any,
    key: str,
    times: int,
    batch: bool = False,
) -> list[dict[str, Any]]:
    """Run tests/js/sdk_trigger.js; return one {status, body} per call."""
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "pusher").is_dir():
        pytest.skip("node or the pusher npm package is missing (run `make js-deps`)")
    spec = {
        "app_id": app["id"],
        "key": app["key"],
        "secret": app["secret"],
        "host": host,
        "port": port,
        "channel": channel,
        "event": event,
        "data": data,
        "idempotency_key": key,
        "times": times,
        "batch": batch,
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "sdk_trigger.js"),
        cwd=JS_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode()), 30)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]
