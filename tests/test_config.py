"""Configuration: defaults, the TOML schema with ``file:line`` errors, env overrides."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pusherd.apps.base import WEBHOOK_EVENT_TYPES, WebhookTarget
from pusherd.config import DEV_APP, Config, load_config
from pusherd.errors import ConfigError
from pusherd.protocol.history import HistoryRule

__all__: list[str] = []

FULL = """\
debug = true
log_format = "json"

[server]
host = "0.0.0.0"
port = 6001
path_prefix = "/ws"
activity_timeout = 60
pong_timeout = 15
max_connections = 500
max_message_size_kb = 64
max_http_body_kb = 512
max_write_buffer_kb = 256
shutdown_grace = 5
timestamp_window = 300
workers = 2

[server.tls]
cert = "/tmp/cert.pem"
key = "/tmp/key.pem"

[scaling]
driver = "redis"
redis_url = "redis://:hunter2@127.0.0.1:6379/3"
node_id = "node-a"
heartbeat_interval = 2
node_timeout = 6.5

[webhooks]
delay = 1.5
retry_for = 60
timeout = 2.0
batch_window_ms = 20
max_batch_size = 10
max_queue = 100

[metrics]
enabled = false
port = 9100
host = "10.0.0.5"
prefix = "p_"

[[apps]]
id = 111
key = "key-one"
secret = "secret-one"
enabled = false
enable_client_messages = false
enable_user_authentication = true
user_authentication_timeout = 5
max_connections = 10
max_client_events_per_second = 3
max_backend_events_per_second = 50
max_event_payload_kb = 20
max_presence_members = 7
max_presence_member_size_kb = 2
allowed_origins = ["https://app.example.com", "*.example.org"]
subscription_count = true
watchlist = false

[[apps.webhooks]]
url = "https://hooks.example.com/pusher"
event_types = ["channel_occupied", "channel_vacated"]
filter = { channel_prefix = "private-", channel_suffix = "-x" }
headers = { Authorization = "Bearer t", "X-A" = "b" }
batch = true

[[apps.webhooks]]
url = "http://127.0.0.1:9000/hook"

