"""Fixtures for the tool verbs: a live server (the conformance suite's), a config file
naming it, and ``pusherd`` subprocesses run exactly as a user runs them.

``cli(...)`` runs a verb to completion; ``CliProcess`` runs a long-lived one (``tail``,
``auth-server``) whose stdout and stderr lines are awaited with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import APP, MASTER_KEY_B64, Target
from tests.server_process import REPO_ROOT, clean_env, to_toml

# The conformance suite's fixtures, shared: its live server and its pusher-js launcher.
target = e2e.target
launch = e2e.launch
sdk = e2e.sdk
uid = e2e.uid

__all__ = ["CliProcess", "RunCli", "StartCli"]


@pytest.fixture(scope="session")
def cli_config(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config naming the live server's port and its default app, with a master key."""
    path = tmp_path_factory.mktemp("tools") / "pusherd.toml"
    config = {
        "server": {"host": target.host, "port": target.port},
        "apps": [{**APP, "encryption_master_key_base64": MASTER_KEY_B64}],
    }
    path.write_text(to_toml(config), encoding="utf-8")
    return path


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(cli_config: Path) -> RunCli:
    """``cli("channels")``: run ``pusherd channels --config <cli_config>`` to completion."""

    def run(
        *args: str, config: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        verb, *rest = args
        cmd = [sys.executable, "-m", "pusherd", verb]
        if config:
            cmd += ["--config", str(cli_config)]
        return subprocess.run(
            cmd + rest,
            cwd=REPO_ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


class CliProcess:
    """A running ``pusherd`` verb; ``line()`` awaits its next stdout/stderr line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []

    async def line(self, stream: str = "out", timeout: float = 10.0) -> str:
        reader = self.proc.stdout if stream == "out" else self.proc.stderr
        assert reader is not None
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout)
        except TimeoutError:
            raise AssertionError(self.describe(f"no {stream} line within {timeout}s")) from None
        if not raw:
            raise AssertionError(self.describe(f"{stream} ended"))
        text = raw.decode().rstrip("\n")
        (self.out if stream == "out" else self.err).append(text)
        return text

    async def wait_for(self, needle: str, stream: str = "err", limit: int = 50) -> str:
        """Read ``stream`` lines (at most ``limit``) until one contains ``needle``."""
        for _ in range(limit):
            text = await self.line(stream)
            if needle in text:
                return text
        raise AssertionError(self.describe(f"{needle!r} not seen in {limit} lines"))

    async def finish(self, timeout: float = 10.0) -> tuple[int, str, str]:
        """Wait for exit; return the status and the rest of stdout and stderr."""
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(self.describe(f"did not exit within {timeout}s")) from None
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()

    def describe(self, headline: str) -> str:
        return f"{headline}\n  stdout: {self.out}\n  stderr: {self.err}"


StartCli = Callable[..., Awaitable[CliProcess]]


@pytest.fixture
async def start_cli(cli_config: Path) -> AsyncIterator[StartCli]:
    """``await start_cli("tail", "my-channel")``: a verb left running; killed at teardown."""
    started: list[CliProcess] = []

    async def start(*args: str, config: bool = True) -> CliProcess:
        verb, *rest = args
        cmd = ["-m", "pusherd", verb, *(["--config", str(cli_config)] if config else []), *rest]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *cmd,
            cwd=REPO_ROOT,
            env=clean_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        process = CliProcess(proc)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.proc.kill()
            await process.proc.wait()
