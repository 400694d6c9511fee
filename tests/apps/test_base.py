"""``App`` and ``WebhookTarget``: secrets stay out of reprs, webhook filters."""

from __future__ import annotations

from dataclasses import replace

from pusherd.apps.base import WEBHOOK_EVENT_TYPES, App, WebhookTarget
from pusherd.config import Config, ScalingConfig
from pusherd.types import AppId, AppKey

__all__: list[str] = []

SECRET = "s3cr3t-value-9f8e7d"
APP = App(id=AppId("1"), key=AppKey("public-key"), secret=SECRET)


def test_app_repr_has_no_secret() -> None:
    text = repr(APP)
    assert SECRET not in text
    assert "public-key" in text
    assert SECRET not in str(APP)


def test_app_repr_with_webhooks_has_no_secret() -> None:
    app = replace(APP, webhooks=(WebhookTarget(url="http://127.0.0.1:1/h"),))
    assert SECRET not in repr(app)


def test_config_repr_has_no_secrets() -> None:
    redis_password = "redis-pass-6c5b4a"
    config = Config(
        apps=(APP,),
        scaling=ScalingConfig(driver="redis", redis_url=f"redis://:{redis_password}@127.0.0.1:1/0"),
    )
    text = repr(config)
    assert SECRET not in text
    assert redis_password not in text
    assert SECRET not in str(config)


def test_app_byte_limits() -> None:
    app = replace(APP, max_event_payload_kb=3, max_presence_member_size_kb=2)
    assert app.max_event_payload_bytes == 3072
    assert app.max_presence_member_bytes == 2048


def test_app_defaults() -> None:
    assert APP.enabled
    assert APP.enable_client_messages
    assert not APP.enable_user_authentication
    assert APP.max_client_events_per_second == 10
    assert APP.allowed_origins == ("*",)
    assert APP.webhooks == ()


def test_webhook_target_wants_every_type_by_default() -> None:
    target = WebhookTarget(url="http://127.0.0.1:1/h")
    for name in WEBHOOK_EVENT_TYPES:
        assert target.wants(name, "any-channel")
    assert not target.wants("unknown_event", "any-channel")


def test_webhook_target_wants_filters_event_types() -> None:
    target = WebhookTarget(url="http://x.test/", event_types=frozenset({"member_added"}))
    assert target.wants("member_added", "presence-a")
    assert not target.wants("member_removed", "presence-a")
    assert not target.wants("channel_occupied", "presence-a")


def test_webhook_target_wants_filters_prefix_and_suffix() -> None:
    target = WebhookTarget(url="http://x.test/", channel_prefix="private-", channel_suffix="-log")
    assert target.wants("channel_occupied", "private-a-log")
    assert not target.wants("channel_occupied", "private-a")
    assert not target.wants("channel_occupied", "public-a-log")
    prefix_only = WebhookTarget(url="http://x.test/", channel_prefix="presence-")
    assert prefix_only.wants("member_added", "presence-room")
    assert not prefix_only.wants("member_added", "private-room")
    suffix_only = WebhookTarget(url="http://x.test/", channel_suffix=".vip")
    assert suffix_only.wants("client_event", "private-a.vip")
    assert not suffix_only.wants("client_event", "private-a.vip2")


def test_webhook_target_wants_without_channel_skips_channel_filters() -> None:
    target = WebhookTarget(
        url="http://x.test/",
        event_types=frozenset({"channel_vacated"}),
        channel_prefix="private-",
    )
    assert target.wants("channel_vacated", None)
    assert not target.wants("member_added", None)
