"""A real ``redis-server`` process for tests, on a free loopback port in a temp dir.

Usage::

    with RedisServer() as server:      # started, answers PING
        url = server.url               # redis://127.0.0.1:{port}/0
        server.restart()               # same port, empty data (no persistence)
        server.stop()
        server.start()

``RedisServer.available()`` tells whether a ``redis-server`` binary exists; fixtures
skip on it (see ``tests/brokers/conftest.py``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import pytest

__all__ = ["RedisServer", "free_port", "running_redis"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` without persistence (``--save '' --appendonly no``).

    Args:
        port: the port to listen on (a free one if omitted); kept across restarts.
        binary: the server executable.
        extra_args: more command-line options, e.g. ``["--requirepass", "s3cret"]``.
        password: sent with ``AUTH`` before each ``command`` (a server with requirepass).
        sentinel: run as a Sentinel with this configuration text (``sentinel monitor …``),
            written to a file the Sentinel may rewrite.
    """

    def __init__(
        self,
        port: int | None = None,
        binary: str = "redis-server",
        extra_args: Sequence[str] = (),
        password: str = "",
        sentinel: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.binary = binary
        self.extra_args = list(extra_args)
        self.password = password
        self.sentinel = sentinel
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available(binary: str = "redis-server") -> bool:
        return shutil.which(binary) is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        Raises:
            RuntimeError: it exited or did not answer within 10 s.
        """
        if self.running:
            return
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="pusherd-redis-")
        workdir = Path(self._dir.name)
        head = [self.binary]
        if self.sentinel is not None:
            conf = workdir / "sentinel.conf"
            if not conf.exists():  # a restarted Sentinel keeps what it learnt
                conf.write_text(self.sentinel, encoding="utf-8")
            head = [self.binary, str(conf), "--sentinel"]
        # fmt: off
        args = [
            *head,
            "--port", str(self.port), "--bind", "127.0.0.1",
            *(() if self.sentinel is not None else ("--save", "", "--appendonly", "no")),
            "--dir", str(workdir), "--logfile", str(workdir / "redis.log"),
            "--daemonize", "no", "--loglevel", "warning",
            *self.extra_args,
        ]
        # fmt: on
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self.command(b"PING") in (b"+PONG", b"-NOAUTH Authentication required."):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, no goodbye to replicas or clients)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(_STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop and start again on the same port; the data is gone (no persistence)."""
        self.stop()
        self.start()

    def flushall(self) -> None:
        """Delete every key and script (between tests)."""
        for command in (b"FLUSHALL", b"SCRIPT FLUSH"):
            if self.command(command) != b"+OK":
                raise RuntimeError(f"redis-server refused {command.decode()}")

    def command(self, command: bytes) -> bytes | None:
        """Send one inline command; return the first reply line, or None if unreachable."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                lines = 1
                if self.password:
                    sock.sendall(b"AUTH " + self.password.encode() + b"\r\n")
                    lines = 2
                sock.sendall(command + b"\r\n")
                reply = b""
                while reply.count(b"\r\n") < lines:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return None
                    reply += chunk
                return reply.split(b"\r\n")[lines - 1]
        except OSError:
            return None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, running={self.running})"


def running_redis() -> Iterator[RedisServer]:
    """Yield a started server for a fixture, or skip when redis-server is not installed."""
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server
