"""``config.example.toml`` loads, documents every key, and states the real defaults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pusherd import config as config_module
from pusherd.apps.base import App, WebhookTarget
from pusherd.config import (
    Config,
    ConsoleConfig,
    MetricsConfig,
    ScalingConfig,
    ServerConfig,
    TlsConfig,
    WebhookSettings,
    load_config,
)
from pusherd.protocol.history import HistoryRule

__all__: list[str] = []

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"

# Dataclass fields that are not TOML keys (where the config was loaded from).
_NOT_KEYS = {"source"}


def _mentioned_keys() -> set[str]:
    """Return every ``key =`` written in the file, commented out or not."""
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = set(re.findall(r"^[#\s]*([A-Za-z_][A-Za-z0-9_]*)\s*=", text, flags=re.MULTILINE))
    # Inline tables: ``filter = { channel_prefix = "...", channel_suffix = "" }``.
    keys |= set(re.findall(r"[{,]\s*([A-Za-z_]+)\s*=", text))
    # Table headers: ``[server]``, ``# [server.tls]``, ``[[apps]]``, ``# [[apps.webhooks]]``.
    for header in re.findall(r"^[#\s]*\[\[?\s*([A-Za-z_.]+)\s*\]", text, flags=re.MULTILINE):
        keys |= set(header.split("."))
    return keys


def _field_names(*classes: type) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def test_config_example_loads() -> None:
    config = load_config(EXAMPLE, environ={})

    assert config.source == str(EXAMPLE)
    assert [app.id for app in config.apps] == ["12345"]
    assert config.apps[0].key == "app-key"
    assert config.apps[0].secret == "app-secret"


def test_config_example_mentions_every_dataclass_field() -> None:
    mentioned = _mentioned_keys()
    fields = _field_names(
        Config,
        ServerConfig,
        TlsConfig,
        ScalingConfig,
        WebhookSettings,
        MetricsConfig,
        ConsoleConfig,
        App,
        WebhookTarget,
        HistoryRule,
    )

    missing = sorted(fields - _NOT_KEYS - mentioned)

    assert not missing, f"config.example.toml does not document: {missing}"


def test_config_example_mentions_every_schema_key() -> None:
    mentioned = _mentioned_keys()
    schema_keys: set[str] = set(config_module._TOP_KEYS)
    for section in config_module._SCHEMA.values():
        schema_keys |= set(section)
    schema_keys |= set(config_module._APP_SCHEMA) | set(config_module._WEBHOOK_SCHEMA)
    schema_keys |= set(config_module._HISTORY_SCHEMA)

    missing = sorted(schema_keys - mentioned)

    assert not missing, f"config.example.toml does not document: {missing}"


def test_config_example_values_are_the_defaults() -> None:
    config = load_config(EXAMPLE, environ={})
    defaults = Config()

    assert config.server == defaults.server
    assert config.scaling == dataclasses.replace(defaults.scaling, node_id=config.scaling.node_id)
    assert config.webhooks == defaults.webhooks
    assert config.metrics == defaults.metrics
    assert config.console == defaults.console
    assert config.debug == defaults.debug
    assert config.log_format == defaults.log_format
    assert config.apps == defaults.apps


def test_config_example_webhook_block_is_valid_when_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# [[apps.webhooks]]") :]
    uncommented = "\n".join(
        line[2:]
        for line in block.splitlines()
        if line.startswith("# [[") or (line.startswith("# ") and "=" in line)
    )
    path = tmp_path / "config-webhooks.toml"
    path.write_text(text + "\n" + uncommented + "\n", encoding="utf-8")

    config = load_config(path, environ={})

    (hook,) = config.apps[0].webhooks
    assert hook.url == "https://example.com/pusher/webhook"
    assert hook.channel_prefix == "private-"
    assert hook.headers == (("Authorization", "Bearer change-me"),)
    assert hook.batch is False


def test_config_example_history_block_is_valid_when_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# [[apps.history]]")
    block = text[start : text.index("\n\n", start)]
    uncommented = "\n".join(
        line[2:]
        for line in block.splitlines()
        if line.startswith("# [[") or (line.startswith("# ") and "=" in line)
    )
    path = tmp_path / "config-history.toml"
    path.write_text(text + "\n" + uncommented + "\n", encoding="utf-8")

    config = load_config(path, environ={})

    (rule,) = config.apps[0].history
    assert rule == HistoryRule(channel_prefix="private-alerts-", channel_suffix="")
