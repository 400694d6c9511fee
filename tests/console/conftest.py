"""An in-process pusherd with the console on, and an httpx client logged in to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from pusherd.apps.base import App
from pusherd.config import Config, ConsoleConfig, ScalingConfig, ServerConfig, WebhookSettings
from tests.server.conftest import APP, Running, serve

__all__ = ["PASSWORD", "ConsoleServer", "console_config", "console_server", "logged_in"]

PASSWORD = "correct-horse-battery"


def console_config(*apps: App, **console: Any) -> Config:
    return Config(
        server=replace(ServerConfig(), host="127.0.0.1", port=0),
        apps=apps or (APP,),
        scaling=ScalingConfig(node_id="node-a"),
        webhooks=WebhookSettings(delay=0, batch_window_ms=0),
        console=ConsoleConfig(enabled=True, password=PASSWORD, **console),
    )


@dataclass
class ConsoleServer:
    running: Running
    base: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=5.0, follow_redirects=False)


@contextlib.asynccontextmanager
async def logged_in(server: ConsoleServer) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Yield a client holding a session cookie, and that session's CSRF token."""
    async with server.client() as http:
        response = await http.post("/console/login", data={"password": PASSWORD})
        assert response.status_code == 303, response.text
        session = await http.get("/console/api/session")
        assert session.status_code == 200
        yield http, session.json()["csrf"]


@pytest.fixture
async def console_server() -> AsyncIterator[ConsoleServer]:
    async with serve(console_config()) as running:
        yield ConsoleServer(running, f"http://127.0.0.1:{running.port}")
