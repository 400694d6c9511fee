"""``pusherd.webhooks``: signed, retried, ordered, bounded delivery to a real HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pusher
import pytest

from pusherd.apps.base import App, WebhookTarget
from pusherd.config import WebhookSettings
from pusherd.metrics import Metrics
from pusherd.types import AppId, AppKey
from pusherd.webhooks import WebhookSender
from tests.webhook_receiver import Received, WebhookReceiver
from tests.webhooks import count, depth

__all__: list[str] = []

JS_DIR = Path(__file__).resolve().parent.parent / "js"
FAST = WebhookSettings(
    delay=0.05, retry_for=10.0, timeout=2.0, batch_window_ms=20, max_batch_size=50
)


def make_app(*targets: WebhookTarget, n: int = 1) -> App:
    return App(
        id=AppId(f"{n}00"),
        key=AppKey(f"key-{n}"),
        secret=f"secret-{n}-do-not-log",
        webhooks=targets,
    )


@contextlib.asynccontextmanager
async def running(
    settings: WebhookSettings = FAST,
    metrics: Metrics | None = None,
    grace: float = 1.0,
    **kwargs: Any,
) -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(settings, metrics, backoff_base=0.01, backoff_cap=0.05, **kwargs)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop(grace)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as r:
        yield r


def occupied(channel: str, **extra: Any) -> dict[str, Any]:
    return {"name": "channel_occupied", "channel": channel, **extra}


def client_event(channel: str, seq: int) -> dict[str, Any]:
    return {
        "name": "client_event",
        "channel": channel,
        "event": "client-seq",
        "data": json.dumps({"seq": seq}),
        "socket_id": "1.1",
    }


def first_arrivals(requests: list[Received]) -> list[dict[str, Any]]:
    """Accepted events in arrival order, each id once."""
    seen: set[str] = set()
    out = []
    for request in requests:
        if request.ok:
            for event in request.events:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    out.append(event)
    return out


class AttemptCounter:
    """An httpx request hook that lets a test await "N POSTs were attempted"."""

    def __init__(self) -> None:
        self.attempts = 0
        self.changed = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> None:
        self.attempts += 1
        self.changed.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.attempts < n:
                self.changed.clear()
                await self.changed.wait()


async def test_webhooks_request_headers_and_body_match_pusher(receiver: WebhookReceiver) -> None:
    target = WebhookTarget(url=receiver.url("/hook?token=abc"), headers=(("X-Extra", "1"),))
    app = make_app(target)
    async with running() as sender:
        sender.emit(app, occupied("presence-room"))
        (request,) = await receiver.wait_for_requests(1)
    assert request.method == "POST"
    assert request.path == "/hook?token=abc"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-pusher-key"] == "key-1"
    assert request.headers["x-extra"] == "1"
    expected = hmac.new(b"secret-1-do-not-log", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-pusher-signature"] == expected
    assert request.headers["x-pusherd-delivery"]
    names = {name for name, _ in request.raw_headers}
    assert {"Content-Type", "X-Pusher-Key", "X-Pusher-Signature"} <= names
    body = request.json
    assert set(body) == {"time_ms", "events"}
    (event,) = body["events"]
    assert event["name"] == "channel_occupied"
    assert event["channel"] == "presence-room"
    assert event["id"]
    client = pusher.Pusher(app_id=app.id, key=app.key, secret=app.secret)
    validated = client.validate_webhook(
        request.headers["x-pusher-key"], request.headers["x-pusher-signature"], request.body
    )
    assert validated == body


@pytest.mark.node
async def test_webhooks_signature_valid_for_node_sdk(receiver: WebhookReceiver) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "pusher").is_dir():
        pytest.skip("node or tests/js/node_modules missing")
    app = make_app(WebhookTarget(url=receiver.url(), batch=True))
    async with running() as sender:
        sender.emit(app, occupied("a"))
        sender.emit(app, client_event("private-b", 1))
        await receiver.wait_for_events(2)

    async def check(request: Received, secret: str) -> dict[str, Any]:
        payload = {
            "app_id": app.id,
            "key": app.key,
            "secret": secret,
            "headers": request.headers,
            "body": request.body.decode(),
        }
        proc = await asyncio.create_subprocess_exec(
            node,
            str(JS_DIR / "webhook_check.js"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=JS_DIR,
        )
        async with asyncio.timeout(30):
            out, _ = await proc.communicate(json.dumps(payload).encode())
        result: dict[str, Any] = json.loads(out)
        return result

    (request,) = receiver.requests
    good = await check(request, app.secret)
    assert good["valid"] is True
    assert [e["name"] for e in good["events"]] == ["channel_occupied", "client_event"]
    assert good["time_ms"] == request.json["time_ms"]
    bad = await check(request, "wrong-secret")
    assert bad["valid"] is False


async def test_webhooks_retries_resend_identical_requests_in_order(
    receiver: WebhookReceiver,
) -> None:
    metrics = Metrics()
    app = make_app(WebhookTarget(url=receiver.url()))
    receiver.fail_next(3, status=500)
    receiver.fail_next(1, status=404)
    async with running(metrics=metrics) as sender:
        for seq in range(5):
            sender.emit(app, client_event("private-a", seq))
        await receiver.wait_for_events(5)
    arrivals = first_arrivals(receiver.requests)
    assert [json.loads(e["data"])["seq"] for e in arrivals] == [0, 1, 2, 3, 4]
    assert len({e["id"] for e in arrivals}) == 5
    # The failed attempts were all for the first event, byte for byte the same request.
    first = receiver.requests[:5]
    assert [r.status for r in first] == [500, 500, 500, 404, 200]
    assert len({r.body for r in first}) == 1
    assert len({r.headers["x-pusherd-delivery"] for r in first}) == 1
    assert len({r.headers["x-pusher-signature"] for r in first}) == 1
    deliveries = [r.headers["x-pusherd-delivery"] for r in receiver.accepted]
    assert len(set(deliveries)) == 5
    assert count(metrics, app, "failed") == 4
    assert count(metrics, app, "retried") == 4
    assert count(metrics, app, "sent") == 5
    assert count(metrics, app, "dropped") == 0
    assert depth(metrics) == 0


async def test_webhooks_receiver_down_then_back_gets_everything(
    receiver: WebhookReceiver,
) -> None:
    hook = AttemptCounter()
    app = make_app(WebhookTarget(url=receiver.url()))
    await receiver.down()
    async with (
        httpx.AsyncClient(timeout=2.0, event_hooks={"request": [hook]}) as client,
        running(client=client) as sender,
    ):
        for seq in range(4):
            sender.emit(app, client_event("private-a", seq))
        await hook.wait_for(3)
        assert receiver.requests == []
        await receiver.up()
        await receiver.wait_for_events(4)
    arrivals = first_arrivals(receiver.requests)
    assert [json.loads(e["data"])["seq"] for e in arrivals] == [0, 1, 2, 3]


async def test_webhooks_slow_receiver_loses_nothing(receiver: WebhookReceiver) -> None:
    # Slower than the client timeout at first: the attempts time out and are retried.
    metrics = Metrics()
    hook = AttemptCounter()
    app = make_app(WebhookTarget(url=receiver.url()))
    receiver.delay = 0.3
    async with (
        httpx.AsyncClient(timeout=0.1, event_hooks={"request": [hook]}) as client,
        running(metrics=metrics, client=client) as sender,
    ):
        for seq in range(3):
            sender.emit(app, client_event("private-a", seq))
        await hook.wait_for(2)
        receiver.delay = 0.02
        await receiver.wait_for_events(3)
    assert count(metrics, app, "failed") >= 1
    arrivals = first_arrivals(receiver.requests)
    assert [json.loads(e["data"])["seq"] for e in arrivals] == [0, 1, 2]


async def test_webhooks_failing_target_does_not_delay_others(receiver: WebhookReceiver) -> None:
    async with WebhookReceiver() as broken:
        broken.fail_next(10_000)
        async with WebhookReceiver(delay=30.0) as stuck:
            other_app = make_app(WebhookTarget(url=broken.url()), n=2)
            # One app with a stuck target and a good one.
            app = make_app(WebhookTarget(url=stuck.url()), WebhookTarget(url=receiver.url()))
            async with running(grace=0.2) as sender:
                for seq in range(3):
                    sender.emit(other_app, client_event("private-a", seq))
                    sender.emit(app, client_event("private-a", seq))
                await broken.wait_for_requests(3)
                await receiver.wait_for_events(3)
                # The good target got everything while the stuck one has not answered once
                # and the broken one is still retrying its first event.
                assert stuck.requests == []
                assert broken.accepted == []
                assert len({r.body for r in broken.requests}) == 1


async def test_webhooks_emit_later_confirm_false_sends_nothing(receiver: WebhookReceiver) -> None:
    app = make_app(WebhookTarget(url=receiver.url()))
    calls: list[str] = []

    async def still_vacant() -> bool:
        calls.append("confirm")
        return False

    async with running() as sender:
        sender.emit_later(
            app, {"name": "channel_vacated", "channel": "a"}, delay=0.05, confirm=still_vacant
        )
        sender.emit(app, occupied("a", marker=True))  # waits behind the delayed slot
        events = await receiver.wait_for_events(1)
    assert calls == ["confirm"]
    assert [e["name"] for e in events] == ["channel_occupied"]
    assert len(receiver.requests) == 1


async def test_webhooks_emit_later_confirm_true_sends_after_delay(
    receiver: WebhookReceiver,
) -> None:
    now = [1_700_000_000.0]
    app = make_app(WebhookTarget(url=receiver.url()))
    loop = asyncio.get_running_loop()
    confirmed_at: list[float] = []

    async def confirm() -> bool:
        confirmed_at.append(loop.time())
        now[0] += 60  # the body still carries the time the event happened
        return True

    async with running(clock=lambda: now[0]) as sender:
        emitted_at = loop.time()
        sender.emit_later(
            app, {"name": "member_removed", "channel": "presence-a", "user_id": "7"}, 0.1, confirm
        )
        (event,) = await receiver.wait_for_events(1)
    assert confirmed_at[0] - emitted_at >= 0.1
    assert event["name"] == "member_removed"
    assert event["user_id"] == "7"
    assert receiver.requests[0].json["time_ms"] == 1_700_000_000_000


async def test_webhooks_delayed_event_not_overtaken_on_its_channel(
    receiver: WebhookReceiver,
) -> None:
    app = make_app(WebhookTarget(url=receiver.url()))

    async def yes() -> bool:
        return True

    async with running() as sender:
        sender.emit_later(app, {"name": "channel_vacated", "channel": "a"}, 0.1, yes)
        sender.emit(app, occupied("a"))
        sender.emit(app, occupied("b"))
        events = await receiver.wait_for_events(3)
    order = [(e["name"], e["channel"]) for e in events]
    # "b" is not held up by "a"'s pending vacated; "a" keeps its order.
    assert order == [
        ("channel_occupied", "b"),
        ("channel_vacated", "a"),
        ("channel_occupied", "a"),
    ]


async def test_webhooks_batching_groups_only_same_app_and_target(
    receiver: WebhookReceiver,
) -> None:
    one = make_app(
        WebhookTarget(url=receiver.url("/one"), batch=True),
        WebhookTarget(url=receiver.url("/one-bis"), batch=True),
        n=1,
    )
    two = make_app(WebhookTarget(url=receiver.url("/two"), batch=True), n=2)
    settings = WebhookSettings(retry_for=5.0, timeout=2.0, batch_window_ms=50, max_batch_size=3)
    async with running(settings) as sender:
        for seq in range(7):
            sender.emit(one, client_event(f"private-{seq % 2}", seq))
            sender.emit(two, client_event("private-x", seq))
        await receiver.wait_until(lambda: len(receiver.events) == 21)
    by_path: dict[str, list[Received]] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(request)
    for path, app in (("/one", one), ("/one-bis", one), ("/two", two)):
        requests = by_path[path]
        assert [len(r.events) for r in requests] == [3, 3, 1]
        seqs = [json.loads(e["data"])["seq"] for r in requests for e in r.events]
        assert seqs == list(range(7))
        for request in requests:
            assert request.headers["x-pusher-key"] == app.key
            signature = hmac.new(app.secret.encode(), request.body, hashlib.sha256).hexdigest()
            assert request.headers["x-pusher-signature"] == signature
    # The same event goes to both targets of app one with the same id.
    assert [e["id"] for r in by_path["/one"] for e in r.events] == [
        e["id"] for r in by_path["/one-bis"] for e in r.events
    ]


async def test_webhooks_filters_and_event_types_respected(receiver: WebhookReceiver) -> None:
    target = WebhookTarget(
        url=receiver.url(),
        event_types=frozenset({"channel_occupied", "member_added"}),
        channel_prefix="private-",
        channel_suffix="-room",
    )
    app = make_app(target)
    bare = make_app(n=2)
    async with running() as sender:
        assert sender.wants(app, "channel_occupied")
        assert not sender.wants(app, "client_event")
        assert not sender.wants(bare, "channel_occupied")
        sender.emit(bare, occupied("private-a-room"))
        sender.emit(app, occupied("public-room"))
        sender.emit(app, occupied("private-a"))
        sender.emit(app, client_event("private-a-room", 1))
        sender.emit(app, occupied("private-a-room"))
        sender.emit(app, {"name": "member_added", "channel": "private-b-room", "user_id": "1"})
        events = await receiver.wait_for_events(2)
    assert [(e["name"], e["channel"]) for e in events] == [
        ("channel_occupied", "private-a-room"),
        ("member_added", "private-b-room"),
    ]
    assert len(receiver.requests) == 2


async def test_webhooks_queue_bound_drops_new_events_and_counts(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    app = make_app(WebhookTarget(url=receiver.url()))
    settings = WebhookSettings(retry_for=5.0, timeout=2.0, max_queue=3)
    sender = WebhookSender(settings, metrics, backoff_base=0.01, backoff_cap=0.05)
    with caplog.at_level(logging.WARNING, logger="pusherd.webhooks"):
        for seq in range(5):
            sender.emit(app, client_event("private-a", seq))  # not started: all wait
    assert count(metrics, app, "dropped") == 2
    assert depth(metrics) == 3
    assert "queue full" in caplog.text
    await sender.start()
    try:
        events = await receiver.wait_for_events(3)
    finally:
        await sender.stop(1.0)
    assert [json.loads(e["data"])["seq"] for e in events] == [0, 1, 2]
    assert count(metrics, app, "sent") == 3
    assert depth(metrics) == 0


async def test_webhooks_stop_flushes_pending_and_delayed(receiver: WebhookReceiver) -> None:
    metrics = Metrics()
    app = make_app(WebhookTarget(url=receiver.url(), batch=True))
    settings = WebhookSettings(retry_for=5.0, timeout=2.0, batch_window_ms=60_000)

    async def yes() -> bool:
        return True

    sender = WebhookSender(settings, metrics, backoff_base=0.01, backoff_cap=0.05)
    await sender.start()
    for seq in range(3):
        sender.emit(app, client_event("private-a", seq))
    sender.emit_later(app, {"name": "channel_vacated", "channel": "b"}, 60.0, yes)
    await sender.stop(grace=0.5)
    names = [e["name"] for e in receiver.events]
    assert names.count("client_event") == 3
    assert names.count("channel_vacated") == 1
    assert count(metrics, app, "dropped") == 0
    sender.emit(app, occupied("late"))  # after stop: counted, never sent
    assert count(metrics, app, "dropped") == 1


async def test_webhooks_stop_drops_what_cannot_be_delivered(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    hook = AttemptCounter()
    target = WebhookTarget(
        url=receiver.url("/hooks/s3cr3t-path?token=hush"), headers=(("Authorization", "t0p"),)
    )
    app = make_app(target)
    await receiver.down()
    with caplog.at_level(logging.DEBUG, logger="pusherd.webhooks"):
        async with httpx.AsyncClient(timeout=1.0, event_hooks={"request": [hook]}) as client:
            sender = WebhookSender(FAST, metrics, client=client, backoff_base=0.01)
            await sender.start()
            for seq in range(3):
                sender.emit(app, client_event("private-a", seq))
            await hook.wait_for(2)
            await sender.stop(grace=0.1)
    assert count(metrics, app, "dropped") == 3
    assert depth(metrics) == 0
    assert "dropping 3 undelivered" in caplog.text
    for secret in (app.secret, "hush", "t0p", "s3cr3t"):
        assert secret not in caplog.text


async def test_webhooks_retry_budget_spent_drops_with_warning(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    app = make_app(WebhookTarget(url=receiver.url()))
    receiver.fail_next(10_000, status=503)
    settings = WebhookSettings(retry_for=0.2, timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="pusherd.webhooks"):
        async with running(settings, metrics) as sender:
            for channel in ("a", "b", "c"):
                sender.emit(app, occupied(channel))
            # "c" is only tried once "b" has been given up on.
            await receiver.wait_until(lambda: count(metrics, app, "dropped") == 2)
    channels = [r.json["events"][0]["channel"] for r in receiver.requests]
    assert channels.count("a") >= 2
    assert channels.count("b") >= 2
    assert channels.index("b") > channels.index("a")
    assert "giving up" in caplog.text
    assert app.secret not in caplog.text


async def test_webhooks_extra_headers_cannot_replace_signed_ones(
    receiver: WebhookReceiver,
) -> None:
    forged = (("content-type", "text/plain"), ("X-Pusher-Signature", "forged"), ("X-Team", "a"))
    app = make_app(WebhookTarget(url=receiver.url(), headers=forged))
    async with running() as sender:
        sender.emit(app, occupied("a"))
        (request,) = await receiver.wait_for_requests(1)
    assert request.headers["content-type"] == "application/json"
    assert (
        request.headers["x-pusher-signature"]
        == hmac.new(app.secret.encode(), request.body, hashlib.sha256).hexdigest()
    )
    assert request.headers["x-team"] == "a"
    assert [name.lower() for name, _ in request.raw_headers].count("content-type") == 1


async def test_webhooks_emit_later_failing_confirm_still_sends(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(WebhookTarget(url=receiver.url()))

    async def broken() -> bool:
        raise ConnectionError("broker unreachable")

    with caplog.at_level(logging.ERROR, logger="pusherd.webhooks"):
        async with running() as sender:
            sender.emit_later(app, {"name": "channel_vacated", "channel": "a"}, 0.01, broken)
            (event,) = await receiver.wait_for_events(1)
    assert event["name"] == "channel_vacated"
    assert "confirm() of a delayed channel_vacated failed" in caplog.text
