"""``examples/nginx.conf`` in front of a real pusherd, with a real nginx (skipped without one).

The config under test is the example with only its listen address, its upstream address
and its log/pid/temp paths moved into the test's directory.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.roundtrip import CONSOLE, assert_console_stream, assert_roundtrip, stop
from tests.server_process import ServerProcess, free_port

__all__: list[str] = []

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nginx.conf"

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


def _derive(text: str, listen_port: int, upstream_port: int, workdir: Path) -> str:
    replacements = {
        "worker_processes auto;": "worker_processes 1;",
        "worker_connections 16384;": "worker_connections 256;",
        "listen 80;": f"listen 127.0.0.1:{listen_port};",
        "server 127.0.0.1:8080 ": f"server 127.0.0.1:{upstream_port} ",
        "http {\n": (
            "http {\n"
            f"    access_log {workdir}/access.log;\n"
            f"    client_body_temp_path {workdir}/body;\n"
            f"    proxy_temp_path {workdir}/proxy;\n"
        ),
    }
    for old, new in replacements.items():
        assert old in text, f"examples/nginx.conf no longer has {old!r}; update the test"
        # Every upstream (REST/WebSocket and console) points at the test's pusherd.
        text = text.replace(old, new, -1 if old.startswith("server ") else 1)
    return text


def _get(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def nginx_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    assert NGINX is not None
    workdir = tmp_path_factory.mktemp("nginx")
    with ServerProcess(CONSOLE) as pusherd:
        port = free_port()
        config = workdir / "nginx.conf"
        config.write_text(_derive(EXAMPLE.read_text(), port, pusherd.port, workdir))
        log_path = workdir / "error.log"
        directives = (
            f"daemon off; master_process on; pid {workdir}/nginx.pid; error_log {log_path};"
        )
        proc = subprocess.Popen(
            [NGINX, "-p", str(workdir), "-c", str(config), "-g", directives],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            for _ in range(300):
                if proc.poll() is not None or _get(port, "/up") == 200:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert proc.poll() is None and _get(port, "/up") == 200, "nginx did not proxy /up: " + (
                log_path.read_text() if log_path.exists() else ""
            )
            yield port
        finally:
            stop(proc)


def test_nginx_routes_health_and_refuses_other_paths(nginx_port: int) -> None:
    assert _get(nginx_port, "/up") == 200
    assert _get(nginx_port, "/ready") == 200
    assert _get(nginx_port, "/metrics") == 200  # allowed from 127.0.0.1 only
    assert _get(nginx_port, "/") == 404


async def test_nginx_websocket_subscriber_receives_rest_trigger(nginx_port: int) -> None:
    await assert_roundtrip(nginx_port, "nginx")


async def test_nginx_streams_the_console_live_log(nginx_port: int) -> None:
    await assert_console_stream(nginx_port)
