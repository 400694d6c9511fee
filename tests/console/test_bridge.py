"""``listen = "metrics"``: the console only on the metrics port, stream included."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx

from pusherd.config import MetricsConfig
from tests.console.conftest import PASSWORD, console_config
from tests.console.sse import open_stream
from tests.server.conftest import serve
from tests.server_process import free_port


async def test_console_on_the_metrics_port_is_not_on_the_main_port() -> None:
    port = free_port()
    config = console_config(listen="metrics")
    config = replace(config, metrics=MetricsConfig(port=port))
    async with serve(config) as running:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as main:
            assert (await main.get("/console/login")).status_code == 404
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/console/api/apps")).status_code == 401
            login = await http.post("/console/login", data={"password": PASSWORD})
            assert login.status_code == 303
            apps = await http.get("/console/api/apps")
            assert apps.status_code == 200 and apps.json()[0]["id"] == "12345"
            assert (await http.get("/metrics")).status_code == 200
            async with open_stream(http) as stream:
                sdk = running.sdk()
                await asyncio.to_thread(sdk.trigger, "news", "hello", {"a": 1})
                line = await stream.expect(lambda x: x["type"] == "api_message")
                assert line["event"] == "hello"
