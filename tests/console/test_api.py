"""The console over real HTTP: login, security, the live stream, channels, event creator."""

from __future__ import annotations

import asyncio
import json
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from pusher.http import Request

from pusherd.console import auth as auth_module
from tests.console.conftest import PASSWORD, ConsoleServer, logged_in
from tests.console.sse import open_stream
from tests.server.conftest import APP, Client, private_auth

PROTECTED_GETS = [
    "/console/api/session",
    "/console/api/apps",
    "/console/api/apps/12345/channels",
    "/console/api/apps/12345/channels/presence-room/members",
    "/console/api/apps/12345/stats",
    "/console/api/apps/12345/connections",
    "/console/api/apps/12345/stream",
    "/console/static/console.js",
]


async def test_console_without_cookie_redirects_the_page_and_refuses_the_api(
    console_server: ConsoleServer,
) -> None:
    async with console_server.client() as http:
        page = await http.get("/console/")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login"
        assert (await http.get("/console")).headers["location"] == "/console/"
        for path in PROTECTED_GETS:
            assert (await http.get(path)).status_code == 401, path
        post = await http.post("/console/api/apps/12345/events", json={})
        assert post.status_code == 401
        login = await http.get("/console/login")
        assert login.status_code == 200 and 'name="password"' in login.text


async def test_console_login_sets_a_strict_http_only_cookie(console_server: ConsoleServer) -> None:
    async with console_server.client() as http:
        response = await http.post("/console/login", data={"password": PASSWORD})
        assert response.status_code == 303 and response.headers["location"] == "/console/"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain http, no proxy saying https
        assert f"Max-Age={12 * 3600}" in cookie
        page = await http.get("/console/")
        assert page.status_code == 200 and "pusherd console" in page.text


async def test_console_cookie_is_secure_behind_an_https_proxy(
    console_server: ConsoleServer,
) -> None:
    async with console_server.client() as http:
        response = await http.post(
            "/console/login",
            data={"password": PASSWORD},
            headers={"x-forwarded-proto": "https"},
        )
        assert "Secure" in response.headers["set-cookie"]


async def test_console_wrong_password_is_refused(console_server: ConsoleServer) -> None:
    async with console_server.client() as http:
        response = await http.post("/console/login", data={"password": "not-the-password"})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert (await http.get("/console/api/apps")).status_code == 401


async def test_console_forged_and_expired_cookies_are_refused(
    console_server: ConsoleServer,
) -> None:
    key_for = auth_module.Auth(PASSWORD, 12)._key
    forged = URLSafeTimedSerializer(b"some other key", salt=auth_module._SALT).dumps({"sid": "x"})

    class ThirteenHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 13 * 3600

    expired = URLSafeTimedSerializer(key_for, salt=auth_module._SALT, signer=ThirteenHoursAgo)
    stale = expired.dumps({"sid": "abc"})
    fresh = URLSafeTimedSerializer(key_for, salt=auth_module._SALT).dumps({"sid": "abc"})
    body, stamp, signature = fresh.split(".")
    tampered = f"{body}.{stamp}.{signature[::-1]}"
    async with console_server.client() as http:
        for bad in (forged, stale, tampered, "garbage"):
            response = await http.get(
                "/console/api/apps", headers={"cookie": f"pusherd_console={bad}"}
            )
            assert response.status_code == 401, bad
        # The same session id, signed now with the right key, is accepted: the refusals
        # above are about the signature and the age, nothing else.
        ok = await http.get("/console/api/apps", headers={"cookie": f"pusherd_console={fresh}"})
        assert ok.status_code == 200


async def test_console_posts_without_the_csrf_token_are_refused(
    console_server: ConsoleServer,
) -> None:
    async with logged_in(console_server) as (http, csrf):
        event = {"channels": "news", "name": "hello", "data": "{}"}
        missing = await http.post("/console/api/apps/12345/events", json=event)
        assert missing.status_code == 403
        wrong = await http.post(
            "/console/api/apps/12345/events", json=event, headers={"x-csrf-token": "0" * 64}
        )
        assert wrong.status_code == 403
        logout = await http.post("/console/logout")
        assert logout.status_code == 403
        ok = await http.post(
            "/console/api/apps/12345/events", json=event, headers={"x-csrf-token": csrf}
        )
        assert ok.status_code == 200, ok.text


async def test_console_csrf_token_of_another_session_is_refused(
    console_server: ConsoleServer,
) -> None:
    async with logged_in(console_server) as (_, other_csrf):
        async with logged_in(console_server) as (http, csrf):
            assert other_csrf != csrf
            response = await http.post(
                "/console/api/apps/12345/events",
                json={"channels": "news", "name": "hello", "data": "{}"},
                headers={"x-csrf-token": other_csrf},
            )
            assert response.status_code == 403


