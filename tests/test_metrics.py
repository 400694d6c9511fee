"""``Metrics``: each domain verb shows up in the Prometheus text it renders on scrape."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pusherd.metrics import Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """Parse ``metrics.render()`` into {(sample name, labels): value}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return scrape(metrics).get((name, frozenset(labels.items())))


def families(metrics: Metrics) -> dict[str, str]:
    """{family name: type} as a scraper sees them."""
    text = metrics.render().decode()
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_every_family_is_exposed_with_its_type_before_anything_is_recorded() -> None:
    kinds = families(Metrics())
    assert kinds["pusherd_connected"] == "gauge"
    assert kinds["pusherd_new_connections"] == "counter"
    assert kinds["pusherd_new_disconnections"] == "counter"
    assert kinds["pusherd_ws_messages_received"] == "counter"
    assert kinds["pusherd_ws_messages_sent"] == "counter"
    assert kinds["pusherd_subscriptions"] == "gauge"
    assert kinds["pusherd_channels"] == "gauge"
    assert kinds["pusherd_presence_members"] == "gauge"
    assert kinds["pusherd_webhook_queue_depth"] == "gauge"
    assert kinds["pusherd_rate_limited"] == "counter"
    assert kinds["pusherd_http_request_duration_seconds"] == "histogram"
    assert kinds["pusherd_publish_to_write_seconds"] == "histogram"
    assert kinds["pusherd_webhook_delivery_seconds"] == "histogram"
    text = Metrics().render().decode()
    assert "# HELP pusherd_connected Open WebSocket connections\n" in text
    assert "# TYPE pusherd_new_connections_total counter\n" in text


def test_connection_counts_are_per_app_and_go_down_on_close() -> None:
    metrics = Metrics()
    metrics.connection_opened("a")
    metrics.connection_opened("a")
    metrics.connection_opened("b")
    metrics.connection_closed("a", 4200)
    assert value(metrics, "pusherd_connected", app_id="a") == 1
    assert value(metrics, "pusherd_connected", app_id="b") == 1
    assert value(metrics, "pusherd_new_connections_total", app_id="a") == 2
    assert value(metrics, "pusherd_new_connections_total", app_id="b") == 1
    assert value(metrics, "pusherd_new_disconnections_total", app_id="a", code="4200") == 1
    assert value(metrics, "pusherd_new_disconnections_total", app_id="b", code="4200") is None


def test_disconnections_are_labelled_by_close_code() -> None:
    metrics = Metrics()
    for code in (4200, 4201, 4201, 1006):
        metrics.connection_opened("a")
        metrics.connection_closed("a", code)
    assert value(metrics, "pusherd_connected", app_id="a") == 0
    assert value(metrics, "pusherd_new_disconnections_total", app_id="a", code="4200") == 1
    assert value(metrics, "pusherd_new_disconnections_total", app_id="a", code="4201") == 2
    assert value(metrics, "pusherd_new_disconnections_total", app_id="a", code="1006") == 1


def test_messages_received_and_sent_count_both_messages_and_bytes() -> None:
    metrics = Metrics()
    metrics.message_received("a", 10)
    metrics.message_received("a", 15)
    metrics.messages_sent("a", 3, 300)  # one fan-out to three sockets
    metrics.messages_sent("b", 1, 7)
    assert value(metrics, "pusherd_ws_messages_received_total", app_id="a") == 2
    assert value(metrics, "pusherd_socket_received_bytes_total", app_id="a") == 25
    assert value(metrics, "pusherd_ws_messages_sent_total", app_id="a") == 3
    assert value(metrics, "pusherd_socket_transmitted_bytes_total", app_id="a") == 300
    assert value(metrics, "pusherd_ws_messages_sent_total", app_id="b") == 1
    assert value(metrics, "pusherd_socket_transmitted_bytes_total", app_id="b") == 7


def test_channel_subscription_and_presence_gauges_move_both_ways() -> None:
    metrics = Metrics()
    metrics.subscribed("a")
    metrics.subscribed("a")
    metrics.subscribed("a", -1)
    metrics.channel_opened("a")
    metrics.channel_opened("a", 2)
    metrics.channel_opened("a", -1)
    metrics.member_joined("a")
    metrics.member_joined("a", -1)
    assert value(metrics, "pusherd_subscriptions", app_id="a") == 1
    assert value(metrics, "pusherd_channels", app_id="a") == 2
    assert value(metrics, "pusherd_presence_members", app_id="a") == 0


def test_client_events_slow_consumers_and_rate_limits_are_counted_per_label() -> None:
    metrics = Metrics()
    metrics.client_event("a")
    metrics.client_event("a")
    metrics.slow_consumer("b")
    metrics.rate_limited("a", "client_events")
    metrics.rate_limited("a", "backend_events")
    metrics.rate_limited("a", "backend_events")
    assert value(metrics, "pusherd_client_events_total", app_id="a") == 2
    assert value(metrics, "pusherd_client_events_total", app_id="b") is None
    assert value(metrics, "pusherd_slow_consumer_disconnects_total", app_id="b") == 1
    assert value(metrics, "pusherd_rate_limited_total", app_id="a", limit="client_events") == 1
    assert value(metrics, "pusherd_rate_limited_total", app_id="a", limit="backend_events") == 2


