"""Configuration: frozen dataclasses from TOML plus environment overrides.

The variables are ``PUSHERD_*``, then the ``REVERB_*``, ``SOKETI_*`` and ``PUSHER_APP_*``
names of the servers and Laravel apps pusherd replaces.

Every key and its default is documented in ``config.example.toml``. Errors raise
``ConfigError`` with the file name and, where it can be found, the line number.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
import tomllib
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pusherd.apps.base import WEBHOOK_EVENT_TYPES, App, WebhookTarget
from pusherd.errors import ConfigError
from pusherd.protocol.history import MAX_AGE_CAP, MAX_EVENTS_CAP, HistoryRule
from pusherd.types import AppId, AppKey

__all__ = [
    "DEV_APP",
    "Config",
    "ConsoleConfig",
    "MetricsConfig",
    "RedisTlsConfig",
    "ScalingConfig",
    "ServerConfig",
    "TlsConfig",
    "WebhookSettings",
    "check_console_password",
    "load_config",
]

DEV_APP = App(id=AppId("12345"), key=AppKey("app-key"), secret="app-secret")


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    path_prefix: str = ""
    activity_timeout: int = 120
    # Seconds a pinged socket has to answer before it is closed with 4201.
    pong_timeout: int = 30
    max_connections: int = 0
    max_message_size_kb: int = 100
    max_http_body_kb: int = 1024
    # Seconds a REST request has from its first byte to its last before it gets 408.
    http_request_timeout: float = 10.0
    # Outstanding (unsent) bytes per socket before a slow consumer is cut off (4100).
    max_write_buffer_kb: int = 1024
    shutdown_grace: float = 10.0
    timestamp_window: int = 600
    tls: TlsConfig | None = None
    workers: int = 1


@dataclass(frozen=True, slots=True)
class RedisTlsConfig:
    ca: str = ""
    cert: str = ""
    key: str = ""
    verify: bool = True


DRIVERS = ("memory", "redis", "redis-sentinel", "redis-cluster")


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    driver: str = "memory"
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    node_id: str = ""
    heartbeat_interval: float = 5.0
    node_timeout: float = 15.0
    prefix: str = "pusherd"
    password: str = field(default="", repr=False)
    tls: RedisTlsConfig = RedisTlsConfig()
    sentinels: tuple[str, ...] = ()
    sentinel_master: str = "mymaster"
    sentinel_password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    delay: float = 3.0
    retry_for: float = 300.0
    timeout: float = 10.0
    batch_window_ms: int = 50
    max_batch_size: int = 50
    max_queue: int = 10_000


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    port: int = 0
    # Interface of the separate metrics port; "" = the server's host.
    host: str = ""
    prefix: str = "pusherd_"


CONSOLE_MIN_PASSWORD = 12


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The live debug console (``pusherd.console``), off by default."""

    enabled: bool = False
    password: str = field(default="", repr=False)
    path: str = "/console"
    # "main": on the server port (under path_prefix); "metrics": only on [metrics] port.
    listen: str = "main"
    session_hours: float = 12.0


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    scaling: ScalingConfig = ScalingConfig()
    webhooks: WebhookSettings = WebhookSettings()
    metrics: MetricsConfig = MetricsConfig()
    console: ConsoleConfig = ConsoleConfig()
    apps: tuple[App, ...] = (DEV_APP,)
    debug: bool = False
    log_format: str = "text"
    source: str | None = None


Kinds = tuple[type, ...]


def _kinds(hint: Any) -> Kinds:
    """The TOML value types a field of type ``hint`` accepts (int where a float is due)."""
    supertype = getattr(hint, "__supertype__", None)  # a NewType such as AppId
    if supertype is not None:
        return _kinds(supertype)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        found: list[type] = []
        for arg in typing.get_args(hint):
            if arg is not type(None):
                found += [k for k in _kinds(arg) if k not in found]
        return tuple(found)
    if origin in (tuple, list, frozenset, set):
        return (list,)
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return (dict,)
    if hint is float:
        return (int, float)
    return (hint,)