async def test_console_logout_ends_the_session(console_server: ConsoleServer) -> None:
    async with logged_in(console_server) as (http, csrf):
        response = await http.post("/console/logout", data={"csrf": csrf})
        assert response.status_code == 303
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await http.get("/console/api/apps")).status_code == 401


async def test_console_login_is_rate_limited_per_address(console_server: ConsoleServer) -> None:
    async with console_server.client() as http:
        statuses = [
            (await http.post("/console/login", data={"password": f"wrong-{i}"})).status_code
            for i in range(auth_module.MAX_FAILURES + 1)
        ]
        assert statuses == [401] * auth_module.MAX_FAILURES + [429]
        # Even the right password waits out the window now.
        blocked = await http.post("/console/login", data={"password": PASSWORD})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0


async def test_console_never_serves_the_app_secret(console_server: ConsoleServer) -> None:
    async with logged_in(console_server) as (http, csrf):
        async with open_stream(http) as stream:
            async with Client.open(console_server.running.url()) as client:
                socket_id = await client.established()
                channel = "private-orders"
                await client.subscribe(channel, private_auth(socket_id, channel))
                await stream.expect(lambda line: line["type"] == "subscribed")
                published = await http.post(
                    "/console/api/apps/12345/events",
                    json={"channels": channel, "name": "e", "data": '{"a": 1}'},
                    headers={"x-csrf-token": csrf},
                )
                await stream.expect(lambda line: line["type"] == "api_message")
            bodies = [published.text, json.dumps(stream.lines)]
            for path in [p for p in PROTECTED_GETS if not p.endswith("/stream")]:
                bodies.append((await http.get(path)).text)
            bodies.append((await http.get("/console/")).text)
            bodies.append((await http.get("/console/login")).text)
        for body in bodies:
            assert APP.secret not in body


async def test_console_stream_shows_the_socket_lifecycle_and_events(
    console_server: ConsoleServer,
) -> None:
    async with logged_in(console_server) as (http, _):
        async with open_stream(http) as stream:
            url = console_server.running.url(query="?protocol=7&client=js&version=8.4.0")
            async with Client.open(url, origin="http://shop.test") as client:
                socket_id = await client.established()
                opened = await stream.expect(lambda line: line["type"] == "socket_opened")
                assert opened["socket_id"] == socket_id
                assert (opened["client"], opened["version"]) == ("js", "8.4.0")
                assert opened["origin"] == "http://shop.test"
                assert opened["remote"] == "127.0.0.1"
                assert opened["node"] and opened["app_id"] == "12345"

                channel = "private-chat"
                await client.subscribe(channel, private_auth(socket_id, channel))
                await stream.expect(lambda line: line["type"] == "occupied")
                await stream.expect(
                    lambda line: line["type"] == "subscribed" and line["channel"] == channel
                )
                await client.send("client-typing", {"who": "ann"}, channel)
                whisper = await stream.expect(lambda line: line["type"] == "client_event")
                assert whisper["event"] == "client-typing"
                assert json.loads(whisper["data"]) == {"who": "ann"}
                assert whisper["socket_id"] == socket_id and whisper["channel"] == channel

                await client.send(
                    "pusher:subscribe", {"channel": "private-other", "auth": "app-key:bad"}
                )
                refused = await stream.expect(lambda line: line["type"] == "refused")
                assert refused["channel"] == "private-other"
                assert refused["status"] in (401, 403)
                assert "signature" in refused["reason"].lower()

                sdk = console_server.running.sdk()
                await asyncio.to_thread(sdk.trigger, channel, "shipped", {"id": 7})
                api = await stream.expect(lambda line: line["type"] == "api_message")
                assert (api["channel"], api["event"]) == (channel, "shipped")
                assert json.loads(api["data"]) == {"id": 7}
                assert api["size"] > 0
            closed = await stream.expect(lambda line: line["type"] == "socket_closed")
            assert closed["socket_id"] == socket_id and closed["lived"] >= 0
            await stream.expect(lambda line: line["type"] == "unsubscribed")
            await stream.expect(lambda line: line["type"] == "vacated")


async def test_console_channels_and_presence_members(console_server: ConsoleServer) -> None:
    async with logged_in(console_server) as (http, _):
        async with Client.open(console_server.running.url()) as client:
            socket_id = await client.established()
            data = json.dumps({"user_id": "7", "user_info": {"name": "Ann"}})
            channel = "presence-room"
            reply = await client.subscribe(channel, private_auth(socket_id, channel, data), data)
            assert reply["event"] == "pusher_internal:subscription_succeeded"
            await client.subscribe("news")
            listing = (await http.get("/console/api/apps/12345/channels")).json()
            assert listing == {
                "channels": {
                    "news": {"subscription_count": 1},
                    "presence-room": {"subscription_count": 1, "user_count": 1},
                }
            }
            only = (await http.get("/console/api/apps/12345/channels?prefix=presence-")).json()
            assert list(only["channels"]) == ["presence-room"]
            members = (await http.get(f"/console/api/apps/12345/channels/{channel}/members")).json()
            assert members == {"members": [{"user_id": "7", "user_info": {"name": "Ann"}}]}
            not_presence = await http.get("/console/api/apps/12345/channels/news/members")
            assert not_presence.status_code == 400
            assert (await http.get("/console/api/apps/nope/channels")).status_code == 404


