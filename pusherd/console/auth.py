"""Console login: a password, a signed session cookie, a CSRF token, a login rate limit.

- The cookie holds a random session id signed with ``itsdangerous`` (timestamped;
  refused after ``session_hours``). Its key is derived from the password, so every node
  of a cluster accepts the same cookie and changing the password logs everybody out.
- The CSRF token is an HMAC of the session id: bound to the session, nothing stored.
  Every state-changing request sends it in ``X-CSRF-Token`` (or a ``csrf`` form field).
- Failed logins are counted per client address; past ``MAX_FAILURES`` in
  ``FAILURE_WINDOW`` seconds that address is answered 429 until the window passes.

(``itsdangerous`` signs console cookies only; Pusher signatures are plain HMAC in
``protocol.signing``.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE", "FAILURE_WINDOW", "MAX_FAILURES", "Auth"]

COOKIE = "pusherd_console"
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0
_MAX_ADDRESSES = 10_000
_SALT = "pusherd-console-session"


class Auth:
    """Checks passwords, issues and reads session cookies, limits login attempts."""

    def __init__(
        self,
        password: str,
        session_hours: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = hmac.digest(password.encode(), b"pusherd console session key v1", "sha256")
        self._password = hashlib.sha256(password.encode()).digest()
        self._serializer = URLSafeTimedSerializer(self._key, salt=_SALT)
        self.max_age = int(session_hours * 3600)
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def __repr__(self) -> str:
        return f"Auth(max_age={self.max_age})"

    # password and rate limit -------------------------------------------------------
    def password_ok(self, given: str) -> bool:
        digest = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        return hmac.compare_digest(digest, self._password)

    def blocked_for(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: it may try now)."""
        failures = self._failures.get(address)
        if not failures:
            return 0.0
        now = self._clock()
        while failures and now - failures[0] > FAILURE_WINDOW:
            failures.popleft()
        if len(failures) < MAX_FAILURES:
            return 0.0
        return max(1.0, FAILURE_WINDOW - (now - failures[0]))

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= _MAX_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))
        failures = self._failures.setdefault(address, deque(maxlen=MAX_FAILURES))
        failures.append(self._clock())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    # sessions ----------------------------------------------------------------------
    def new_cookie(self) -> str:
        """Return a cookie value for a fresh session."""
        return self._serializer.dumps({"sid": secrets.token_urlsafe(18)})

    def session(self, cookie: str | None) -> str | None:
        """Return the session id in ``cookie`` if it is ours and not expired, else None."""
        if not cookie:
            return None
        try:
            value = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one too
            return None
        sid = value.get("sid") if isinstance(value, dict) else None
        return sid if isinstance(sid, str) and sid else None

    def csrf_token(self, sid: str) -> str:
        return hmac.digest(self._key, b"csrf:" + sid.encode(), "sha256").hex()

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.csrf_token(sid).encode())

    def cookie_header(self, value: str, path: str, secure: bool, clear: bool = False) -> str:
        """Return a ``Set-Cookie`` value (HttpOnly, SameSite=Strict, Secure over TLS)."""
        parts = [f"{COOKIE}={'' if clear else value}", f"Path={path}", "HttpOnly"]
        parts.append("SameSite=Strict")
        parts.append("Max-Age=0" if clear else f"Max-Age={self.max_age}")
        if secure:
            parts.append("Secure")
        return "; ".join(parts)
