"""Webhook tests; helpers shared with ``tests/test_webhooks.py``."""

from __future__ import annotations

from pusherd.apps.base import App
from pusherd.metrics import Metrics


def count(metrics: Metrics, app: App, outcome: str) -> float:
    """``pusherd_webhooks_total`` for ``app`` and ``outcome`` (0 when never counted)."""
    value = metrics.registry.get_sample_value(
        "pusherd_webhooks_total", {"app_id": app.id, "outcome": outcome}
    )
    return value or 0.0


def depth(metrics: Metrics) -> float | None:
    """The ``pusherd_webhook_queue_depth`` gauge."""
    return metrics.registry.get_sample_value("pusherd_webhook_queue_depth")
