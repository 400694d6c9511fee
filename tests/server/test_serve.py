"""``pusherd serve`` as a real process: drain on SIGTERM, reload on SIGHUP, TLS, JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.server.conftest import Client
from tests.server_process import ServerProcess, free_port

APP = {"id": "12345", "key": "app-key", "secret": "s3cr3t-not-for-logs"}


async def test_sigterm_closes_sockets_with_4200_and_exits_cleanly() -> None:
    with ServerProcess({"apps": [APP]}) as server:
        async with Client.open(f"{server.ws_url}/app/app-key?protocol=7") as client:
            await client.established()
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            message = await client.recv()
            assert message["data"]["code"] == 4200
            assert (await client.closed())[0] == 4200
        # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is clean too.
        assert await asyncio.to_thread(server.proc.wait, 10) in (0, -signal.SIGTERM)


async def test_sighup_reloads_apps_without_dropping_sockets() -> None:
    with ServerProcess({"apps": [APP]}) as server:
        async with Client.open(f"{server.ws_url}/app/app-key?protocol=7") as client:
            await client.established()
            await client.subscribe("kept")
            server.config_path.write_text(
                '[[apps]]\nid = "12345"\nkey = "app-key"\nsecret = "s3cr3t-not-for-logs"\n'
                '[[apps]]\nid = "777"\nkey = "new-key"\nsecret = "new-secret"\n'
            )
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                async with Client.open(f"{server.ws_url}/app/new-key?protocol=7") as fresh:
                    if (await fresh.recv())["event"] == "pusher:connection_established":
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the new app was not loaded")
            await client.send("pusher:ping")
            assert (await client.recv())["event"] == "pusher:pong"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
async def test_tls_serves_wss_and_https(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "tls.toml"
    config.write_text(
        f'[server]\nport = {port}\n[server.tls]\ncert = "{cert}"\nkey = "{key}"\n'
        '[[apps]]\nid = "12345"\nkey = "app-key"\nsecret = "app-secret"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHERD_", "REVERB_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pusherd", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/up", context=context, timeout=1
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.05)
        async with Client.open(
            f"wss://127.0.0.1:{port}/app/app-key?protocol=7", ssl=context
        ) as client:
            await client.established()
            assert (await client.subscribe("secure"))["event"].endswith("succeeded")
    finally:
        proc.terminate()
        proc.wait(10)


async def test_json_log_format_writes_one_object_per_line() -> None:
    with ServerProcess({"apps": [APP]}, extra_args=["--log-format", "json"]) as server:
        async with Client.open(f"{server.ws_url}/app/app-key?protocol=7") as client:
            await client.established()
        server.stop()
        lines = [line for line in server.log_path.read_text().splitlines() if line.startswith("{")]
        records = [json.loads(line) for line in lines]
        assert any(r["message"].startswith("connection opened") for r in records)
        assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
        assert "s3cr3t-not-for-logs" not in server.log_path.read_text()


async def test_debug_logs_every_frame_but_no_secret() -> None:
    with ServerProcess({"apps": [APP]}, extra_args=["--debug"]) as server:
        async with Client.open(f"{server.ws_url}/app/app-key?protocol=7") as client:
            await client.established()
            await client.subscribe("debugged")
        server.stop()
        log = server.log_path.read_text()
        assert "frame in" in log and '"channel":"debugged"' in log
        assert "frame out" in log and "subscription_succeeded" in log
        assert "s3cr3t-not-for-logs" not in log
