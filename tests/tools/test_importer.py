"""``pusherd import``: soketi's config.json and a Laravel .env become TOML that loads."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from pusherd.config import load_config
from pusherd.errors import ConfigError
from pusherd.tools.importer import import_env, import_soketi

from .conftest import RunCli

__all__: list[str] = []

DATA = Path(__file__).parent / "data"


def _load(text: str, tmp_path: Path) -> object:
    path = tmp_path / "imported.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def test_importer_soketi_every_key_group_maps_or_is_commented(tmp_path: Path) -> None:
    text = import_soketi((DATA / "soketi-config.json").read_text())
    config = _load(text, tmp_path)
    from pusherd.config import Config

    assert isinstance(config, Config)
    server = config.server
    assert (server.host, server.port, server.path_prefix) == ("0.0.0.0", 6001, "/ws")
    assert server.shutdown_grace == 3.0
    assert server.max_http_body_kb == 512
    assert server.tls is not None and server.tls.cert == "/etc/ssl/cert.pem"
    assert config.debug
    assert config.scaling.driver == "redis"
    assert config.scaling.redis_url == "redis://soketi:pa%20ss@redis.internal:6390/2"
    assert config.scaling.prefix == "sk"
    assert config.webhooks.batch_window_ms == 80
    assert (config.metrics.port, config.metrics.prefix) == (9601, "soketi_")
    first, second = config.apps
    assert (first.id, first.key, first.secret) == ("app-1", "key-1", "secret-1")
    assert first.max_connections == 0 and first.max_client_events_per_second == 0
    assert first.max_backend_events_per_second == 100
    assert first.max_presence_members == 50 and second.max_presence_members == 100
    assert first.max_presence_member_size_kb == 2
    assert first.max_event_payload_kb == 32 and second.max_event_payload_kb == 100
    assert first.enable_user_authentication and first.user_authentication_timeout == 5
    assert first.enable_client_messages and not second.enable_client_messages
    (hook,) = first.webhooks
    assert hook.url == "https://example.test/hooks/pusher"
    assert hook.event_types == {"channel_occupied", "member_added"}
    assert (hook.channel_prefix, hook.channel_suffix) == ("private-", "-x")
    assert hook.headers == (("X-Token", "t0k"),) and hook.batch
    assert second.max_connections == 200
    comments = [line for line in text.splitlines() if line.startswith("#")]
    for group in (
        "adapter.nats",
        "adapter.redis.prefix",
        "appManager.cache",
        "cache.driver",
        "channelLimits.cacheTtl",
        "cluster.port",
        "cors.origin",
        "database.mysql",
        "database.postgres",
        "databasePooling",
        "eventLimits.maxBatchSize",
        "httpApi.acceptTraffic",
        "instance",
        "metrics.driver",
        "mode",
        "queue.driver",
        "rateLimiter",
        "ssl.passphrase",
        "maxReadRequestsPerSecond",
        "Lambda",
    ):
        assert any(group in line for line in comments), group
    assert "mysqlpw" not in text and '"pp"' not in text


def test_importer_soketi_sentinel_and_cluster_connections(tmp_path: Path) -> None:
    sentinel = {
        "adapter": {"driver": "redis"},
        "database": {
            "redis": {
                "sentinels": [{"host": "s1", "port": 26379}, {"host": "s2", "port": 26380}],
                "name": "primary",
                "sentinelPassword": "spw",
                "password": "pw",
            }
        },
    }
    config = _load(import_soketi(json.dumps(sentinel)), tmp_path)
    scaling = config.scaling  # type: ignore[attr-defined]
    assert scaling.driver == "redis-sentinel"
    assert scaling.sentinels == ("s1:26379", "s2:26380")
    assert (scaling.sentinel_master, scaling.sentinel_password) == ("primary", "spw")
    cluster = {
        "adapter": {"driver": "redis", "redis": {"clusterMode": True}},
        "database": {"redis": {"clusterNodes": ["10.0.0.1:7000", "10.0.0.2:7000"]}},
    }
    text = import_soketi(json.dumps(cluster))
    scaling = _load(text, tmp_path).scaling  # type: ignore[attr-defined]
    assert (scaling.driver, scaling.redis_url) == ("redis-cluster", "redis://10.0.0.1:7000/0")
    assert "discovered from this one" in text


def test_importer_soketi_other_drivers_and_no_apps(tmp_path: Path) -> None:
    text = import_soketi('{"adapter": {"driver": "nats"}, "appManager": {"driver": "mysql"}}')
    config = _load(text, tmp_path)
    assert config.scaling.driver == "memory"  # type: ignore[attr-defined]
    assert "adapter.driver = 'nats': no equivalent" in text
    assert "appManager.driver = 'mysql': no equivalent" in text
    assert "pusherd runs its dev app" in text
    assert "unknown soketi setting" in import_soketi('{"futureKey": 1}')
    with pytest.raises(ConfigError, match="invalid JSON"):
        import_soketi("{nope")


def test_importer_env_laravel_11_reverb_block(tmp_path: Path) -> None:
    text = import_env((DATA / "laravel11.env").read_text())
    config = _load(text, tmp_path)
    (app,) = config.apps  # type: ignore[attr-defined]
    assert (app.id, app.key, app.secret) == ("804211", "k3y-local", "s3cr3t#not-a-comment")
    server = config.server  # type: ignore[attr-defined]
    assert (server.host, server.port, server.max_message_size_kb) == ("0.0.0.0", 9090, 20)
    scaling = config.scaling  # type: ignore[attr-defined]
    assert (scaling.driver, scaling.redis_url) == ("redis", "redis://10.0.0.5:6380/0")
    assert "# REVERB_HOST: the public host" in text
    assert "# VITE_REVERB_PORT: Echo's copy" in text
    assert "base64:2fl" not in text and "DB_PASSWORD" not in text


def test_importer_env_pusher_block_with_master_key(tmp_path: Path) -> None:
    import base64

    key = base64.b64encode(bytes(range(32))).decode()
    env = (
        "BROADCAST_CONNECTION=pusher\nPUSHER_APP_ID=42\nPUSHER_APP_KEY=pk\n"
        f'PUSHER_APP_SECRET="ps"\nPUSHER_ENCRYPTION_MASTER_KEY_BASE64={key}\nPUSHER_HOST=ws.test\n'
    )
    text = import_env(env)
    (app,) = _load(text, tmp_path).apps  # type: ignore[attr-defined]
    assert (app.id, app.key, app.secret, app.encryption_master_key_base64) == (
        "42",
        "pk",
        "ps",
        key,
    )
    assert tomllib.loads(text)["apps"][0]["id"] == "42"
    assert "# PUSHER_HOST: the public host" in text


def test_importer_cli_writes_toml_to_stdout(cli: RunCli, tmp_path: Path) -> None:
    result = cli("import", "soketi", str(DATA / "soketi-config.json"), config=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == import_soketi(
        (DATA / "soketi-config.json").read_text(), "soketi-config.json"
    )
    missing = cli("import", "env", str(tmp_path / "none.env"), config=False)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
