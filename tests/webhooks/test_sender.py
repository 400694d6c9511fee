"""``WebhookSender`` unit tests over an in-memory ``httpx.MockTransport``.

The end-to-end behaviour against a real HTTP receiver lives in ``tests/test_webhooks.py``;
these tests cover what is easier to pin down with a scripted transport: connection errors
and unexpected exceptions, the backoff schedule, log levels and log-safe target names,
global queue bounds, apps without webhooks, and per-app batching on a shared URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

import pusherd.webhooks.sender as sender_module
from pusherd.apps.base import WEBHOOK_EVENT_TYPES, App, WebhookTarget
from pusherd.config import WebhookSettings
from pusherd.metrics import Metrics
from pusherd.types import AppId, AppKey
from pusherd.webhooks import WebhookSender
from tests.webhooks import count, depth

__all__: list[str] = []

URL = "http://127.0.0.1:8080/hook"
FAST = WebhookSettings(
    delay=0.05, retry_for=10.0, timeout=2.0, batch_window_ms=20, max_batch_size=50
)
Reply = int | Exception


def make_app(*targets: WebhookTarget, n: int = 1) -> App:
    return App(
        id=AppId(f"{n}00"), key=AppKey(f"key-{n}"), secret=f"secret-{n}-hush", webhooks=targets
    )


def occupied(channel: str) -> dict[str, Any]:
    return {"name": "channel_occupied", "channel": channel}


class ScriptedReceiver:
    """An ``httpx.MockTransport`` handler: records requests, answers from a script.

    Each reply is a status code or an exception to raise; after the script, ``default``.
    """

    def __init__(self, *replies: Reply, default: int = 200) -> None:
        self.script: deque[Reply] = deque(replies)
        self.default = default
        self.requests: list[httpx.Request] = []
        self.changed = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.changed.set()
        reply = self.script.popleft() if self.script else self.default
        if isinstance(reply, Exception):
            raise reply
        return httpx.Response(reply, json={})

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(request.content) for request in self.requests]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[httpx.Request]:
        await self.wait_until(lambda: len(self.requests) >= n, timeout)
        return self.requests


class AsyncioSpy:
    """Stands in for ``asyncio`` inside the sender module and records its delays."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.sleeps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def timeout(self, delay: float | None) -> asyncio.Timeout:
        self.timeouts.append(delay)
        return asyncio.timeout(delay)

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def client_for(receiver: ScriptedReceiver) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        yield client


@contextlib.asynccontextmanager
async def running(
    receiver: ScriptedReceiver,
    settings: WebhookSettings = FAST,
    metrics: Metrics | None = None,
    grace: float = 1.0,
    **kwargs: Any,
) -> AsyncIterator[WebhookSender]:
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_cap", 0.005)
    async with client_for(receiver) as client:
        sender = WebhookSender(settings, metrics, client=client, **kwargs)
        await sender.start()
        try:
            yield sender
        finally:
            await sender.stop(grace)


def verify(app: App, request: httpx.Request) -> bool:
    expected = hmac.new(app.secret.encode(), request.content, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["x-pusher-signature"], expected)


async def yes() -> bool:
    return True


