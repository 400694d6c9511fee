"""Pusher signatures: PROTOCOL.md §1.18 vectors and REST requests from the official SDK."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pusher
import pytest
from pusher.http import Request

from pusherd.errors import ApiError
from pusherd.protocol.signing import (
    auth_matches,
    body_md5,
    parse_query,
    sign,
    string_to_sign,
    verify_request,
)

__all__: list[str] = []

DOC_KEY = "278d425bdf160c739803"
DOC_SECRET = "7ad3773142a6692b25b8"

APP_ID = "12345"
KEY = "app-key"
SECRET = "app-secret"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def _hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _sdk_client(key: str = KEY, secret: str = SECRET) -> Any:
    client = pusher.Pusher(app_id=APP_ID, key=key, secret=secret, host="127.0.0.1", port=1)
    return client._pusher_client


def _verify_sdk(request: Request, now: float | None = None, **kwargs: Any) -> None:
    params = parse_query(request.query_string)
    when = float(request.query_params["auth_timestamp"]) if now is None else now
    verify_request(
        kwargs.get("key", KEY),
        kwargs.get("secret", SECRET),
        request.method,
        request.path,
        params,
        kwargs.get("body", request.body),
        when,
    )


# §1.18 vectors ---------------------------------------------------------------------------
def test_sign_private_channel_vector() -> None:
    assert (
        sign(DOC_SECRET, "1234.1234:private-foobar")
        == "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    )


def test_sign_user_auth_vector() -> None:
    assert (
        sign(DOC_SECRET, '1234.1234::user::{"id":"12345"}')
        == "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
    )


def test_sign_presence_vector() -> None:
    message = '1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}'
    assert (
        sign(DOC_SECRET, message)
        == "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
    )


def test_sign_accepts_bytes() -> None:
    assert sign(DOC_SECRET, b"1234.1234:private-foobar") == sign(
        DOC_SECRET, "1234.1234:private-foobar"
    )


def test_string_to_sign_rest_docs_vector() -> None:
    body = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    assert body_md5(body) == "ec365a775a4cd0599faeb73354201b6f"
    params = [
        ("auth_key", DOC_KEY),
        ("auth_timestamp", "1353088179"),
        ("auth_version", "1.0"),
        ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
    ]
    text = string_to_sign("POST", "/apps/3/events", params)
    assert text == (
        "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179"
        "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
    )
    signature = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    assert sign(DOC_SECRET, text) == signature
    signed = [*params, ("auth_signature", signature)]
    verify_request(DOC_KEY, DOC_SECRET, "POST", "/apps/3/events", signed, body, 1353088179.0)


def test_string_to_sign_sorts_lowercases_and_drops_signature() -> None:
    text = string_to_sign(
        "get",
        "/apps/1/channels",
        [("Zeta", "1"), ("auth_signature", "x"), ("Alpha", "2"), ("AUTH_SIGNATURE", "y")],
    )
    assert text == "GET\n/apps/1/channels\nalpha=2&zeta=1"


def test_string_to_sign_joins_repeated_keys_with_commas() -> None:
    text = string_to_sign("GET", "/p", [("channels[]", "a"), ("x", "1"), ("channels[]", "b")])
    assert text == "GET\n/p\nchannels[]=a,b&x=1"


def test_parse_query_percent_decodes_and_keeps_plus() -> None:
    assert parse_query("info=user_count%2Csubscription_count&a=b+c&&k=") == [
        ("info", "user_count,subscription_count"),
        ("a", "b+c"),
        ("k", ""),
    ]


def test_body_md5_of_empty_body() -> None:
    assert body_md5(b"") == EMPTY_MD5


# auth_matches ----------------------------------------------------------------------------
def test_auth_matches_valid() -> None:
    message = "1234.1234:private-foobar"
    assert auth_matches(DOC_KEY, DOC_SECRET, message, f"{DOC_KEY}:{sign(DOC_SECRET, message)}")


def test_auth_matches_rejects_another_apps_key_with_valid_signature() -> None:
    message = "1234.1234:private-foobar"
    auth = f"other-key:{sign(DOC_SECRET, message)}"
    assert not auth_matches(DOC_KEY, DOC_SECRET, message, auth)


def test_auth_matches_rejects_signature_from_another_secret() -> None:
    message = "1234.1234:private-foobar"
    auth = f"{DOC_KEY}:{sign('other-secret', message)}"
    assert not auth_matches(DOC_KEY, DOC_SECRET, message, auth)


@pytest.mark.parametrize(
    "auth",
    [None, 1, b"278d425bdf160c739803:abc", ["x"], "", "no-colon-here", ":", f"{DOC_KEY}:"],
)
def test_auth_matches_rejects_malformed(auth: object) -> None:
    assert not auth_matches(DOC_KEY, DOC_SECRET, "1234.1234:private-foobar", auth)


def test_auth_matches_rejects_signature_without_key() -> None:
    message = "1234.1234:private-foobar"
    assert not auth_matches(DOC_KEY, DOC_SECRET, message, sign(DOC_SECRET, message))


def test_auth_matches_handles_non_ascii_signature() -> None:
    assert not auth_matches(DOC_KEY, DOC_SECRET, "1.1:private-x", f"{DOC_KEY}:é\udcff")


# verify_request with the official Python SDK ---------------------------------------------
def test_verify_request_accepts_sdk_get_with_empty_body_md5() -> None:
    request = _sdk_client().channels_info.make_request()
    assert request.method == "GET"
    assert request.query_params["body_md5"] == EMPTY_MD5
    _verify_sdk(request)


def test_verify_request_accepts_sdk_get_with_info_and_prefix() -> None:
    request = _sdk_client().channels_info.make_request(
        prefix_filter="presence-", attributes=["user_count"]
    )
    _verify_sdk(request)


def test_verify_request_accepts_sdk_channel_info() -> None:
    request = _sdk_client().channel_info.make_request(
        "presence-room", attributes=["user_count", "subscription_count"]
    )
    assert request.path == f"/apps/{APP_ID}/channels/presence-room"
    _verify_sdk(request)


def test_verify_request_accepts_sdk_users_info() -> None:
    _verify_sdk(_sdk_client().users_info.make_request("presence-room"))


def test_verify_request_accepts_sdk_trigger_post() -> None:
    request = _sdk_client().trigger.make_request(
        ["my-channel", "other"], "my-event", {"message": "hello"}, socket_id="123.456"
    )
    assert request.method == "POST"
    assert request.body
    _verify_sdk(request)


def test_verify_request_accepts_sdk_trigger_batch() -> None:
    request = _sdk_client().trigger_batch.make_request(
        [{"channel": "a", "name": "e", "data": {"x": 1}}]
    )
    _verify_sdk(request)


def test_verify_request_accepts_sdk_terminate_connections() -> None:
    request = _sdk_client().terminate_user_connections.make_request("user-1")
    _verify_sdk(request)


def test_verify_request_accepts_within_window() -> None:
    request = _sdk_client().channels_info.make_request()
    timestamp = float(request.query_params["auth_timestamp"])
    _verify_sdk(request, now=timestamp + 599)
    _verify_sdk(request, now=timestamp - 599)


def _signed(
    method: str,
    path: str,
    query: str,
    secret: str = SECRET,
) -> list[tuple[str, str]]:
    params = parse_query(query)
    signature = sign(secret, string_to_sign(method, path, params))
    return [*params, ("auth_signature", signature)]


def test_verify_request_accepts_php_style_percent_encoded_values() -> None:
    # Guzzle encodes the comma; the signature covers the decoded value.
    decoded = (
        "auth_key=app-key&auth_timestamp=1000&auth_version=1.0&info=user_count,subscription_count"
    )
    signature = sign(SECRET, f"GET\n/apps/12345/channels/ch\n{decoded}")
    raw = (
        "auth_key=app-key&auth_timestamp=1000&auth_version=1.0"
        f"&info=user_count%2Csubscription_count&auth_signature={signature}"
    )
    verify_request(KEY, SECRET, "GET", "/apps/12345/channels/ch", parse_query(raw), b"", 1000.0)


def test_verify_request_accepts_array_params_joined_with_commas() -> None:
    signed_string = (
        "GET\n/apps/12345/channels\nauth_key=app-key&auth_timestamp=1000&auth_version=1.0"
        "&channels[]=a,b"
    )
    signature = sign(SECRET, signed_string)
    raw = (
        "channels[]=a&auth_key=app-key&auth_timestamp=1000&channels[]=b&auth_version=1.0"
        f"&auth_signature={signature}"
    )
    verify_request(KEY, SECRET, "GET", "/apps/12345/channels", parse_query(raw), b"", 1000.0)


def test_verify_request_accepts_upper_case_keys() -> None:
    signature = sign(
        SECRET,
        "GET\n/apps/12345/channels\nauth_key=app-key&auth_timestamp=1000&auth_version=1.0",
    )
    params = [
        ("AUTH_KEY", KEY),
        ("Auth_Timestamp", "1000"),
        ("AUTH_VERSION", "1.0"),
        ("AUTH_SIGNATURE", signature),
    ]
    verify_request(KEY, SECRET, "GET", "/apps/12345/channels", params, b"", 1000.0)


def test_verify_request_accepts_post_body_md5() -> None:
    body = b'{"name":"e","channel":"c","data":"{}"}'
    query = f"auth_key=app-key&auth_timestamp=1000&auth_version=1.0&body_md5={body_md5(body)}"
    params = _signed("POST", "/apps/12345/events", query)
    verify_request(KEY, SECRET, "POST", "/apps/12345/events", params, body, 1000.0)


def _reject(params: list[tuple[str, str]], body: bytes = b"", **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        verify_request(
            kwargs.get("key", KEY),
            kwargs.get("secret", SECRET),
            kwargs.get("method", "GET"),
            kwargs.get("path", "/apps/12345/channels"),
            params,
            body,
            kwargs.get("now", 1000.0),
        )
    assert info.value.status == 401
    return info.value


def test_verify_request_rejects_expired_timestamp() -> None:
    request = _sdk_client().channels_info.make_request()
    timestamp = float(request.query_params["auth_timestamp"])
    for now in (timestamp + 600, timestamp - 600, timestamp + 86400):
        with pytest.raises(ApiError) as info:
            _verify_sdk(request, now=now)
        assert info.value.status == 401
        assert info.value.message.startswith("Timestamp expired")


def test_verify_request_rejects_non_numeric_timestamp() -> None:
    params = _signed(
        "GET", "/apps/12345/channels", "auth_key=app-key&auth_timestamp=x&auth_version=1.0"
    )
    _reject(params)


def test_verify_request_rejects_bad_signature() -> None:
    params = _signed(
        "GET",
        "/apps/12345/channels",
        "auth_key=app-key&auth_timestamp=1000&auth_version=1.0",
        secret="wrong-secret",
    )
    error = _reject(params)
    assert error.message.startswith("Invalid signature")
    assert "wrong-secret" not in error.message
    assert SECRET not in error.message


def test_verify_request_rejects_signature_for_another_path() -> None:
    params = _signed(
        "GET", "/apps/12345/channels/x", "auth_key=app-key&auth_timestamp=1000&auth_version=1.0"
    )
    assert _reject(params).message.startswith("Invalid signature")


def test_verify_request_rejects_tampered_parameter() -> None:
    params = _signed(
        "GET",
        "/apps/12345/channels",
        "auth_key=app-key&auth_timestamp=1000&auth_version=1.0&filter_by_prefix=a",
    )
    tampered = [(k, "b" if k == "filter_by_prefix" else v) for k, v in params]
    assert _reject(tampered).message.startswith("Invalid signature")


def test_verify_request_rejects_wrong_body_md5() -> None:
    body = b'{"name":"e","channel":"c","data":"{}"}'
    query = f"auth_key=app-key&auth_timestamp=1000&auth_version=1.0&body_md5={body_md5(b'other')}"
    params = _signed("POST", "/apps/12345/events", query)
    _reject(params, body, method="POST", path="/apps/12345/events")


def test_verify_request_rejects_sdk_request_with_swapped_body() -> None:
    request = _sdk_client().trigger.make_request("c", "e", {"a": 1})
    with pytest.raises(ApiError) as info:
        _verify_sdk(request, body=b'{"name":"e","channels":["c"],"data":"{\\"a\\": 2}"}')
    assert info.value.status == 401


def test_verify_request_rejects_body_without_body_md5() -> None:
    body = b'{"name":"e","channel":"c","data":"{}"}'
    params = _signed(
        "POST", "/apps/12345/events", "auth_key=app-key&auth_timestamp=1000&auth_version=1.0"
    )
    _reject(params, body, method="POST", path="/apps/12345/events")


@pytest.mark.parametrize(
    "missing", ["auth_key", "auth_timestamp", "auth_version", "auth_signature"]
)
def test_verify_request_rejects_missing_params(missing: str) -> None:
    params = _signed(
        "GET", "/apps/12345/channels", "auth_key=app-key&auth_timestamp=1000&auth_version=1.0"
    )
    error = _reject([(k, v) for k, v in params if k != missing])
    assert missing in error.message


@pytest.mark.parametrize("version", ["2.0", "1", ""])
def test_verify_request_rejects_other_auth_versions(version: str) -> None:
    params = _signed(
        "GET",
        "/apps/12345/channels",
        f"auth_key=app-key&auth_timestamp=1000&auth_version={version}",
    )
    _reject(params)


def test_verify_request_rejects_another_apps_key() -> None:
    request = _sdk_client(key="other-key", secret="other-secret").channels_info.make_request()
    with pytest.raises(ApiError) as info:
        _verify_sdk(request)
    assert info.value.status == 401


def test_verify_request_rejects_another_apps_key_signed_with_this_secret() -> None:
    request = _sdk_client(key="other-key").channels_info.make_request()
    with pytest.raises(ApiError) as info:
        _verify_sdk(request)
    assert info.value.status == 401


@pytest.mark.parametrize("timestamp", ["99999999999999", "-99999999999999", "1" + "0" * 30])
def test_verify_request_timestamp_outside_datetime_range_is_401(timestamp: str) -> None:
    params = [
        ("auth_key", KEY),
        ("auth_timestamp", timestamp),
        ("auth_version", "1.0"),
        ("auth_signature", "0" * 64),
    ]
    with pytest.raises(ApiError) as info:
        verify_request(KEY, SECRET, "GET", "/apps/12345/channels", params, b"", 1.7e9)
    assert info.value.status == 401
    assert info.value.message.startswith("Timestamp expired: Given timestamp (")
