"""``Auth``: password check, signed expiring sessions, CSRF bound to the session, rate limit."""

from __future__ import annotations

from pusherd.console.auth import FAILURE_WINDOW, MAX_FAILURES, Auth


def test_auth_password_is_checked_exactly() -> None:
    auth = Auth("correct-horse-battery", 12)
    assert auth.password_ok("correct-horse-battery")
    assert not auth.password_ok("correct-horse-batter")
    assert not auth.password_ok("")


def test_auth_cookie_round_trips_and_tampering_is_refused() -> None:
    auth = Auth("correct-horse-battery", 12)
    cookie = auth.new_cookie()
    sid = auth.session(cookie)
    assert sid
    payload, stamp, signature = cookie.split(".")
    # Another signature (not just another last character: its padding bits may not count).
    assert auth.session(f"{payload}.{stamp}.{signature[::-1]}") is None
    assert auth.session(f"{payload[:-2]}xx.{stamp}.{signature}") is None
    assert Auth("another-password-12", 12).session(cookie) is None
    assert auth.session("") is None and auth.session(None) is None
    assert auth.session(auth.new_cookie()) != sid


def test_auth_csrf_token_is_bound_to_its_session() -> None:
    auth = Auth("correct-horse-battery", 12)
    one = auth.session(auth.new_cookie())
    two = auth.session(auth.new_cookie())
    assert one and two
    assert auth.csrf_ok(one, auth.csrf_token(one))
    assert not auth.csrf_ok(one, auth.csrf_token(two))
    assert not auth.csrf_ok(one, None) and not auth.csrf_ok(one, "")


def test_auth_blocks_an_address_after_repeated_failures_then_lets_it_retry() -> None:
    now = [1000.0]
    auth = Auth("correct-horse-battery", 12, clock=lambda: now[0])
    for _ in range(MAX_FAILURES - 1):
        auth.failed("10.0.0.1")
    assert auth.blocked_for("10.0.0.1") == 0
    auth.failed("10.0.0.1")
    assert auth.blocked_for("10.0.0.1") > 0
    assert auth.blocked_for("10.0.0.2") == 0  # per address
    now[0] += FAILURE_WINDOW + 1
    assert auth.blocked_for("10.0.0.1") == 0


def test_auth_cookie_header_flags() -> None:
    auth = Auth("correct-horse-battery", 2)
    plain = auth.cookie_header("v", "/console", secure=False)
    assert plain == "pusherd_console=v; Path=/console; HttpOnly; SameSite=Strict; Max-Age=7200"
    assert auth.cookie_header("v", "/c", secure=True).endswith("; Secure")
    assert "Max-Age=0" in auth.cookie_header("", "/c", secure=False, clear=True)
    assert "correct-horse" not in repr(auth)
