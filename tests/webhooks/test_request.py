"""``pusherd.webhooks.request``: the exact bytes and headers of one Pusher webhook POST."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from pusherd.webhooks.request import RESERVED_HEADERS, build_request, sign

__all__: list[str] = []

KEY = "app-key-1"
SECRET = "app-secret-do-not-leak"
EVENTS: list[dict[str, Any]] = [
    {"name": "channel_occupied", "channel": "presence-room", "id": "p-1"},
    {"name": "member_added", "channel": "presence-room", "user_id": "42", "id": "p-2"},
]


def build(**overrides: Any) -> tuple[bytes, dict[str, str]]:
    arguments: dict[str, Any] = {
        "key": KEY,
        "secret": SECRET,
        "time_ms": 1_700_000_000_123,
        "events": EVENTS,
        "extra_headers": (),
        "delivery_id": "abc-d1",
    }
    arguments.update(overrides)
    return build_request(**arguments)


def expected_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature_is_the_hex_hmac_sha256_of_the_exact_body() -> None:
    body, headers = build()
    signature = headers["X-Pusher-Signature"]
    assert hmac.compare_digest(signature, expected_signature(SECRET, body))
    assert len(signature) == 64
    assert signature == signature.lower()
    int(signature, 16)  # hex digits only


def test_sign_matches_stdlib_hmac_for_arbitrary_bytes() -> None:
    for body in (b"", b"{}", b"\x00\xff binary", "é ✓".encode()):
        assert sign("k3y", body) == expected_signature("k3y", body)


def test_signature_depends_on_the_secret_and_on_every_body_byte() -> None:
    body, headers = build()
    _, other_secret = build(secret="another-secret")
    assert other_secret["X-Pusher-Signature"] != headers["X-Pusher-Signature"]
    tampered = body.replace(b"presence-room", b"presence-roon", 1)
    assert tampered != body
    assert sign(SECRET, tampered) != headers["X-Pusher-Signature"]


def test_body_is_only_time_ms_and_events_in_order() -> None:
    body, _ = build(time_ms=1_700_000_000_123)
    parsed = json.loads(body)
    assert parsed == {"time_ms": 1_700_000_000_123, "events": EVENTS}
    assert type(parsed["time_ms"]) is int
    assert [event["id"] for event in parsed["events"]] == ["p-1", "p-2"]


def test_non_ascii_event_data_is_signed_as_its_utf8_bytes() -> None:
    events = [{"name": "client_event", "channel": "private-ü", "data": '{"msg":"héllo ✓"}'}]
    body, headers = build(events=events)
    assert json.loads(body.decode("utf-8"))["events"] == events
    assert headers["X-Pusher-Signature"] == expected_signature(SECRET, body)


def test_content_type_is_exactly_application_json() -> None:
    _, headers = build()
    content_types = [value for name, value in headers.items() if name.lower() == "content-type"]
    assert content_types == ["application/json"]


def test_key_and_delivery_id_headers_carry_the_given_values() -> None:
    _, headers = build(key="the-key", delivery_id="prefix-d7")
    assert headers["X-Pusher-Key"] == "the-key"
    assert headers["X-Pusherd-Delivery"] == "prefix-d7"


def test_extra_headers_are_added_alongside_the_pusher_ones() -> None:
    extra = (("Authorization", "Bearer t0k3n"), ("X-Team", "ops"))
    _, headers = build(extra_headers=(pair for pair in extra))  # any iterable of pairs
    assert headers["Authorization"] == "Bearer t0k3n"
    assert headers["X-Team"] == "ops"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Pusher-Key"] == KEY


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        "content-type",
        "CONTENT-LENGTH",
        "x-pusher-key",
        "X-Pusher-Signature",
        "X-PUSHERD-DELIVERY",
    ],
)
def test_extra_headers_cannot_replace_or_duplicate_reserved_headers(name: str) -> None:
    body, headers = build(extra_headers=((name, "forged"),))
    assert "forged" not in headers.values()
    lowered = [header.lower() for header in headers]
    assert len(lowered) == len(set(lowered))
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Pusher-Signature"] == expected_signature(SECRET, body)


def test_reserved_headers_are_the_sender_owned_names_in_lower_case() -> None:
    assert {
        "content-type",
        "content-length",
        "x-pusher-key",
        "x-pusher-signature",
        "x-pusherd-delivery",
    } <= RESERVED_HEADERS
    assert all(name == name.lower() for name in RESERVED_HEADERS)


def test_same_inputs_build_byte_identical_requests() -> None:
    first = build()
    second = build()
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert list(first[1]) == list(second[1])


def test_secret_never_appears_in_body_or_headers() -> None:
    body, headers = build()
    assert SECRET.encode() not in body
    for name, value in headers.items():
        assert SECRET not in name
        assert SECRET not in value