async def poll_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Bounded polling, only for state that no event announces (e.g. the depth gauge)."""
    async with asyncio.timeout(timeout):
        for _ in range(5_000):
            if condition():
                return
            await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


# wants() / emit() routing -------------------------------------------------------------
async def test_wants_is_true_only_if_some_target_takes_the_event_type() -> None:
    sender = WebhookSender(FAST)
    bare = make_app()
    for name in WEBHOOK_EVENT_TYPES:
        assert not sender.wants(bare, name)
    app = make_app(
        WebhookTarget(url=URL, event_types=frozenset({"member_added"})),
        WebhookTarget(url=URL, event_types=frozenset({"channel_vacated"})),
    )
    assert sender.wants(app, "member_added")
    assert sender.wants(app, "channel_vacated")
    assert not sender.wants(app, "channel_occupied")
    await sender.stop(0)


async def test_emit_and_emit_later_ignore_apps_without_webhooks() -> None:
    receiver = ScriptedReceiver()
    metrics = Metrics()
    bare, hooked = make_app(n=1), make_app(WebhookTarget(url=URL), n=2)
    confirmed: list[str] = []

    def confirm_as(name: str) -> Callable[[], Awaitable[bool]]:
        async def confirm() -> bool:
            confirmed.append(name)
            return True

        return confirm

    async with running(receiver, metrics=metrics) as sender:
        sender.emit(bare, occupied("a"))
        sender.emit_later(bare, {"name": "channel_vacated", "channel": "a"}, 0, confirm_as("bare"))
        assert depth(metrics) is None  # nothing was ever queued
        # A delayed event of a hooked app, emitted after, resolves and arrives first.
        sender.emit_later(
            hooked, {"name": "channel_vacated", "channel": "b"}, 0, confirm_as("hooked")
        )
        (request,) = await receiver.wait_for(1)
    assert confirmed == ["hooked"]
    assert request.headers["x-pusher-key"] == hooked.key
    assert len(receiver.requests) == 1
    assert count(metrics, bare, "dropped") == 0
    assert count(metrics, bare, "sent") == 0


async def test_events_go_only_to_the_targets_whose_filters_match() -> None:
    receiver = ScriptedReceiver()
    app = make_app(
        WebhookTarget(url="http://127.0.0.1:8080/private", channel_prefix="private-"),
        WebhookTarget(url="http://127.0.0.1:8080/rooms", channel_suffix="-room"),
        WebhookTarget(url="http://127.0.0.1:8080/members", event_types=frozenset({"member_added"})),
    )
    async with running(receiver) as sender:
        sender.emit(app, occupied("private-a"))  # /private
        sender.emit(app, occupied("public-room"))  # /rooms
        sender.emit(app, occupied("private-room"))  # /private and /rooms
        sender.emit(app, {"name": "member_added", "channel": "presence-x", "user_id": "1"})
        sender.emit(app, occupied("public-x"))  # nobody
        await receiver.wait_for(5)
    by_path: dict[str, list[str]] = {}
    for request in receiver.requests:
        (event,) = orjson.loads(request.content)["events"]
        by_path.setdefault(request.url.path, []).append(event["channel"])
    assert by_path == {
        "/private": ["private-a", "private-room"],
        "/rooms": ["public-room", "private-room"],
        "/members": ["presence-x"],
    }


async def test_emit_does_not_mutate_the_callers_event() -> None:
    receiver = ScriptedReceiver()
    app = make_app(WebhookTarget(url=URL))
    event = occupied("a")
    async with running(receiver) as sender:
        sender.emit(app, event)
        (request,) = await receiver.wait_for(1)
    assert event == {"name": "channel_occupied", "channel": "a"}
    (sent,) = orjson.loads(request.content)["events"]
    assert sent["id"]
    assert {k: v for k, v in sent.items() if k != "id"} == event


# retries ---------------------------------------------------------------------------------
async def test_retry_sends_the_same_bytes() -> None:
    # Connection errors, timeouts, 5xx and redirects are all failures retried byte for byte.
    receiver = ScriptedReceiver(
        httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 503, 302, 200
    )
    app = make_app(WebhookTarget(url=URL, headers=(("X-Team", "ops"),)))
    async with running(receiver) as sender:
        sender.emit(app, occupied("a"))
        requests = await receiver.wait_for(5)
    assert len({request.content for request in requests}) == 1
    assert len({tuple(request.headers.multi_items()) for request in requests}) == 1
    first = requests[0]
    assert first.method == "POST"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-pusher-key"] == app.key
    assert first.headers["x-team"] == "ops"
    assert verify(app, first)
    body = orjson.loads(first.content)
    assert set(body) == {"time_ms", "events"}
    assert isinstance(body["time_ms"], int)


async def test_unexpected_client_error_is_retried_and_the_worker_survives() -> None:
    receiver = ScriptedReceiver(RuntimeError("not an httpx error"), 204)
    metrics = Metrics()
    app = make_app(WebhookTarget(url=URL))
    async with running(receiver, metrics=metrics) as sender:
        sender.emit(app, occupied("a"))
        sender.emit(app, occupied("b"))
        await receiver.wait_for(3)
    channels = [body["events"][0]["channel"] for body in receiver.bodies()]
    assert channels == ["a", "a", "b"]
    assert count(metrics, app, "failed") == 1
    assert count(metrics, app, "retried") == 1
    assert count(metrics, app, "sent") == 2  # 204 is a success like any 2xx
    assert count(metrics, app, "dropped") == 0


async def test_backoff_is_capped_exponential_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = AsyncioSpy()
    monkeypatch.setattr(sender_module, "asyncio", spy)
    base, cap, failures = 0.001, 0.008, 8
    receiver = ScriptedReceiver(*([500] * failures))
    app = make_app(WebhookTarget(url=URL))  # unbatched: no batch-window timeouts
    async with running(receiver, backoff_base=base, backoff_cap=cap) as sender:
        sender.emit(app, occupied("a"))
        await receiver.wait_for(failures + 1)
        # Before stop() adds its own grace timeout; the idle-queue wait is not a pause.
        pauses = [t for t in spy.timeouts if t != sender_module.IDLE_QUEUE_SECONDS]
    assert len(pauses) == failures
    for attempt, pause in enumerate(pauses):
        assert pause is not None
        nominal = min(cap, base * 2**attempt)
        assert nominal / 2 <= pause <= nominal, (attempt, pause)
    capped = [p for p in pauses[3:] if p is not None]
    assert max(capped) <= cap
    assert len(set(capped)) > 1  # jitter: capped pauses are not all the same


async def test_backoff_during_stop_is_at_most_the_base_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = AsyncioSpy()
    monkeypatch.setattr(sender_module, "asyncio", spy)
    base = 0.01
    # Five failures before stop() (the next pause would be up to 0.16 s), two during.
    receiver = ScriptedReceiver(*([500] * 7))
    metrics = Metrics()
    app = make_app(WebhookTarget(url=URL))
    async with client_for(receiver) as client:
        sender = WebhookSender(FAST, metrics, client=client, backoff_base=base, backoff_cap=100.0)
        await sender.start()
        sender.emit(app, occupied("a"))
        await receiver.wait_for(5)
        assert spy.sleeps == []  # before stop, pauses wait on the stop signal, not sleep()
        await sender.stop(grace=5.0)  # returns once the event is delivered
    assert len(receiver.requests) == 8
    assert len(spy.sleeps) >= 2
    assert all(0 < pause <= base for pause in spy.sleeps)
    assert count(metrics, app, "sent") == 1
    assert count(metrics, app, "dropped") == 0


# logs ------------------------------------------------------------------------------------
async def test_target_description_hides_path_and_query(caplog: pytest.LogCaptureFixture) -> None:
    receiver = ScriptedReceiver(default=500)
    target = WebhookTarget(
        url="http://127.0.0.1:8080/hooks/s3cr3t-path?token=hush",
        headers=(("Authorization", "Bearer t0p"),),
    )
    app = make_app(target)
    settings = WebhookSettings(retry_for=0.05, timeout=1.0)
    with caplog.at_level(logging.DEBUG, logger="pusherd.webhooks"):
        async with running(receiver, settings, grace=0) as sender:
            sender.emit(app, occupied("a"))
            sender.emit(app, occupied("b"))
            # "b" is only tried once "a" has been given up on.
            await receiver.wait_until(
                lambda: any(body["events"][0]["channel"] == "b" for body in receiver.bodies())
            )
    assert "POST to target #0 (http://127.0.0.1:8080/...) of app 100 failed (HTTP 500)" in (
        caplog.text
    )
    assert "giving up on 1 event(s) for target #0 (http://127.0.0.1:8080/...)" in caplog.text
    for secret in ("s3cr3t", "hush", "token", "t0p", app.secret):
        assert secret not in caplog.text
    signatures = {request.headers["x-pusher-signature"] for request in receiver.requests}
    assert not any(signature in caplog.text for signature in signatures)


async def test_repeated_failures_warn_once_then_log_at_debug_until_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = ScriptedReceiver(500, httpx.ConnectError("refused"), 500, 200)
    app = make_app(WebhookTarget(url=URL))
    with caplog.at_level(logging.DEBUG, logger="pusherd.webhooks"):
        async with running(receiver) as sender:
            sender.emit(app, occupied("a"))
            await receiver.wait_for(4)
        # stop() waits for the delivery to finish, so its logs are all in now.
    failed = [r.levelno for r in caplog.records if "failed" in r.getMessage()]
    assert failed == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    recovered = [r.levelno for r in caplog.records if "recovered" in r.getMessage()]
    assert recovered == [logging.INFO]


# bounds and batching ---------------------------------------------------------------------
async def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    # The bound is one total over every app and target; each refused copy is counted.
    receiver = ScriptedReceiver()
    metrics = Metrics()
    one = make_app(WebhookTarget(url=URL), WebhookTarget(url=URL + "-bis"), n=1)
    two = make_app(WebhookTarget(url=URL), n=2)
    settings = WebhookSettings(retry_for=5.0, timeout=2.0, max_queue=3)
    async with client_for(receiver) as client:
        sender = WebhookSender(settings, metrics, client=client)
        with caplog.at_level(logging.WARNING, logger="pusherd.webhooks"):
            sender.emit(one, occupied("a"))  # two copies queued
            sender.emit(one, occupied("b"))  # one queued, one dropped
            for _ in range(5):
                sender.emit(two, occupied("c"))  # all dropped: the bound is global
        assert count(metrics, one, "dropped") == 1
        assert count(metrics, two, "dropped") == 5
        assert depth(metrics) == 3
        queue_full = [r for r in caplog.records if "queue full" in r.getMessage()]
        assert len(queue_full) == 1  # rate-limited, not one line per drop
        await sender.start()
        try:
            await receiver.wait_for(3)
            await poll_until(lambda: depth(metrics) == 0)
            sender.emit(two, occupied("d"))  # room again once delivered
            await receiver.wait_for(4)
        finally:
            await sender.stop(1.0)
    assert count(metrics, two, "sent") == 1
    assert count(metrics, two, "dropped") == 5


async def test_batch_carries_the_time_ms_of_its_first_event() -> None:
    now = [1_700_000_000.0]
    receiver = ScriptedReceiver()
    app = make_app(WebhookTarget(url=URL, batch=True))
    async with client_for(receiver) as client:
        sender = WebhookSender(FAST, client=client, clock=lambda: now[0])
        for seq in range(3):  # not started yet: all three wait in one queue
            sender.emit(app, occupied(f"c{seq}"))
            now[0] += 1.5
        await sender.start()
        try:
            (request,) = await receiver.wait_for(1)
        finally:
            await sender.stop(1.0)
    body = orjson.loads(request.content)
    assert body["time_ms"] == 1_700_000_000_000
    assert [event["channel"] for event in body["events"]] == ["c0", "c1", "c2"]
    assert len({event["id"] for event in body["events"]}) == 3


async def test_same_url_for_two_apps_is_never_batched_together() -> None:
    receiver = ScriptedReceiver()
    one = make_app(WebhookTarget(url=URL, batch=True), n=1)
    two = make_app(WebhookTarget(url=URL, batch=True), n=2)
    async with client_for(receiver) as client:
        sender = WebhookSender(FAST, client=client)
        for seq in range(3):
            sender.emit(one, occupied(f"one-{seq}"))
            sender.emit(two, occupied(f"two-{seq}"))
        await sender.start()
        try:
            await receiver.wait_for(2)
        finally:
            await sender.stop(1.0)
    assert len(receiver.requests) == 2
    by_key = {request.headers["x-pusher-key"]: request for request in receiver.requests}
    for app, prefix in ((one, "one-"), (two, "two-")):
        request = by_key[app.key]
        assert verify(app, request)
        channels = [event["channel"] for event in orjson.loads(request.content)["events"]]
        assert channels == [f"{prefix}{seq}" for seq in range(3)]


# delayed events and lifecycle ----------------------------------------------------------
async def test_emit_later_confirm_that_hangs_is_treated_as_true(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = ScriptedReceiver()
    app = make_app(WebhookTarget(url=URL))
    never = asyncio.Event()

    async def hangs() -> bool:
        await never.wait()
        return False

    settings = WebhookSettings(delay=0.01, retry_for=5.0, timeout=0.05)
    with caplog.at_level(logging.ERROR, logger="pusherd.webhooks"):
        async with running(receiver, settings) as sender:
            sender.emit_later(app, {"name": "member_removed", "channel": "presence-a"}, 0, hangs)
            (request,) = await receiver.wait_for(1)
    (event,) = orjson.loads(request.content)["events"]
    assert event["name"] == "member_removed"
    assert "confirm() of a delayed member_removed failed" in caplog.text


async def test_stop_without_start_drops_queued_events_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = ScriptedReceiver()
    metrics = Metrics()
    app = make_app(WebhookTarget(url="http://127.0.0.1:8080/hook?token=hush"))
    async with client_for(receiver) as client:
        sender = WebhookSender(FAST, metrics, client=client)
        sender.emit(app, occupied("a"))
        sender.emit_later(app, {"name": "channel_vacated", "channel": "b"}, 60.0, yes)
        with caplog.at_level(logging.WARNING, logger="pusherd.webhooks"):
            await sender.stop(grace=5.0)  # nothing can be delivered: no waiting
    assert receiver.requests == []
    assert count(metrics, app, "dropped") == 2
    assert depth(metrics) == 0
    assert "dropping 2 undelivered event(s) for target #0 (http://127.0.0.1:8080/...)" in (
        caplog.text
    )
    assert "hush" not in caplog.text


async def test_start_and_stop_are_idempotent_and_leave_an_injected_client_open() -> None:
    receiver = ScriptedReceiver()
    app = make_app(WebhookTarget(url=URL))
    async with client_for(receiver) as client:
        sender = WebhookSender(FAST, client=client)
        await sender.start()
        await sender.start()
        sender.emit(app, occupied("a"))
        await receiver.wait_for(1)
        await sender.stop(1.0)
        await sender.stop(1.0)
        assert not client.is_closed
    assert len(receiver.requests) == 1


async def test_an_idle_queue_is_dropped_and_a_later_event_gets_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reloads give changed targets new queues; idle ones must not pile up forever.
    monkeypatch.setattr(sender_module, "IDLE_QUEUE_SECONDS", 0.05)
    receiver = ScriptedReceiver()
    app = make_app(WebhookTarget(url=URL, event_types=WEBHOOK_EVENT_TYPES))
    async with running(receiver) as sender:
        sender.emit(app, occupied("one"))
        await receiver.wait_for(1)
        [queue] = sender._queues.values()
        worker = queue.worker
        assert worker is not None
        async with asyncio.timeout(5):
            await worker  # ends by itself once the queue has been idle
        assert sender._queues == {}
        sender.emit(app, occupied("two"))
        await receiver.wait_for(2)
    assert [body["events"][0]["channel"] for body in receiver.bodies()] == ["one", "two"]
