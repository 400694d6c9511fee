"""Metrics behind domain verbs; Prometheus appears only in this module.

Names follow the soketi/sockudo dashboards where a counterpart exists (``connected``,
``new_connections_total``, ``ws_messages_sent_total``, …) with a configurable prefix
(default ``pusherd_``). Each ``Metrics`` owns a private ``CollectorRegistry`` so tests
and several apps in one process never share counters.

Counters and gauges on the hot paths are plain integers in a dict, turned into
Prometheus families only when ``/metrics`` is scraped: a ``prometheus_client``
``Counter.inc`` takes a lock and a label lookup, which is too much per message.
Histograms of latency (REST, webhooks, publish-to-write) stay native; message sizes are
a plain-integer histogram too, since they are observed per message (and once per fan-out
with its count, never per delivery). ``users_online`` is computed on scrape by a
callback, so it costs nothing between scrapes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "SIZE_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Upper bounds in bytes: Pusher's 10 KB event limit sits between 8 and 16 KiB.
SIZE_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 1048576)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# name -> (kind, help, label names)
_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "connected": ("gauge", "Open WebSocket connections", ("app_id",)),
    "new_connections": ("counter", "WebSocket connections opened", ("app_id",)),
    "new_disconnections": ("counter", "WebSocket connections closed", ("app_id", "code")),
    "ws_messages_received": ("counter", "WebSocket messages received", ("app_id",)),
    "ws_messages_sent": ("counter", "WebSocket messages sent", ("app_id",)),
    "socket_received_bytes": ("counter", "Bytes received on WebSockets", ("app_id",)),
    "socket_transmitted_bytes": ("counter", "Bytes sent on WebSockets", ("app_id",)),
    "subscriptions": ("gauge", "Channel subscriptions on this node", ("app_id",)),
    "channels": ("gauge", "Channels with local subscribers on this node", ("app_id",)),
    "presence_members": ("gauge", "Presence members joined from this node", ("app_id",)),
    "client_events": ("counter", "Client events relayed", ("app_id",)),
    "http_calls_received": ("counter", "REST API calls", ("endpoint", "status")),
    "http_received_bytes": ("counter", "REST API request bytes", ()),
    "http_transmitted_bytes": ("counter", "REST API response bytes", ()),
    "webhooks": ("counter", "Webhook deliveries by outcome", ("app_id", "outcome")),
    "webhook_queue_depth": ("gauge", "Webhook events waiting for delivery", ()),
    "slow_consumer_disconnects": ("counter", "Sockets cut off for not reading", ("app_id",)),
    "rate_limited": ("counter", "Requests or events refused by a limit", ("app_id", "limit")),
    "history_events": ("gauge", "Events retained in history (memory driver)", ("app_id",)),
    "history_bytes": ("gauge", "Bytes retained in history (memory driver)", ("app_id",)),
    "history_appended": ("counter", "Events published into history", ("app_id",)),
    "history_appended_bytes": ("counter", "Payload bytes published into history", ("app_id",)),
    "history_replays": ("counter", "Subscriptions that were replayed history", ("app_id",)),
    "history_events_replayed": ("counter", "Retained events replayed on subscribe", ("app_id",)),
    "history_overlap_dropped": (
        "counter",
        "Live events not sent because the replay already had them",
        ("app_id",),
    ),
    "idempotent_duplicates": (
        "counter",
        "REST publishes answered from their idempotency key, not published again",
        ("app_id",),
    ),
    "broker_calls": ("counter", "Broker round-trips", ("op",)),
    "broker_errors": ("counter", "Broker failures", ("op",)),
    "errors": ("counter", "pusher:error messages and error closes sent, by code", ("code",)),
}


class _SizeHistogram(Collector):
    """``message_size_bytes{direction}`` as plain per-bucket integers, summed on scrape."""

    DIRECTIONS = ("received", "sent", "rest")

    def __init__(self, name: str) -> None:
        self.name = name
        # direction -> [count per bucket..., count above the last bound]
        self.buckets = {d: [0] * (len(SIZE_BUCKETS) + 1) for d in self.DIRECTIONS}
        self.sums = dict.fromkeys(self.DIRECTIONS, 0)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            self.name,
            "Message sizes in bytes: received from clients, sent to clients, REST bodies",
            labels=("direction",),
        )
        for direction in self.DIRECTIONS:
            counts = self.buckets[direction]
            cumulative, running = [], 0
            for bound, count in zip((*SIZE_BUCKETS, float("inf")), counts, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else str(float(bound)), running))
            family.add_metric([direction], cumulative, sum_value=self.sums[direction])
        yield family


class _UsersOnline(Collector):
    """``users_online{app_id}``: this node's count, asked of its source on scrape (0 for
    apps seen before)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source: Callable[[], Mapping[str, int]] | None = None
        self.seen: set[str] = set()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            self.name,
            "Distinct users online (signed in or in a presence channel) on this node",
            labels=("app_id",),
        )
        counts = dict(self.source()) if self.source is not None else {}
        self.seen.update(counts)
        for app_id in sorted(self.seen):
            family.add_metric([app_id], counts.get(app_id, 0))
        yield family


