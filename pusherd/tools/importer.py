"""``pusherd import soketi config.json`` and ``pusherd import env .env``: equivalent TOML.

The output is a pusherd config file (it loads with ``load_config``). Every setting that
has no pusherd equivalent becomes a ``#`` comment saying what pusherd does instead, so
nothing is dropped silently.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from pusherd.dotenv import parse_dotenv
from pusherd.errors import ConfigError

__all__ = ["TomlDraft", "import_env", "import_soketi"]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "-_" for ch in key):
        return key
    return _value(key)


@dataclass
class _Table:
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class TomlDraft:
    """Tables filled in any order, written out in pusherd's order with their notes."""

    source: str
    top: _Table = field(default_factory=_Table)
    tables: dict[str, _Table] = field(default_factory=dict)
    apps: list[tuple[_Table, list[_Table]]] = field(default_factory=list)

    def table(self, name: str) -> _Table:
        return self.tables.setdefault(name, _Table())

    def set(self, table: str, key: str, value: Any) -> None:
        self.table(table).values[key] = value

    def note(self, table: str, text: str) -> None:
        self.table(table).notes.append(text)

    def render(self) -> str:
        lines = [f"# pusherd config imported from {self.source}", ""]
        lines += [f"# {note}" for note in self.top.notes]
        if self.top.notes and self.top.values:
            lines.append("")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in self.top.values.items()]
        for name in ("server", "server.tls", "scaling", "webhooks", "metrics"):
            table = self.tables.get(name)
            if table is None or not (table.values or table.notes):
                continue
            lines.append("")
            if table.values:
                lines.append(f"[{name}]")
            lines += [f"# {note}" for note in table.notes]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in table.values.items()]
        for app, hooks in self.apps:
            lines += ["", "[[apps]]"]
            lines += [f"# {note}" for note in app.notes]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in app.values.items()]
            for hook in hooks:
                lines += ["", "[[apps.webhooks]]"]
                lines += [f"# {note}" for note in hook.notes]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in hook.values.items()]
        return "\n".join(lines).rstrip("\n") + "\n"


# -- soketi ------------------------------------------------------------------------------------