[[apps]]
id = "222"
key = "key-two"
secret = "secret-two"
"""


def _write(tmp_path: Path, text: str, name: str = "pusherd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    return str(info.value)


def _assert_line(message: str, path_name: str, line: int) -> None:
    match = re.search(re.escape(path_name) + r":(\d+)", message)
    assert match, message
    assert int(match.group(1)) == line, message


# defaults --------------------------------------------------------------------------------
def test_config_defaults_without_file() -> None:
    config = load_config(None, environ={})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.server.activity_timeout == 120
    assert config.server.path_prefix == ""
    assert config.scaling.driver == "memory"
    assert config.apps == (DEV_APP,)
    (app,) = config.apps
    assert (app.id, app.key, app.secret) == ("12345", "app-key", "app-secret")
    assert app.enabled
    assert app.enable_client_messages
    assert not app.enable_user_authentication
    assert app.max_client_events_per_second == 10
    assert app.max_event_payload_kb == 10
    assert app.max_presence_members == 100
    assert app.max_presence_member_size_kb == 1
    assert app.allowed_origins == ("*",)
    assert not app.subscription_count
    assert config.source is None


def test_config_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""), environ={})
    assert config.server == Config().server
    assert config.apps == (DEV_APP,)
    assert config.source == str(tmp_path / "pusherd.toml")


def test_config_example_file_gives_defaults() -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = load_config(example, environ={})
    defaults = Config()
    assert config.server == defaults.server
    assert config.webhooks == defaults.webhooks
    assert config.metrics == defaults.metrics
    assert config.apps == defaults.apps


def test_config_node_id_generated_when_empty() -> None:
    first = load_config(None, environ={})
    second = load_config(None, environ={})
    assert first.scaling.node_id
    assert second.scaling.node_id
    assert first.scaling.node_id != second.scaling.node_id


def test_config_node_id_kept_when_set(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[scaling]\nnode_id = "n1"\n'), environ={})
    assert config.scaling.node_id == "n1"


# a full file -----------------------------------------------------------------------------
def test_config_full_file_parses_every_section(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL), environ={})
    assert config.debug is True
    assert config.log_format == "json"
    server = config.server
    assert (server.host, server.port, server.path_prefix) == ("0.0.0.0", 6001, "/ws")
    assert server.activity_timeout == 60
    assert server.pong_timeout == 15
    assert server.max_connections == 500
    assert server.max_message_size_kb == 64
    assert server.max_http_body_kb == 512
    assert server.max_write_buffer_kb == 256
    assert server.shutdown_grace == 5
    assert server.timestamp_window == 300
    assert server.workers == 2
    assert server.tls is not None
    assert (server.tls.cert, server.tls.key) == ("/tmp/cert.pem", "/tmp/key.pem")
    scaling = config.scaling
    assert scaling.driver == "redis"
    assert scaling.redis_url == "redis://:hunter2@127.0.0.1:6379/3"
    assert scaling.node_id == "node-a"
    assert (scaling.heartbeat_interval, scaling.node_timeout) == (2, 6.5)
    hooks = config.webhooks
    assert (hooks.delay, hooks.retry_for, hooks.timeout) == (1.5, 60, 2.0)
    assert (hooks.batch_window_ms, hooks.max_batch_size, hooks.max_queue) == (20, 10, 100)
    assert (
        config.metrics.enabled,
        config.metrics.port,
        config.metrics.host,
        config.metrics.prefix,
    ) == (False, 9100, "10.0.0.5", "p_")
    one, two = config.apps
    assert one.id == "111"
    assert isinstance(one.id, str)
    assert (one.key, one.secret) == ("key-one", "secret-one")
    assert not one.enabled
    assert not one.enable_client_messages
    assert one.enable_user_authentication
    assert one.user_authentication_timeout == 5
    assert one.max_connections == 10
    assert one.max_client_events_per_second == 3
    assert one.max_backend_events_per_second == 50
    assert one.max_event_payload_kb == 20
    assert one.max_presence_members == 7
    assert one.max_presence_member_size_kb == 2
    assert one.allowed_origins == ("https://app.example.com", "*.example.org")
    assert one.subscription_count
    assert not one.watchlist
    assert one.webhooks == (
        WebhookTarget(
            url="https://hooks.example.com/pusher",
            event_types=frozenset({"channel_occupied", "channel_vacated"}),
            channel_prefix="private-",
            channel_suffix="-x",
            headers=(("Authorization", "Bearer t"), ("X-A", "b")),
            batch=True,
        ),
        WebhookTarget(url="http://127.0.0.1:9000/hook"),
    )
    assert one.webhooks[1].event_types == WEBHOOK_EVENT_TYPES
    assert (two.id, two.key, two.secret) == ("222", "key-two", "secret-two")
    assert two.max_client_events_per_second == 10
    assert two.webhooks == ()


# errors with file:line -------------------------------------------------------------------
def test_config_unknown_key_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, '[server]\nhost = "h"\n\nprot = 1\n')
    _assert_line(message, "pusherd.toml", 4)
    assert "prot" in message


def test_config_unknown_top_level_key_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, "debug = false\nverbose = true\n")
    _assert_line(message, "pusherd.toml", 2)
    assert "verbose" in message


def test_config_unknown_section_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, "debug = false\n\n[sever]\nport = 1\n")
    _assert_line(message, "pusherd.toml", 3)
    assert "sever" in message


def test_config_wrong_type_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, '# comment\n[server]\nhost = "h"\nport = "8080"\n')
    _assert_line(message, "pusherd.toml", 4)
    assert "port" in message


def test_config_bool_is_not_an_integer(tmp_path: Path) -> None:
    message = _error(tmp_path, "[server]\nport = true\n")
    _assert_line(message, "pusherd.toml", 2)


def test_config_same_key_in_two_sections_points_at_the_right_one(tmp_path: Path) -> None:
    text = '[server]\nhost = "h"\n\n[metrics]\nport = 1\nenabled = "yes"\n'
    _assert_line(_error(tmp_path, text), "pusherd.toml", 6)
    text = '[metrics]\nport = 9100\n\n[server]\nport = "x"\n'
    _assert_line(_error(tmp_path, text), "pusherd.toml", 5)


def test_config_wrong_type_in_second_app_has_its_line(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "a"\nsecret = "s"\nenabled = true\n\n'
        '[[apps]]\nid = "2"\nkey = "b"\nsecret = "s"\nenabled = "no"\n'
    )
    _assert_line(_error(tmp_path, text), "pusherd.toml", 11)


def test_config_unknown_key_in_app_has_line(tmp_path: Path) -> None:
    text = '[[apps]]\nid = "1"\nkey = "a"\nsecret = "s"\nmax_conections = 5\n'
    message = _error(tmp_path, text)
    _assert_line(message, "pusherd.toml", 5)
    assert "max_conections" in message


def test_config_unknown_key_in_second_webhook_has_line(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "a"\nsecret = "s"\n\n'
        '[[apps.webhooks]]\nurl = "http://x.test/a"\n\n'
        '[[apps.webhooks]]\nurl = "http://x.test/b"\nevent = "x"\n'
    )
    message = _error(tmp_path, text)
    _assert_line(message, "pusherd.toml", 11)


def test_config_invalid_toml_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, '[server]\nhost = "h"\nport = = 1\n')
    _assert_line(message, "pusherd.toml", 3)


def test_config_invalid_toml_unclosed_string_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, 'debug = false\n\n[server]\nhost = "h\n')
    _assert_line(message, "pusherd.toml", 4)


def test_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", environ={})
    assert "nope.toml" in str(info.value)


def test_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'host = "\xff\xfe"\n')
    with pytest.raises(ConfigError):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[server]\nport = 70000\n", 2),
        ("[server]\nport = -1\n", 2),
        ("[server]\n\nactivity_timeout = 0\n", 3),
        ('[server]\npath_prefix = "ws"\n', 2),
        ('[server]\npath_prefix = "/ws/"\n', 2),
        ("[server]\nworkers = 0\n", 2),
        ("[server]\nmax_message_size_kb = 0\n", 2),
        ('[scaling]\ndriver = "kafka"\n', 2),
        ('log_format = "xml"\n', 1),
        ('debug = "yes"\n', 1),
    ],
    ids=lambda value: str(value).split("\n")[-2] if isinstance(value, str) else str(value),
)
def test_config_invalid_values_have_line(tmp_path: Path, text: str, line: int) -> None:
    _assert_line(_error(tmp_path, text), "pusherd.toml", line)


def test_config_tls_needs_cert_and_key(tmp_path: Path) -> None:
    message = _error(tmp_path, '[server]\nport = 1\n\n[server.tls]\ncert = "c"\n')
    _assert_line(message, "pusherd.toml", 4)


@pytest.mark.parametrize("missing", ["id", "key", "secret"])
def test_config_app_needs_id_key_secret(tmp_path: Path, missing: str) -> None:
    fields = {"id": '"1"', "key": '"k"', "secret": '"s"'}
    lines = [f"{k} = {v}" for k, v in fields.items() if k != missing]
    message = _error(tmp_path, "debug = false\n[[apps]]\n" + "\n".join(lines) + "\n")
    _assert_line(message, "pusherd.toml", 2)
    assert missing in message


def test_config_app_empty_secret(tmp_path: Path) -> None:
    _error(tmp_path, '[[apps]]\nid = "1"\nkey = "k"\nsecret = ""\n')


def test_config_app_negative_limit(tmp_path: Path) -> None:
    text = '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\nmax_connections = -1\n'
    _assert_line(_error(tmp_path, text), "pusherd.toml", 5)


def test_config_empty_allowed_origin(tmp_path: Path) -> None:
    text = '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\nallowed_origins = [""]\n'
    _assert_line(_error(tmp_path, text), "pusherd.toml", 5)


def test_config_duplicate_app_ids(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "a"\nsecret = "s"\n\n[[apps]]\nid = 1\nkey = "b"\nsecret = "s"\n'
    )
    message = _error(tmp_path, text)
    assert "duplicate" in message
    _assert_line(message, "pusherd.toml", 7)


def test_config_duplicate_app_keys(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "a"\nsecret = "s"\n\n'
        '[[apps]]\nid = "2"\nkey = "a"\nsecret = "s"\n'
    )
    message = _error(tmp_path, text)
    assert "duplicate" in message
    _assert_line(message, "pusherd.toml", 8)


def test_config_apps_must_be_array_of_tables(tmp_path: Path) -> None:
    _error(tmp_path, "apps = []\n")
    _error(tmp_path, '[apps]\nid = "1"\n')


@pytest.mark.parametrize("url", ["ftp://x.test/", "x.test/hook", ""])
def test_config_webhook_url_must_be_http(tmp_path: Path, url: str) -> None:
    text = f'[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n\n[[apps.webhooks]]\nurl = "{url}"\n'
    _assert_line(_error(tmp_path, text), "pusherd.toml", 7)


def test_config_webhook_url_required(tmp_path: Path) -> None:
    text = '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n\n[[apps.webhooks]]\nbatch = true\n'
    assert "url" in _error(tmp_path, text)


def test_config_webhook_unknown_event_type(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n\n[[apps.webhooks]]\n'
        'url = "http://x.test/"\nevent_types = ["channel_occupied", "member_joined"]\n'
    )
    message = _error(tmp_path, text)
    assert "member_joined" in message
    _assert_line(message, "pusherd.toml", 8)


def test_config_webhook_unknown_filter_key(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n\n[[apps.webhooks]]\n'
        'url = "http://x.test/"\nfilter = { channel_name_starts_with = "a" }\n'
    )
    _assert_line(_error(tmp_path, text), "pusherd.toml", 8)


def test_config_webhook_header_values_must_be_strings(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n\n[[apps.webhooks]]\n'
        'url = "http://x.test/"\nheaders = { X-N = 1 }\n'
    )
    _error(tmp_path, text)


# environment overrides -------------------------------------------------------------------
def test_config_env_host_and_port() -> None:
    config = load_config(None, environ={"PUSHERD_HOST": "0.0.0.0", "PUSHERD_PORT": "6001"})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 6001)


def test_config_env_reverb_host_and_port() -> None:
    env = {"REVERB_SERVER_HOST": "0.0.0.0", "REVERB_SERVER_PORT": "8081"}
    config = load_config(None, environ=env)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8081)


def test_config_env_pusherd_wins_over_reverb() -> None:
    env = {
        "PUSHERD_HOST": "10.0.0.1",
        "REVERB_SERVER_HOST": "10.0.0.2",
        "PUSHERD_PORT": "7001",
        "REVERB_SERVER_PORT": "7002",
    }
    config = load_config(None, environ=env)
    assert (config.server.host, config.server.port) == ("10.0.0.1", 7001)


def test_config_env_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nhost = "127.0.0.1"\nport = 1234\n')
    config = load_config(path, environ={"PUSHERD_PORT": "4321"})
    assert config.server.port == 4321


@pytest.mark.parametrize("port", ["http", "-1", "70000", "80a"])
def test_config_env_bad_port(port: str) -> None:
    with pytest.raises(ConfigError):
        load_config(None, environ={"PUSHERD_PORT": port})


def test_config_env_config_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "[server]\nport = 9999\n")
    config = load_config(None, environ={"PUSHERD_CONFIG": str(path)})
    assert config.server.port == 9999
    assert config.source == str(path)


def test_config_env_config_path_error_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[server]\nport = 'x'\n", name="env.toml")
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"PUSHERD_CONFIG": str(path)})
    _assert_line(str(info.value), "env.toml", 2)


def test_config_env_single_app() -> None:
    env = {"PUSHERD_APP_ID": "777", "PUSHERD_APP_KEY": "k7", "PUSHERD_APP_SECRET": "s7"}
    (app,) = load_config(None, environ=env).apps
    assert (app.id, app.key, app.secret) == ("777", "k7", "s7")


def test_config_env_reverb_app() -> None:
    env = {"REVERB_APP_ID": "888", "REVERB_APP_KEY": "k8", "REVERB_APP_SECRET": "s8"}
    (app,) = load_config(None, environ=env).apps
    assert (app.id, app.key, app.secret) == ("888", "k8", "s8")


def test_config_env_app_keeps_file_settings_of_single_app(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\nmax_connections = 5\n')
    env = {"PUSHERD_APP_ID": "2", "PUSHERD_APP_KEY": "k2", "PUSHERD_APP_SECRET": "s2"}
    (app,) = load_config(path, environ=env).apps
    assert (app.id, app.key, app.secret, app.max_connections) == ("2", "k2", "s2", 5)


@pytest.mark.parametrize(
    "env",
    [
        {"PUSHERD_APP_ID": "1"},
        {"PUSHERD_APP_ID": "1", "PUSHERD_APP_KEY": "k"},
        {"PUSHERD_APP_SECRET": "s"},
        {"REVERB_APP_KEY": "k", "REVERB_APP_SECRET": "s"},
    ],
)
def test_config_env_partial_app_is_an_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config(None, environ=env)


def test_config_env_driver_and_redis_url() -> None:
    env = {"PUSHERD_DRIVER": "redis", "PUSHERD_REDIS_URL": "redis://127.0.0.1:6390/1"}
    config = load_config(None, environ=env)
    assert config.scaling.driver == "redis"
    assert config.scaling.redis_url == "redis://127.0.0.1:6390/1"


def test_config_env_bad_driver() -> None:
    with pytest.raises(ConfigError):
        load_config(None, environ={"PUSHERD_DRIVER": "kafka"})


def test_config_env_node_id_and_path_prefix_and_debug() -> None:
    env = {"PUSHERD_NODE_ID": "pod-1", "PUSHERD_PATH_PREFIX": "/ws/", "PUSHERD_DEBUG": "1"}
    config = load_config(None, environ=env)
    assert config.scaling.node_id == "pod-1"
    assert config.server.path_prefix == "/ws"
    assert config.debug


def test_config_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHERD_PORT", "6123")
    monkeypatch.delenv("PUSHERD_CONFIG", raising=False)
    assert load_config().server.port == 6123


def test_config_webhook_error_in_second_app_points_at_its_webhook(tmp_path: Path) -> None:
    text = (
        '[[apps]]\nid = "1"\nkey = "a"\nsecret = "s"\n\n'
        '[[apps.webhooks]]\nurl = "http://x.test/a"\n\n'
        '[[apps]]\nid = "2"\nkey = "b"\nsecret = "s"\n\n'
        '[[apps.webhooks]]\nurl = "ftp://x.test/b"\n'
    )
    _assert_line(_error(tmp_path, text), "pusherd.toml", 15)


def test_config_env_path_prefix_is_validated_like_the_file() -> None:
    with pytest.raises(ConfigError):
        load_config(None, environ={"PUSHERD_PATH_PREFIX": "ws"})


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[server]\n\npong_timeout = 0\n", 3),
        ("[server]\n\nmax_connections = -1\n", 3),
        ("[server]\n\ntimestamp_window = 0\n", 3),
        ("[server]\n\nshutdown_grace = -1\n", 3),
        ("[scaling]\n\nheartbeat_interval = 0\n", 3),
        ("[scaling]\n\nnode_timeout = -5\n", 3),
        ("[webhooks]\n\ndelay = -1\n", 3),
        ("[webhooks]\n\ntimeout = 0\n", 3),
        ("[webhooks]\n\nmax_batch_size = 0\n", 3),
        ("[webhooks]\n\nmax_queue = -1\n", 3),
        ("[metrics]\n\nport = 70000\n", 3),
        ('[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\nuser_authentication_timeout = -1\n', 5),
    ],
    ids=lambda value: str(value).split("\n")[-2] if isinstance(value, str) else str(value),
)
def test_config_out_of_range_numbers_have_line(tmp_path: Path, text: str, line: int) -> None:
    _assert_line(_error(tmp_path, text), "pusherd.toml", line)


@pytest.mark.parametrize(
    ("field", "value"), [("id", "a:b"), ("key", "with space"), ("key", "a/b"), ("id", "x\ny")]
)
def test_config_app_id_and_key_must_be_url_and_key_safe(
    tmp_path: Path, field: str, value: str
) -> None:
    fields = {"id": '"1"', "key": '"k"', "secret": '"s"'}
    fields[field] = json.dumps(value)
    text = "[[apps]]\n" + "\n".join(f"{k} = {v}" for k, v in fields.items()) + "\n"
    message = _error(tmp_path, text)
    assert f"apps[0].{field}" in message
    assert "A-Z a-z 0-9" in message


def test_config_env_app_key_must_be_url_safe() -> None:
    env = {"PUSHERD_APP_ID": "1", "PUSHERD_APP_KEY": "a/b", "PUSHERD_APP_SECRET": "s"}
    with pytest.raises(ConfigError, match="PUSHERD_APP_KEY"):
        load_config(None, environ=env)


def test_config_env_soketi_names() -> None:
    env = {
        "SOKETI_PORT": "6001",
        "SOKETI_DEFAULT_APP_ID": "app-id",
        "SOKETI_DEFAULT_APP_KEY": "app-key-s",
        "SOKETI_DEFAULT_APP_SECRET": "app-secret-s",
        "SOKETI_ADAPTER_DRIVER": "redis",
        "SOKETI_DB_REDIS_HOST": "10.1.1.1",
        "SOKETI_DB_REDIS_PASSWORD": "p/w",
        "SOKETI_DEBUG": "1",
    }
    config = load_config(None, environ=env)
    assert config.server.port == 6001
    (app,) = config.apps
    assert (app.id, app.key, app.secret) == ("app-id", "app-key-s", "app-secret-s")
    assert config.scaling.driver == "redis"
    assert config.scaling.redis_url == "redis://:p%2Fw@10.1.1.1:6379/0"
    assert config.debug


def test_config_env_pusherd_names_win_over_soketi_and_reverb() -> None:
    env = {
        "PUSHERD_PORT": "7000",
        "SOKETI_PORT": "6001",
        "REVERB_APP_ID": "r",
        "REVERB_APP_KEY": "rk",
        "REVERB_APP_SECRET": "rs",
        "SOKETI_DEFAULT_APP_ID": "s",
        "SOKETI_DEFAULT_APP_KEY": "sk",
        "SOKETI_DEFAULT_APP_SECRET": "ss",
        "PUSHERD_DRIVER": "memory",
        "SOKETI_ADAPTER_DRIVER": "redis",
    }
    config = load_config(None, environ=env)
    assert config.server.port == 7000
    assert config.apps[0].id == "r"
    assert config.scaling.driver == "memory"


def test_config_env_soketi_driver_without_equivalent_is_an_error() -> None:
    with pytest.raises(ConfigError, match="SOKETI_ADAPTER_DRIVER='nats'"):
        load_config(None, environ={"SOKETI_ADAPTER_DRIVER": "nats"})


def test_config_env_pusher_app_block_and_reverb_scaling() -> None:
    env = {
        "PUSHER_APP_ID": "9",
        "PUSHER_APP_KEY": "pk",
        "PUSHER_APP_SECRET": "ps",
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
    }
    config = load_config(None, environ=env)
    assert (config.apps[0].id, config.apps[0].key) == ("9", "pk")
    assert config.scaling.driver == "redis"
    assert config.scaling.redis_url == "redis://cache.internal:6380/0"


def test_config_encryption_master_key_must_be_32_bytes(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\nencryption_master_key_base64 = "c2hvcnQ="\n',
    )
    with pytest.raises(ConfigError, match="base64 of 32 bytes"):
        load_config(path, environ={})


def test_config_schema_is_read_off_the_dataclasses() -> None:
    from dataclasses import fields

    from pusherd import config as module
    from pusherd.config import ServerConfig

    assert set(module._SCHEMA["server"]) == {f.name for f in fields(ServerConfig)}
    assert module._SCHEMA["server"]["shutdown_grace"] == (int, float)
    assert module._SCHEMA["server"]["tls"] == (dict,)
    assert module._APP_SCHEMA["id"] == (str, int)
    assert module._APP_SCHEMA["allowed_origins"] == (list,)
    assert "source" not in module._TOP_KEYS


def test_config_redis_topologies_load_with_tls_and_sentinels(tmp_path: Path) -> None:
    path = tmp_path / "pusherd.toml"
    path.write_text(
        "[scaling]\n"
        'driver = "redis-sentinel"\n'
        'redis_url = "rediss://app-user@ignored:6379/2"\n'
        'prefix = "staging"\n'
        'sentinels = ["10.0.0.1:26379", "[::1]:26380", "sentinel-2:26379"]\n'
        'sentinel_master = "pusher"\n'
        "\n[scaling.tls]\n"
        'ca = "/etc/ca.pem"\n'
        'cert = "/etc/client.pem"\n'
        'key = "/etc/client-key.pem"\n'
        "verify = false\n",
        encoding="utf-8",
    )
    scaling = load_config(path, environ={}).scaling
    assert scaling.driver == "redis-sentinel"
    assert scaling.prefix == "staging"
    assert scaling.sentinels == ("10.0.0.1:26379", "[::1]:26380", "sentinel-2:26379")
    assert scaling.sentinel_master == "pusher"
    assert (scaling.tls.ca, scaling.tls.cert, scaling.tls.key) == (
        "/etc/ca.pem",
        "/etc/client.pem",
        "/etc/client-key.pem",
    )
    assert scaling.tls.verify is False


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[scaling]\nprefix = "a:b"\n', 2),
        ('[scaling]\nprefix = "{tag}"\n', 2),
        ('[scaling]\nprefix = ""\n', 2),
        ('[scaling]\ndriver = "redis-sentinel"\n', 1),
        ('[scaling]\nsentinels = ["no-port"]\n', 2),
        ('[scaling]\ndriver = "redis"\nredis_url = "http://x"\n', 3),
        ('[scaling]\n\n[scaling.tls]\nca = "/ca.pem"\n', 3),
        ('[scaling]\nredis_url = "rediss://h"\n[scaling.tls]\ncert = "/c.pem"\n', 3),
        ('[scaling]\n[scaling.tls]\nverify = "no"\n', 3),
    ],
)
def test_config_invalid_redis_settings_have_line(tmp_path: Path, text: str, line: int) -> None:
    _assert_line(_error(tmp_path, text), "pusherd.toml", line)


def test_config_env_redis_password_prefix_and_sentinels() -> None:
    env = {
        "PUSHERD_DRIVER": "redis-sentinel",
        "PUSHERD_REDIS_PASSWORD": "pw-1",
        "PUSHERD_REDIS_SENTINEL_PASSWORD": "pw-2",
        "PUSHERD_REDIS_PREFIX": "prod",
        "PUSHERD_REDIS_SENTINELS": "s1:26379, s2:26379",
        "PUSHERD_REDIS_SENTINEL_MASTER": "main",
    }
    config = load_config(None, environ=env)
    scaling = config.scaling
    assert (scaling.password, scaling.sentinel_password) == ("pw-1", "pw-2")
    assert scaling.prefix == "prod"
    assert scaling.sentinels == ("s1:26379", "s2:26379")
    assert scaling.sentinel_master == "main"
    assert "pw-1" not in repr(config) and "pw-2" not in repr(config)


def test_config_env_bad_redis_prefix() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        load_config(None, environ={"PUSHERD_REDIS_PREFIX": "a:b"})


def test_config_console_is_off_by_default_and_reads_its_table(tmp_path: Path) -> None:
    from pusherd.config import ConsoleConfig

    assert load_config(environ={}).console == ConsoleConfig()
    path = tmp_path / "c.toml"
    path.write_text(
        '[metrics]\nport = 9100\n[console]\nenabled = true\npassword = "twelve-chars"\n'
        'path = "/debug"\nlisten = "metrics"\nsession_hours = 2\n',
        encoding="utf-8",
    )
    console = load_config(path, environ={}).console
    assert (console.enabled, console.path, console.listen, console.session_hours) == (
        True,
        "/debug",
        "metrics",
        2,
    )
    assert "twelve-chars" not in repr(console)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('path = "console"', "console.path"),
        ('path = "/apps"', "collides"),
        ('listen = "both"', "console.listen"),
        ("session_hours = 0", "session_hours"),
        ('enabled = true\npassword = "twelve-chars"\nlisten = "metrics"', "[metrics] port"),
    ],
)
def test_config_console_rejects_bad_values_with_the_line(
    tmp_path: Path, table: str, problem: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[console]\n{table}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert problem in str(info.value) and f"{path}:" in str(info.value)


# history and idempotency ------------------------------------------------------------------
_APP_HEAD = '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n'


def test_config_history_rules_and_idempotency_ttl_parse(tmp_path: Path) -> None:
    text = (
        _APP_HEAD
        + "history_max_bytes = 1048576\nidempotency_ttl = 60\n"
        + '[[apps.history]]\nchannel_prefix = "private-alerts-"\nmax_events = 1000\n'
        + "max_age = 86400\nclient_events = true\n"
        + '[[apps.history]]\nchannel_suffix = "-log"\n'
    )
    app = load_config(_write(tmp_path, text), environ={}).apps[0]

    assert app.history == (
        HistoryRule("private-alerts-", None, 1000, 86400, True),
        HistoryRule(channel_suffix="-log"),
    )
    assert (app.history_max_bytes, app.idempotency_ttl) == (1048576, 60)
    assert app.history[1].max_events == 50 and app.history[1].max_age == 120


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("max_events = 1001", "max_events must be 1-1000"),
        ("max_events = 0", "max_events must be 1-1000"),
        ("max_age = 86401", "max_age must be > 0 and <= 86400"),
        ("max_age = 0", "max_age must be > 0"),
        ('max_events = "50"', "must be an integer"),
        ("channel = 1", "unknown key 'channel'"),
    ],
)
def test_config_history_rule_errors_have_their_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    message = _error(tmp_path, _APP_HEAD + "[[apps.history]]\n" + line + "\n")

    assert expected in message
    _assert_line(message, "pusherd.toml", 6)


def test_config_negative_idempotency_ttl_is_refused(tmp_path: Path) -> None:
    assert "idempotency_ttl must be >= 0" in _error(tmp_path, _APP_HEAD + "idempotency_ttl = -1\n")
