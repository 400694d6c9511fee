"""The debug console, end to end in headless Chromium (DevTools protocol, no playwright).

Real processes only: ``pusherd serve`` with the console on and a webhook target that
fails twice, a pusher-js client (``tests/js/driver.js``), the official Python SDK for a
REST trigger, and Debian's ``chromium``. The page logs in through its form, opens the
app's live log and must show the client's socket, subscriptions, a refused private
subscription with its reason, a whisper, the REST event and the webhook's retries; the
channel list and the presence members must be right, and the event creator must reach
the pusher-js client. Screenshots go to ``tests/artifacts/console-*.png``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pusher
import pytest

from tests.e2e.cluster import launch_js
from tests.examples.test_echo_client_browser import (
    ARTIFACTS,
    CHROMIUM,
    NODE_MODULES,
    WAIT,
    Page,
    chromium,
)
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

__all__: list[str] = []

PASSWORD = "console-password-for-tests"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.node,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
    pytest.mark.skipif(
        not (NODE_MODULES / "pusher-js").exists(), reason="tests/js/node_modules is missing"
    ),
]


def _has_line(condition: str) -> str:
    """A JS condition over the log's lines (``l`` is a line's JSON, ``li`` its element)."""
    return (
        "[...document.querySelectorAll('#log li')].some(li => {"
        f" const l = JSON.parse(li.dataset.raw); return {condition}; }})"
    )


@pytest.fixture
async def receiver() -> Iterator[WebhookReceiver]:  # type: ignore[misc]
    async with WebhookReceiver() as hooks:
        yield hooks


async def test_console_page_shows_the_live_log_channels_members_and_sends_events(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next(2, status=500)
    config = {
        "console": {"enabled": True, "password": PASSWORD},
        "webhooks": {"delay": 0, "batch_window_ms": 0},
        "scaling": {"node_id": "node-a"},
        "apps": [
            {
                "id": "12345",
                "key": "app-key",
                "secret": "app-secret",
                "webhooks": [{"url": receiver.url(), "event_types": ["channel_occupied"]}],
            }
        ],
    }
    with ServerProcess(config) as server:
        base = f"{server.http_url}/console/"
        async with chromium(tmp_path / "profile") as cdp:
            page = await Page.open(cdp, base)
            assert await page.evaluate("location.pathname") == "/console/login"
            loaded = cdp.expect("Page.loadEventFired", page.session)
            await page.evaluate(
                f"document.getElementById('password').value = {json.dumps(PASSWORD)};"
                " document.querySelector('form').requestSubmit()"
            )
            await asyncio.wait_for(loaded, WAIT)
            await page.wait_for("document.body.dataset.ready === '1'")
            await page.wait_for("document.getElementById('conn').dataset.state === 'live'")
            assert "app-secret" not in await page.evaluate("document.documentElement.outerHTML")

            client = await launch_js(
                server, "ann", user={"id": "ann", "user_info": {"name": "Ann"}}
            )
            try:
                socket_id = await client.connected()
                await page.wait_for(
                    _has_line(f"l.type === 'socket_opened' && l.socket_id === '{socket_id}'")
                )
                opened = await page.evaluate(
                    "JSON.parse([...document.querySelectorAll('#log li')]"
                    ".find(li => li.dataset.type === 'socket_opened').dataset.raw)"
                )
                assert opened["client"] == "js" and opened["version"]
                assert opened["node"] == "node-a"

                await client.send("subscribe", channel="private-orders")
                await client.subscribed("private-orders")
                await client.send("subscribe", channel="presence-room")
                await client.subscribed("presence-room")
                await page.wait_for(
                    _has_line("l.type === 'subscribed' && l.channel === 'private-orders'")
                )
                await page.wait_for(_has_line("l.type === 'member_added' && l.user_id === 'ann'"))

                # A bad auth signature: the most common Echo failure, shown as refused.
                await client.send("subscribe", channel="private-secret", bad=True)
                await page.wait_for(
                    _has_line(
                        "l.type === 'refused' && l.channel === 'private-secret'"
                        " && /signature/i.test(l.reason)"
                    )
                )

                # A whisper and a REST trigger, each with its fields.
                await client.send(
                    "trigger", channel="private-orders", event="client-typing", data={"who": "ann"}
                )
                await page.wait_for(
                    _has_line(
                        "l.type === 'client_event' && l.event === 'client-typing'"
                        f" && l.socket_id === '{socket_id}'"
                        " && JSON.parse(l.data).who === 'ann'"
                    )
                )
                sdk = pusher.Pusher(
                    app_id="12345",
                    key="app-key",
                    secret="app-secret",
                    host=server.host,
                    port=server.port,
                    ssl=False,
                )
                await asyncio.to_thread(
                    sdk.trigger, "private-orders", "order.shipped", {"order": 42}
                )
                await client.event("private-orders", "order.shipped")
                await page.wait_for(
                    _has_line(
                        "l.type === 'api_message' && l.event === 'order.shipped'"
                        " && l.channel === 'private-orders' && JSON.parse(l.data).order === 42"
                        " && l.size > 0"
                    )
                )

                # The webhook receiver failed twice: the log shows both retries and the send.
                await page.wait_for(
                    _has_line("l.type === 'webhook' && l.outcome === 'retry' && l.status === 500")
                )
                await page.wait_for(
                    _has_line("l.type === 'webhook' && l.outcome === 'sent' && l.attempt === 3"),
                    timeout=15,
                )
                retries = await page.evaluate(
                    "[...document.querySelectorAll('#log li')]"
                    ".map(li => JSON.parse(li.dataset.raw))"
                    ".filter(l => l.type === 'webhook' && l.outcome === 'retry').length"
                )
                assert retries == 2

                # Filters: by type, then free text; every visible line matches.
                visible = (
                    "[...document.querySelectorAll('#log li:not(.hidden)')]"
                    ".map(li => JSON.parse(li.dataset.raw))"
                )
                await page.evaluate(
                    "document.getElementById('f-type').value = 'refused'; refilter()"
                )
                shown = await page.evaluate(visible)
                assert shown and {line["type"] for line in shown} == {"refused"}
                await page.evaluate(
                    "document.getElementById('f-type').value = '';"
                    "document.getElementById('f-text').value = 'order.shipped'; refilter()"
                )
                shown = await page.evaluate(visible)
                assert shown and all(line.get("event") == "order.shipped" for line in shown)
                await page.evaluate("document.getElementById('f-text').value = ''; refilter()")

                # Pause holds new lines back; resume shows them.
                await page.evaluate("document.getElementById('pause').click()")
                await asyncio.to_thread(sdk.trigger, "private-orders", "while.paused", {})
                await client.event("private-orders", "while.paused")
                await page.wait_for("state.held.some(l => l.event === 'while.paused')")
                assert not await page.evaluate(_has_line("l.event === 'while.paused'"))
                await page.evaluate("document.getElementById('pause').click()")
                await page.wait_for(_has_line("l.event === 'while.paused'"))

                # Channels with their counts; the presence channel's members.
                await page.evaluate("refreshChannels()")
                await page.wait_for(
                    "document.querySelector('#channels li[data-channel=\"presence-room\"]')"
                    "?.dataset.users === '1'"
                )
                assert (
                    await page.evaluate(
                        "document.querySelector('#channels li[data-channel=\"private-orders\"]')"
                        ".dataset.subscriptions"
                    )
                    == "1"
                )
                await page.evaluate(
                    "document.querySelector('#channels li[data-channel=\"presence-room\"]').click()"
                )
                await page.wait_for("document.querySelector('#members li[data-user-id=\"ann\"]')")
                assert "Ann" in await page.evaluate(
                    "document.getElementById('members').textContent"
                )

                # The event creator: invalid JSON is refused in the page, valid JSON delivered.
                await page.evaluate(
                    "document.getElementById('ev-channels').value = 'private-orders';"
                    "document.getElementById('ev-name').value = 'console.test';"
                    "document.getElementById('ev-data').value = '{not json';"
                    "document.getElementById('creator').requestSubmit()"
                )
                await page.wait_for(
                    "document.getElementById('ev-result').dataset.state === 'invalid'"
                )
                await page.evaluate(
                    "document.getElementById('ev-data').value = '{\"from\": \"console\"}';"
                    "document.getElementById('creator').requestSubmit()"
                )
                delivered = await client.event("private-orders", "console.test")
                assert delivered["data"] == {"from": "console"}
                await page.wait_for("document.getElementById('ev-result').dataset.state === 'sent'")
                await page.wait_for(
                    _has_line("l.type === 'api_message' && l.event === 'console.test'")
                )
                await page.screenshot(ARTIFACTS / "console-members.png")

                # Back to the whole log with one line opened, for the README screenshot.
                await page.evaluate(
                    "selectChannel(null); document.getElementById('f-channel').value = '';"
                    "refilter(); [...document.querySelectorAll('#log li')]"
                    ".find(li => li.dataset.type === 'api_message').click()"
                )
                await page.evaluate("refreshStats()")
                await page.send(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
                )
                await page.evaluate("refreshStats()")
                # The charts are drawn from the stats API: one open socket right now.
                assert (
                    await page.evaluate(
                        "document.querySelector('.chart[data-figure=\"connections\"]').dataset.value"
                    )
                    == "1"
                )
                assert (
                    await page.evaluate(
                        "document.querySelector('.chart[data-figure=\"peak\"]').dataset.value"
                    )
                    == "1"
                )
                # The README shows a copy of this one (tests/artifacts/console.png, committed;
                # refresh it by copying this file over it).
                await page.screenshot(ARTIFACTS / "console-latest.png")
            finally:
                await client.close()
            await page.wait_for(_has_line("l.type === 'socket_closed'"))
            await page.close()