def _schema(cls: type, **overrides: Kinds) -> dict[str, Kinds]:
    """A config table's keys and value types, read off its dataclass (never restated)."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: overrides.get(f.name) or _kinds(hints[f.name])
        for f in dataclasses.fields(cls)
        if f.init
    }


# Every [table] of the file is a dataclass field of Config; [[apps]] items are Apps.
_SECTIONS: dict[str, type] = {
    name: hint
    for name, hint in typing.get_type_hints(Config).items()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint)
}
_SCHEMA: dict[str, dict[str, Kinds]] = {name: _schema(cls) for name, cls in _SECTIONS.items()}
# App ids may be written as numbers (Pusher's are), and become strings.
_APP_SCHEMA = _schema(App, id=(str, int))

# A webhook's file shape differs from WebhookTarget's (a "filter" table, a header table).
_WEBHOOK_SCHEMA: dict[str, Kinds] = {
    "url": (str,),
    "event_types": (list,),
    "filter": (dict,),
    "headers": (dict,),
    "batch": (bool,),
}

# A history rule's keys are HistoryRule's fields.
_HISTORY_SCHEMA = _schema(HistoryRule)
_REDIS_TLS_SCHEMA = _schema(RedisTlsConfig)

# A prefix starts Redis key and channel names joined by ':' (and is a hash tag on Redis
# Cluster): a ':', brace or space in it could make two prefixes' names collide.
_PREFIX = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_PREFIX_RULE = "must be 1-64 characters from A-Z a-z 0-9 _ . -"
_SENTINEL = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\s\[\]]+):\d{1,5}")

_TOP_KEYS = {f.name for f in dataclasses.fields(Config)} - {"source"}


class _Locator:
    """Find the line of a key in the TOML text, for error messages."""

    def __init__(self, text: str, path: str) -> None:
        self.lines = text.splitlines()
        self.path = path

    def line_of(self, table: str | None, key: str | None, index: int | None = None) -> int | None:
        start = 0
        if table is not None:
            header = re.compile(
                r"^\s*\[\[\s*" + re.escape(table) + r"\s*\]\]"
                if index is not None
                else r"^\s*\[\s*" + re.escape(table) + r"\s*\]"
            )
            seen = -1
            found = None
            for number, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if index is None or seen == index:
                        found = number
                        break
            if found is None:
                return None
            start = found
            if key is None:
                return found + 1
        if key is None:
            return None
        if table is None:
            header = re.compile(r"^\s*\[+\s*" + re.escape(key) + r"\s*[\].]")
            for number, line in enumerate(self.lines):
                if header.match(line):
                    return number + 1
        pattern = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
        for number in range(start, len(self.lines)):
            if number > start and table is not None and self.lines[number].lstrip().startswith("["):
                break
            if pattern.match(self.lines[number]):
                return number + 1
        return None

    def error(
        self, message: str, table: str | None, key: str | None, index: int | None = None
    ) -> ConfigError:
        line = self.line_of(table, key, index)
        where = f"{self.path}:{line}" if line else self.path
        return ConfigError(f"{where}: {message}")


def _check_types(
    data: Mapping[str, Any],
    schema: Mapping[str, Kinds],
    loc: _Locator,
    table: str | None,
    index: int | None = None,
) -> None:
    label = table if index is None else f"{table}[{index}]"
    for key, value in data.items():
        if key not in schema:
            raise loc.error(f"unknown key {key!r} in [{label}]", table, key, index)
        kinds = schema[key]
        # bool is an int subclass; refuse true/false where a number is expected.
        if isinstance(value, bool) and bool not in kinds:
            raise loc.error(f"{label}.{key} must be {_kind_name(kinds)}", table, key, index)
        if not isinstance(value, kinds):
            raise loc.error(f"{label}.{key} must be {_kind_name(kinds)}", table, key, index)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def _positive(value: float, name: str, loc: _Locator, table: str, allow_zero: bool = True) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise loc.error(f"{table}.{name} must be {'>= 0' if allow_zero else '> 0'}", table, name)


# App ids and keys appear in URLs (/app/{key}, /apps/{id}) and, joined by ':', in Redis
# key names: a '/', ':', space or control character in one would break either.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_IDENTIFIER_RULE = "must be 1-100 characters from A-Z a-z 0-9 _ . -"


def _build_app(raw: Mapping[str, Any], index: int, loc: _Locator, hook_base: int = 0) -> App:
    _check_types(raw, _APP_SCHEMA, loc, "apps", index)
    for required in ("id", "key", "secret"):
        if not raw.get(required):
            raise loc.error(f"apps[{index}] needs a non-empty {required!r}", "apps", None, index)
    for attr in ("id", "key"):
        if not _IDENTIFIER.fullmatch(str(raw[attr])):
            raise loc.error(f"apps[{index}].{attr} {_IDENTIFIER_RULE}", "apps", attr, index)
    webhooks = []
    for hook_index, hook in enumerate(raw.get("webhooks", [])):
        if not isinstance(hook, dict):
            raise loc.error(
                f"apps[{index}].webhooks[{hook_index}] must be a table",
                "apps.webhooks",
                None,
                hook_base + hook_index,
            )
        webhooks.append(_build_webhook(hook, hook_base + hook_index, loc))
    rules = []
    for rule_index, rule in enumerate(raw.get("history", [])):
        if not isinstance(rule, dict):
            raise loc.error(
                f"apps[{index}].history[{rule_index}] must be a table",
                "apps.history",
                None,
                rule_index,
            )
        rules.append(_build_history(rule, rule_index, loc))
    fields: dict[str, Any] = {k: v for k, v in raw.items() if k not in {"webhooks", "history"}}
    if rules:
        fields["history"] = tuple(rules)
    fields["id"] = AppId(str(raw["id"]))
    fields["key"] = AppKey(raw["key"])
    if "allowed_origins" in raw:
        origins = raw["allowed_origins"]
        if not all(isinstance(o, str) and o for o in origins):
            raise loc.error(
                "allowed_origins must be non-empty strings", "apps", "allowed_origins", index
            )
        fields["allowed_origins"] = tuple(origins)
    master = raw.get("encryption_master_key_base64")
    if master and not _is_master_key(master):
        raise loc.error(
            f"apps[{index}].encryption_master_key_base64 must be base64 of 32 bytes",
            "apps",
            "encryption_master_key_base64",
            index,
        )
    for name in (
        "max_connections",
        "max_client_events_per_second",
        "max_backend_events_per_second",
        "max_event_payload_kb",
        "max_presence_members",
        "max_presence_member_size_kb",
        "user_authentication_timeout",
        "history_max_bytes",
        "idempotency_ttl",
    ):
        if raw.get(name, 0) < 0:
            raise loc.error(f"apps[{index}].{name} must be >= 0", "apps", name, index)
    return App(webhooks=tuple(webhooks), **fields)


def _is_master_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _build_history(raw: Mapping[str, Any], index: int, loc: _Locator) -> HistoryRule:
    _check_types(raw, _HISTORY_SCHEMA, loc, "apps.history", index)
    rule = HistoryRule(**raw)
    if not 1 <= rule.max_events <= MAX_EVENTS_CAP:
        raise loc.error(
            f"history max_events must be 1-{MAX_EVENTS_CAP}", "apps.history", "max_events", index
        )
    if not 0 < rule.max_age <= MAX_AGE_CAP:
        raise loc.error(
            f"history max_age must be > 0 and <= {MAX_AGE_CAP:g} seconds",
            "apps.history",
            "max_age",
            index,
        )
    return rule


def _build_webhook(raw: Mapping[str, Any], index: int, loc: _Locator) -> WebhookTarget:
    _check_types(raw, _WEBHOOK_SCHEMA, loc, "apps.webhooks", index)
    url = raw.get("url")
    if not url or not re.match(r"^https?://", url):
        raise loc.error(
            f"webhook url must start with http:// or https:// (got {url!r})",
            "apps.webhooks",
            "url",
            index,
        )
    event_types = frozenset(raw.get("event_types", WEBHOOK_EVENT_TYPES))
    unknown = event_types - WEBHOOK_EVENT_TYPES
    if unknown:
        raise loc.error(
            f"unknown webhook event types: {', '.join(sorted(unknown))}",
            "apps.webhooks",
            "event_types",
            index,
        )
    flt = raw.get("filter", {})
    extra = set(flt) - {"channel_prefix", "channel_suffix"}
    if extra:
        raise loc.error(
            f"unknown webhook filter keys: {', '.join(sorted(extra))}",
            "apps.webhooks",
            "filter",
            index,
        )
    headers = raw.get("headers", {})
    if not all(isinstance(v, str) for v in headers.values()):
        raise loc.error("webhook header values must be strings", "apps.webhooks", "headers", index)
    return WebhookTarget(
        url=url,
        event_types=event_types,
        channel_prefix=flt.get("channel_prefix"),
        channel_suffix=flt.get("channel_suffix"),
        headers=tuple(sorted(headers.items())),
        batch=bool(raw.get("batch", False)),
    )


def _parse(text: str, path: str) -> Config:
    loc = _Locator(text, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{match.group(1)}" if match else path
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise loc.error(f"unknown top-level key {key!r}", None, key)
    sections: dict[str, dict[str, Any]] = {}
    for name, schema in _SCHEMA.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise loc.error(f"[{name}] must be a table", None, name)
        _check_types(raw, schema, loc, name)
        sections[name] = dict(raw)
    server_raw = sections["server"]
    tls = None
    if "tls" in server_raw:
        tls_raw = server_raw.pop("tls")
        if set(tls_raw) != {"cert", "key"}:
            raise loc.error("[server.tls] needs exactly 'cert' and 'key'", "server.tls", None)
        tls = TlsConfig(cert=str(tls_raw["cert"]), key=str(tls_raw["key"]))
    server = ServerConfig(tls=tls, **server_raw)
    if not 0 <= server.port <= 65535:
        raise loc.error("server.port must be between 0 and 65535", "server", "port")
    if server.activity_timeout <= 0:
        raise loc.error(
            "server.activity_timeout must be > 0 (pusher-js requires it)",
            "server",
            "activity_timeout",
        )
    if server.path_prefix and (
        not server.path_prefix.startswith("/") or server.path_prefix.endswith("/")
    ):
        raise loc.error(
            "server.path_prefix must start with '/' and not end with '/'", "server", "path_prefix"
        )
    for name in (
        "max_message_size_kb",
        "max_http_body_kb",
        "max_write_buffer_kb",
        "workers",
        "pong_timeout",
        "timestamp_window",
        "http_request_timeout",
    ):
        _positive(getattr(server, name), name, loc, "server", allow_zero=False)
    for name in ("max_connections", "shutdown_grace"):
        _positive(getattr(server, name), name, loc, "server")
    scaling = _build_scaling(sections["scaling"], loc)
    webhooks = WebhookSettings(**sections["webhooks"])
    for name in ("delay", "retry_for", "batch_window_ms"):
        _positive(getattr(webhooks, name), name, loc, "webhooks")
    for name in ("timeout", "max_batch_size", "max_queue"):
        _positive(getattr(webhooks, name), name, loc, "webhooks", allow_zero=False)
    metrics = MetricsConfig(**sections["metrics"])
    if not 0 <= metrics.port <= 65535:
        raise loc.error("metrics.port must be between 0 and 65535", "metrics", "port")
    console = _build_console(sections["console"], metrics, loc)
    apps_raw = data.get("apps", None)
    if apps_raw is None:
        apps: tuple[App, ...] = (DEV_APP,)
    else:
        if not isinstance(apps_raw, list) or not apps_raw:
            raise loc.error("[[apps]] must be a non-empty array of tables", None, "apps")
        built = []
        hook_base = 0
        for index, raw in enumerate(apps_raw):
            if not isinstance(raw, dict):
                raise loc.error(f"apps[{index}] must be a table", "apps", None, index)
            built.append(_build_app(raw, index, loc, hook_base))
            hooks = raw.get("webhooks", [])
            hook_base += len(hooks) if isinstance(hooks, list) else 0
        apps = tuple(built)
    _check_unique(apps, loc)
    debug = data.get("debug", False)
    log_format = data.get("log_format", "text")
    if not isinstance(debug, bool):
        raise loc.error("debug must be true or false", None, "debug")
    if log_format not in {"text", "json"}:
        raise loc.error("log_format must be 'text' or 'json'", None, "log_format")
    return Config(
        server=server,
        scaling=scaling,
        webhooks=webhooks,
        metrics=metrics,
        console=console,
        apps=apps,
        debug=debug,
        log_format=log_format,
        source=path,
    )


def _build_scaling(raw: dict[str, Any], loc: _Locator) -> ScalingConfig:
    fields = dict(raw)
    if "tls" in fields:
        _check_types(fields["tls"], _REDIS_TLS_SCHEMA, loc, "scaling.tls")
        fields["tls"] = RedisTlsConfig(**fields["tls"])
    if "sentinels" in fields:
        sentinels = fields["sentinels"]
        for entry in sentinels:
            if not isinstance(entry, str) or not _SENTINEL.fullmatch(entry):
                raise loc.error(
                    f"scaling.sentinels entries must be 'host:port' strings (got {entry!r})",
                    "scaling",
                    "sentinels",
                )
        fields["sentinels"] = tuple(sentinels)
    scaling = ScalingConfig(**fields)
    if scaling.driver not in DRIVERS:
        raise loc.error(
            f"scaling.driver must be one of {', '.join(DRIVERS)} (got {scaling.driver!r})",
            "scaling",
            "driver",
        )
    for name in ("heartbeat_interval", "node_timeout"):
        _positive(getattr(scaling, name), name, loc, "scaling", allow_zero=False)
    problem = _scaling_problem(scaling)
    if problem is not None:
        message, key = problem
        if key == "tls":
            raise loc.error(message, "scaling.tls", None)
        # a missing key is reported at the [scaling] header
        raise loc.error(message, "scaling", key if loc.line_of("scaling", key) else None)
    return scaling


def _scaling_problem(scaling: ScalingConfig) -> tuple[str, str] | None:
    """What is wrong with the Redis settings (message, key), checked after overrides too."""
    if not _PREFIX.fullmatch(scaling.prefix):
        return f"scaling.prefix {_PREFIX_RULE} (got {scaling.prefix!r})", "prefix"
    scheme = scaling.redis_url.partition("://")[0]
    if scaling.driver != "memory" and scheme not in {"redis", "rediss"}:
        return "scaling.redis_url must start with redis:// or rediss://", "redis_url"
    if scaling.tls != RedisTlsConfig() and scheme != "rediss":
        return "[scaling.tls] needs a rediss:// redis_url", "tls"
    if bool(scaling.tls.cert) != bool(scaling.tls.key):
        return "[scaling.tls] needs both 'cert' and 'key', or neither", "tls"
    if scaling.driver == "redis-sentinel":
        if not scaling.sentinels:
            return 'driver = "redis-sentinel" needs scaling.sentinels', "sentinels"
        if not scaling.sentinel_master:
            return 'driver = "redis-sentinel" needs scaling.sentinel_master', "sentinel_master"
    return None


def _build_console(raw: dict[str, Any], metrics: MetricsConfig, loc: _Locator) -> ConsoleConfig:
    console = ConsoleConfig(**raw)
    path = console.path
    if (
        not path.startswith("/")
        or path.endswith("/")
        or not re.fullmatch(r"[A-Za-z0-9_/.\-]+", path)
    ):
        raise loc.error(
            "console.path must start with '/', not end with '/', and use URL-safe characters",
            "console",
            "path",
        )
    if path.startswith(("/app/", "/apps", "/users")) or path in ("/up", "/ready", "/metrics"):
        raise loc.error(f"console.path {path!r} collides with a pusherd route", "console", "path")
    if console.listen not in {"main", "metrics"}:
        raise loc.error(
            f"console.listen must be 'main' or 'metrics' (got {console.listen!r})",
            "console",
            "listen",
        )
    if console.session_hours <= 0:
        raise loc.error("console.session_hours must be > 0", "console", "session_hours")
    if console.enabled and console.listen == "metrics" and not metrics.port:
        raise loc.error(
            'console.listen = "metrics" needs [metrics] port (and enabled = true)',
            "console",
            "listen",
        )
    if console.enabled and console.listen == "metrics" and not metrics.enabled:
        raise loc.error(
            'console.listen = "metrics" needs [metrics] enabled = true', "console", "listen"
        )
    return console


def check_console_password(console: ConsoleConfig) -> None:
    """Refuse an enabled console without a password of ``CONSOLE_MIN_PASSWORD`` characters.

    Raises:
        ConfigError: enabled with a missing or short password (file or environment).
    """
    if console.enabled and len(console.password) < CONSOLE_MIN_PASSWORD:
        raise ConfigError(
            "[console] enabled needs a password of at least "
            f"{CONSOLE_MIN_PASSWORD} characters ([console] password or PUSHERD_CONSOLE_PASSWORD)"
        )


def _check_unique(apps: tuple[App, ...], loc: _Locator) -> None:
    for attr in ("id", "key"):
        seen: set[str] = set()
        for index, app in enumerate(apps):
            value = getattr(app, attr)
            if value in seen:
                raise loc.error(f"duplicate app {attr} {value!r}", "apps", attr, index)
            seen.add(value)


# Families of app credentials, in order of precedence; the first with any of the three set
# is used, and it must set all three.
_APP_ENV_FAMILIES = (
    ("PUSHERD_APP_ID", "PUSHERD_APP_KEY", "PUSHERD_APP_SECRET"),
    ("REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET"),
    ("SOKETI_DEFAULT_APP_ID", "SOKETI_DEFAULT_APP_KEY", "SOKETI_DEFAULT_APP_SECRET"),
    ("PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"),
)
_SOKETI_DRIVERS = {"local": "memory", "redis": "redis"}
_TRUTHY = {"1", "true", "yes"}


def _redis_url_from(environ: Mapping[str, str], prefix: str) -> str | None:
    """``redis://`` from ``{prefix}HOST``/``PORT``/``USERNAME``/``PASSWORD``/``DB``, if any is set.

    soketi's ``SOKETI_DB_REDIS_*`` and Laravel's ``REDIS_*`` (Reverb scaling) use them.
    """
    names = ("HOST", "PORT", "USERNAME", "PASSWORD", "DB")
    values = {n: environ.get(f"{prefix}{n}", "") for n in names}
    if not any(values.values()):
        return None
    auth = ""
    if values["PASSWORD"]:
        auth = f"{quote(values['USERNAME'], safe='')}:{quote(values['PASSWORD'], safe='')}@"
    host = values["HOST"] or "127.0.0.1"
    return f"redis://{auth}{host}:{values['PORT'] or '6379'}/{values['DB'] or '0'}"


def _env_overrides(config: Config, environ: Mapping[str, str]) -> Config:
    def pick(*names: str) -> str | None:
        for name in names:
            value = environ.get(name)
            if value:
                return value
        return None

    server = config.server
    host = pick("PUSHERD_HOST", "REVERB_SERVER_HOST")
    port_names = ("PUSHERD_PORT", "REVERB_SERVER_PORT", "SOKETI_PORT")
    port = pick(*port_names)
    if host:
        server = replace(server, host=host)
    if port:
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{'/'.join(port_names)} must be a port number, got {port!r}")
        server = replace(server, port=int(port))
    prefix = environ.get("PUSHERD_PATH_PREFIX", environ.get("SOKETI_PATH_PREFIX"))
    if prefix is not None:
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ConfigError(f"PUSHERD_PATH_PREFIX must start with '/', got {prefix!r}")
        server = replace(server, path_prefix=prefix)
    scaling = config.scaling
    driver = environ.get("PUSHERD_DRIVER")
    if driver:
        if driver not in DRIVERS:
            raise ConfigError(f"PUSHERD_DRIVER must be one of {', '.join(DRIVERS)}, got {driver!r}")
        scaling = replace(scaling, driver=driver)
    elif environ.get("REVERB_SCALING_ENABLED", "") in _TRUTHY:
        scaling = replace(scaling, driver="redis")
    elif environ.get("SOKETI_ADAPTER_DRIVER"):
        soketi_driver = environ["SOKETI_ADAPTER_DRIVER"]
        if soketi_driver not in _SOKETI_DRIVERS:
            raise ConfigError(
                f"SOKETI_ADAPTER_DRIVER={soketi_driver!r} has no pusherd equivalent: "
                "use 'local' (one process) or 'redis' (a cluster)"
            )
        scaling = replace(scaling, driver=_SOKETI_DRIVERS[soketi_driver])
    redis_url = environ.get("PUSHERD_REDIS_URL") or _redis_url_from(environ, "SOKETI_DB_REDIS_")
    if not redis_url and environ.get("REVERB_SCALING_ENABLED", "") in _TRUTHY:
        redis_url = environ.get("REDIS_URL") or _redis_url_from(environ, "REDIS_")
    if redis_url:
        scaling = replace(scaling, redis_url=redis_url)
    for name, attr in (
        ("PUSHERD_REDIS_PASSWORD", "password"),
        ("PUSHERD_REDIS_SENTINEL_PASSWORD", "sentinel_password"),
        ("PUSHERD_REDIS_PREFIX", "prefix"),
        ("PUSHERD_REDIS_SENTINEL_MASTER", "sentinel_master"),
    ):
        value = environ.get(name)
        if value:
            scaling = replace(scaling, **{attr: value})  # type: ignore[arg-type]
    sentinels = environ.get("PUSHERD_REDIS_SENTINELS")
    if sentinels:
        entries = tuple(entry.strip() for entry in sentinels.split(",") if entry.strip())
        if not all(_SENTINEL.fullmatch(entry) for entry in entries):
            raise ConfigError("PUSHERD_REDIS_SENTINELS must be host:port entries separated by ','")
        scaling = replace(scaling, sentinels=entries)
    if scaling != config.scaling:
        problem = _scaling_problem(scaling)
        if problem is not None:
            raise ConfigError(f"after PUSHERD_* overrides: {problem[0]}")
    node_id = environ.get("PUSHERD_NODE_ID")
    if node_id:
        scaling = replace(scaling, node_id=node_id)
    apps = config.apps
    for names in _APP_ENV_FAMILIES:
        app_id, app_key, app_secret = (environ.get(name) or None for name in names)
        if not (app_id or app_key or app_secret):
            continue
        if not (app_id and app_key and app_secret):
            raise ConfigError(
                f"set all of {', '.join(names)} (or PUSHERD_APP_ID/_KEY/_SECRET), not only some"
            )
        for name, value in ((names[0], app_id), (names[1], app_key)):
            if not _IDENTIFIER.fullmatch(value):
                raise ConfigError(f"{name} {_IDENTIFIER_RULE}, got {value!r}")
        base = apps[0] if len(apps) == 1 else DEV_APP
        apps = (replace(base, id=AppId(app_id), key=AppKey(app_key), secret=app_secret),)
        break
    debug = (
        config.debug
        or environ.get("PUSHERD_DEBUG", "") in _TRUTHY
        or environ.get("SOKETI_DEBUG", "") in _TRUTHY
    )
    console = config.console
    password = environ.get("PUSHERD_CONSOLE_PASSWORD")
    if password:
        console = replace(console, password=password)
    return replace(config, server=server, scaling=scaling, apps=apps, debug=debug, console=console)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Load the configuration.

    Args:
        path: a TOML file; ``None`` falls back to ``$PUSHERD_CONFIG`` or built-in defaults
            (the dev app ``12345``/``app-key``/``app-secret``).
        environ: the environment to read overrides from (default ``os.environ``).

    Raises:
        ConfigError: the file cannot be read or is invalid; the message has ``file:line``.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("PUSHERD_CONFIG"):
        path = env["PUSHERD_CONFIG"]
    if path is None:
        config = Config()
    else:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: not UTF-8 text") from None
        config = _parse(text, str(file))
    config = _env_overrides(config, env)
    try:
        check_console_password(config.console)
    except ConfigError as exc:
        raise ConfigError(f"{config.source or 'environment'}: {exc}") from None
    if not config.scaling.node_id:
        config = replace(config, scaling=replace(config.scaling, node_id=uuid.uuid4().hex[:12]))
    return config


def generate_credentials() -> tuple[str, str, str]:
    """Return a fresh numeric app id, a key and a secret (``pusherd keygen``)."""
    app_id = str(secrets.randbelow(9_000_000) + 1_000_000)
    return app_id, secrets.token_hex(10), secrets.token_hex(20)