async def test_console_event_creator_publishes_like_the_rest_api(
    console_server: ConsoleServer,
) -> None:
    async with logged_in(console_server) as (http, csrf):
        async with Client.open(console_server.running.url()) as one:
            async with Client.open(console_server.running.url()) as two:
                first = await one.established()
                await two.established()
                for client in (one, two):
                    assert (await client.subscribe("news"))["channel"] == "news"
                headers = {"x-csrf-token": csrf}
                response = await http.post(
                    "/console/api/apps/12345/events",
                    json={"channels": "news", "name": "flash", "data": '{"n": 1}'},
                    headers=headers,
                )
                assert response.json() == {"ok": True, "channels": ["news"]}
                for client in (one, two):
                    message = await client.recv()
                    assert message == {"event": "flash", "channel": "news", "data": '{"n": 1}'}
                # socket_id excludes that socket, exactly as POST /events does.
                await http.post(
                    "/console/api/apps/12345/events",
                    json={"channels": "news", "name": "second", "data": "2", "socket_id": first},
                    headers=headers,
                )
                assert (await two.recv())["event"] == "second"
                await one.nothing()
                invalid = await http.post(
                    "/console/api/apps/12345/events",
                    json={"channels": "news", "name": "x", "data": "{not json"},
                    headers=headers,
                )
                assert invalid.status_code == 400 and "JSON" in invalid.json()["error"]
                # The REST API's own checks answer too (here: a bad channel name).
                bad = await http.post(
                    "/console/api/apps/12345/events",
                    json={"channels": "bad channel!", "name": "x", "data": "1"},
                    headers=headers,
                )
                assert bad.status_code == 400 and "channel" in bad.json()["error"].lower()


async def test_console_stats_and_pulse_connections_count_open_sockets(
    console_server: ConsoleServer,
) -> None:
    running = console_server.running
    async with logged_in(console_server) as (http, _):
        async with Client.open(running.url()) as one, Client.open(running.url()) as two:
            await one.established()
            await two.established()
            stats = (await http.get("/console/api/apps/12345/stats")).json()
            assert stats["now"]["connections"] == 2
            assert stats["now"]["nodes"] == [running.parts.config.scaling.node_id]
            assert (await http.get("/console/api/apps/12345/connections")).json() == {
                "connections": 2
            }
            # Reverb Pulse's card: a signed GET, built and sent by the official SDK.
            client = running.sdk()._pusher_client
            request = Request(client, "GET", f"/apps/{APP.id}/connections", {})
            pulse = await asyncio.to_thread(client.http.send_request, request)
            assert pulse == {"connections": 2}


async def test_console_stream_cuts_off_at_its_rate_and_says_how_much(
    console_server: ConsoleServer,
) -> None:
    async with logged_in(console_server) as (http, _):
        async with open_stream(http, rate=5) as stream:
            sdk = console_server.running.sdk()
            batch = [{"channel": "news", "name": f"e{i}", "data": "{}"} for i in range(10)]
            for _ in range(5):
                await asyncio.to_thread(sdk.trigger_batch, batch)
            async with asyncio.timeout(5):
                while stream.skipped == 0:
                    stream.changed.clear()
                    await stream.changed.wait()
            assert len([x for x in stream.lines if x["type"] == "api_message"]) <= 10
            assert stream.skipped >= 30


async def test_console_stream_only_listens_while_watched(console_server: ConsoleServer) -> None:
    lifecycle = console_server.running.parts.lifecycle
    assert not lifecycle.active
    async with logged_in(console_server) as (http, _):
        async with open_stream(http):
            assert lifecycle.active
    async with asyncio.timeout(10):
        while lifecycle.active:  # the watch mark expires, the relay stops listening
            await asyncio.sleep(0.1)


async def test_console_stream_resumes_after_the_last_event_id(
    console_server: ConsoleServer,
) -> None:
    sdk = console_server.running.sdk()
    async with logged_in(console_server) as (http, _):
        async with open_stream(http) as first:
            await asyncio.to_thread(sdk.trigger, "news", "one", {})
            await first.expect(lambda x: x.get("event") == "one")
            assert first.last_id.isdigit()
            async with open_stream(http, last_id=first.last_id) as resumed:
                await asyncio.to_thread(sdk.trigger, "news", "two", {})
                await resumed.expect(lambda x: x.get("event") == "two")
                assert [x["event"] for x in resumed.lines if "event" in x] == ["two"]
            async with open_stream(http) as fresh:  # no id: the recent backlog first
                await fresh.expect(lambda x: x.get("event") == "one")