def test_http_requests_are_counted_by_endpoint_and_status_with_latency_and_bytes() -> None:
    metrics = Metrics()
    metrics.http_request("events", 200, 0.003, received=50, sent=2)
    metrics.http_request("events", 401, 0.0002, received=40, sent=20)
    metrics.http_request("channels", 200, 0.3)
    assert value(metrics, "pusherd_http_calls_received_total", endpoint="events", status="200") == 1
    assert value(metrics, "pusherd_http_calls_received_total", endpoint="events", status="401") == 1
    assert (
        value(metrics, "pusherd_http_calls_received_total", endpoint="channels", status="200") == 1
    )
    histogram = "pusherd_http_request_duration_seconds"
    assert value(metrics, histogram + "_count", endpoint="events") == 2
    assert value(metrics, histogram + "_count", endpoint="channels") == 1
    assert value(metrics, histogram + "_bucket", endpoint="events", le="0.0005") == 1
    assert value(metrics, histogram + "_bucket", endpoint="events", le="0.005") == 2
    assert value(metrics, histogram + "_bucket", endpoint="channels", le="0.25") == 0
    assert value(metrics, histogram + "_bucket", endpoint="channels", le="0.5") == 1
    # The byte counters carry no labels; a zero-byte request adds nothing.
    assert value(metrics, "pusherd_http_received_bytes_total") == 90
    assert value(metrics, "pusherd_http_transmitted_bytes_total") == 22


def test_zero_byte_http_requests_leave_the_byte_counters_empty() -> None:
    metrics = Metrics()
    metrics.http_request("events", 413, 0.001)
    samples = scrape(metrics)
    assert not [name for name, _ in samples if name.startswith("pusherd_http_received_bytes")]
    assert not [name for name, _ in samples if name.startswith("pusherd_http_transmitted_bytes")]
    assert value(metrics, "pusherd_http_calls_received_total", endpoint="events", status="413") == 1


def test_publish_latency_is_an_unlabelled_histogram() -> None:
    metrics = Metrics()
    metrics.publish_latency(0.0007)
    metrics.publish_latency(2.0)
    assert value(metrics, "pusherd_publish_to_write_seconds_count") == 2
    assert value(metrics, "pusherd_publish_to_write_seconds_bucket", le="0.0005") == 0
    assert value(metrics, "pusherd_publish_to_write_seconds_bucket", le="0.001") == 1
    assert value(metrics, "pusherd_publish_to_write_seconds_bucket", le="2.5") == 2
    assert value(metrics, "pusherd_publish_to_write_seconds_sum") == pytest.approx(2.0007)


def test_webhook_outcomes_are_counted_per_app_and_delivery_latency_is_observed() -> None:
    metrics = Metrics()
    metrics.webhook_sent("a", 0.2)
    metrics.webhook_sent("a", 0.3)
    metrics.webhook_failed("a")
    metrics.webhook_retried("a")
    metrics.webhook_dropped("a", 3)
    metrics.webhook_dropped("b")
    assert value(metrics, "pusherd_webhooks_total", app_id="a", outcome="sent") == 2
    assert value(metrics, "pusherd_webhooks_total", app_id="a", outcome="failed") == 1
    assert value(metrics, "pusherd_webhooks_total", app_id="a", outcome="retried") == 1
    assert value(metrics, "pusherd_webhooks_total", app_id="a", outcome="dropped") == 3
    assert value(metrics, "pusherd_webhooks_total", app_id="b", outcome="dropped") == 1
    assert value(metrics, "pusherd_webhook_delivery_seconds_count", app_id="a") == 2
    assert value(metrics, "pusherd_webhook_delivery_seconds_bucket", app_id="a", le="0.1") == 0
    assert value(metrics, "pusherd_webhook_delivery_seconds_bucket", app_id="a", le="0.5") == 2
    assert value(metrics, "pusherd_webhook_delivery_seconds_count", app_id="b") is None


def test_webhook_queue_depth_is_set_not_added() -> None:
    metrics = Metrics()
    metrics.webhook_queue(5)
    metrics.webhook_queue(2)
    assert value(metrics, "pusherd_webhook_queue_depth") == 2


def test_broker_calls_and_errors_are_counted_per_operation() -> None:
    metrics = Metrics()
    metrics.broker_call("publish")
    metrics.broker_call("publish")
    metrics.broker_call("subscribe")
    metrics.broker_error("publish")
    assert value(metrics, "pusherd_broker_calls_total", op="publish") == 2
    assert value(metrics, "pusherd_broker_calls_total", op="subscribe") == 1
    assert value(metrics, "pusherd_broker_errors_total", op="publish") == 1
    assert value(metrics, "pusherd_broker_errors_total", op="subscribe") is None


