"""Drive the compiled load generator (``loadgen.c``), pinned to the generator CPU."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import APP_ID, APP_KEY, APP_SECRET, pinned

__all__ = [
    "GEN_CPU",
    "Ready",
    "Subscribers",
    "churn_process",
    "pub_process",
    "run_churn",
    "run_pub",
]

GEN_CPU = 1


def _common(port: int) -> list[str]:
    return ["--port", str(port), "--key", APP_KEY, "--secret", APP_SECRET, "--app-id", APP_ID]


@dataclass
class Ready:
    subscribed: int
    failed: int
    seconds: float


class Subscribers:
    """A ``loadgen sub`` process holding ``conns`` subscribed sockets, controlled over stdin."""

    def __init__(
        self,
        binary: Path,
        port: int,
        conns: int,
        *,
        channels: int = 1,
        prefix: str = "bench",
        presence: bool = False,
        id_base: int = 0,
        connect_timeout: float = 120,
    ) -> None:
        argv = [str(binary), "sub", *_common(port), "--conns", str(conns)]
        argv += ["--channels", str(channels), "--prefix", prefix]
        argv += ["--presence", "1" if presence else "0", "--id-base", str(id_base)]
        argv += ["--connect-timeout", str(connect_timeout)]
        self.conns = conns
        self.proc = subprocess.Popen(
            pinned(GEN_CPU, argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _line(self) -> str:
        """One answer line. The generator bounds every wait itself (connect timeout, WAIT
        timeout), so this read always ends; EOF means it died."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"loadgen sub stopped answering (rc={self.proc.poll()})")
        return line

    def _send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def ready(self) -> Ready:
        """Wait until every socket is subscribed (or failed, or the connect timeout passed)."""
        parts = self._line().split()
        if not parts or parts[0] != "READY":
            raise RuntimeError(f"unexpected loadgen output: {parts}")
        return Ready(int(parts[1]), int(parts[2]), float(parts[3]))

    def stats(self) -> dict[str, Any]:
        self._send("STATS")
        result: dict[str, Any] = json.loads(self._line())
        return result

    def wait(self, deliveries: int, timeout: float) -> dict[str, Any]:
        """Stats once ``deliveries`` were counted since the last reset, or after ``timeout``."""
        self._send(f"WAIT {deliveries} {timeout}")
        result: dict[str, Any] = json.loads(self._line())
        return result

    def reset(self) -> None:
        self._send("RESET")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("QUIT")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _run_json(argv: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(pinned(GEN_CPU, argv), capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"loadgen failed rc={out.returncode}: {out.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_pub(
    binary: Path,
    port: int,
    *,
    rate: float,
    duration: float,
    conns: int = 4,
    channels: int = 1,
    prefix: str = "bench",
    seq_base: int = 0,
    padding: int = 0,
    close: bool = False,
) -> dict[str, Any]:
    """Publish signed REST events at ``rate``/s (0 = flat out) for ``duration`` seconds.

    ``close`` sends ``Connection: close``: one TCP connection per request.
    """
    argv = [str(binary), "pub", *_common(port), "--rate", str(rate), "--duration", str(duration)]
    argv += ["--conns", str(conns), "--channels", str(channels), "--prefix", prefix]
    argv += ["--seq-base", str(seq_base), "--padding", str(padding), "--close", str(int(close))]
    return _run_json(argv, duration + 60)


def pub_process(
    binary: Path,
    port: int,
    *,
    rate: float,
    duration: float,
    channels: int,
    prefix: str,
    padding: int = 0,
) -> subprocess.Popen[str]:
    """Start a publisher in the background (for the soak); read its JSON line at the end."""
    argv = [str(binary), "pub", *_common(port), "--rate", str(rate), "--duration", str(duration)]
    argv += ["--conns", "4", "--channels", str(channels), "--prefix", prefix]
    argv += ["--padding", str(padding)]
    return subprocess.Popen(pinned(GEN_CPU, argv), stdout=subprocess.PIPE, text=True)


def run_churn(
    binary: Path,
    port: int,
    *,
    duration: float,
    concurrency: int = 32,
    presence: bool = False,
    channels: int = 1,
    prefix: str = "churn",
) -> dict[str, Any]:
    """Loop connect + subscribe + close on ``concurrency`` slots for ``duration`` seconds."""
    argv = [str(binary), "churn", *_common(port), "--duration", str(duration)]
    argv += ["--concurrency", str(concurrency), "--presence", "1" if presence else "0"]
    argv += ["--channels", str(channels), "--prefix", prefix]
    return _run_json(argv, duration + 60)


def churn_process(
    binary: Path,
    port: int,
    *,
    duration: float,
    concurrency: int,
    rate: float = 0,
    presence: bool = False,
) -> subprocess.Popen[str]:
    """Start a churn loop in the background (for the soak); read its JSON line at the end."""
    argv = [str(binary), "churn", *_common(port), "--duration", str(duration)]
    argv += ["--concurrency", str(concurrency), "--presence", "1" if presence else "0"]
    argv += ["--channels", "8", "--prefix", "soakchurn", "--rate", str(rate)]
    return subprocess.Popen(pinned(GEN_CPU, argv), stdout=subprocess.PIPE, text=True)
