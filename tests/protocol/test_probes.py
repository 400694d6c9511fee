"""The probes' answers and the metrics port's routing: values in, values out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pusherd.protocol.probes import (
    PATHS,
    accepting,
    health,
    metrics_port_mount,
    probe_routes,
    readiness,
    scrapes,
)

__all__: list[str] = []

NOW = datetime(2026, 12, 2, 8, 30, 5, 123456, tzinfo=UTC)


def test_readiness_is_200_only_when_started_not_draining_and_the_broker_is_up() -> None:
    assert readiness(True, False, True) == (200, {"ready": True})
    assert accepting(True, False, True)


def test_accepting_needs_started_not_draining_and_the_broker() -> None:
    assert not accepting(False, False, True)
    assert not accepting(True, True, True)
    assert not accepting(True, False, False)


@pytest.mark.parametrize(
    ("started", "draining", "broker_ready", "reason"),
    [
        (False, False, True, "starting"),
        (False, False, False, "starting"),
        (True, False, False, "broker"),
        (True, True, True, "draining"),
        (True, True, False, "draining"),
        (False, True, False, "draining"),
        (False, True, True, "draining"),
    ],
)
def test_readiness_names_draining_before_starting_before_broker(
    started: bool, draining: bool, broker_ready: bool, reason: str
) -> None:
    assert readiness(started, draining, broker_ready) == (
        503,
        {"ready": False, "reason": reason},
    )


def test_health_reports_ok_with_the_time_uptime_version_node_and_connections() -> None:
    status, body = health((200, {"ready": True}), NOW, 12.34567, "1.2.3", "node-a", 7)
    assert status == 200
    assert body == {
        "status": "ok",
        "timestamp": "2026-12-02T08:30:05.123Z",
        "uptime": 12.346,
        "version": "1.2.3",
        "node_id": "node-a",
        "connections": 7,
    }


def test_health_is_the_readiness_status_and_reason_when_not_ready() -> None:
    status, body = health(readiness(True, True, True), NOW, 0.0, "1", "n", 0)
    assert (status, body["status"]) == (503, "draining")
    status, body = health((503, {}), NOW, 0.0, "1", "n", 0)
    assert (status, body["status"]) == (503, "unavailable")


def test_health_timestamp_keeps_another_zones_offset() -> None:
    plus_one = NOW.astimezone(timezone(timedelta(hours=1)))
    _, body = health((200, {}), plus_one, 0.0, "1", "n", 0)
    assert body["timestamp"] == "2026-12-02T09:30:05.123+01:00"


def test_probe_routes_serve_every_probe_under_the_prefix_then_at_the_root() -> None:
    assert probe_routes("", True) == [(path, path) for path in PATHS]
    assert probe_routes("/p", True) == [
        *((f"/p{path}", path) for path in PATHS),
        *((path, path) for path in PATHS),
    ]


def test_probe_routes_leave_metrics_out_when_it_is_disabled() -> None:
    assert [path for _, path in probe_routes("/p", False)] == [
        "/up",
        "/ready",
        "/health",
        "/up",
        "/ready",
        "/health",
    ]


def test_metrics_port_mount_serves_its_prefix_and_below_whatever_the_method() -> None:
    prefixes = [b"/console", b"/other"]
    assert metrics_port_mount(b"GET /console HTTP/1.1\r\n\r\n", prefixes) == 0
    assert metrics_port_mount(b"POST /console/login HTTP/1.1\r\n\r\n", prefixes) == 0
    assert metrics_port_mount(b"GET /console?x=1 HTTP/1.1\r\n\r\n", prefixes) == 0
    assert metrics_port_mount(b"GET /other/a HTTP/1.1\r\n\r\n", prefixes) == 1


@pytest.mark.parametrize(
    "head",
    [
        b"GET /consolex HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /console\r\n\r\n",  # no version: no target either
    ],
)
def test_metrics_port_mount_is_none_for_anything_else(head: bytes) -> None:
    assert metrics_port_mount(head, [b"/console"]) is None
    assert metrics_port_mount(head, []) is None


def test_scrapes_is_get_metrics_with_or_without_a_query() -> None:
    assert scrapes(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert scrapes(b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET / HTTP/1.1",
        b"GET /metrics/extra HTTP/1.1",
        b"GET /metricsx HTTP/1.1",
        b"GET /up HTTP/1.1",
        b"POST /metrics HTTP/1.1",
        b"HEAD /metrics HTTP/1.1",
        b"GARBAGE",
        b"GET /metrics",
    ],
)
def test_scrapes_is_false_for_anything_else(request_line: bytes) -> None:
    assert not scrapes(request_line + b"\r\nHost: x\r\n\r\n")
