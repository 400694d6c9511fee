"""The console's HTTP surface: page, login/logout, static files and the JSON API.

Everything below ``{base}`` needs the session cookie except the login form itself:
the page redirects to ``{base}/login``, everything else answers 401. Every POST but
the login needs the session's CSRF token in ``X-CSRF-Token`` (403 without it).

JSON API (all ``GET`` unless marked)::

    {base}/api/session                          {"csrf", "node", "driver", "types"}
    {base}/api/apps                             [{"id", "key", "enabled", ...}]  (no secrets)
    {base}/api/apps/{id}/channels?prefix=       {"channels": {name: {"subscription_count",
                                                 "user_count"?}}}  cluster-wide
    {base}/api/apps/{id}/channels/{ch}/members  {"members": [{"user_id", "user_info"}]}
    {base}/api/apps/{id}/stats                  {"now": {...}, "history": [{...}]}
    {base}/api/apps/{id}/stream?rate=N          text/event-stream of log lines
    POST {base}/api/apps/{id}/events            {"channels", "name", "data", "socket_id"?}
                                                → exactly what POST /apps/{id}/events does
    POST {base}/logout
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from pusherd.apps.base import App
from pusherd.brokers.base import ChannelState, PresenceState
from pusherd.console.auth import COOKIE, Auth
from pusherd.console.creator import event_from_form, signed_query
from pusherd.console.lines import TYPES
from pusherd.console.stats import Stats
from pusherd.console.stream import Feed, parse_rate, sse
from pusherd.errors import BrokerError
from pusherd.protocol.channels import channel_kind

__all__ = ["AppList", "ConsoleApi", "RestHandle"]

STATIC = Path(__file__).resolve().parent / "static"
_STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}

RestHandle = Callable[[str, str, bytes, bytes | None], Awaitable[tuple[int, bytes, bytes]]]


class AppList(Protocol):
    def by_id(self, app_id: str) -> App | None: ...

    def all(self) -> list[App]: ...


class _Broker(ChannelState, PresenceState, Protocol):
    pass


class ConsoleApi:
    """Serves the console under ``base`` (see the module docstring).

    Args:
        rest: ``RestApi.handle``; the event creator goes through it, signed with the
            app's secret, so a console event is published exactly as ``POST /events``.
        rest_prefix: the server's ``path_prefix`` (REST paths are under it).
    """

    def __init__(
        self,
        auth: Auth,
        apps: AppList,
        broker: _Broker,
        feed: Feed,
        stats: Stats,
        rest: RestHandle,
        rest_prefix: str,
        node_id: str,
        driver: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth = auth
        self.apps = apps
        self.broker = broker
        self.feed = feed
        self.stats = stats
        self.rest = rest
        self.rest_prefix = rest_prefix
        self.node_id = node_id
        self.driver = driver
        self.wall_clock = wall_clock

    def routes(self, base: str) -> list[BaseRoute]:
        """Return the Starlette routes of a console served at ``base`` (e.g. ``/console``)."""
        api = base + "/api"
        return [
            Route(base, self._to_page, methods=["GET"]),
            Route(base + "/", self._page, methods=["GET"]),
            Route(base + "/login", self._login_form, methods=["GET"]),
            Route(base + "/login", self._login, methods=["POST"]),
            Route(base + "/logout", self._logout, methods=["POST"]),
            Route(base + "/static/{name}", self._static, methods=["GET"]),
            Route(api + "/session", self._session, methods=["GET"]),
            Route(api + "/apps", self._apps, methods=["GET"]),
            Route(api + "/apps/{app_id}/channels", self._channels, methods=["GET"]),
            Route(
                api + "/apps/{app_id}/channels/{channel}/members", self._members, methods=["GET"]
            ),
            Route(api + "/apps/{app_id}/stats", self._stats, methods=["GET"]),
            Route(api + "/apps/{app_id}/connections", self._connections, methods=["GET"]),
            Route(api + "/apps/{app_id}/events", self._publish, methods=["POST"]),
            Route(api + "/apps/{app_id}/stream", _RawEndpoint(self._stream), methods=["GET"]),
        ]

    # helpers -----------------------------------------------------------------------
    def _sid(self, request: Request) -> str | None:
        return self.auth.session(request.cookies.get(COOKIE))

    def _base(self, request: Request) -> str:
        path = request.url.path
        for suffix in ("/login", "/logout", "/"):
            if path.endswith(suffix):
                return path[: -len(suffix)]
        return path

    @staticmethod
    def _secure(request: Request) -> bool:
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return request.url.scheme == "https" or proto == "https"

    @staticmethod
    def _address(request: Request) -> str:
        """The client to rate-limit: the peer, or what a proxy on a private address saw.

        A proxy on loopback or a private network appends the real client to
        ``X-Forwarded-For``; its rightmost entry is the one that proxy wrote. A peer on a
        public address is taken as it is (it could write any header it likes).
        """
        peer = request.client.host if request.client else "unknown"
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            try:
                trusted = ipaddress.ip_address(peer).is_private
            except ValueError:
                trusted = False
            if trusted:
                return forwarded.split(",")[-1].strip() or peer
        return peer

    def _app(self, request: Request) -> App | None:
        return self.apps.by_id(request.path_params["app_id"])

    # page, login, logout -----------------------------------------------------------
    async def _to_page(self, request: Request) -> Response:
        return RedirectResponse(request.url.path + "/", 303, headers=_SECURITY_HEADERS)

    async def _page(self, request: Request) -> Response:
        if self._sid(request) is None:
            return RedirectResponse(self._base(request) + "/login", 303, headers=_SECURITY_HEADERS)
        return _file("index.html")

    async def _login_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        message = f'<p class="error" role="alert">{error}</p>' if error else ""
        body = (STATIC / "login.html").read_text(encoding="utf-8").replace("{message}", message)
        return Response(body, status, media_type="text/html", headers=_SECURITY_HEADERS)

    async def _login(self, request: Request) -> Response:
        address = self._address(request)
        wait = self.auth.blocked_for(address)
        if wait:
            response = await self._login_form(
                request, "Too many failed attempts; try again later.", 429
            )
            response.headers["retry-after"] = str(int(wait))
            return response
        body = await request.body()
        if len(body) > 4096:
            return await self._login_form(request, "Request too large.", 413)
        password = parse_qs(body.decode("utf-8", "replace")).get("password", [""])[0]
        if not self.auth.password_ok(password):
            self.auth.failed(address)
            return await self._login_form(request, "Wrong password.", 401)
        self.auth.succeeded(address)
        base = self._base(request)
        response = RedirectResponse(base + "/", 303, headers=_SECURITY_HEADERS)
        cookie = self.auth.cookie_header(self.auth.new_cookie(), base, self._secure(request))
        response.headers.append("set-cookie", cookie)
        return response

    async def _logout(self, request: Request) -> Response:
        sid = self._sid(request)
        if sid is None:
            return _error("Not logged in", 401)
        if not self.auth.csrf_ok(sid, await _csrf(request)):
            return _error("Missing or wrong CSRF token", 403)
        base = self._base(request)
        response = RedirectResponse(base + "/login", 303, headers=_SECURITY_HEADERS)
        response.headers.append(
            "set-cookie", self.auth.cookie_header("", base, self._secure(request), clear=True)
        )
        return response

    async def _static(self, request: Request) -> Response:
        if self._sid(request) is None:
            return _error("Not logged in", 401)
        name = request.path_params["name"]
        if "/" in name or name.startswith(".") or not (STATIC / name).is_file():
            return _error("Not found", 404)
        return _file(name)

    # JSON API ----------------------------------------------------------------------
    async def _session(self, request: Request) -> Response:
        sid = self._sid(request)
        if sid is None:
            return _error("Not logged in", 401)
        return _json(
            {
                "csrf": self.auth.csrf_token(sid),
                "node": self.node_id,
                "driver": self.driver,
                "types": list(TYPES),
            }
        )

    async def _apps(self, request: Request) -> Response:
        if self._sid(request) is None:
            return _error("Not logged in", 401)
        return _json([_public(app) for app in self.apps.all()])

    async def _channels(self, request: Request) -> Response:
        if self._sid(request) is None:
            return _error("Not logged in", 401)
        app = self._app(request)
        if app is None:
            return _error("Unknown app", 404)
        prefix = request.query_params.get("prefix", "")
        try:
            stats = await self.broker.channels(app.id, prefix)
        except BrokerError:
            return _error("Broker unavailable", 503)
        channels: dict[str, dict[str, int]] = {}
        for name in sorted(stats):
            stat = stats[name]
            entry = {"subscription_count": stat.subscription_count}
            if channel_kind(name).is_presence:
                entry["user_count"] = stat.user_count
            channels[name] = entry
        return _json({"channels": channels})

    async def _members(self, request: Request) -> Response:
        if self._sid(request) is None:
            return _error("Not logged in", 401)
        app = self._app(request)
        if app is None:
            return _error("Unknown app", 404)
        channel = request.path_params["channel"]
        if not channel_kind(channel).is_presence:
            return _error("Members are only kept for presence channels", 400)
        try:
            members = await self.broker.members(app.id, channel)
        except BrokerError:
            return _error("Broker unavailable", 503)
        return _json(
            {"members": [{"user_id": uid, "user_info": info} for uid, info in members.items()]}
        )

    async def _stats(self, request: Request) -> Response:
        if self._sid(request) is None:
            return _error("Not logged in", 401)
        app = self._app(request)
        if app is None:
            return _error("Unknown app", 404)
        now = await self.stats.cluster(app.id)
        return _json({"now": now, "history": list(self.stats.history.get(app.id, ()))})

    async def _connections(self, request: Request) -> Response:
        if self._sid(request) is None:
            return _error("Not logged in", 401)
        app = self._app(request)
        if app is None:
            return _error("Unknown app", 404)
        return _json({"connections": await self.stats.connections(app.id)})

    async def _publish(self, request: Request) -> Response:
        sid = self._sid(request)
        if sid is None:
            return _error("Not logged in", 401)
        if not self.auth.csrf_ok(sid, request.headers.get("x-csrf-token")):
            return _error("Missing or wrong CSRF token", 403)
        app = self._app(request)
        if app is None:
            return _error("Unknown app", 404)
        try:
            form = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error("The body must be JSON", 400)
        event, problem = event_from_form(form)
        if event is None:
            return _error(problem, 400)
        body = orjson.dumps(event)
        path = f"/apps/{app.id}/events"
        query = signed_query(app, "POST", path, body, int(self.wall_clock()))
        status, payload, _ = await self.rest("POST", self.rest_prefix + path, query, body)
        if status != 200:
            return _error(payload.decode("utf-8", "replace").strip(), status)
        return _json({"ok": True, "channels": event["channels"]})

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if self._sid(request) is None:
            await _error("Not logged in", 401)(scope, receive, send)
            return
        app = self._app(request)
        if app is None:
            await _error("Unknown app", 404)(scope, receive, send)
            return
        rate = parse_rate(request.query_params.get("rate"))
        last = request.headers.get("last-event-id") or request.query_params.get("since", "")
        since = int(last) if last.isdigit() else None
        buffer = await self.feed.watch(app.id)
        try:
            await sse(send, receive, buffer, rate, since=since)
        finally:
            self.feed.unwatch(app.id)


class _RawEndpoint:
    """A plain ASGI endpoint for ``Route`` (Starlette would wrap a function as a view)."""

    def __init__(self, fn: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.fn = fn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fn(scope, receive, send)


def _public(app: App) -> dict[str, Any]:
    """What the console may show of an app: never the secret, never webhook URLs."""
    return {
        "id": app.id,
        "key": app.key,
        "enabled": app.enabled,
        "client_messages": app.enable_client_messages,
        "user_authentication": app.enable_user_authentication,
        "max_connections": app.max_connections,
        "webhooks": len(app.webhooks),
    }


async def _csrf(request: Request) -> str | None:
    token = request.headers.get("x-csrf-token")
    if token:
        return token
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = await request.body()
        return parse_qs(body.decode("utf-8", "replace")).get("csrf", [None])[0]
    return None


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(value), status, media_type="application/json", headers=_SECURITY_HEADERS
    )


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status, headers=_SECURITY_HEADERS)


def _file(name: str) -> Response:
    kind = _STATIC_TYPES.get(Path(name).suffix, "application/octet-stream")
    return Response((STATIC / name).read_bytes(), media_type=kind, headers=_SECURITY_HEADERS)