class _Values(Collector):
    """Plain-number counters and gauges, exposed as Prometheus families on scrape."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in _FAMILIES}

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        for name, (kind, text, labels) in _FAMILIES.items():
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(self.prefix + name, text, labels=labels)
            else:
                family = GaugeMetricFamily(self.prefix + name, text, labels=labels)
            for label_values, value in list(self.values[name].items()):
                family.add_metric(list(label_values), value)
            yield family


class Metrics:
    """The metric verbs every component calls."""

    def __init__(self, prefix: str = "pusherd_", node_id: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.node_id = node_id
        self._values = _Values(prefix)
        self.registry.register(self._values)
        v = self._values.values
        self._connected = v["connected"]
        self._opened = v["new_connections"]
        self._closed = v["new_disconnections"]
        self._received = v["ws_messages_received"]
        self._sent = v["ws_messages_sent"]
        self._rx = v["socket_received_bytes"]
        self._tx = v["socket_transmitted_bytes"]
        self._subscriptions = v["subscriptions"]
        self._channels = v["channels"]
        self._errors = v["errors"]
        self._sizes = _SizeHistogram(f"{prefix}message_size_bytes")
        self.registry.register(self._sizes)
        self._size_received = self._sizes.buckets["received"]
        self._size_sent = self._sizes.buckets["sent"]
        self._users = _UsersOnline(f"{prefix}users_online")
        self.registry.register(self._users)
        r = self.registry
        self._http_latency = Histogram(
            f"{prefix}http_request_duration_seconds",
            "REST API latency",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # endpoint -> labelled child: labels() takes a lock and a dict lookup per call.
        self._http_children: dict[str, Histogram] = {}
        self._publish_latency = Histogram(
            f"{prefix}publish_to_write_seconds",
            "Time from REST publish to socket write",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._webhook_latency = Histogram(
            f"{prefix}webhook_delivery_seconds",
            "Time from event to acknowledged webhook",
            ["app_id"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )

    def _add(self, name: str, labels: tuple[str, ...], amount: float = 1) -> None:
        values = self._values.values[name]
        values[labels] = values.get(labels, 0) + amount

    # connections -----------------------------------------------------------------
    def connection_opened(self, app_id: str) -> None:
        key = (app_id,)
        self._connected[key] = self._connected.get(key, 0) + 1
        self._opened[key] = self._opened.get(key, 0) + 1

    def connection_closed(self, app_id: str, code: int) -> None:
        key = (app_id,)
        self._connected[key] = self._connected.get(key, 0) - 1
        closed = (app_id, str(code))
        self._closed[closed] = self._closed.get(closed, 0) + 1

    def message_received(self, app_id: str, nbytes: int) -> None:
        key = (app_id,)
        self._received[key] = self._received.get(key, 0) + 1
        self._rx[key] = self._rx.get(key, 0) + nbytes
        self._size_received[bisect_left(SIZE_BUCKETS, nbytes)] += 1
        self._sizes.sums["received"] += nbytes

    def messages_sent(self, app_id: str, count: int, nbytes: int) -> None:
        """Count ``count`` equal messages totalling ``nbytes`` (one call per fan-out).

        The size histogram gets ``count`` observations of ``nbytes / count`` in one step.
        """
        key = (app_id,)
        self._sent[key] = self._sent.get(key, 0) + count
        self._tx[key] = self._tx.get(key, 0) + nbytes
        self._size_sent[bisect_left(SIZE_BUCKETS, nbytes // count if count else 0)] += count
        self._sizes.sums["sent"] += nbytes

    def error_sent(self, code: int | None) -> None:
        """A ``pusher:error`` or an error close (any code but 1000) went to a client."""
        key = (str(code) if code is not None else "none",)
        self._errors[key] = self._errors.get(key, 0) + 1

    def count_users_with(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Use ``source()`` (app id -> distinct users online) for ``users_online`` on scrape."""
        self._users.source = source

    def slow_consumer(self, app_id: str) -> None:
        self._add("slow_consumer_disconnects", (app_id,))

    # channels --------------------------------------------------------------------
    def subscribed(self, app_id: str, delta: int = 1) -> None:
        key = (app_id,)
        self._subscriptions[key] = self._subscriptions.get(key, 0) + delta

    def channel_opened(self, app_id: str, delta: int = 1) -> None:
        key = (app_id,)
        self._channels[key] = self._channels.get(key, 0) + delta

    def member_joined(self, app_id: str, delta: int = 1) -> None:
        self._add("presence_members", (app_id,), delta)

    def client_event(self, app_id: str) -> None:
        self._add("client_events", (app_id,))

    def rate_limited(self, app_id: str, limit: str) -> None:
        self._add("rate_limited", (app_id, limit))

    # REST ------------------------------------------------------------------------
    def http_request(
        self, endpoint: str, status: int, seconds: float, received: int = 0, sent: int = 0
    ) -> None:
        self._add("http_calls_received", (endpoint, str(status)))
        child = self._http_children.get(endpoint)
        if child is None:
            child = self._http_children[endpoint] = self._http_latency.labels(endpoint)
        child.observe(seconds)
        if received:
            self._add("http_received_bytes", (), received)
            self._sizes.buckets["rest"][bisect_left(SIZE_BUCKETS, received)] += 1
            self._sizes.sums["rest"] += received
        if sent:
            self._add("http_transmitted_bytes", (), sent)

    def publish_latency(self, seconds: float) -> None:
        self._publish_latency.observe(seconds)

    # webhooks --------------------------------------------------------------------
    def webhook_sent(self, app_id: str, seconds: float) -> None:
        self._add("webhooks", (app_id, "sent"))
        self._webhook_latency.labels(app_id).observe(seconds)

    def webhook_failed(self, app_id: str) -> None:
        """One attempt failed (it will be retried unless the budget is spent)."""
        self._add("webhooks", (app_id, "failed"))

    def webhook_retried(self, app_id: str) -> None:
        self._add("webhooks", (app_id, "retried"))

    def webhook_dropped(self, app_id: str, count: int = 1) -> None:
        self._add("webhooks", (app_id, "dropped"), count)

    def webhook_queue(self, depth: int) -> None:
        self._values.values["webhook_queue_depth"][()] = depth

    # history and idempotency -----------------------------------------------------
    def history_retained(self, app_id: str, events: int, nbytes: int) -> None:
        """Set what the app retains now (the memory driver knows it exactly)."""
        v = self._values.values
        v["history_events"][(app_id,)] = events
        v["history_bytes"][(app_id,)] = nbytes

    def history_appended(self, app_id: str, nbytes: int) -> None:
        self._add("history_appended", (app_id,))
        self._add("history_appended_bytes", (app_id,), nbytes)

    def history_replayed(self, app_id: str, events: int) -> None:
        self._add("history_replays", (app_id,))
        self._add("history_events_replayed", (app_id,), events)

    def history_overlap_dropped(self, app_id: str, count: int = 1) -> None:
        self._add("history_overlap_dropped", (app_id,), count)

    def duplicate_suppressed(self, app_id: str) -> None:
        self._add("idempotent_duplicates", (app_id,))

    # broker ----------------------------------------------------------------------
    def broker_call(self, op: str) -> None:
        self._add("broker_calls", (op,))

    def broker_error(self, op: str) -> None:
        self._add("broker_errors", (op,))

    def read(self, name: str) -> dict[tuple[str, ...], float]:
        """Return a copy of one plain-number family, labels -> value (the console's stats)."""
        return dict(self._values.values[name])

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