def test_each_scrape_renders_the_values_of_that_moment() -> None:
    metrics = Metrics()
    metrics.connection_opened("a")
    assert value(metrics, "pusherd_connected", app_id="a") == 1
    metrics.connection_opened("a")
    metrics.message_received("a", 1)
    assert value(metrics, "pusherd_connected", app_id="a") == 2
    assert value(metrics, "pusherd_ws_messages_received_total", app_id="a") == 1


def test_the_prefix_applies_to_every_family_and_instances_do_not_share_values() -> None:
    reverb = Metrics(prefix="reverb_")
    other = Metrics()
    reverb.connection_opened("a")
    reverb.http_request("events", 200, 0.01)
    assert all(name.startswith("reverb_") for name in families(reverb))
    assert "pusherd_" not in reverb.render().decode()
    assert value(reverb, "reverb_connected", app_id="a") == 1
    assert value(other, "pusherd_connected", app_id="a") is None
    assert value(other, "pusherd_http_request_duration_seconds_count", endpoint="events") is None


def test_exposition_labels_are_only_bounded_ids_and_outcomes() -> None:
    metrics = Metrics()
    metrics.connection_opened("a")
    metrics.connection_closed("a", 4009)
    metrics.message_received("a", 5)
    metrics.messages_sent("a", 1, 5)
    metrics.subscribed("a")
    metrics.channel_opened("a")
    metrics.member_joined("a")
    metrics.client_event("a")
    metrics.rate_limited("a", "client_events")
    metrics.slow_consumer("a")
    metrics.http_request("events", 200, 0.01, 3, 4)
    metrics.publish_latency(0.01)
    metrics.webhook_sent("a", 0.1)
    metrics.webhook_queue(1)
    metrics.broker_call("publish")
    metrics.broker_error("publish")
    label_names = {name for _, labels in scrape(metrics) for name, _ in labels}
    bounded = {"app_id", "code", "endpoint", "status", "outcome", "limit", "op", "le", "direction"}
    assert label_names <= bounded


def _buckets(metrics: Metrics, direction: str) -> dict[str, float]:
    return {
        dict(labels)["le"]: sample_value
        for (name, labels), sample_value in scrape(metrics).items()
        if name == "pusherd_message_size_bytes_bucket" and dict(labels)["direction"] == direction
    }


def test_message_sizes_are_histograms_by_direction() -> None:
    metrics = Metrics()
    assert families(metrics)["pusherd_message_size_bytes"] == "histogram"
    metrics.message_received("a", 100)
    metrics.message_received("a", 5000)
    metrics.messages_sent("a", 3, 3 * 600)  # one fan-out: three 600-byte frames
    metrics.http_request("events", 200, 0.001, received=2000, sent=2)
    metrics.http_request("channels", 200, 0.001)  # a GET: no body, no observation
    received = _buckets(metrics, "received")
    assert (received["64.0"], received["128.0"], received["4096.0"], received["8192.0"]) == (
        0,
        1,
        1,
        2,
    )
    assert received["+Inf"] == 2
    sent = _buckets(metrics, "sent")
    assert (sent["512.0"], sent["1024.0"], sent["+Inf"]) == (0, 3, 3)
    rest = _buckets(metrics, "rest")
    assert (rest["1024.0"], rest["2048.0"], rest["+Inf"]) == (0, 1, 1)
    assert value(metrics, "pusherd_message_size_bytes_sum", direction="sent") == 1800
    assert value(metrics, "pusherd_message_size_bytes_count", direction="received") == 2
    assert value(metrics, "pusherd_message_size_bytes_count", direction="rest") == 1


def test_message_size_above_the_last_bucket_lands_in_inf_only() -> None:
    metrics = Metrics()
    metrics.message_received("a", 2_000_000)
    received = _buckets(metrics, "received")
    assert received["1048576.0"] == 0
    assert received["+Inf"] == 1


def test_errors_are_counted_by_code() -> None:
    metrics = Metrics()
    assert families(metrics)["pusherd_errors"] == "counter"
    for code in (4009, 4009, 4301, None):
        metrics.error_sent(code)
    assert value(metrics, "pusherd_errors_total", code="4009") == 2
    assert value(metrics, "pusherd_errors_total", code="4301") == 1
    assert value(metrics, "pusherd_errors_total", code="none") == 1


def test_users_online_asks_its_source_on_scrape_and_keeps_zero_for_seen_apps() -> None:
    metrics = Metrics()
    assert families(metrics)["pusherd_users_online"] == "gauge"
    counts = {"a": 2, "b": 1}
    calls = []

    def source() -> dict[str, int]:
        calls.append(1)
        return dict(counts)

    metrics.count_users_with(source)
    assert calls == []
    assert value(metrics, "pusherd_users_online", app_id="a") == 2
    del counts["a"]
    assert value(metrics, "pusherd_users_online", app_id="a") == 0
    assert value(metrics, "pusherd_users_online", app_id="b") == 1
