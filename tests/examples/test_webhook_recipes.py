"""The webhook receiver recipes in ``examples/webhooks/`` against real pusherd webhooks.

Each recipe runs in its own runtime as a subprocess: the Laravel recipe's framework-free
verification and de-duplication under ``php -S`` (``tests/examples/php/webhook_router.php``
stands in for Laravel's router and cache), the Express one under node, the Starlette one
under this Python. pusherd posts ``channel_occupied`` to the recipe and to a recording
receiver; the recorded delivery is then replayed to the recipe, which must acknowledge it
without handling the event again, and tampered or foreign deliveries must be refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.server_process import REPO_ROOT, ServerProcess, clean_env, free_port
from tests.webhook_receiver import WebhookReceiver

__all__: list[str] = []

APP = {"id": "4242", "key": "recipe-key", "secret": "recipe-secret-9f2c"}
JS_MODULES = REPO_ROOT / "tests" / "js" / "node_modules"


@dataclass
class Recipe:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    lines: list[dict[str, object]]

    async def next_line(self, timeout: float = 10.0) -> dict[str, object]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert raw, f"{self.name} recipe exited: {await self._stderr()}"
        line: dict[str, object] = json.loads(raw)
        self.lines.append(line)
        return line

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self.proc.stderr.read(), 2)).decode()
        return ""


def _command(name: str, port: int, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    env = {**clean_env(), "PUSHER_APP_KEY": APP["key"], "PUSHER_APP_SECRET": APP["secret"]}
    env["PORT"] = str(port)
    if name == "laravel":
        php = shutil.which("php")
        if php is None:
            pytest.skip("php-cli is not installed (make system-deps)")
        claims = tmp_path / "claims"
        claims.mkdir()
        env["PUSHERD_CLAIMS_DIR"] = str(claims)
        router = REPO_ROOT / "tests" / "examples" / "php" / "webhook_router.php"
        return [php, "-S", f"127.0.0.1:{port}", str(router)], env
    if name == "node":
        node = shutil.which("node")
        if node is None or not (JS_MODULES / "express").is_dir():
            pytest.skip("node or tests/js/node_modules/express is missing (make js-deps)")
        env["NODE_PATH"] = str(JS_MODULES)
        return [node, str(REPO_ROOT / "examples" / "webhooks" / "node" / "server.js")], env
    return [sys.executable, str(REPO_ROOT / "examples" / "webhooks" / "python" / "webhook.py")], env


async def _accepting(port: int, proc: asyncio.subprocess.Process, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(1000):
        assert proc.returncode is None, "the recipe exited before listening"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert loop.time() < deadline, f"nothing listens on {port} after {timeout}s"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


@pytest.fixture
async def recipe(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Recipe]:
    name = request.param
    port = free_port()
    cmd, env = _command(name, port, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _accepting(port, proc)
        found = Recipe(name, proc, f"http://127.0.0.1:{port}/pusher/webhook", [])
        if name != "laravel":
            assert "listening" in await found.next_line()
        yield found
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _handled(recipe: Recipe, limit: int = 20) -> dict[str, object]:
    for _ in range(limit):
        line = await recipe.next_line()
        if "handled" in line:
            return line
    raise AssertionError(f"{recipe.name}: no handled event in {recipe.lines}")


@pytest.mark.parametrize("recipe", ["laravel", "node", "python"], indirect=True)
async def test_webhook_recipe_verifies_handles_once_and_ignores_replay(recipe: Recipe) -> None:
    channel = f"recipe-{uuid.uuid4().hex[:8]}"
    async with WebhookReceiver() as recorder:
        hooks = [
            {"url": recipe.url, "event_types": ["channel_occupied"]},
            {"url": recorder.url("/copy"), "event_types": ["channel_occupied"]},
        ]
        config = {"apps": [{**APP, "webhooks": hooks}]}
        server = ServerProcess(config)
        await asyncio.to_thread(server.start)
        try:
            async with connect(f"{server.ws_url}/app/{APP['key']}?protocol=7") as ws:
                await ws.recv()
                await ws.send(
                    json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}})
                )
                await ws.recv()
                line = await _handled(recipe)
                (copy,) = await recorder.wait_for_requests(1, timeout=10)
        finally:
            await asyncio.to_thread(server.cleanup)
    event = line["event"]
    assert isinstance(event, dict)
    assert (event["name"], event["channel"]) == ("channel_occupied", channel)
    assert copy.events[0]["id"] == line["handled"]
    headers = {
        "Content-Type": "application/json",
        "X-Pusher-Key": copy.headers["x-pusher-key"],
        "X-Pusher-Signature": copy.headers["x-pusher-signature"],
    }
    async with httpx.AsyncClient(timeout=10) as http:
        replay = await http.post(recipe.url, content=copy.body, headers=headers)
        tampered = await http.post(
            recipe.url,
            content=copy.body.replace(channel.encode(), b"recipe-other"),
            headers=headers,
        )
        foreign = await http.post(
            recipe.url, content=copy.body, headers={**headers, "X-Pusher-Key": "someone-else"}
        )
        unsigned = await http.post(
            recipe.url, content=copy.body, headers={"Content-Type": "application/json"}
        )
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"ok": True, "handled": 0, "duplicates": 1}
    assert (tampered.status_code, foreign.status_code, unsigned.status_code) == (401, 401, 401)
    recipe.proc.terminate()
    assert recipe.proc.stdout is not None
    rest = await asyncio.wait_for(recipe.proc.stdout.read(), 10)
    later = [json.loads(raw) for raw in rest.splitlines() if raw.strip()]
    assert not [entry for entry in later if "handled" in entry], later


def test_webhook_recipe_laravel_files_are_valid_php_using_the_tested_class() -> None:
    """The controller and route cannot run without Laravel; they must at least parse and
    delegate to the class the test above runs."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("php-cli is not installed (make system-deps)")
    base = REPO_ROOT / "examples" / "webhooks" / "laravel"
    files = sorted(base.rglob("*.php"))
    assert len(files) == 3
    for path in files:
        result = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
    controller = (base / "app/Http/Controllers/PusherWebhookController.php").read_text()
    assert "new PusherWebhook(" in controller and "Cache::add(" in controller
