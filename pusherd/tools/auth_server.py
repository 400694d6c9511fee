"""``pusherd auth-server``: a development auth endpoint that signs every request.

It answers what a Laravel app's ``/broadcasting/auth`` and ``/broadcasting/user-auth``
(and the ``/pusher/auth``, ``/pusher/user-auth`` paths of the Pusher docs) answer, signed
with the app secret from the config, so a frontend can be built before its backend.
``--deny-all`` refuses everything instead (to build the error paths). Presence members
and signed-in users are ``user_id`` from the query or the form (default: one derived
from the socket id). It binds only to loopback unless ``--i-know`` is given: anyone who
reaches it can join any channel.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import orjson

from pusherd.apps.base import App
from pusherd.errors import ConfigError
from pusherd.protocol.channels import channel_kind, channel_name_error
from pusherd.protocol.signing import sign
from pusherd.tools.crypto import master_key, shared_secret
from pusherd.tools.tail import channel_auth

__all__ = ["CHANNEL_PATHS", "USER_PATHS", "AuthSigner", "is_loopback", "make_server", "serve"]

CHANNEL_PATHS = frozenset({"/broadcasting/auth", "/pusher/auth"})
USER_PATHS = frozenset({"/broadcasting/user-auth", "/pusher/user-auth"})
_SOCKET_ID = re.compile(r"\d{1,20}\.\d{1,20}")
_MAX_BODY = 64 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthSigner:
    """Turns one auth request into ``(status, JSON body)``."""

    def __init__(self, app: App, allow: bool, environ: Mapping[str, str]) -> None:
        self.app = app
        self.allow = allow
        self.master_key = master_key(app, environ)

    def answer(self, path: str, params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if path not in CHANNEL_PATHS and path not in USER_PATHS:
            return 404, {"message": f"unknown path {path}: use /broadcasting/auth"}
        socket_id = params.get("socket_id", "")
        if not _SOCKET_ID.fullmatch(socket_id):
            return 400, {"message": "socket_id is missing or malformed"}
        if not self.allow:
            return 403, {"message": "denied: pusherd auth-server --deny-all"}
        user_id = params.get("user_id") or "user-" + socket_id.replace(".", "-")
        if path in USER_PATHS:
            return 200, self._user(socket_id, user_id)
        channel = params.get("channel_name", "")
        error = channel_name_error(channel)
        if error is not None:
            return 400, {"message": f"channel_name: {error}"}
        kind = channel_kind(channel)
        if not kind.needs_auth:
            return 400, {"message": f"{channel} is public: it needs no auth"}
        key, secret = self.app.key, self.app.secret
        if kind.is_presence:
            member = orjson.dumps({"user_id": user_id, "user_info": {"name": user_id}}).decode()
            return 200, {
                "auth": channel_auth(key, secret, socket_id, channel, member),
                "channel_data": member,
            }
        body: dict[str, Any] = {"auth": channel_auth(key, secret, socket_id, channel)}
        if kind.is_encrypted:
            if self.master_key is None:
                return 403, {
                    "message": "no encryption master key configured "
                    "(encryption_master_key_base64 or $PUSHERD_ENCRYPTION_MASTER_KEY_BASE64)"
                }
            body["shared_secret"] = base64.b64encode(
                shared_secret(channel, self.master_key)
            ).decode()
        return 200, body

    def _user(self, socket_id: str, user_id: str) -> dict[str, Any]:
        user_data = orjson.dumps({"id": user_id, "user_info": {"name": user_id}}).decode()
        signature = sign(self.app.secret, f"{socket_id}::user::{user_data}")
        return {"auth": f"{self.app.key}:{signature}", "user_data": user_data}


def _params(query: str, body: bytes, content_type: str) -> dict[str, str]:
    params = {k: v[0] for k, v in parse_qs(query).items()}
    if "json" in content_type:
        try:
            decoded = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            decoded = {}
        if isinstance(decoded, dict):
            params.update({k: str(v) for k, v in decoded.items() if isinstance(v, str | int)})
    else:
        params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    return params


def make_server(signer: AuthSigner, host: str, port: int, log: TextIO) -> ThreadingHTTPServer:
    """An HTTP server answering with ``signer`` (not started)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "pusherd-auth-server"

        def _reply(self, status: int, body: dict[str, Any] | None) -> None:
            data = orjson.dumps(body) if body is not None else b""
            self.send_response(status)
            origin = self.headers.get("Origin")
            self.send_header("Access-Control-Allow-Origin", origin or "*")
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header(
                "Access-Control-Allow-Headers", "Content-Type, X-CSRF-TOKEN, X-Socket-Id"
            )
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Vary", "Origin")
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self._reply(204, None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._reply(413, {"message": "body too large"})
                return
            parts = urlsplit(self.path)
            params = _params(
                parts.query, self.rfile.read(length), self.headers.get("Content-Type", "")
            )
            status, body = signer.answer(parts.path, params)
            what = params.get("channel_name") or "user " + params.get("user_id", "(default)")
            verdict = "signed" if status == 200 else f"refused {status}"
            print(
                f"{verdict} {what} for socket {params.get('socket_id', '?')}",
                file=log,
                flush=True,
            )
            self._reply(status, body)

        def do_GET(self) -> None:
            self._reply(404, {"message": "POST /broadcasting/auth or /broadcasting/user-auth"})

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(
    app: App,
    host: str,
    port: int,
    allow: bool,
    i_know: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status."""
    if not is_loopback(host) and not i_know:
        raise ConfigError(
            f"refusing to bind {host}: this server signs every request for anyone who "
            "reaches it; pass --i-know to bind a non-loopback address"
        )
    signer = AuthSigner(app, allow, os.environ)
    server = make_server(signer, host, port, out)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    mode = "signing every request" if allow else "refusing every request (--deny-all)"
    print(
        f"pusherd auth-server for app {app.id} (key {app.key}) on http://{shown}:{bound}, {mode}\n"
        f"  channel auth: http://{shown}:{bound}/broadcasting/auth (also /pusher/auth)\n"
        f"  user auth:    http://{shown}:{bound}/broadcasting/user-auth (also /pusher/user-auth)",
        file=out,
        flush=True,
    )
    stopped = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopped.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
