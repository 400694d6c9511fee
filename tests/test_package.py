"""The wheel is a working install: built with ``python -m build``, installed into a fresh
venv, it answers ``--version``, checks ``config.example.toml`` and serves a WebSocket.

A package-data entry missing from ``pyproject.toml`` (the Lua scripts, the console's static
files, ``py.typed``) fails
here, not on a user's machine. The fresh venv gets the wheel itself (``pip install
--no-deps``); its third-party dependencies are borrowed from the development venv through a
``.pth`` line, so the check needs no network. ``pusherd`` is asserted to be imported from
the fresh venv, never from the checkout.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.server_process import REPO_ROOT, clean_env, free_port

__all__: list[str] = []

pytestmark = [pytest.mark.package, pytest.mark.timeout(300)]


def _run(*cmd: str | Path, timeout: float = 180, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=clean_env(),
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then a wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO_ROOT)
    return out


@pytest.fixture(scope="module")
def fresh(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed; returns its ``bin`` directory."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    (wheel,) = dist.glob("pusherd-*.whl")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    (Path(purelib) / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return root / "bin"


def test_package_sdist_and_wheel_hold_lua_and_py_typed(dist: Path) -> None:
    import tarfile
    import zipfile

    lua = sorted(p.name for p in (REPO_ROOT / "pusherd" / "brokers" / "lua").glob("*.lua"))
    assert lua
    (wheel,) = dist.glob("pusherd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pusherd/py.typed" in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".lua")) == lua
    static = sorted(p.name for p in (REPO_ROOT / "pusherd" / "console" / "static").iterdir())
    assert static
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("pusherd/console/static/"))
    assert shipped == static
    assert not [n for n in names if n.startswith("tests/")]
    (sdist,) = dist.glob("pusherd-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert sum(m.endswith(".lua") for m in members) == len(lua)
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    assert "License-Expression: MIT" in metadata


def test_package_installed_wheel_runs_from_fresh_venv(fresh: Path, tmp_path: Path) -> None:
    where = _run(fresh / "python", "-c", "import pusherd; print(pusherd.__file__)", cwd=tmp_path)
    assert where.startswith(str(fresh.parent)), where
    scripts = _run(
        fresh / "python",
        "-c",
        "from importlib.resources import files; "
        "print(len(list((files('pusherd.brokers') / 'lua').iterdir())), "
        "(files('pusherd') / 'py.typed').is_file(), "
        "(files('pusherd.console') / 'static' / 'index.html').is_file())",
        cwd=tmp_path,
    ).split()
    lua = len(list((REPO_ROOT / "pusherd/brokers/lua").glob("*.lua")))
    assert scripts == [str(lua), "True", "True"]
    version = _run(fresh / "pusherd", "--version", cwd=tmp_path)
    assert version.startswith("pusherd ") and "Python" in version and "uvloop" in version
    checked = _run(
        fresh / "pusherd",
        "check-config",
        "--config",
        REPO_ROOT / "config.example.toml",
        cwd=tmp_path,
    )
    assert checked.strip().endswith(": ok (1 app(s), driver memory)")


def test_package_installed_wheel_serves_a_websocket(fresh: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            str(fresh / "pusherd"),
            "serve",
            "--config",
            str(REPO_ROOT / "config.example.toml"),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        for _ in range(400):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/up")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        with connect(f"ws://127.0.0.1:{port}/app/app-key?protocol=7", open_timeout=10) as ws:
            first = json.loads(ws.recv(timeout=10))
        assert first["event"] == "pusher:connection_established"
        assert "socket_id" in json.loads(first["data"])
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
