"""Applications: who may connect, with which key and secret, under which limits."""

from __future__ import annotations

from pusherd.apps.base import App, AppRegistry, WebhookTarget
from pusherd.apps.static import StaticAppRegistry

__all__ = ["App", "AppRegistry", "StaticAppRegistry", "WebhookTarget"]
