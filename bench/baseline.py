"""A second pusherd from an earlier commit, for before/after figures in one run.

``python -m bench.compare --baseline REV`` checks ``REV`` out into a git worktree under
the system temp directory, installs it into a venv of its own (reused while ``REV``
resolves to the same commit) and runs it as the server ``pusherd/baseline``, interleaved
with the others scenario by scenario, so both builds see the same machine at the same
time.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Baseline", "prepare_baseline"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Baseline:
    """An installed pusherd at ``commit``: run it with ``python -m pusherd`` in ``tree``."""

    commit: str
    tree: Path
    python: Path


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def prepare_baseline(rev: str) -> Baseline:
    """Check out and install ``rev`` (any git revision); return how to run it."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    home = Path(tempfile.gettempdir()) / f"pusherd-baseline-{commit[:12]}"
    tree = home / "tree"
    python = home / "venv" / "bin" / "python"
    stamp = home / "installed"
    if not stamp.exists():
        if tree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        home.mkdir(parents=True, exist_ok=True)
        _git("worktree", "add", "--detach", str(tree), commit)
        subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(tree)], check=True, cwd=home)
        stamp.write_text(commit + "\n")
    return Baseline(commit, tree, python)
