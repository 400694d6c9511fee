"""The event creator's form check, and a signature the REST API accepts."""

from __future__ import annotations

import pytest

from pusherd.console.creator import event_from_form, signed_query
from pusherd.errors import ApiError
from pusherd.protocol.signing import parse_query, verify_request
from tests.server.conftest import APP


def test_event_from_form_splits_channels_and_keeps_the_json_text() -> None:
    event, problem = event_from_form(
        {"channels": "a, b", "name": "ev", "data": '{"x": 1}', "socket_id": "1.2"}
    )
    assert problem == ""
    assert event == {"name": "ev", "channels": ["a", "b"], "data": '{"x": 1}', "socket_id": "1.2"}


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ([], "JSON object"),
        ({"channels": "", "name": "e", "data": "1"}, "channel"),
        ({"channels": "a", "name": "", "data": "1"}, "event name"),
        ({"channels": "a", "name": "e", "data": "{nope"}, "not valid JSON"),
        ({"channels": "a", "name": "e", "data": {"x": 1}}, "JSON text"),
    ],
)
def test_event_from_form_refuses_what_it_cannot_send(form: object, problem: str) -> None:
    event, message = event_from_form(form)
    assert event is None and problem in message


def test_signed_query_passes_the_rest_api_signature_check() -> None:
    body = b'{"name":"e"}'
    query = signed_query(APP, "POST", "/apps/12345/events", body, 1_700_000_000)
    params = parse_query(query.decode())
    verify_request(APP.key, APP.secret, "POST", "/apps/12345/events", params, body, 1_700_000_000.0)
    with pytest.raises(ApiError):
        verify_request(
            APP.key, APP.secret, "POST", "/apps/12345/events", params, b"{}", 1_700_000_000.0
        )
    assert APP.secret not in query.decode()
