"""A tiny stand-in for a Laravel backend, for the Echo example page.

It serves ``index.html``, ``app.js`` and the pusher-js / laravel-echo browser builds, and
implements the two things Laravel does for Echo:

* ``POST /broadcasting/auth``: form fields ``socket_id`` and ``channel_name`` in,
  ``{"auth": "key:signature"}`` out (plus ``channel_data`` for presence channels), signed
  with the app secret by the official Pusher server SDK, as Laravel's broadcaster does.
* ``POST /trigger``: publishes ``App\\Events\\MessagePosted`` on the presence channel
  through pusherd's REST API, as ``broadcast(new MessagePosted(...))`` would.

The user is whoever the ``user`` query parameter (or the ``echo_user`` cookie) names; a
real app uses its session instead. Settings come from the same ``REVERB_*`` variables a
Laravel ``.env`` has, or from the command line (``--help``). Only the standard library
and the ``pusher`` package are needed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pusher

__all__ = ["EchoExampleHandler", "Settings", "main", "parse_args"]

HERE = Path(__file__).resolve().parent
DEFAULT_NODE_MODULES = HERE.parent.parent / "tests" / "js" / "node_modules"
EVENT_NAME = "App\\Events\\MessagePosted"


class Settings(argparse.Namespace):
    """Parsed command-line settings (see ``parse_args``)."""

    host: str
    port: int
    pusherd_host: str
    pusherd_port: int
    scheme: str
    ws_host: str | None
    ws_port: int | None
    app_id: str
    app_key: str
    app_secret: str
    channel: str
    node_modules: Path


def parse_args(argv: list[str] | None = None) -> Settings:
    """Read settings from ``argv``, falling back to ``REVERB_*`` environment variables."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the page on")
    parser.add_argument("--port", type=int, default=8000, help="port to serve the page on")
    parser.add_argument(
        "--pusherd-host", default=env("REVERB_HOST", "127.0.0.1"), help="pusherd host (REST)"
    )
    parser.add_argument("--pusherd-port", type=int, default=int(env("REVERB_PORT", "8080")))
    parser.add_argument("--scheme", default=env("REVERB_SCHEME", "http"), choices=["http", "https"])
    parser.add_argument("--ws-host", default=None, help="host the browser connects to")
    parser.add_argument("--ws-port", type=int, default=None, help="port the browser connects to")
    parser.add_argument("--app-id", default=env("REVERB_APP_ID", "12345"))
    parser.add_argument("--app-key", default=env("REVERB_APP_KEY", "app-key"))
    parser.add_argument("--app-secret", default=env("REVERB_APP_SECRET", "app-secret"))
    parser.add_argument("--channel", default="chat", help="presence channel, without 'presence-'")
    parser.add_argument(
        "--node-modules",
        type=Path,
        default=Path(env("ECHO_NODE_MODULES", str(DEFAULT_NODE_MODULES))),
        help="directory holding pusher-js and laravel-echo",
    )
    return parser.parse_args(argv, namespace=Settings())


