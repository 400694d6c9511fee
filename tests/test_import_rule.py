"""The sans-I/O rule: importing ``pusherd.protocol`` pulls in no server or network library."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pusherd.protocol

__all__: list[str] = []

FORBIDDEN = ("redis", "starlette", "uvicorn", "httpx")


def _protocol_modules() -> list[str]:
    return sorted(
        f"pusherd.protocol.{info.name}" for info in pkgutil.iter_modules(pusherd.protocol.__path__)
    )


def test_import_rule_protocol_modules_exist() -> None:
    modules = set(_protocol_modules())
    for name in ("channels", "signing", "messages", "frames", "presence", "session", "origins"):
        assert f"pusherd.protocol.{name}" in modules


def test_import_rule_protocol_imports_no_io_libraries() -> None:
    modules = ["pusherd.protocol", *_protocol_modules()]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    for forbidden in FORBIDDEN:
        offenders = [m for m in loaded if m == forbidden or m.startswith(forbidden + ".")]
        assert offenders == [], f"pusherd.protocol imports {forbidden}: {offenders[:5]}"
    server = [m for m in loaded if m.startswith(("pusherd.server", "pusherd.brokers."))]
    assert server == []
