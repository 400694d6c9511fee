"""The idle sweep's decision for one socket, as a function of ``now`` (Pusher "Ping and pong").

A socket silent for ``activity_timeout`` seconds is pinged; one that does not answer
within ``pong_timeout`` is closed with 4201. A socket that must sign in
(``enable_user_authentication``) and has not within the app's timeout is closed with
4009. A close frame that never drained (the peer stopped reading) is given up after
``CLOSE_GRACE`` seconds. Reverb's ``PingInactiveConnections`` and
``PruneStaleConnections`` jobs make the same two passes.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CLOSE_GRACE", "Verdict", "idle_verdict"]

CLOSE_GRACE = 10.0


class Verdict(Enum):
    KEEP = "keep"
    PING = "ping"
    PONG_TIMEOUT = "pong_timeout"
    UNAUTHORIZED = "unauthorized"
    ABORT = "abort"


def idle_verdict(
    now: float,
    *,
    last_seen: float,
    pinged_at: float,
    opened_at: float,
    closing_since: float | None,
    auth_deadline: float | None,
    activity_timeout: float,
    pong_timeout: float,
) -> Verdict:
    """Decide what the sweep does with one socket.

    Args:
        pinged_at: when the unanswered ping went out, or 0.
        closing_since: when its close frame was written, or None while it is open.
        auth_deadline: seconds it has to sign in from ``opened_at``, or None.
    """
    if closing_since is not None:
        return Verdict.ABORT if now - closing_since > CLOSE_GRACE else Verdict.KEEP
    if auth_deadline is not None and now - opened_at > auth_deadline:
        return Verdict.UNAUTHORIZED
    if pinged_at:
        return Verdict.PONG_TIMEOUT if now - pinged_at > pong_timeout else Verdict.KEEP
    return Verdict.PING if now - last_seen > activity_timeout else Verdict.KEEP
