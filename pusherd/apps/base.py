"""The ``App`` value object and the registry protocol that finds apps by id or key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pusherd.protocol.history import DEFAULT_MAX_BYTES, HistoryRule
from pusherd.types import AppId, AppKey

__all__ = ["WEBHOOK_EVENT_TYPES", "App", "AppRegistry", "WebhookTarget"]

WEBHOOK_EVENT_TYPES = frozenset(
    {
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count",
    }
)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One ``[[apps.webhooks]]`` entry: where to POST which events."""

    url: str
    event_types: frozenset[str] = WEBHOOK_EVENT_TYPES
    channel_prefix: str | None = None
    channel_suffix: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    batch: bool = False

    def wants(self, name: str, channel: str | None) -> bool:
        """Return whether an event of type ``name`` on ``channel`` goes to this target."""
        if name not in self.event_types:
            return False
        if channel is not None:
            if self.channel_prefix is not None and not channel.startswith(self.channel_prefix):
                return False
            if self.channel_suffix is not None and not channel.endswith(self.channel_suffix):
                return False
        return True


@dataclass(frozen=True, slots=True)
class App:
    """A Pusher application. The secret never appears in ``repr``."""

    id: AppId
    key: AppKey
    secret: str = field(repr=False)
    enabled: bool = True
    enable_client_messages: bool = True
    enable_user_authentication: bool = False
    user_authentication_timeout: float = 30.0
    max_connections: int = 0
    max_client_events_per_second: int = 10
    max_backend_events_per_second: int = 0
    max_event_payload_kb: int = 10
    max_presence_members: int = 100
    max_presence_member_size_kb: int = 1
    allowed_origins: tuple[str, ...] = ("*",)
    subscription_count: bool = False
    watchlist: bool = True
    webhooks: tuple[WebhookTarget, ...] = ()
    # channels that keep recent events and replay them on subscribe ([[apps.history]])
    history: tuple[HistoryRule, ...] = ()
    history_max_bytes: int = DEFAULT_MAX_BYTES
    idempotency_ttl: float = 300.0
    # Only the tools use it (``tail``, ``trigger``, ``auth-server`` on encrypted
    # channels); the server never decrypts.
    encryption_master_key_base64: str = field(default="", repr=False)

    @property
    def max_event_payload_bytes(self) -> int:
        return self.max_event_payload_kb * 1024

    @property
    def max_presence_member_bytes(self) -> int:
        return self.max_presence_member_size_kb * 1024


class AppRegistry(Protocol):
    """Finds apps. Implementations: ``StaticAppRegistry`` (from the config file)."""

    def by_id(self, app_id: str) -> App | None: ...

    def by_key(self, key: str) -> App | None: ...

    def all(self) -> list[App]: ...
