"""Start and stop the servers under test (pusherd, soketi) pinned to one CPU, on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.baseline import Baseline

__all__ = [
    "APP_ID",
    "APP_KEY",
    "APP_SECRET",
    "BASELINE",
    "SERVER_CPU",
    "Server",
    "free_port",
    "pinned",
    "start_pusherd",
    "start_server",
    "start_soketi",
]

APP_ID = "12345"
APP_KEY = "app-key"
APP_SECRET = "app-secret"
SERVER_CPU = 0
ROOT = Path(__file__).resolve().parent.parent
SOKETI_SCRIPT = ROOT.parent / "shared" / "peers" / "start-soketi.sh"


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """Prefix ``argv`` with ``taskset -c cpu`` when there are at least two CPUs."""
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def free_port(extra_offsets: tuple[int, ...] = ()) -> int:
    """A free loopback TCP port P such that P + each offset is also free (bounded tries)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if all(_port_free(port + off) for off in extra_offsets):
            return port
    raise RuntimeError("no free port found")


def _port_free(port: int) -> bool:
    if port >= 65536:
        return False
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@dataclass
class Server:
    """A running server under test."""

    name: str
    port: int
    pid: int
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    cleanup: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; removes temp files."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(self.pid, self.proc):
            time.sleep(0.05)
        if _alive(self.pid, self.proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the soketi script's nohup is not ours to reap; check its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_http(port: int, path: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {path} answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no 200 from {path} on port {port} within {timeout} s")


def start_pusherd(
    log_dir: Path | None = None,
    pin: bool = True,
    extra_args: tuple[str, ...] = (),
    python: Path | None = None,
    cwd: Path = ROOT,
    name: str = "pusherd",
    extra_config: str = "",
) -> Server:
    """Start ``python -m pusherd serve`` on a free port, pinned to SERVER_CPU if ``pin``.

    ``extra_args`` go to ``serve`` as they are (e.g. ``--log-level warning``); ``python``
    and ``cwd`` run another installed build (``bench.baseline``) or source tree;
    ``extra_config`` is TOML appended to the app's table (e.g. ``[[apps.history]]``).
    """
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="pusherd-bench-"))
    config = work / "pusherd.toml"
    config.write_text(
        "[server]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        "\n[[apps]]\n"
        f'id = "{APP_ID}"\n'
        f'key = "{APP_KEY}"\n'
        f'secret = "{APP_SECRET}"\n'
        "max_presence_members = 100\n"
        f"{extra_config}"
    )
    log = open((log_dir or work) / "pusherd.log", "wb")  # noqa: SIM115 - lives with the process
    argv = [str(python or sys.executable), "-m", "pusherd", "serve", "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port), *extra_args]
    proc = subprocess.Popen(
        pinned(SERVER_CPU, argv) if pin else argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
    )
    log.close()
    server = Server(name, port, proc.pid, proc, work, [work])
    try:
        _wait_http(port, "/up", 30, proc)
    except Exception:
        server.stop()
        raise
    return server


def start_soketi() -> Server:
    """Start soketi 1.6.1 through the peers script (installs it from npm on first use)."""
    if not SOKETI_SCRIPT.exists():
        raise RuntimeError(f"{SOKETI_SCRIPT} not found")
    port = free_port((3000, 5000))
    env = {**os.environ, "DAEMON": "1", "APP_ID": APP_ID, "APP_KEY": APP_KEY}
    env["APP_SECRET"] = APP_SECRET
    out = subprocess.run(
        pinned(SERVER_CPU, ["bash", str(SOKETI_SCRIPT), str(port)]),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"start-soketi.sh failed: {out.stderr[-2000:]}")
    pid = int(out.stdout.strip().splitlines()[-1])
    return Server("soketi", port, pid)


BASELINE = "pusherd/baseline"


def start_server(
    name: str, pusherd_args: tuple[str, ...] = (), baseline: Baseline | None = None
) -> Server:
    """Start the server called ``name`` ("pusherd", "soketi" or ``BASELINE``)."""
    if name == "pusherd":
        return start_pusherd(extra_args=pusherd_args)
    if name == BASELINE:
        if baseline is None:
            raise ValueError("the baseline server needs --baseline REV")
        return start_pusherd(
            extra_args=pusherd_args, python=baseline.python, cwd=baseline.tree, name=BASELINE
        )
    if name == "soketi":
        return start_soketi()
    raise ValueError(f"unknown server {name!r}")
