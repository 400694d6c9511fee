"""``pusherd.webhooks.queue``: per-target ordering, delayed-event slots, log-safe targets."""

from __future__ import annotations

from typing import Any

import pytest

from pusherd.apps.base import App, WebhookTarget
from pusherd.types import AppId, AppKey
from pusherd.webhooks.queue import Item, SlotState, TargetQueue, describe_target

__all__: list[str] = []

TARGET = WebhookTarget(url="http://127.0.0.1:9/hook?token=t")
APP = App(id=AppId("100"), key=AppKey("key"), secret="secret", webhooks=(TARGET,))


def make_queue() -> TargetQueue:
    return TargetQueue(APP, TARGET, describe_target(0, TARGET.url))


def ready(channel: str | None, n: int) -> Item:
    return Item(channel, {"name": "client_event", "channel": channel, "n": n}, 1000 + n)


def pending(channel: str | None, n: int) -> Item:
    return Item(
        channel,
        {"name": "channel_vacated", "channel": channel, "n": n},
        1000 + n,
        SlotState.PENDING,
    )


def numbers(items: Any) -> list[int]:
    return [item.event["n"] for item in items]


def test_new_item_is_ready_by_default() -> None:
    assert ready("a", 1).state is SlotState.READY


def test_empty_queue_has_nothing_eligible_and_length_zero() -> None:
    queue = make_queue()
    assert queue.eligible(10) == []
    assert len(queue) == 0


def test_eligible_returns_ready_items_in_queue_order_up_to_the_limit() -> None:
    queue = make_queue()
    queue.items.extend(ready(channel, n) for n, channel in enumerate("abcab"))
    assert numbers(queue.eligible(10)) == [0, 1, 2, 3, 4]
    assert numbers(queue.eligible(2)) == [0, 1]
    assert numbers(queue.eligible(1)) == [0]
    assert len(queue.items) == 5  # eligible() only looks


def test_pending_slot_holds_back_later_items_of_its_channel_only() -> None:
    queue = make_queue()
    queue.items.extend([pending("a", 0), ready("a", 1), ready("b", 2), ready("a", 3)])
    assert numbers(queue.eligible(10)) == [2]


def test_items_queued_before_a_pending_slot_stay_eligible() -> None:
    queue = make_queue()
    queue.items.extend([ready("a", 0), pending("a", 1), ready("a", 2)])
    assert numbers(queue.eligible(10)) == [0]


def test_pending_slot_without_channel_blocks_only_channelless_items() -> None:
    queue = make_queue()
    queue.items.extend([pending(None, 0), ready(None, 1), ready("a", 2)])
    assert numbers(queue.eligible(10)) == [2]


def test_resolving_a_slot_releases_the_items_behind_it_in_order() -> None:
    queue = make_queue()
    slot = pending("a", 0)
    queue.items.extend([slot, ready("a", 1), ready("b", 2)])
    assert numbers(queue.eligible(10)) == [2]
    slot.state = SlotState.READY
    assert numbers(queue.eligible(10)) == [0, 1, 2]


def test_take_from_the_head_moves_items_into_flight() -> None:
    queue = make_queue()
    queue.items.extend(ready("a", n) for n in range(4))
    chosen = queue.eligible(3)
    queue.take(chosen)
    assert numbers(queue.items) == [3]
    assert queue.inflight == 3
    assert len(queue) == 4  # queued plus in flight


def test_take_around_a_pending_slot_keeps_the_rest_in_order() -> None:
    queue = make_queue()
    queue.items.extend(
        [pending("a", 0), ready("a", 1), ready("b", 2), ready("a", 3), ready("c", 4)]
    )
    chosen = queue.eligible(10)
    assert numbers(chosen) == [2, 4]
    queue.take(chosen)
    assert numbers(queue.items) == [0, 1, 3]
    assert queue.inflight == 2


def test_take_removes_items_by_identity_not_by_equal_content() -> None:
    queue = make_queue()
    event = {"name": "channel_occupied", "channel": "a"}
    first, second = Item("a", event, 5), Item("a", event, 5)
    queue.items.extend([first, second])
    queue.take([second])
    assert list(queue.items) == [first]
    assert queue.items[0] is first


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/s3cr3t-path?token=hush", "#2 (https://hooks.example.com/...)"),
        ("http://127.0.0.1:8080/a/b/c?sig=hush&x=1#frag", "#2 (http://127.0.0.1:8080/...)"),
        ("https://user:hush@hooks.example.com:8443/p", "#2 (https://hooks.example.com:8443/...)"),
    ],
)
def test_target_description_hides_path_and_query(url: str, expected: str) -> None:
    description = describe_target(2, url)
    assert description == expected
    for secret in ("s3cr3t", "hush", "token", "sig=", "frag", "user"):
        assert secret not in description


def test_target_description_keeps_an_explicit_port_and_omits_a_default_one() -> None:
    assert describe_target(0, "http://127.0.0.1:8000/h") == "#0 (http://127.0.0.1:8000/...)"
    assert describe_target(0, "http://127.0.0.1:80/h") == "#0 (http://127.0.0.1/...)"
    assert describe_target(0, "https://example.com:443/h") == "#0 (https://example.com/...)"


@pytest.mark.parametrize(
    "url",
    ["http://[::1/hook?token=hush", "http://h:port/hook?token=hush", "http://a:b:c/?token=hush"],
)
def test_target_description_of_an_unparsable_url_reveals_nothing(url: str) -> None:
    assert describe_target(7, url) == "#7 (invalid url)"


def test_target_description_of_a_relative_url_hides_its_path_and_query() -> None:
    description = describe_target(1, "hooks.example.com/s3cr3t?token=hush")
    assert description.startswith("#1 (")
    assert "s3cr3t" not in description
    assert "hush" not in description


def test_target_description_brackets_an_ipv6_host() -> None:
    assert describe_target(0, "http://[::1]:8080/hooks?token=x") == "#0 (http://[::1]:8080/...)"
