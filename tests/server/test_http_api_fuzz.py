"""Property-based fuzzing of the REST validators through ``RestApi.handle`` (issue 11).

Requests are signed correctly (or with one part spoiled), so random bodies and
queries reach the body and parameter checks, not just the signature check. The only
allowed outcomes are a 200 for a request that is well-formed, or a 4xx with a
Pusher-style text body; a 500 (an exception the API did not expect) fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from pusherd.errors import ApiError
from pusherd.protocol.signing import parse_query, verify_request
from pusherd.server.app import build
from pusherd.server.http_api import RestApi
from tests.fuzz_profiles import share
from tests.protocol.json_strategies import json_texts, json_values, mutated, nested_text
from tests.server.conftest import APP, make_config

__all__: list[str] = []

pytestmark = pytest.mark.fuzz

ALLOWED = {200, 400, 401, 403, 404, 405, 413, 429}
CHANNELS = ["news", "presence-a", "private-encrypted-a", "cache-a", "", "bad name", "x" * 201]


@contextlib.contextmanager
def rest_api() -> Iterator[tuple[asyncio.AbstractEventLoop, RestApi]]:
    """A started node (memory broker) and its REST API, driven from a fresh loop."""
    app = replace(APP, max_backend_events_per_second=0)
    parts = build(make_config(app, max_http_body_kb=64))
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(parts.node.start())
        yield loop, parts.rest
    finally:
        loop.run_until_complete(parts.node.stop(0.1))
        loop.close()


def _sign(
    method: str, path: str, pairs: list[tuple[str, str]], body: bytes
) -> list[tuple[str, str]]:
    auth = [
        ("auth_key", APP.key),
        ("auth_timestamp", str(int(time.time()))),
        ("auth_version", "1.0"),
    ]
    if body:
        auth.append(("body_md5", hashlib.md5(body).hexdigest()))
    everything = auth + pairs
    merged: dict[str, str] = {}
    for key, value in everything:
        lowered = key.lower()
        merged[lowered] = merged[lowered] + "," + value if lowered in merged else value
    query = "&".join(f"{k}={merged[k]}" for k in sorted(merged))
    string = f"{method}\n{path}\n{query}"
    signature = hmac.new(APP.secret.encode(), string.encode(), hashlib.sha256).hexdigest()
    return [*everything, ("auth_signature", signature)]


def _query(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs).encode()


def _text(value: Any) -> str:
    return orjson.dumps(value).decode()


any_text = json_texts | nested_text() | st.sampled_from(CHANNELS).map(_text)


def mostly(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``good`` seven times in ten, else ``bad`` (so most requests reach deep checks)."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda n: good if n < 7 else bad)


good_channels = st.sampled_from(CHANNELS[:4]).map(_text)


@st.composite
def event_objects(draw: st.DrawFn) -> str:
    """An event object whose fields are mostly right and sometimes any JSON at all."""
    fields = {}
    if draw(st.integers(min_value=0, max_value=9)) != 9:
        fields["name"] = draw(mostly(st.just('"my-event"'), st.just(_text("n" * 201)) | any_text))
    if draw(st.integers(min_value=0, max_value=9)) != 9:
        fields["data"] = draw(mostly(json_values.map(lambda v: _text(_text(v))), any_text))
    shape = draw(st.sampled_from(["channels", "channel", "both", "none"]))
    if shape in ("channels", "both"):
        names = draw(st.lists(mostly(good_channels, any_text), min_size=1, max_size=4))
        fields["channels"] = draw(mostly(st.just("[" + ",".join(names) + "]"), any_text))
    if shape in ("channel", "both"):
        fields["channel"] = draw(mostly(good_channels, any_text))
    for key in ("socket_id", "info"):
        if draw(st.integers(min_value=0, max_value=3)) == 3:
            fields[key] = draw(
                st.sampled_from(['"1.2"', '"user_count"', '"subscription_count,user_count"'])
                | any_text
            )
    return "{" + ",".join(_text(k) + ":" + v for k, v in fields.items()) + "}"


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["event", "batch", "event", "batch", "json", "mutated", "bytes"]))
    if kind == "event":
        return draw(event_objects()).encode()
    if kind == "batch":
        items = draw(st.lists(mostly(event_objects(), any_text), min_size=1, max_size=12))
        batch = draw(st.just("[" + ",".join(items) + "]") | any_text)
        return ('{"batch":' + batch + "}").encode()
    if kind == "json":
        return draw(json_texts).encode()
    if kind == "mutated":
        return draw(event_objects().flatmap(mutated))
    return draw(st.binary(max_size=200))


query_values = st.text(max_size=30) | st.sampled_from(
    ["user_count", "subscription_count", "cache", "presence-", "user_count,cache", ""]
)
queries = st.lists(
    st.tuples(
        st.sampled_from(["info", "filter_by_prefix", "x", "INFO", "info", "filter_by_prefix"]),
        query_values,
    ),
    max_size=4,
)
publish_paths = st.sampled_from(
    [("POST", "/apps/12345/events"), ("POST", "/apps/12345/batch_events")]
)
other_paths = st.sampled_from(
    [
        ("GET", "/apps/12345/channels"),
        ("GET", "/apps/12345/channels/presence-a"),
        ("GET", "/apps/12345/channels/cache-a"),
        ("GET", "/apps/12345/channels/bad%20name"),
        ("GET", "/apps/12345/channels/presence-a/users"),
        ("GET", "/apps/12345/channels/news/users"),
        ("POST", "/apps/12345/users/u1/terminate_connections"),
        ("POST", "/users/u1/terminate_connections"),
        ("PUT", "/apps/12345/events"),
        ("POST", "/apps/99/events"),
    ]
)
paths = publish_paths | publish_paths | publish_paths | other_paths
spoil = st.sampled_from([None] * 10 + ["signature", "timestamp", "md5", "version", "key"])
timestamps = st.sampled_from(["", "x", "-1", "1e3", "99999999999999", "-99999999999999", "9" * 40])


def _spoil(pairs: list[tuple[str, str]], how: str | None, timestamp: str) -> list[tuple[str, str]]:
    if how is None:
        return pairs
    target = {
        "signature": "auth_signature",
        "timestamp": "auth_timestamp",
        "md5": "body_md5",
        "version": "auth_version",
        "key": "auth_key",
    }[how]
    return [
        (k, timestamp if how == "timestamp" else v + "0") if k == target else (k, v)
        for k, v in pairs
    ]


def check_answer(
    method: str, path: str, body: bytes | None, answer: tuple[int, bytes, bytes]
) -> None:
    status, payload, content_type = answer
    event(f"{method} {path.rsplit('/', 1)[-1]} -> {status}")
    assert status in ALLOWED, (status, payload[:200], body[:300] if body else body)
    if status != 200:
        assert content_type == b"text/plain"
        assert payload.endswith(b"\n")
        return
    assert isinstance(orjson.loads(payload), dict)
    if path.endswith("events"):  # a 200 publish was a well-formed request
        assert body is not None
        request = orjson.loads(body)
        batch = path.endswith("batch_events")
        events = request["batch"] if batch else [request]
        for item in events:
            assert isinstance(item["name"], str) and 0 < len(item["name"]) <= 200
            assert "data" in item
            # A batch item names one "channel" (any "channels" key in it is not read);
            # an event names "channels", or PHP's singular "channel".
            single = [item.get("channel")]
            channels = single if batch else item.get("channels", single)
            assert isinstance(channels, list) and channels
            assert all(isinstance(c, str) and c for c in channels)


def test_rest_api_answers_random_requests_with_200_or_4xx() -> None:
    with rest_api() as (loop, api):

        @share(1.0)
        @given(paths, queries, bodies(), spoil, timestamps, st.integers(min_value=0, max_value=9))
        def run(
            route: tuple[str, str],
            pairs: list[tuple[str, str]],
            body: bytes,
            how: str | None,
            timestamp: str,
            big: int,
        ) -> None:
            method, path = route
            if big == 9:  # over max_http_body_kb (built here: a 70 kB example repr warns)
                body = b'{"name":"e","channel":"news","data":"' + b"x" * 70_000 + b'"}'
            signed_path = path.replace("%20", " ")
            query = _query(_spoil(_sign(method, signed_path, pairs, body), how, timestamp))
            given_body = None if len(body) > 64 * 1024 else body
            answer = loop.run_until_complete(api.handle(method, signed_path, query, given_body))
            check_answer(method, path, given_body, answer)

        run()


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_parse_query_random_strings_give_pairs(raw: str) -> None:
    for key, value in parse_query(raw):
        assert isinstance(key, str) and isinstance(value, str)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5", "x"]
            )
            | st.text(max_size=10),
            st.text(max_size=40) | timestamps,
        ),
        max_size=8,
    ),
    st.binary(max_size=50),
)
def test_verify_request_random_params_raise_only_401(
    pairs: list[tuple[str, str]], body: bytes
) -> None:
    try:
        verify_request(APP.key, APP.secret, "POST", "/apps/12345/events", pairs, body, time.time())
    except ApiError as exc:
        assert exc.status == 401
        assert exc.message


def test_rest_api_event_data_of_any_shape_is_published() -> None:
    with rest_api() as (loop, api):

        @share(0.3)
        @given(json_values.map(orjson.dumps) | nested_text().map(str.encode))
        def run(data: bytes) -> None:
            body = b'{"name":"e","channel":"news","data":' + data + b"}"
            query = _query(_sign("POST", "/apps/12345/events", [], body))
            answer = loop.run_until_complete(api.handle("POST", "/apps/12345/events", query, body))
            assert answer[0] in (200, 400), answer

        run()
