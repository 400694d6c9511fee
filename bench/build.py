"""Compile ``bench/loadgen.c`` into a per-source-hash temp dir (binaries are never committed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["SOURCE", "build_loadgen"]

SOURCE = Path(__file__).with_name("loadgen.c")


def build_loadgen() -> Path:
    """Return the path of a compiled load generator, building it on first use.

    Raises:
        RuntimeError: no C compiler, or compilation failed.
    """
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out_dir = Path(tempfile.gettempdir()) / f"pusherd-bench-{digest}"
    binary = out_dir / "loadgen"
    if binary.exists():
        return binary
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("bench needs a C compiler (gcc) and OpenSSL headers (libssl-dev)")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"loadgen.{digest}.tmp"
    cmd = [cc, "-O2", "-Wall", "-Wno-deprecated-declarations", "-o", str(tmp), str(SOURCE)]
    proc = subprocess.run([*cmd, "-lcrypto"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling loadgen failed:\n{proc.stderr}")
    tmp.replace(binary)
    return binary
