"""``pusherd.protocol.handshake``: the upgrade request head, checked before anything else."""

from __future__ import annotations

from typing import Any

import pytest

from pusherd.protocol.handshake import HandshakeError, accept_response, parse_request

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def head(*lines: str, request_line: str = "GET /app/key?protocol=7 HTTP/1.1") -> bytes:
    return ("\r\n".join([request_line, *lines]) + "\r\n\r\n").encode("latin-1")


UPGRADE = ("Host: x", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}")


def test_a_browser_head_gives_path_query_key_and_origin() -> None:
    request = parse_request(
        head(
            "Host: 127.0.0.1:6001",
            "Connection: Upgrade",
            "Pragma: no-cache",
            "UPGRADE: WebSocket",
            "Origin: https://app.example.com",
            "Sec-WebSocket-Version: 13",
            "User-Agent: Mozilla/5.0",
            f"sec-websocket-key:  {KEY}  ",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "X-Forwarded-For: 203.0.113.9",
            request_line="GET /app/key?protocol=7&client=js&version=8.4.0&flash=false HTTP/1.1",
        )
    )
    assert request.path == "/app/key"
    assert request.query == {"protocol": "7", "client": "js", "version": "8.4.0", "flash": "false"}
    assert request.key == KEY
    assert request.origin == "https://app.example.com"
    assert request.forwarded_for == "203.0.113.9"


def test_origin_and_forwarded_for_are_none_when_absent() -> None:
    request = parse_request(head(*UPGRADE, "Sec-WebSocket-Version: 13"))
    assert request.origin is None
    assert request.forwarded_for is None


def test_percent_encoded_query_values_are_decoded() -> None:
    request = parse_request(
        head(*UPGRADE, "Sec-WebSocket-Version: 13", request_line="GET /app/k?a=b%20c+d HTTP/1.1")
    )
    assert request.query == {"a": "b c d"}


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (
            head(*UPGRADE, "Sec-WebSocket-Version: 13", request_line="POST /app/k HTTP/1.1"),
            400,
            "GET",
        ),
        (head(*UPGRADE, "Sec-WebSocket-Version: 13", request_line="GET /app/k"), 400, "GET"),
        (head("Host: x", f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"), 400, "Upgrade"),
        (
            head("Upgrade: h2c", f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"),
            400,
            "Upgrade",
        ),
        (head(*UPGRADE), 426, "version"),
        (head(*UPGRADE, "Sec-WebSocket-Version: 8"), 426, "version"),
        (head("Upgrade: websocket", "Sec-WebSocket-Version: 13"), 400, "Sec-WebSocket-Key"),
        (
            head("Upgrade: websocket", "Sec-WebSocket-Key: short", "Sec-WebSocket-Version: 13"),
            400,
            "Sec-WebSocket-Key",
        ),
    ],
)
def test_bad_heads_are_refused_with_a_plain_http_error(
    data: bytes, status: int, reason: str
) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_request(data)
    assert caught.value.status == status
    assert reason in caught.value.reason
    response = caught.value.response()
    assert response.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in response


def test_version_refusal_names_the_supported_version() -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_request(head(*UPGRADE, "Sec-WebSocket-Version: 8"))
    assert b"sec-websocket-version: 13\r\n" in caught.value.response()


def test_accept_response_carries_the_rfc_6455_accept_value() -> None:
    # The example key and accept value from RFC 6455 section 1.3.
    response = accept_response(KEY)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.endswith(b"\r\n\r\n")


def _request(path: str, query: dict[str, str] | None = None, origin: str | None = None) -> Any:
    from pusherd.protocol.handshake import Request

    return Request(
        path, {"protocol": "7"} if query is None else query, "k" * 22 + "==", origin, None
    )


def _refusal(request: Any, **kwargs: Any) -> int:
    from pusherd.errors import ConnectionError_
    from pusherd.protocol.handshake import admit

    options = {"prefix": "", "draining": False, "full": False, **kwargs}
    with pytest.raises(ConnectionError_) as info:
        admit(request, options["prefix"], _apps, options["draining"], options["full"])
    return info.value.code


def _apps(key: str) -> Any:
    from pusherd.apps.base import App
    from pusherd.types import AppId, AppKey

    apps = {
        "key": App(id=AppId("1"), key=AppKey("key"), secret="s"),
        "off": App(id=AppId("2"), key=AppKey("off"), secret="s", enabled=False),
        "strict": App(
            id=AppId("3"), key=AppKey("strict"), secret="s", allowed_origins=("https://a.test",)
        ),
    }
    return apps.get(key)


def test_admit_returns_the_app_of_a_good_upgrade_under_the_prefix() -> None:
    from pusherd.protocol.handshake import admit

    assert admit(_request("/ws/app/key"), "/ws", _apps, False, False).id == "1"


def test_admit_names_the_close_code_of_the_first_failed_check() -> None:
    assert _refusal(_request("/nope/key")) == 4005
    assert _refusal(_request("/app/key"), prefix="/ws") == 4005
    assert _refusal(_request("/app/missing")) == 4001
    assert _refusal(_request("/app/off")) == 4003
    assert _refusal(_request("/app/key", {})) == 4008
    assert _refusal(_request("/app/key", {"protocol": "x"})) == 4006
    assert _refusal(_request("/app/key", {"protocol": "4"})) == 4007
    assert _refusal(_request("/app/strict", origin="https://b.test")) == 4009
    assert _refusal(_request("/app/key"), draining=True) == 4200
    assert _refusal(_request("/app/key"), full=True) == 4100
