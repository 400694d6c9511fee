"""Which app and which running node a client verb talks to, and signed REST calls to it.

Every verb reads the same configuration as ``pusherd serve`` (``--config``,
``$PUSHERD_CONFIG``, the ``PUSHERD_*``/``REVERB_*``/``SOKETI_*`` variables), so the app
credentials never have to be typed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import orjson

from pusherd.apps.base import App
from pusherd.config import Config
from pusherd.errors import ConfigError
from pusherd.protocol.signing import body_md5, sign, string_to_sign

__all__ = ["Answer", "Target", "pick_app", "resolve_target"]

# A node listening on every interface is reached on loopback from the same machine.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def pick_app(config: Config, wanted: str | None) -> App:
    """Return the app whose id or key is ``wanted`` (the only app when ``wanted`` is None)."""
    if wanted is None:
        if len(config.apps) > 1:
            ids = ", ".join(app.id for app in config.apps)
            raise ConfigError(f"the config has several apps ({ids}): choose one with --app")
        return config.apps[0]
    for app in config.apps:
        if wanted in (app.id, app.key):
            return app
    raise ConfigError(f"no app with id or key {wanted!r} in the config")


@dataclass(frozen=True, slots=True)
class Answer:
    """A REST answer: the HTTP status and the body as text."""

    status: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> object:
        return orjson.loads(self.text)


@dataclass(frozen=True)
class Target:
    """A running node (its base URL, path prefix included) and one app on it."""

    app: App
    http_url: str
    verify_tls: bool = True

    @property
    def ws_url(self) -> str:
        scheme, _, rest = self.http_url.partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest

    def signed_path(
        self, method: str, path: str, body: bytes = b"", params: dict[str, str] | None = None
    ) -> str:
        """Return ``path?query`` signed like the Pusher server SDKs sign (auth_version 1.0)."""
        query = {
            **(params or {}),
            "auth_key": self.app.key,
            "auth_timestamp": str(int(time.time())),
            "auth_version": "1.0",
        }
        if body:
            query["body_md5"] = body_md5(body)
        signature = sign(self.app.secret, string_to_sign(method, path, query.items()))
        encoded = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items())
        )
        return f"{path}?{encoded}&auth_signature={signature}"

    def call(
        self,
        method: str,
        path: str,
        body: object | None = None,
        params: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Answer:
        """Send a signed REST request for ``/apps/{id}...`` and return the answer."""
        raw = orjson.dumps(body) if body is not None else b""
        # Signed without the node's path prefix, sent with it (the server strips it).
        url = self.http_url + self.signed_path(method, path, raw, params)
        headers = {"content-type": "application/json"} if raw else {}
        with httpx.Client(timeout=timeout, verify=self.verify_tls) as client:
            response = client.request(method, url, content=raw or None, headers=headers)
        return Answer(response.status_code, response.text)


def resolve_target(
    config: Config, app: str | None = None, url: str | None = None, insecure: bool = False
) -> Target:
    """The node from ``url`` (``http(s)://host:port[/prefix]``), else from the config."""
    chosen = pick_app(config, app)
    if url:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url must start with http:// or https:// (got {url!r})")
        return Target(chosen, url.rstrip("/"), not insecure)
    server = config.server
    host = _ANY_ADDRESS.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if server.tls else "http"
    return Target(chosen, f"{scheme}://{host}:{server.port}{server.path_prefix}", not insecure)
