"""``pusherd auth-server``: pusher-js authorizes through it and pusherd accepts what it signs.

The server runs as ``pusherd auth-server`` (a subprocess); pusher-js (``tests/js/driver.js``,
``auth: "endpoint"``) POSTs to it exactly as it would to a Laravel ``/broadcasting/auth``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from pusherd.apps.base import App
from pusherd.tools.auth_server import AuthSigner, is_loopback
from pusherd.tools.crypto import shared_secret
from pusherd.tools.tail import channel_auth
from pusherd.types import AppId, AppKey
from tests.e2e.conftest import MASTER_KEY_B64

from .conftest import CliProcess, RunCli, StartCli

__all__: list[str] = []

APP = App(id=AppId("1"), key=AppKey("k"), secret="s", encryption_master_key_base64=MASTER_KEY_B64)


async def _auth_server(start_cli: StartCli, *flags: str) -> tuple[CliProcess, str]:
    server = await start_cli("auth-server", "--port", "0", *flags)
    first = await server.line()
    match = re.search(r"on (http://127\.0\.0\.1:\d+)", first)
    assert match, first
    assert "/broadcasting/auth" in await server.line()
    assert "/broadcasting/user-auth" in await server.line()
    return server, match.group(1)


@pytest.mark.node
async def test_auth_server_private_and_presence_accepted_for_pusher_js(
    start_cli: StartCli, launch: Any, uid: str
) -> None:
    server, base = await _auth_server(start_cli)
    client = await launch(
        auth="endpoint",
        auth_endpoint=f"{base}/broadcasting/auth?{urlencode({'user_id': 'ann'})}",
        user_auth_endpoint=f"{base}/broadcasting/user-auth?{urlencode({'user_id': 'ann'})}",
    )
    await client.connected()
    await client.subscribe(f"private-p-{uid}")
    await client.subscribed(f"private-p-{uid}")
    await client.subscribe(f"presence-q-{uid}")
    joined = await client.subscribed(f"presence-q-{uid}")
    assert joined["data"]["me"]["id"] == "ann"
    await client.subscribe(f"private-encrypted-r-{uid}")
    await client.subscribed(f"private-encrypted-r-{uid}")
    await client.send("signin")
    line = await client.expect(t="signin_success")
    assert '"id":"ann"' in line["user_data"]
    signed = [await server.line() for _ in range(4)]
    assert all(entry.startswith("signed ") for entry in signed), signed
    assert signed[-1].startswith("signed user ann for socket ")


@pytest.mark.node
async def test_auth_server_deny_all_refusal_reaches_pusher_js(
    start_cli: StartCli, launch: Any, uid: str
) -> None:
    _, base = await _auth_server(start_cli, "--deny-all")
    client = await launch(auth="endpoint", auth_endpoint=f"{base}/broadcasting/auth")
    await client.connected()
    await client.subscribe(f"private-d-{uid}")
    error = await client.event(f"private-d-{uid}", "pusher:subscription_error")
    assert error["data"]["status"] == 403, error


async def test_auth_server_answers_form_and_json_on_pusher_paths(start_cli: StartCli) -> None:
    _, base = await _auth_server(start_cli)
    async with httpx.AsyncClient(timeout=5) as http:
        form = await http.post(
            f"{base}/pusher/auth", data={"socket_id": "1.2", "channel_name": "private-x"}
        )
        as_json = await http.post(
            f"{base}/pusher/auth", json={"socket_id": "1.2", "channel_name": "private-x"}
        )
        bad = await http.post(f"{base}/pusher/auth", data={"socket_id": "x", "channel_name": "c"})
        preflight = await http.options(f"{base}/broadcasting/auth", headers={"Origin": "http://a"})
    assert form.status_code == as_json.status_code == 200
    assert form.json() == as_json.json()
    assert bad.status_code == 400
    assert preflight.headers["access-control-allow-origin"] == "http://a"


def test_auth_server_refuses_non_loopback_without_i_know(cli: RunCli) -> None:
    result = cli("auth-server", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 1
    assert "refusing to bind 0.0.0.0" in result.stderr
    assert "--i-know" in result.stderr


def test_auth_server_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.1.2.3")
    assert not is_loopback("example.test")


def test_auth_server_signer_signs_like_pusher() -> None:
    signer = AuthSigner(APP, allow=True, environ={})
    status, body = signer.answer(
        "/broadcasting/auth", {"socket_id": "1.2", "channel_name": "private-a"}
    )
    assert status == 200
    assert body == {"auth": channel_auth("k", "s", "1.2", "private-a")}
    status, body = signer.answer(
        "/broadcasting/auth",
        {"socket_id": "1.2", "channel_name": "presence-a", "user_id": "u1"},
    )
    assert body["channel_data"] == '{"user_id":"u1","user_info":{"name":"u1"}}'
    assert body["auth"] == channel_auth("k", "s", "1.2", "presence-a", body["channel_data"])
    import base64

    status, body = signer.answer(
        "/broadcasting/auth", {"socket_id": "1.2", "channel_name": "private-encrypted-a"}
    )
    key = base64.b64decode(MASTER_KEY_B64)
    assert base64.b64decode(body["shared_secret"]) == shared_secret("private-encrypted-a", key)


def test_auth_server_signer_refusals() -> None:
    keyless = AuthSigner(App(id=AppId("1"), key=AppKey("k"), secret="s"), True, environ={})
    status, body = keyless.answer(
        "/broadcasting/auth", {"socket_id": "1.2", "channel_name": "private-encrypted-a"}
    )
    assert status == 403 and "master key" in body["message"]
    status, _ = keyless.answer("/broadcasting/auth", {"socket_id": "1.2", "channel_name": "public"})
    assert status == 400
    status, _ = keyless.answer("/elsewhere", {"socket_id": "1.2"})
    assert status == 404
    denied = AuthSigner(APP, allow=False, environ={})
    status, _ = denied.answer("/broadcasting/user-auth", {"socket_id": "1.2"})
    assert status == 403


async def test_auth_server_stops_cleanly_on_sigterm(start_cli: StartCli) -> None:
    import signal

    server, base = await _auth_server(start_cli)
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.post(f"{base}/broadcasting/user-auth", data={"socket_id": "3.4"})
    assert answer.status_code == 200
    assert answer.json()["user_data"] == '{"id":"user-3-4","user_info":{"name":"user-3-4"}}'
    server.proc.send_signal(signal.SIGTERM)
    code, _, _ = await server.finish()
    assert code == 0
