"""The Dockerfile's health check really probes a running pusherd.

Docker cannot run here, so the check's command is run the way the image would run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.server_process import ServerProcess, free_port

__all__: list[str] = []

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def _healthcheck_argv() -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    assert match, "no exec-form HEALTHCHECK CMD in the Dockerfile"
    argv = json.loads(match.group(1))
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def _run(argv: list[str], **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHERD_", "REVERB_"))}
    return subprocess.run(argv, env={**clean, **env}, capture_output=True, timeout=20).returncode


def test_dockerfile_runs_unprivileged_and_serves_on_8080() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = text.split("\nFROM ")

    assert len(stages) == 3, "the header, a builder stage and a runtime stage"
    runtime = stages[-1]
    assert re.search(r"^USER (?!root)\w+", runtime, flags=re.MULTILINE)
    assert "EXPOSE 8080" in runtime
    assert "PUSHERD_HOST=0.0.0.0" in runtime
    assert 'CMD ["pusherd", "serve"]' in runtime


def test_dockerfile_healthcheck_passes_against_a_live_server() -> None:
    argv = _healthcheck_argv()
    with ServerProcess() as server:
        assert _run(argv, PUSHERD_PORT=str(server.port)) == 0
        assert _run(argv, REVERB_SERVER_PORT=str(server.port)) == 0


def test_dockerfile_healthcheck_fails_when_nothing_listens() -> None:
    assert _run(_healthcheck_argv(), PUSHERD_PORT=str(free_port())) != 0
