"""The probes' answers as values: ``/ready``, ``/health`` and the metrics port's routing.

``/up`` (alive), ``/ready`` (accepting sockets), ``/health`` (status JSON for uptime
monitors) and ``/metrics`` are answered by ``server.probes``, which reads the node's
state and the clock and hands them here: what the answers say is decided from those
values alone, so every way a probe arrives (the REST fast path, Starlette, the metrics
port) gets the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = [
    "PATHS",
    "SCRAPE_PATH",
    "accepting",
    "health",
    "metrics_port_mount",
    "probe_routes",
    "readiness",
    "scrapes",
]

PATHS = ("/up", "/ready", "/health", "/metrics")
SCRAPE_PATH = b"/metrics"


def accepting(started: bool, draining: bool, broker_ready: bool) -> bool:
    """Whether the node accepts sockets: once started, until it drains, while its broker
    is reachable."""
    return started and not draining and broker_ready


def readiness(started: bool, draining: bool, broker_ready: bool) -> tuple[int, dict[str, object]]:
    """Answer ``/ready``: 200 when the node is ``accepting`` sockets; 503 and why otherwise.

    The reason names draining before starting before the broker: a node that is going
    away says so even if it never finished starting.
    """
    if accepting(started, draining, broker_ready):
        return 200, {"ready": True}
    if draining:
        return 503, {"ready": False, "reason": "draining"}
    return 503, {"ready": False, "reason": "starting" if not started else "broker"}


def health(
    ready: tuple[int, dict[str, object]],
    now: datetime,
    uptime: float,
    version: str,
    node_id: str,
    connections: int,
) -> tuple[int, dict[str, object]]:
    """Answer ``/health``: ``{status, timestamp, uptime, version, node_id, connections}``.

    Args:
        ready: the ``/ready`` answer; its status is the answer's (503 unless ready), and
            its reason is the ``status`` field when not ready.
        now: the current time, an aware datetime (``timestamp``: ISO 8601 in
            milliseconds, ``Z`` for UTC).
        uptime: seconds since the node was built (rounded to milliseconds).
        connections: the sockets open on this node.
    """
    status, body = ready
    return status, {
        "status": "ok" if status == 200 else body.get("reason", "unavailable"),
        "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "uptime": round(uptime, 3),
        "version": version,
        "node_id": node_id,
        "connections": connections,
    }


def _target(head: bytes) -> bytes:
    """The request target of a request head (empty when the request line has none)."""
    return head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""


def metrics_port_mount(head: bytes, prefixes: Sequence[bytes]) -> int | None:
    """Return the index of the mount serving a request on the metrics port, or None.

    A mount (the console) serves its prefix and everything below it, whatever the
    method: ``/console``, ``/console/…`` and ``/console?…``, not ``/consolex``.
    """
    target = _target(head)
    for index, prefix in enumerate(prefixes):
        if target == prefix or target.startswith((prefix + b"/", prefix + b"?")):
            return index
    return None


def scrapes(head: bytes) -> bool:
    """Whether a request on the metrics port is a scrape: ``GET /metrics``, any query.

    Everything else the metrics port does not mount is answered 404.
    """
    return head.startswith(b"GET ") and _target(head).split(b"?")[0] == SCRAPE_PATH


def probe_routes(prefix: str, metrics_enabled: bool) -> list[tuple[str, str]]:
    """The (route path, probe path) pairs the app serves: under ``prefix``, then at the root.

    ``/metrics`` only when ``metrics_enabled``; the root ones only with a ``prefix`` (so
    probes keep working for a health check that does not know the mount).
    """
    paths = [path for path in PATHS if path != "/metrics" or metrics_enabled]
    routes = [(prefix + path, path) for path in paths]
    if prefix:
        routes += [(path, path) for path in paths]
    return routes