# soketi settings pusherd has no counterpart for, and what it does instead.
_SOKETI_NO_EQUIVALENT = {
    "adapter.redis": "pusherd's Redis broker has its own key layout and timeouts",
    "adapter.cluster": "no UDP discovery: nodes share state through Redis",
    "adapter.nats": "no NATS adapter: use Redis",
    "appManager.cache": "apps come from the config file and are reloaded on SIGHUP",
    "cache": "cache channels are stored by the scaling driver (memory or Redis)",
    "channelLimits.maxNameLength": "fixed at 200 characters (Pusher's limit)",
    "channelLimits.cacheTtl": "cache channels keep their last event for 30 minutes",
    "cluster": "no UDP discovery: nodes share state through Redis",
    "cors": "the REST API is called by backends, not browsers; pusherd sends no CORS headers",
    "database.mysql": "no SQL app manager: list apps in [[apps]]",
    "database.postgres": "no SQL app manager: list apps in [[apps]]",
    "database.redis.keyPrefix": "empty: [scaling] prefix stays 'pusherd'",
    "database.redis.sentinels": "no Sentinel listed, so it is not used",
    "database.redis.name": "the Sentinel master name; no Sentinel listed, so it is not used",
    "database.redis.sentinelPassword": "no Sentinel listed, so it is not used",
    "database.redis.clusterNodes": "no Redis Cluster node listed, so it is not used",
    "databasePooling": "no SQL app manager, so no pool",
    "eventLimits.maxChannelsAtOnce": "fixed at 100 channels per event (Pusher's limit)",
    "eventLimits.maxNameLength": "fixed at 200 characters (Pusher's limit)",
    "eventLimits.maxBatchSize": "fixed at 10 events per batch (Pusher's limit)",
    "httpApi.acceptTraffic": "no memory threshold: /ready reports draining and broker state",
    "instance": "set [scaling] node_id (or PUSHERD_NODE_ID) to name a node",
    "metrics.driver": "metrics are always Prometheus",
    "mode": "every node serves WebSockets, REST and webhooks (no worker-only mode)",
    "queue": "webhooks are queued in process and retried; see [webhooks]",
    "rateLimiter": "rate limits are counted per node, in memory",
    "ssl.passphrase": "use an unencrypted key file",
    "ssl.caPath": "put the chain in the certificate file (fullchain.pem)",
}
_SOKETI_APP_NO_EQUIVALENT = {
    "maxReadRequestsPerSecond": "REST reads are not rate limited",
    "maxChannelNameLength": "fixed at 200 characters",
    "maxEventChannelsAtOnce": "fixed at 100",
    "maxEventNameLength": "fixed at 200 characters",
    "maxEventBatchSize": "fixed at 10",
}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` and ``{"a.b": 1}`` both become ``{"a.b": 1}`` (lists stay)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _unlimited(value: Any) -> int:
    """soketi writes -1 (or null) for unlimited; pusherd writes 0."""
    return 0 if value is None or value < 0 else int(value)


def _ms(value: Any) -> float:
    seconds = float(value) / 1000
    return int(seconds) if seconds.is_integer() else seconds


def import_soketi(text: str, source: str = "config.json") -> str:
    """Translate a soketi ``config.json``; raise ConfigError if it is not valid JSON."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be an object")
    flat = _flatten(data)
    apps_raw = flat.pop("appManager.array.apps", None)
    draft = TomlDraft(source)
    defaults: dict[str, Any] = {}
    webhook_batch = False
    handled: set[str] = set()

    def take(name: str) -> Any:
        handled.add(name)
        return flat.get(name)

    def present(name: str) -> bool:
        return name in flat

    if present("debug"):
        draft.top.values["debug"] = bool(take("debug"))
    if present("host"):
        draft.set("server", "host", str(take("host")))
    if present("port"):
        draft.set("server", "port", int(take("port")))
    if present("pathPrefix"):
        draft.set("server", "path_prefix", str(take("pathPrefix")).rstrip("/"))
    if present("shutdownGracePeriod"):
        draft.set("server", "shutdown_grace", float(_ms(take("shutdownGracePeriod"))))
    if present("httpApi.requestLimitInMb"):
        mb = float(take("httpApi.requestLimitInMb"))
        draft.set("server", "max_http_body_kb", max(1, math.ceil(mb * 1024)))
    cert, key = take("ssl.certPath"), take("ssl.keyPath")
    if cert and key:
        draft.set("server.tls", "cert", str(cert))
        draft.set("server.tls", "key", str(key))
    elif cert or key:
        draft.note("server", "ssl: only one of certPath/keyPath is set; TLS left off")
    driver = take("adapter.driver")
    if driver is not None:
        if driver in ("local", "redis"):
            draft.set("scaling", "driver", "memory" if driver == "local" else "redis")
        else:
            draft.set("scaling", "driver", "memory")
            draft.note("scaling", f"adapter.driver = {driver!r}: no equivalent; use 'redis'")
    redis = {
        part: take(f"database.redis.{part}")
        for part in ("host", "port", "db", "username", "password")
    }
    if any(v not in (None, "") for v in redis.values()):
        auth = ""
        if redis["password"]:
            user = quote(str(redis["username"] or ""), safe="")
            auth = f"{user}:{quote(str(redis['password']), safe='')}@"
        host = redis["host"] or "127.0.0.1"
        draft.set(
            "scaling",
            "redis_url",
            f"redis://{auth}{host}:{redis['port'] or 6379}/{redis['db'] or 0}",
        )
    _soketi_topology(flat, take, draft, redis)
    if present("metrics.enabled"):
        draft.set("metrics", "enabled", bool(take("metrics.enabled")))
    if present("metrics.port"):
        draft.set("metrics", "port", int(take("metrics.port")))
    if present("metrics.host"):
        draft.set("metrics", "host", str(take("metrics.host")))
    if present("metrics.prometheus.prefix"):
        draft.set("metrics", "prefix", str(take("metrics.prometheus.prefix")))
        draft.note(
            "metrics",
            "same prefix as soketi, so dashboards keep their queries where the names match "
            "(see docs/migrating-from-soketi.md)",
        )
    if present("webhooks.batching.enabled"):
        webhook_batch = bool(take("webhooks.batching.enabled"))
    if present("webhooks.batching.duration"):
        draft.set("webhooks", "batch_window_ms", int(float(take("webhooks.batching.duration"))))
    for soketi_key, ours in (
        ("presence.maxMembersPerChannel", "max_presence_members"),
        ("presence.maxMemberSizeInKb", "max_presence_member_size_kb"),
        ("eventLimits.maxPayloadInKb", "max_event_payload_kb"),
    ):
        if present(soketi_key):
            defaults[ours] = _unlimited(take(soketi_key))
    if present("userAuthenticationTimeout"):
        defaults["user_authentication_timeout"] = _ms(take("userAuthenticationTimeout"))
    manager = take("appManager.driver")
    notes = draft.top.notes
    if manager not in (None, "array"):
        notes.append(
            f"appManager.driver = {manager!r}: no equivalent; list the apps in [[apps]] "
            "(pusherd reloads them on SIGHUP)"
        )
    unmapped = []
    for name in sorted(flat):
        if name in handled:
            continue
        reason = next(
            (why for key, why in _SOKETI_NO_EQUIVALENT.items() if _under(name, key)), None
        )
        shown = _value(flat[name]) if name.split(".")[-1] not in _SECRET_WORDS else '"***"'
        unmapped.append(f"  {name} = {shown}: {reason or 'unknown soketi setting, ignored'}")
    if unmapped:
        notes.append("soketi settings without an equivalent:")
        notes.extend(unmapped)
    if apps_raw is None:
        notes.append("no appManager.array.apps: pusherd runs its dev app (pusherd keygen)")
    elif not isinstance(apps_raw, list):
        raise ConfigError(f"{source}: appManager.array.apps must be a list")
    else:
        for index, raw in enumerate(apps_raw):
            if not isinstance(raw, dict):
                raise ConfigError(f"{source}: appManager.array.apps[{index}] must be an object")
            draft.apps.append(_soketi_app(raw, defaults, webhook_batch))
    return draft.render()


def _address(node: Any) -> str | None:
    """``host:port`` from soketi's ``{"host", "port"}`` objects or ``"host:port"`` strings."""
    if isinstance(node, dict) and node.get("host"):
        return f"{node['host']}:{node.get('port') or 6379}"
    if isinstance(node, str) and node:
        return node if ":" in node else f"{node}:6379"
    return None


def _soketi_topology(
    flat: Mapping[str, Any],
    take: Any,
    draft: TomlDraft,
    redis: Mapping[str, Any],
) -> None:
    """Key prefix, Sentinel and Redis Cluster settings of soketi's Redis connection."""
    prefix = flat.get("database.redis.keyPrefix")
    if isinstance(prefix, str) and prefix.strip(":"):
        take("database.redis.keyPrefix")
        draft.set("scaling", "prefix", prefix.strip(":"))
    if draft.table("scaling").values.get("driver") != "redis":
        return
    sentinels = [a for a in map(_address, flat.get("database.redis.sentinels") or []) if a]
    cluster = [a for a in map(_address, flat.get("database.redis.clusterNodes") or []) if a]
    if sentinels:
        for name in ("sentinels", "name", "sentinelPassword"):
            take(f"database.redis.{name}")
        draft.set("scaling", "driver", "redis-sentinel")
        draft.set("scaling", "sentinels", sentinels)
        draft.set("scaling", "sentinel_master", str(flat.get("database.redis.name") or "mymaster"))
        if flat.get("database.redis.sentinelPassword"):
            draft.set("scaling", "sentinel_password", str(flat["database.redis.sentinelPassword"]))
    elif cluster or flat.get("adapter.redis.clusterMode") is True:
        take("database.redis.clusterNodes")
        take("adapter.redis.clusterMode")
        draft.set("scaling", "driver", "redis-cluster")
        if cluster:
            auth = ""
            if redis.get("password"):
                user = quote(str(redis.get("username") or ""), safe="")
                auth = f"{user}:{quote(str(redis['password']), safe='')}@"
            draft.set("scaling", "redis_url", f"redis://{auth}{cluster[0]}/0")
            draft.note("scaling", "the other Redis Cluster nodes are discovered from this one")


_SECRET_WORDS = {"password", "secret", "sentinelPassword", "passphrase", "secretAccessKey"}


def _under(name: str, key: str) -> bool:
    return name == key or name.startswith(key + ".")


def _soketi_app(
    raw: Mapping[str, Any], defaults: Mapping[str, Any], batch: bool
) -> tuple[_Table, list[_Table]]:
    app = _Table()
    app.values["id"] = str(raw.get("id", ""))
    app.values["key"] = str(raw.get("key", ""))
    app.values["secret"] = str(raw.get("secret", ""))
    values = app.values
    values.update(defaults)
    if "enabled" in raw:
        values["enabled"] = bool(raw["enabled"])
    # soketi's default is false; pusherd's is true, so it is always written.
    values["enable_client_messages"] = bool(raw.get("enableClientMessages", False))
    if "enableUserAuthentication" in raw:
        values["enable_user_authentication"] = bool(raw["enableUserAuthentication"])
    for soketi_key, ours in (
        ("maxConnections", "max_connections"),
        ("maxClientEventsPerSecond", "max_client_events_per_second"),
        ("maxBackendEventsPerSecond", "max_backend_events_per_second"),
        ("maxPresenceMembersPerChannel", "max_presence_members"),
        ("maxPresenceMemberSizeInKb", "max_presence_member_size_kb"),
        ("maxEventPayloadInKb", "max_event_payload_kb"),
    ):
        if soketi_key in raw:
            values[ours] = _unlimited(raw[soketi_key])
    known = {
        "id",
        "key",
        "secret",
        "enabled",
        "enableClientMessages",
        "enableUserAuthentication",
        "maxConnections",
        "maxClientEventsPerSecond",
        "maxBackendEventsPerSecond",
        "maxPresenceMembersPerChannel",
        "maxPresenceMemberSizeInKb",
        "maxEventPayloadInKb",
        "webhooks",
    }
    for name, value in raw.items():
        if name in known:
            continue
        reason = _SOKETI_APP_NO_EQUIVALENT.get(name, "unknown soketi app setting, ignored")
        app.notes.append(f"{name} = {_value(value)}: {reason}")
    hooks = []
    for hook_raw in raw.get("webhooks") or []:
        hook = _Table()
        if not hook_raw.get("url"):
            app.notes.append("a webhook without url (an AWS Lambda target?) was left out")
            continue
        hook.values["url"] = str(hook_raw["url"])
        if hook_raw.get("event_types"):
            hook.values["event_types"] = [str(e) for e in hook_raw["event_types"]]
        flt = hook_raw.get("filter") or {}
        wanted: dict[str, str] = {}
        if flt.get("channel_name_starts_with"):
            wanted["channel_prefix"] = str(flt["channel_name_starts_with"])
        if flt.get("channel_name_ends_with"):
            wanted["channel_suffix"] = str(flt["channel_name_ends_with"])
        if wanted:
            hook.values["filter"] = wanted
        if hook_raw.get("headers"):
            hook.values["headers"] = {str(k): str(v) for k, v in hook_raw["headers"].items()}
        if batch:
            hook.values["batch"] = True
        for name in hook_raw:
            if name not in {"url", "event_types", "filter", "headers"}:
                hook.notes.append(f"{name}: no equivalent (only HTTP targets), ignored")
        hooks.append(hook)
    return app, hooks


# -- Laravel .env ------------------------------------------------------------------------------

_CLIENT_SIDE = {
    "REVERB_HOST": "the public host Laravel and Echo connect to; it stays in .env",
    "REVERB_PORT": "the public port Laravel and Echo connect to; it stays in .env",
    "REVERB_SCHEME": "the public scheme Laravel and Echo use; it stays in .env",
    "PUSHER_HOST": "the public host Laravel and Echo connect to; it stays in .env",
    "PUSHER_PORT": "the public port Laravel and Echo connect to; it stays in .env",
    "PUSHER_SCHEME": "the public scheme Laravel and Echo use; it stays in .env",
    "PUSHER_APP_CLUSTER": "hosted Pusher's cluster; with pusherd, set PUSHER_HOST/PORT instead",
    "BROADCAST_CONNECTION": "Laravel's broadcaster; keep 'reverb' or 'pusher'",
    "BROADCAST_DRIVER": "Laravel's broadcaster; keep 'reverb' or 'pusher'",
    "REVERB_SERVER": "the name of Reverb's server config; pusherd has one server",
    "REVERB_APP_PING_INTERVAL": "pusherd pings after activity_timeout seconds of silence",
    "REVERB_SCALING_CHANNEL": "pusherd's Redis broker uses its own channels",
}


def import_env(text: str, source: str = ".env") -> str:
    """Translate the broadcasting part of a Laravel ``.env`` (Reverb or Pusher)."""
    env = parse_dotenv(text, {}, source)
    draft = TomlDraft(source)
    family = (
        "REVERB" if any(env.get(f"REVERB_APP_{k}") for k in ("ID", "KEY", "SECRET")) else "PUSHER"
    )
    app_id, key, secret = (env.get(f"{family}_APP_{k}", "") for k in ("ID", "KEY", "SECRET"))
    used = {f"{family}_APP_ID", f"{family}_APP_KEY", f"{family}_APP_SECRET"}
    if family == "REVERB":
        if any(env.get(f"PUSHER_APP_{k}") for k in ("ID", "KEY", "SECRET")):
            draft.top.notes.append("PUSHER_APP_*: REVERB_APP_* is set too and is used instead")
        used |= {"PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"}
    if env.get("REVERB_SERVER_HOST"):
        draft.set("server", "host", env["REVERB_SERVER_HOST"])
    if env.get("REVERB_SERVER_PORT"):
        draft.set("server", "port", _int(env, "REVERB_SERVER_PORT", source))
    if env.get("REVERB_SERVER_PATH"):
        draft.set("server", "path_prefix", "/" + env["REVERB_SERVER_PATH"].strip("/"))
    if env.get("REVERB_APP_ACTIVITY_TIMEOUT"):
        draft.set("server", "activity_timeout", _int(env, "REVERB_APP_ACTIVITY_TIMEOUT", source))
    if env.get("REVERB_APP_MAX_MESSAGE_SIZE"):
        size = _int(env, "REVERB_APP_MAX_MESSAGE_SIZE", source)
        draft.set("server", "max_message_size_kb", max(1, math.ceil(size / 1024)))
        draft.note("server", "REVERB_APP_MAX_MESSAGE_SIZE is in bytes; pusherd counts KiB")
    used |= {
        "REVERB_SERVER_HOST",
        "REVERB_SERVER_PORT",
        "REVERB_SERVER_PATH",
        "REVERB_APP_ACTIVITY_TIMEOUT",
        "REVERB_APP_MAX_MESSAGE_SIZE",
        "REVERB_APP_MAX_CONNECTIONS",
        "REVERB_SCALING_ENABLED",
        "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
    }
    if env.get("REVERB_SCALING_ENABLED", "").lower() in {"1", "true", "yes", "on"}:
        draft.set("scaling", "driver", "redis")
        url = env.get("REDIS_URL") or _laravel_redis(env)
        draft.set("scaling", "redis_url", url)
    app = _Table()
    if app_id and key and secret:
        app.values.update({"id": app_id, "key": key, "secret": secret})
        if env.get("REVERB_APP_MAX_CONNECTIONS"):
            app.values["max_connections"] = _int(env, "REVERB_APP_MAX_CONNECTIONS", source)
        master = env.get("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", "")
        if master:
            if _is_key(master):
                app.values["encryption_master_key_base64"] = master
            else:
                app.notes.append(
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not base64 of 32 bytes: left out"
                )
        draft.apps.append((app, []))
    else:
        draft.top.notes.append(
            f"{family}_APP_ID/_KEY/_SECRET are not all set: pusherd runs its dev app "
            "(pusherd keygen makes credentials)"
        )
    for name in sorted(env):
        if name in used or not env[name]:
            continue
        bare = name.removeprefix("VITE_")
        if name.startswith("VITE_") and bare.startswith(("REVERB_", "PUSHER_")):
            draft.top.notes.append(f"{name}: Echo's copy for the browser; it stays in .env")
        elif bare in _CLIENT_SIDE:
            draft.top.notes.append(f"{name}: {_CLIENT_SIDE[bare]}")
        elif name.startswith(("REVERB_", "PUSHER_", "VITE_REVERB_", "VITE_PUSHER_")):
            draft.top.notes.append(f"{name}: no pusherd equivalent, ignored")
    return draft.render()


def _int(env: Mapping[str, str], name: str, source: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ConfigError(f"{source}: {name} must be a whole number, got {env[name]!r}") from None


def _is_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _laravel_redis(env: Mapping[str, str]) -> str:
    password = env.get("REDIS_PASSWORD", "")
    if password.lower() == "null":
        password = ""
    user = env.get("REDIS_USERNAME", "")
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if password else ""
    host = env.get("REDIS_HOST") or "127.0.0.1"
    return f"redis://{auth}{host}:{env.get('REDIS_PORT') or 6379}/{env.get('REDIS_DB') or 0}"
