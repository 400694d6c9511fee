"""The official ``pusher`` Python SDK (and hand-signed HTTP requests) against the REST API.

§1.16 of PROTOCOL.md: every success is 200 with a JSON body; errors are 400/401/403/404/413
with a plain-text, Pusher-style body. Requests the SDK cannot make (bad signatures, old
timestamps, ``info`` on ``/events``) are signed by hand and sent with ``httpx``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pusher
import pusher.errors
import pytest

from .conftest import (
    APP,
    COUNT_APP,
    DISABLED_APP,
    AuthEndpoint,
    Launch,
    NodeClient,
    Target,
    close_sdk,
    make_sdk,
)


def _sign(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key: str = APP["key"],
    secret: str = APP["secret"],
    timestamp: int | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Query parameters for a request signed as in §1.16 (the documented algorithm)."""
    params = {
        "auth_key": key,
        "auth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "auth_version": "1.0",
        **(extra or {}),
    }
    if body:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    string_to_sign = f"{method}\n{path}\n{query}"
    params["auth_signature"] = hmac.new(
        secret.encode(), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return params


@pytest.fixture
def http(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.http_url, timeout=5) as client:
        yield client


def _post(http: httpx.Client, path: str, payload: dict[str, Any], **sign: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    params = _sign("POST", path, body, **sign)
    return http.post(
        path, params=params, content=body, headers={"Content-Type": "application/json"}
    )


def _assert_text_error(response: httpx.Response, status: int, starts: str = "") -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("text/plain"), response.headers
    assert response.text.startswith(starts), response.text


async def _subscribed(launch: Launch, channel: str, **spec: Any) -> NodeClient:
    client = await launch(**spec)
    await client.subscribe(channel)
    await client.subscribed(channel)
    return client


# -- trigger -----------------------------------------------------------------------------------


def test_sdk_trigger_single_channel_returns_empty_object(sdk: pusher.Pusher, uid: str) -> None:
    assert sdk.trigger(f"lonely-{uid}", "ping", {"x": 1}) == {}


def test_sdk_trigger_list_of_channels_returns_empty_object(sdk: pusher.Pusher, uid: str) -> None:
    channels = [f"list{n}-{uid}" for n in range(100)]
    assert sdk.trigger(channels, "ping", "hello") == {}


def test_sdk_trigger_over_100_channels_fails_in_the_sdk(sdk: pusher.Pusher, uid: str) -> None:
    with pytest.raises(ValueError, match="Too many channels"):
        sdk.trigger([f"c{n}-{uid}" for n in range(101)], "ping", {})


def test_rest_trigger_over_100_channels_is_400(http: httpx.Client, uid: str) -> None:
    payload = {"name": "ping", "channels": [f"c{n}-{uid}" for n in range(101)], "data": "{}"}
    _assert_text_error(_post(http, f"/apps/{APP['id']}/events", payload), 400)


def test_rest_trigger_accepts_singular_channel_field(http: httpx.Client, uid: str) -> None:
    payload = {"name": "ping", "channel": f"php-{uid}", "data": "{}"}
    response = _post(http, f"/apps/{APP['id']}/events", payload)
    assert response.status_code == 200 and response.json() == {}


def test_rest_trigger_oversized_data_is_413(http: httpx.Client, uid: str) -> None:
    payload = {"name": "big", "channels": [f"big-{uid}"], "data": "x" * (10 * 1024 + 1)}
    _assert_text_error(_post(http, f"/apps/{APP['id']}/events", payload), 413)


def test_sdk_trigger_batch_returns_empty_object(sdk: pusher.Pusher, uid: str) -> None:
    batch = [
        {"channel": f"b1-{uid}", "name": "one", "data": {"n": 1}},
        {"channel": f"b2-{uid}", "name": "two", "data": "text"},
    ]
    assert sdk.trigger_batch(batch) == {}


@pytest.mark.node
async def test_rest_trigger_info_returns_subscription_count(
    launch: Launch, http: httpx.Client, uid: str
) -> None:
    channel = f"info-{uid}"
    await _subscribed(launch, channel)
    await _subscribed(launch, channel)
    payload = {
        "name": "ping",
        "channels": [channel],
        "data": "{}",
        "info": "subscription_count",
    }
    response = _post(http, f"/apps/{APP['id']}/events", payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"channels": {channel: {"subscription_count": 2}}}


# -- channel queries ---------------------------------------------------------------------------


@pytest.mark.node
async def test_sdk_channels_info_filters_by_prefix(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    prefix = f"room-{uid}-"
    client = await launch()
    for channel in (f"{prefix}a", f"{prefix}b", f"other-{uid}"):
        await client.subscribe(channel)
        await client.subscribed(channel)
    assert sdk.channels_info(prefix) == {"channels": {f"{prefix}a": {}, f"{prefix}b": {}}}


@pytest.mark.node
async def test_sdk_channels_info_user_count_on_presence_prefix(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"presence-lobby-{uid}"
    await _subscribed(launch, channel, user={"id": "1"})
    await _subscribed(launch, channel, user={"id": "2"})
    await _subscribed(launch, channel, user={"id": "2"})
    listing = sdk.channels_info(f"presence-lobby-{uid}", ["user_count"])
    assert listing == {"channels": {channel: {"user_count": 2}}}


def test_sdk_channels_info_user_count_without_presence_filter_is_400(
    sdk: pusher.Pusher,
) -> None:
    with pytest.raises(pusher.errors.PusherBadRequest):
        sdk.channels_info(None, ["user_count"])


@pytest.mark.node
async def test_sdk_channel_info_subscription_count(
    launch: Launch, count_sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"subs-{uid}"
    await _subscribed(launch, channel, app=COUNT_APP)
    await _subscribed(launch, channel, app=COUNT_APP)
    info = count_sdk.channel_info(channel, ["subscription_count"])
    assert info == {"occupied": True, "subscription_count": 2}


@pytest.mark.node
async def test_sdk_channel_info_unoccupied_after_unsubscribe(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel, fence = f"brief-{uid}", f"fence-{uid}"
    client = await _subscribed(launch, channel)
    assert sdk.channel_info(channel)["occupied"] is True
    await client.send("unsubscribe", channel=channel)
    # Frames on one socket are handled in order: once the next subscribe is answered, the
    # unsubscribe has been processed.
    await client.subscribe(fence)
    await client.subscribed(fence)
    assert sdk.channel_info(channel) == {"occupied": False}
    assert channel not in sdk.channels_info(f"brief-{uid}")["channels"]


def test_sdk_channel_info_unoccupied_channel(sdk: pusher.Pusher, uid: str) -> None:
    assert sdk.channel_info(f"empty-{uid}") == {"occupied": False}


def test_sdk_channel_info_user_count_on_public_channel_is_400(sdk: pusher.Pusher, uid: str) -> None:
    with pytest.raises(pusher.errors.PusherBadRequest):
        sdk.channel_info(f"public-{uid}", ["user_count"])


@pytest.mark.node
async def test_sdk_users_info_lists_presence_members(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"presence-users-{uid}"
    await _subscribed(launch, channel, user={"id": "10"})
    await _subscribed(launch, channel, user={"id": "11"})
    users = sdk.users_info(channel)["users"]
    assert sorted(users, key=lambda u: u["id"]) == [{"id": "10"}, {"id": "11"}]


def test_sdk_users_info_on_non_presence_channel_is_400(sdk: pusher.Pusher, uid: str) -> None:
    with pytest.raises(pusher.errors.PusherBadRequest):
        sdk.users_info(f"private-users-{uid}")


# -- auth helpers ------------------------------------------------------------------------------


@pytest.mark.node
async def test_sdk_auth_helpers_produce_auths_the_server_accepts(
    launch: Launch, sdk: pusher.Pusher, auth_endpoint: AuthEndpoint, uid: str
) -> None:
    user_id = f"helper-{uid}"
    auth_endpoint.add_user(user_id, {"name": "Helper"})
    client = await launch(
        auth="endpoint",
        auth_endpoint=auth_endpoint.url(user_id),
        user_auth_endpoint=auth_endpoint.user_url(user_id),
    )
    await client.connected()
    private, presence = f"private-h-{uid}", f"presence-h-{uid}"
    encrypted = f"private-encrypted-h-{uid}"
    for channel in (private, presence, encrypted):
        await client.subscribe(channel)
        await client.subscribed(channel)
    members = await client.send("members", channel=presence)
    assert members["me"] == {"id": user_id, "info": {"name": "Helper"}}
    await client.send("signin")
    await client.expect(t="signin_success")
    sdk.trigger(encrypted, "sealed", {"ok": True})
    assert (await client.event(encrypted, "sealed"))["data"] == {"ok": True}


# -- terminate ---------------------------------------------------------------------------------


@pytest.mark.node
async def test_sdk_terminate_user_connections_closes_signed_in_user(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    """The SDK posts to /users/{id}/terminate_connections (no /apps/{id} prefix, §1.16)."""
    user_id = f"term-{uid}"
    client = await launch(user={"id": user_id})
    await client.connected()
    await client.send("signin")
    await client.expect(t="signin_success")
    assert sdk.terminate_user_connections(user_id) == {}
    assert (await client.closed())["code"] == 4009


@pytest.mark.node
async def test_rest_terminate_connections_canonical_path(
    launch: Launch, http: httpx.Client, uid: str
) -> None:
    user_id = f"term2-{uid}"
    client = await launch(user={"id": user_id})
    await client.connected()
    await client.send("signin")
    await client.expect(t="signin_success")
    response = _post(http, f"/apps/{APP['id']}/users/{user_id}/terminate_connections", {})
    assert response.status_code == 200 and response.json() == {}, response.text
    assert (await client.closed())["code"] == 4009


# -- request signing errors --------------------------------------------------------------------


def test_rest_bad_signature_is_401_with_text_body(http: httpx.Client, uid: str) -> None:
    payload = {"name": "ping", "channels": [f"sig-{uid}"], "data": "{}"}
    response = _post(http, f"/apps/{APP['id']}/events", payload, secret="not-the-secret")
    _assert_text_error(response, 401, "Invalid signature")


def test_rest_expired_timestamp_is_401(http: httpx.Client, uid: str) -> None:
    payload = {"name": "ping", "channels": [f"old-{uid}"], "data": "{}"}
    old = int(time.time()) - 601
    response = _post(http, f"/apps/{APP['id']}/events", payload, timestamp=old)
    _assert_text_error(response, 401, "Timestamp expired")


def test_rest_get_signature_checked(http: httpx.Client) -> None:
    path = f"/apps/{APP['id']}/channels"
    params = _sign("GET", path, secret="not-the-secret")
    _assert_text_error(http.get(path, params=params), 401, "Invalid signature")


def test_rest_key_of_another_app_is_401(http: httpx.Client, uid: str) -> None:
    payload = {"name": "ping", "channels": [f"cross-{uid}"], "data": "{}"}
    response = _post(
        http,
        f"/apps/{APP['id']}/events",
        payload,
        key=COUNT_APP["key"],
        secret=COUNT_APP["secret"],
    )
    _assert_text_error(response, 401)


def test_sdk_trigger_on_disabled_app_is_403(target: Target, uid: str) -> None:
    client = make_sdk(target, DISABLED_APP)
    try:
        with pytest.raises(pusher.errors.PusherForbidden):
            client.trigger(f"off-{uid}", "ping", {})
    finally:
        close_sdk(client)


def test_rest_unknown_app_id_is_404(http: httpx.Client, uid: str) -> None:
    payload = {"name": "ping", "channels": [f"nowhere-{uid}"], "data": "{}"}
    _assert_text_error(_post(http, "/apps/999999/events", payload), 404)
