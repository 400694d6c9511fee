"""Metrics behind domain verbs; Prometheus appears only in this module.

Names follow the soketi/sockudo dashboards where a counterpart exists (``connected``,
``new_connections_total``, ``ws_messages_sent_total``, …) with a configurable prefix
(default ``pusherd_``). Each ``Metrics`` owns a private ``CollectorRegistry`` so tests
and several apps in one process never share counters.

Hot paths call one verb per fan-out (``messages_sent(app, n, bytes)``), never one per
socket.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metric verbs every component calls."""

    def __init__(self, prefix: str = "pusherd_", node_id: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.node_id = node_id
        p = prefix
        r = self.registry
        app = ["app_id"]
        self._connected = Gauge(f"{p}connected", "Open WebSocket connections", app, registry=r)
        self._new_connections = Counter(
            f"{p}new_connections", "WebSocket connections opened", app, registry=r
        )
        self._new_disconnections = Counter(
            f"{p}new_disconnections", "WebSocket connections closed", ["app_id", "code"], registry=r
        )
        self._ws_received = Counter(
            f"{p}ws_messages_received", "WebSocket messages received", app, registry=r
        )
        self._ws_sent = Counter(f"{p}ws_messages_sent", "WebSocket messages sent", app, registry=r)
        self._socket_rx = Counter(
            f"{p}socket_received_bytes", "Bytes received on WebSockets", app, registry=r
        )
        self._socket_tx = Counter(
            f"{p}socket_transmitted_bytes", "Bytes sent on WebSockets", app, registry=r
        )
        self._subscriptions = Gauge(
            f"{p}subscriptions", "Channel subscriptions on this node", app, registry=r
        )
        self._channels = Gauge(
            f"{p}channels", "Channels with local subscribers on this node", app, registry=r
        )
        self._members = Gauge(
            f"{p}presence_members", "Presence members joined from this node", app, registry=r
        )
        self._client_events = Counter(f"{p}client_events", "Client events relayed", app, registry=r)
        self._http_calls = Counter(
            f"{p}http_calls_received", "REST API calls", ["endpoint", "status"], registry=r
        )
        self._http_latency = Histogram(
            f"{p}http_request_duration_seconds",
            "REST API latency",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._http_rx = Counter(f"{p}http_received_bytes", "REST API request bytes", registry=r)
        self._http_tx = Counter(f"{p}http_transmitted_bytes", "REST API response bytes", registry=r)
        self._publish_latency = Histogram(
            f"{p}publish_to_write_seconds",
            "Time from REST publish to socket write",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._webhooks = Counter(
            f"{p}webhooks", "Webhook deliveries by outcome", ["app_id", "outcome"], registry=r
        )
        self._webhook_latency = Histogram(
            f"{p}webhook_delivery_seconds",
            "Time from event to acknowledged webhook",
            app,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self._webhook_queue = Gauge(
            f"{p}webhook_queue_depth", "Webhook events waiting for delivery", registry=r
        )
        self._slow = Counter(
            f"{p}slow_consumer_disconnects", "Sockets cut off for not reading", app, registry=r
        )
        self._rate_limited = Counter(
            f"{p}rate_limited",
            "Requests or events refused by a limit",
            ["app_id", "limit"],
            registry=r,
        )
        self._broker_calls = Counter(f"{p}broker_calls", "Broker round-trips", ["op"], registry=r)
        self._broker_errors = Counter(f"{p}broker_errors", "Broker failures", ["op"], registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}

    def _child(self, metric: MetricWrapperBase, *labels: str) -> MetricWrapperBase:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # connections -----------------------------------------------------------------
    def connection_opened(self, app_id: str) -> None:
        self._child(self._connected, app_id).inc()  # type: ignore[attr-defined]
        self._child(self._new_connections, app_id).inc()  # type: ignore[attr-defined]

    def connection_closed(self, app_id: str, code: int) -> None:
        self._child(self._connected, app_id).dec()  # type: ignore[attr-defined]
        self._child(self._new_disconnections, app_id, str(code)).inc()  # type: ignore[attr-defined]

    def message_received(self, app_id: str, nbytes: int) -> None:
        self._child(self._ws_received, app_id).inc()  # type: ignore[attr-defined]
        self._child(self._socket_rx, app_id).inc(nbytes)  # type: ignore[attr-defined]

    def messages_sent(self, app_id: str, count: int, nbytes: int) -> None:
        """Count ``count`` messages totalling ``nbytes`` (one call per fan-out)."""
        self._child(self._ws_sent, app_id).inc(count)  # type: ignore[attr-defined]
        self._child(self._socket_tx, app_id).inc(nbytes)  # type: ignore[attr-defined]

    def slow_consumer(self, app_id: str) -> None:
        self._child(self._slow, app_id).inc()  # type: ignore[attr-defined]

    # channels --------------------------------------------------------------------
    def subscribed(self, app_id: str, delta: int = 1) -> None:
        self._child(self._subscriptions, app_id).inc(delta)  # type: ignore[attr-defined]

    def channel_opened(self, app_id: str, delta: int = 1) -> None:
        self._child(self._channels, app_id).inc(delta)  # type: ignore[attr-defined]

    def member_joined(self, app_id: str, delta: int = 1) -> None:
        self._child(self._members, app_id).inc(delta)  # type: ignore[attr-defined]

    def client_event(self, app_id: str) -> None:
        self._child(self._client_events, app_id).inc()  # type: ignore[attr-defined]

    def rate_limited(self, app_id: str, limit: str) -> None:
        self._child(self._rate_limited, app_id, limit).inc()  # type: ignore[attr-defined]

    # REST ------------------------------------------------------------------------
    def http_request(
        self, endpoint: str, status: int, seconds: float, received: int = 0, sent: int = 0
    ) -> None:
        self._child(self._http_calls, endpoint, str(status)).inc()  # type: ignore[attr-defined]
        self._child(self._http_latency, endpoint).observe(seconds)  # type: ignore[attr-defined]
        if received:
            self._http_rx.inc(received)
        if sent:
            self._http_tx.inc(sent)

    def publish_latency(self, seconds: float) -> None:
        self._publish_latency.observe(seconds)

    # webhooks --------------------------------------------------------------------
    def webhook_sent(self, app_id: str, seconds: float) -> None:
        self._child(self._webhooks, app_id, "sent").inc()  # type: ignore[attr-defined]
        self._child(self._webhook_latency, app_id).observe(seconds)  # type: ignore[attr-defined]

    def webhook_failed(self, app_id: str) -> None:
        """One attempt failed (it will be retried unless the budget is spent)."""
        self._child(self._webhooks, app_id, "failed").inc()  # type: ignore[attr-defined]

    def webhook_retried(self, app_id: str) -> None:
        self._child(self._webhooks, app_id, "retried").inc()  # type: ignore[attr-defined]

    def webhook_dropped(self, app_id: str, count: int = 1) -> None:
        self._child(self._webhooks, app_id, "dropped").inc(count)  # type: ignore[attr-defined]

    def webhook_queue(self, depth: int) -> None:
        self._webhook_queue.set(depth)

    # broker ----------------------------------------------------------------------
    def broker_call(self, op: str) -> None:
        self._child(self._broker_calls, op).inc()  # type: ignore[attr-defined]

    def broker_error(self, op: str) -> None:
        self._child(self._broker_errors, op).inc()  # type: ignore[attr-defined]

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
