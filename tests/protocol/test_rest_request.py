"""The REST fast path's per-request rules: the request as it arrives, and where it goes."""

from __future__ import annotations

import pytest

from pusherd.protocol.probes import PATHS
from pusherd.protocol.rest_request import (
    CONTINUE,
    IDEMPOTENCY_HEADER,
    NOT_FOUND,
    REST,
    TIMED_OUT,
    Incoming,
    declares_too_large,
    destination,
    fast_path_urls,
    request_starts,
    rest_paths,
    too_large_text,
)

__all__: list[str] = []

LIMIT = 1024 * 1024


def test_messages_and_the_continue_line() -> None:
    assert too_large_text(LIMIT) == "Request body larger than 1024 KB"
    assert too_large_text(1536) == "Request body larger than 1 KB"
    assert TIMED_OUT == b"Request not received in time\n"
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert IDEMPOTENCY_HEADER == b"idempotency-key"


def test_declares_too_large_only_for_a_number_past_the_limit() -> None:
    assert declares_too_large(b"%d" % (LIMIT + 1), LIMIT)
    assert declares_too_large(b"10737418240", LIMIT)
    assert not declares_too_large(b"%d" % LIMIT, LIMIT)
    assert not declares_too_large(b"0", LIMIT)
    assert not declares_too_large(b"-5", LIMIT)
    assert not declares_too_large(b"1e9", LIMIT)
    assert not declares_too_large(b"", LIMIT)


def test_incoming_keeps_every_header_in_order_and_the_idempotency_key() -> None:
    request = Incoming(LIMIT)
    assert not request.header(b"Host", b"x")
    assert not request.header(b"Idempotency-Key", b"k1")
    assert not request.header(b"Content-Length", b"2")
    assert request.headers == [
        (b"Host", b"x"),
        (b"Idempotency-Key", b"k1"),
        (b"Content-Length", b"2"),
    ]
    assert request.idempotency_key == b"k1"
    assert not request.too_large
    assert not request.header(b"IDEMPOTENCY-KEY", b"k2")  # the last one counts
    assert request.idempotency_key == b"k2"


def test_incoming_declared_too_large_is_marked_at_its_header() -> None:
    request = Incoming(LIMIT)
    request.header(b"content-length", b"%d" % (LIMIT + 1))
    assert request.too_large


def test_incoming_answers_expect_100_continue_unless_already_too_large() -> None:
    request = Incoming(LIMIT)
    assert request.header(b"Expect", b"100-Continue")
    assert not request.header(b"Expect", b"something-else")

    late = Incoming(LIMIT)
    assert late.header(b"Expect", b"100-continue")
    late.header(b"Content-Length", b"%d" % (LIMIT + 1))  # 413 follows: 100 was already sent
    assert late.too_large

    refused = Incoming(LIMIT)
    refused.header(b"Content-Length", b"%d" % (LIMIT + 1))
    assert not refused.header(b"Expect", b"100-continue")


def test_incoming_body_parts_add_up_to_the_limit_and_are_dropped_past_it() -> None:
    request = Incoming(10)
    assert request.body_part(b"12345")
    assert request.body_part(b"67890")
    assert request.body == [b"12345", b"67890"]
    assert not request.body_part(b"x")
    assert request.body == []
    assert request.size == 11


def test_incoming_refuse_records_the_answer_and_ends_keep_alive() -> None:
    request = Incoming(LIMIT)
    assert request.refusal is None
    assert request.keep_alive
    request.refuse(408, TIMED_OUT)
    assert request.refusal == (408, TIMED_OUT)
    assert not request.keep_alive


def test_incoming_target_decodes_the_path_and_keeps_the_raw_query() -> None:
    request = Incoming(LIMIT)
    request.url = b"/apps/1/channels/presence%2Droom?info=user_count&a=%20"
    assert request.target() == ("/apps/1/channels/presence-room", b"info=user_count&a=%20")
    request.url = b"/up"
    assert request.target() == ("/up", b"")
    request.url = b"/caf%C3%A9"
    assert request.target() == ("/caf\u00e9", b"")  # percent escapes are UTF-8


def test_incoming_head_rebuilds_the_request_for_another_protocol() -> None:
    request = Incoming(LIMIT)
    request.method = "POST"
    request.url = b"/console/login?next=/"
    request.header(b"Host", b"x")
    request.header(b"Content-Length", b"3")
    assert request.head() == (
        b"POST /console/login?next=/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
    )


def test_incoming_head_is_get_when_the_method_is_not_known_yet() -> None:
    request = Incoming(LIMIT)
    request.url = b"/app/key?protocol=7"
    request.header(b"Upgrade", b"websocket")
    assert request.head() == b"GET /app/key?protocol=7 HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"


def test_request_starts_are_the_rest_request_lines_under_the_prefix() -> None:
    assert request_starts("") == (b"POST /apps/", b"POST /users/", b"GET /apps/", b"GET /users/")
    assert request_starts("/p") == (
        b"POST /p/apps/",
        b"POST /p/users/",
        b"GET /p/apps/",
        b"GET /p/users/",
    )


def test_rest_paths_are_the_rest_apis_path_starts() -> None:
    assert rest_paths("") == ("/apps/", "/users/")
    assert rest_paths("/p") == ("/p/apps/", "/p/users/")


def test_fast_path_urls_are_the_rest_api_and_the_probes() -> None:
    assert fast_path_urls("") == (b"/apps/", b"/users/", *(p.encode() for p in PATHS))
    urls = fast_path_urls("/p")
    assert urls[:2] == (b"/p/apps/", b"/p/users/")
    assert sorted(urls[2:]) == sorted(
        [b"/p" + p.encode() for p in PATHS] + [p.encode() for p in PATHS]
    )
    assert not b"/apps/1/events".startswith(urls)
    assert b"/p/apps/1/events?x".startswith(urls)
    assert b"/health".startswith(urls)
    assert not b"/console/login".startswith(urls)


@pytest.mark.parametrize(
    ("method", "path", "prefix", "where"),
    [
        ("POST", "/apps/1/events", "", REST),
        ("GET", "/apps/1/nothing", "", REST),  # the REST API refuses it itself
        ("GET", "/up", "", "/up"),
        ("GET", "/metrics", "", "/metrics"),
        ("POST", "/up", "", REST),  # not a probe: the REST API answers 404
        ("GET", "/nothing", "", REST),
        ("GET", "/p/health", "/p", "/health"),
        ("GET", "/ready", "/p", "/ready"),  # probes answer at the root too
        ("POST", "/p/apps/1/events", "/p", REST),
        ("POST", "/apps/1/events", "/p", NOT_FOUND),
        ("POST", "/ready", "/p", NOT_FOUND),
        ("GET", "/px/up", "/p", NOT_FOUND),
    ],
)
def test_destination_picks_a_probe_the_rest_api_or_not_found(
    method: str, path: str, prefix: str, where: str
) -> None:
    assert destination(method, path, prefix) == where
