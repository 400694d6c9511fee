"""Run a real ``python -m pusherd serve`` subprocess for tests.

``ServerProcess`` writes the given configuration (a dict or TOML text) to a temporary file,
starts the server on 127.0.0.1 and a free port, and waits (bounded) until ``GET /up``
answers 200. Everything the server prints goes to a log file whose tail is shown in every
failure message, so a crash during a test is visible in the pytest report.

Typical use::

    with ServerProcess({"apps": [{"id": "1", "key": "k", "secret": "s"}]}) as server:
        connect(server.ws_url + "/app/k")

The module is imported by several suites; it depends on nothing but the stdlib.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["ServerProcess", "ServerStartError", "clean_env", "free_port", "to_toml"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Environment variables that reconfigure the server; a test must opt in to them explicitly.
_CONFIG_ENV_PREFIXES = ("PUSHERD_", "REVERB_", "SOKETI_", "PUSHER_")


def clean_env() -> dict[str, str]:
    """This process's environment without any variable that reconfigures pusherd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerStartError(RuntimeError):
    """The server did not come up (or exited); the message carries its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _toml_key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "-_" for ch in key):
        return key
    return _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _write_table(lines: list[str], name: str, table: Mapping[str, Any], array: bool) -> None:
    lines.append(f"[[{name}]]" if array else f"[{name}]")
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        for item in value:
            _write_table(lines, f"{name}.{_toml_key(key)}", item, array=True)


def to_toml(config: Mapping[str, Any]) -> str:
    """Serialize the subset of TOML pusherd's config uses.

    Top-level scalars, ``[table]`` for dicts, ``[[array]]`` for lists of dicts (nested lists
    of dicts become ``[[array.sub]]``); dicts below the first level become inline tables.
    """
    lines: list[str] = []
    for key, value in config.items():
        if not isinstance(value, Mapping) and not _is_table_array(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in config.items():
        if isinstance(value, Mapping):
            _write_table(lines, _toml_key(key), value, array=False)
        elif _is_table_array(value):
            for item in value:
                _write_table(lines, _toml_key(key), item, array=True)
    return "\n".join(lines) + "\n"


class ServerProcess:
    """A ``pusherd serve`` subprocess on 127.0.0.1.

    Args:
        config: the configuration as a dict (written as TOML) or as TOML text.
        env: extra environment variables. ``PUSHERD_*``/``REVERB_*`` variables of the
            calling process are *not* inherited; pass them here when a test needs them.
        port: a fixed port (default: a free one).
        start_timeout: seconds to wait for ``GET /up`` to answer 200.
        extra_args: more command-line arguments for ``pusherd serve`` (e.g. ``["--debug"]``).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 15.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.start_timeout = start_timeout
        self._workdir = tempfile.TemporaryDirectory(prefix="pusherd-test-")
        workdir = Path(self._workdir.name)
        text = config if isinstance(config, str) else to_toml(config or {})
        self.config_path = workdir / "pusherd.toml"
        self.config_path.write_text(text, encoding="utf-8")
        self.log_path = workdir / "server.log"
        self._env = clean_env()
        self._env.update(env or {})
        self._extra_args = list(extra_args)
        self._log_file: Any = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ServerProcess:
        """Start the server and wait until ``/up`` answers 200 (or raise ServerStartError)."""
        if self.proc is not None:
            raise RuntimeError("server already started")
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _close_log
        cmd = [
            sys.executable,
            "-m",
            "pusherd",
            "serve",
            "--config",
            str(self.config_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self._extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_up()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_up(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error = "no answer"
        attempts = 0
        while time.monotonic() < deadline and attempts < 2000:
            attempts += 1
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise ServerStartError(self.describe(f"pusherd exited with code {code}"))
            status = self._probe_up()
            if status == 200:
                return
            last_error = f"/up answered {status}" if status else "connection refused"
            time.sleep(0.05)
        raise ServerStartError(
            self.describe(f"pusherd did not answer GET /up within {self.start_timeout}s")
            + f" (last: {last_error})"
        )

    def _probe_up(self) -> int | None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            conn.request("GET", "/up")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_log()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL at once (a crash, as far as other nodes can tell). Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Stop the server if needed and remove the temporary directory."""
        self.stop()
        self._workdir.cleanup()

    # -- diagnostics -------------------------------------------------------------------------

    def output(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def describe(self, headline: str, tail_lines: int = 60) -> str:
        """``headline`` plus the tail of the server output, for assertion messages."""
        lines = self.output().splitlines()[-tail_lines:]
        body = "\n".join("    " + line for line in lines) or "    (no output)"
        return f"{headline}\n  pusherd on {self.http_url}, output tail:\n{body}"

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<ServerProcess {self.http_url} pid={self.pid} {state}>"

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