class EchoExampleHandler(BaseHTTPRequestHandler):
    """Serve the page, its scripts, channel authorization and the trigger endpoint."""

    settings: Settings
    client: pusher.Pusher
    server_version = "echo-example/1"

    # -- GET -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        node_modules = self.settings.node_modules
        files = {
            "/": (HERE / "index.html", "text/html; charset=utf-8"),
            "/index.html": (HERE / "index.html", "text/html; charset=utf-8"),
            "/app.js": (HERE / "app.js", "text/javascript; charset=utf-8"),
            "/vendor/pusher.min.js": (
                node_modules / "pusher-js" / "dist" / "web" / "pusher.min.js",
                "text/javascript; charset=utf-8",
            ),
            "/vendor/echo.iife.js": (
                node_modules / "laravel-echo" / "dist" / "echo.iife.js",
                "text/javascript; charset=utf-8",
            ),
        }
        if path == "/config.json":
            self._send_json(HTTPStatus.OK, self._browser_config())
        elif path in files:
            file, content_type = files[path]
            try:
                body = file.read_bytes()
            except OSError:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"missing {file}"})
                return
            self._send(HTTPStatus.OK, body, content_type)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _browser_config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "key": s.app_key,
            "wsHost": s.ws_host or s.pusherd_host,
            "wsPort": s.ws_port or s.pusherd_port,
            "scheme": s.scheme,
            "channel": s.channel,
        }

    # -- POST ------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/broadcasting/auth":
            self._authorize()
        elif path == "/trigger":
            self._trigger()
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _authorize(self) -> None:
        """Sign a subscription the way Laravel's ``Broadcast::auth()`` does."""
        user = self._current_user()
        form = parse_qs(self._read_body().decode("utf-8", "replace"))
        socket_id = form.get("socket_id", [""])[0]
        channel = form.get("channel_name", [""])[0]
        if user is None:
            self._send_json(HTTPStatus.FORBIDDEN, {"message": "not signed in"})
            return
        user_id, name = user
        try:
            if channel.startswith("presence-"):
                member = {"user_id": user_id, "user_info": {"id": user_id, "name": name}}
                payload = self.client.authenticate(channel, socket_id, member)
            elif channel.startswith("private-"):
                payload = self.client.authenticate(channel, socket_id)
            else:
                self._send_json(HTTPStatus.FORBIDDEN, {"message": "public channels need no auth"})
                return
        except ValueError as exc:
            self._send_json(HTTPStatus.FORBIDDEN, {"message": str(exc)})
            return
        self._send_json(HTTPStatus.OK, payload)

    def _trigger(self) -> None:
        """Publish ``App\\Events\\MessagePosted`` through pusherd's REST API."""
        try:
            body = json.loads(self._read_body() or b"{}")
        except ValueError:
            self._send_json(HTTPStatus.BAD_REQUEST, {"message": "expected JSON"})
            return
        message = str(body.get("message", "")).strip()[:500]
        if not message:
            self._send_json(HTTPStatus.UNPROCESSABLE_ENTITY, {"message": "message is empty"})
            return
        data = {
            "message": message,
            "user": str(body.get("user", "backend"))[:50],
            "sent_at": time.time(),
        }
        # Laravel's broadcast(...)->toOthers() would pass socket_id=X-Socket-ID here; the
        # example sends to everyone, the sender included.
        try:
            self.client.trigger(f"presence-{self.settings.channel}", EVENT_NAME, data)
        except Exception as exc:  # the SDK raises several types; report any to the page
            self._send_json(HTTPStatus.BAD_GATEWAY, {"message": f"pusherd: {exc}"})
            return
        self._send_json(HTTPStatus.OK, {"ok": True})

    # -- helpers ---------------------------------------------------------------------------

    def _current_user(self) -> tuple[str, str] | None:
        name = parse_qs(urlsplit(self.path).query).get("user", [""])[0].strip()
        if not name:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            name = cookie["echo_user"].value.strip() if "echo_user" in cookie else ""
        if not name:
            return None
        name = name[:40]
        user_id = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "user"
        return user_id, name

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, 64 * 1024)) if length > 0 else b""

    def _send_json(self, status: HTTPStatus, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"echo-example: {self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    """Run the example backend until interrupted."""
    settings = parse_args(argv)
    EchoExampleHandler.settings = settings
    EchoExampleHandler.client = pusher.Pusher(
        app_id=settings.app_id,
        key=settings.app_key,
        secret=settings.app_secret,
        host=settings.pusherd_host,
        port=settings.pusherd_port,
        ssl=settings.scheme == "https",
    )
    with ThreadingHTTPServer((settings.host, settings.port), EchoExampleHandler) as httpd:
        host, port = httpd.server_address[:2]
        print(
            f"echo example on http://{host!s}:{port} (pusherd at "
            f"{settings.scheme}://{settings.pusherd_host}:{settings.pusherd_port})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
