"""A dependency-free PNG line plot of the soak CSVs (RSS and fd count over time).

Top panel: RSS in MB; bottom panel: open fds; x axis: seconds. pusherd is blue, soketi
orange. Each panel's maximum is written at its top left, the run length at the bottom right.
"""

from __future__ import annotations

import csv
import itertools
import struct
import zlib
from pathlib import Path

__all__ = ["write_plot"]

W, H, PAD = 800, 500, 30
COLOURS = {"pusherd": (31, 119, 180), "soketi": (255, 127, 14)}
# 3x5 bitmap digits, one row per 3-bit value.
DIGITS = {
    "0": (7, 5, 5, 5, 7),
    "1": (2, 6, 2, 2, 7),
    "2": (7, 1, 7, 4, 7),
    "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7),
    "6": (7, 4, 7, 5, 7),
    "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7),
    "9": (7, 5, 7, 1, 7),
    ".": (0, 0, 0, 0, 2),
}


class _Canvas:
    def __init__(self) -> None:
        self.px = bytearray(b"\xff" * (W * H * 3))

    def dot(self, x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < W and 0 <= y < H:
            i = (y * W + x) * 3
            self.px[i : i + 3] = bytes(rgb)

    def line(self, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for k in range(steps + 1):
            self.dot(x0 + (x1 - x0) * k // steps, y0 + (y1 - y0) * k // steps, rgb)

    def text(self, x: int, y: int, s: str, scale: int = 2) -> None:
        for ch in s:
            for row, bits in enumerate(DIGITS.get(ch, (0,) * 5)):
                for col in range(3):
                    if bits & (4 >> col):
                        for dx in range(scale):
                            for dy in range(scale):
                                self.dot(x + col * scale + dx, y + row * scale + dy, (0, 0, 0))
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * W * 3 : (y + 1) * W * 3]) for y in range(H))

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def write_plot(results: Path, name: str) -> Path | None:
    """Plot every ``soak-*.csv`` in ``results``; returns the PNG path (None without data)."""
    series: dict[str, list[tuple[float, float, float]]] = {}
    for path in sorted(results.glob("soak-*.csv")):
        with path.open() as fh:
            rows = [
                (float(r["seconds"]), int(r["rss_kb"]) / 1024, float(r["fds"]))
                for r in csv.DictReader(fh)
            ]
        if rows:
            series[path.stem.removeprefix("soak-")] = rows
    if not series:
        return None
    canvas = _Canvas()
    t_max = max(r[0] for rows in series.values() for r in rows) or 1.0
    half = (H - 3 * PAD) // 2
    for panel, column in enumerate((1, 2)):
        top = PAD + panel * (half + PAD)
        v_max = max(r[column] for rows in series.values() for r in rows) * 1.1 or 1.0
        canvas.line(PAD, top, PAD, top + half, (0, 0, 0))
        canvas.line(PAD, top + half, W - PAD, top + half, (0, 0, 0))
        canvas.text(PAD + 6, top, f"{v_max:.0f}")
        for server, rows in series.items():
            rgb = COLOURS.get(server, (0, 0, 0))
            pts = [
                (PAD + int((W - 2 * PAD) * t / t_max), top + half - int(half * v / v_max))
                for t, *vals in rows
                for v in (vals[column - 1],)
            ]
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                canvas.line(x0, y0, x1, y1, rgb)
    canvas.text(W - PAD - 60, H - PAD + 8, f"{t_max:.0f}")
    out = results / name
    out.write_bytes(canvas.png())
    return out
