from __future__ import annotations

from typing import Any

from pusherd.protocol.idle import CLOSE_GRACE, Verdict, idle_verdict

OPEN: dict[str, Any] = {
    "last_seen": 100.0,
    "pinged_at": 0.0,
    "opened_at": 100.0,
    "closing_since": None,
    "auth_deadline": None,
    "activity_timeout": 120.0,
    "pong_timeout": 30.0,
}


def test_idle_verdict_keeps_a_socket_seen_within_the_activity_timeout() -> None:
    assert idle_verdict(220.0, **OPEN) is Verdict.KEEP


def test_idle_verdict_pings_a_socket_silent_past_the_activity_timeout() -> None:
    assert idle_verdict(220.1, **OPEN) is Verdict.PING


def test_idle_verdict_waits_for_the_pong_then_closes_with_pong_timeout() -> None:
    pinged = {**OPEN, "pinged_at": 221.0}
    assert idle_verdict(251.0, **pinged) is Verdict.KEEP
    assert idle_verdict(251.1, **pinged) is Verdict.PONG_TIMEOUT


def test_idle_verdict_closes_a_socket_that_did_not_sign_in_in_time() -> None:
    unsigned = {**OPEN, "auth_deadline": 30.0}
    assert idle_verdict(130.0, **unsigned) is Verdict.KEEP
    assert idle_verdict(130.1, **unsigned) is Verdict.UNAUTHORIZED


def test_idle_verdict_aborts_a_close_that_never_drained() -> None:
    closing = {**OPEN, "closing_since": 200.0}
    assert idle_verdict(200.0 + CLOSE_GRACE, **closing) is Verdict.KEEP
    assert idle_verdict(200.1 + CLOSE_GRACE, **closing) is Verdict.ABORT
