"""Idempotent publish with the stock SDKs: the same key twice is one event for subscribers.

A pusher-js client listens; after the publishes a ``barrier`` event proves that no second
copy is still on its way (the server delivers in publish order).
"""

from __future__ import annotations

import uuid
from typing import Any

import pusher
import pytest

from .conftest import APP, Launch, NodeClient, Target
from .idempotent_publish import node_sdk_publish, python_sdk_publish, signed_post_with_header

pytestmark = pytest.mark.node


async def listening(launch: Launch, channel: str) -> NodeClient:
    client = await launch()
    await client.subscribe(channel)
    await client.subscribed(channel)
    return client


async def delivered(client: NodeClient, sdk: pusher.Pusher, channel: str, event: str) -> list[Any]:
    sdk.trigger(channel, "barrier", {})
    await client.event(channel, "barrier")
    return [e["data"] for e in client.seen(t="event", channel=channel, event=event)]


async def test_idempotency_python_sdk_body_key_publishes_once(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"idem-{uid}"
    client = await listening(launch, channel)
    key = f"livekit-evt-{uuid.uuid4()}"

    first = python_sdk_publish(sdk, channel, "left", {"who": "bob"}, key)
    second = python_sdk_publish(sdk, channel, "left", {"who": "bob"}, key)
    other = python_sdk_publish(sdk, channel, "left", {"who": "ann"}, key + "-other")

    assert first == second == other == {}
    assert await delivered(client, sdk, channel, "left") == [{"who": "bob"}, {"who": "ann"}]


async def test_idempotency_header_key_via_raw_signed_request_publishes_once(
    launch: Launch, sdk: pusher.Pusher, target: Target, uid: str
) -> None:
    channel = f"idem-{uid}"
    client = await listening(launch, channel)
    key = f"job-{uuid.uuid4()}"

    answers = [
        signed_post_with_header(sdk, target.host, target.port, channel, "done", {"n": n}, key)
        for n in range(2)
    ]

    assert answers == [(200, b"{}"), (200, b"{}")]
    assert await delivered(client, sdk, channel, "done") == [{"n": 0}]


async def test_idempotency_repeat_answers_exactly_the_first_answer(
    launch: Launch, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"idem-{uid}"
    client = await listening(launch, channel)
    key = str(uuid.uuid4())
    first = python_sdk_publish(sdk, channel, "e", {}, key, info="subscription_count")
    late = await listening(launch, channel)  # the count changes; the stored answer must not
    second = python_sdk_publish(sdk, channel, "e", {}, key, info="subscription_count")

    assert first == {"channels": {channel: {"subscription_count": 1}}}
    assert second == first
    assert await delivered(client, sdk, channel, "e") == [{}]
    assert await delivered(late, sdk, channel, "e") == []


async def test_idempotency_node_sdk_body_key_publishes_once(
    launch: Launch, sdk: pusher.Pusher, target: Target, uid: str
) -> None:
    channel = f"idem-{uid}"
    client = await listening(launch, channel)

    answers = await node_sdk_publish(
        APP, target.host, target.port, channel, "left", {"who": "bob"}, str(uuid.uuid4()), 2
    )

    assert answers == [{"status": 200, "body": "{}"}] * 2
    assert await delivered(client, sdk, channel, "left") == [{"who": "bob"}]


async def test_idempotency_node_sdk_batch_item_key_publishes_once(
    launch: Launch, sdk: pusher.Pusher, target: Target, uid: str
) -> None:
    channel = f"idem-{uid}"
    client = await listening(launch, channel)

    answers = await node_sdk_publish(
        APP, target.host, target.port, channel, "left", {"who": "bob"}, str(uuid.uuid4()), 3, True
    )

    assert [a["status"] for a in answers] == [200, 200, 200]
    assert len({a["body"] for a in answers}) == 1
    assert await delivered(client, sdk, channel, "left") == [{"who": "bob"}]


async def test_idempotency_rejects_a_key_longer_than_200_characters(
    sdk: pusher.Pusher, target: Target, uid: str
) -> None:
    status, body = signed_post_with_header(
        sdk, target.host, target.port, f"idem-{uid}", "e", {}, "k" * 201
    )
    assert status == 400
    assert b"at most 200" in body
    with pytest.raises(pusher.errors.PusherBadRequest):
        python_sdk_publish(sdk, f"idem-{uid}", "e", {}, "")
