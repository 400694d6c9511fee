from __future__ import annotations

from pusherd.protocol.http import JSON, response, strip_prefix


def test_response_has_status_type_length_and_body() -> None:
    assert response(200, b"{}", JSON) == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    )


def test_response_can_close_and_carry_extra_headers() -> None:
    raw = response(426, b"no\n", close=True, extra=b"sec-websocket-version: 13\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 426 Upgrade Required",
        b"content-type: text/plain",
        b"content-length: 3",
        b"connection: close",
        b"sec-websocket-version: 13",
    ]
    assert body == b"no\n"


def test_response_names_an_unknown_status_error() -> None:
    assert response(599, b"").startswith(b"HTTP/1.1 599 Error\r\n")


def test_strip_prefix_takes_the_prefix_off_paths_inside_it_only() -> None:
    assert strip_prefix("/app/k", "") == "/app/k"
    assert strip_prefix("/ws/app/k", "/ws") == "/app/k"
    assert strip_prefix("/wsx/app/k", "/ws") is None
    assert strip_prefix("/app/k", "/ws") is None
    assert strip_prefix("/ws", "/ws") is None
