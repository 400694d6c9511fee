"""Serve an ASGI app on a plain ``asyncio`` stream: the console on the metrics port.

The metrics port (``pusherd.server.metrics_port``) is a few lines of HTTP, not a second
uvicorn. With ``[console] listen = "metrics"`` it hands requests under the console's
path here: one request per connection (``connection: close``), the body read up to
``MAX_BODY`` bytes, the response streamed as it is sent (Server-Sent Events included),
``http.disconnect`` reported when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

__all__ = ["MAX_BODY", "serve_asgi"]

MAX_BODY = 64 * 1024
_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized"}


async def serve_asgi(
    app: ASGIApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
) -> None:
    """Answer the one request whose head (through the blank line) is ``head``."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers: list[tuple[bytes, bytes]] = []
    length = 0
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
        if name == "content-length" and value.isdigit():
            length = int(value)
    if length > MAX_BODY:
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
        return
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    peer = writer.get_extra_info("peername")
    sock = writer.get_extra_info("sockname")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": (peer[0], peer[1]) if isinstance(peer, tuple) else None,
        "server": (sock[0], sock[1]) if isinstance(sock, tuple) else None,
    }
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(4096):
                pass  # a second request on this connection is not served
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}".encode()]
            for name, value in message.get("headers", []):
                out.append(bytes(name) + b": " + bytes(value))
            out.append(b"connection: close\r\n\r\n")
            writer.write(b"\r\n".join(out))
        elif message["type"] == "http.response.body":
            writer.write(message.get("body", b""))
            await writer.drain()

    await app(scope, receive, send)
    await writer.drain()
