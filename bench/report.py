"""Render measured figures for several servers as one markdown table with ratios."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from bench.scenarios import Figure

__all__ = ["median_figures", "publish", "render_table"]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value / 1000:.1f} k" if value >= 10000 else f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.2f} {unit}"


def _ratio(a: Figure | None, b: Figure | None) -> str:
    if a is None or b is None or a.value <= 0 or b.value <= 0:
        return ""
    r = a.value / b.value
    good = r <= 1 if a.better == "lower" else r >= 1
    return f"{r:.2f} {'✅' if good else '❌'}"


def render_table(results: dict[str, list[Figure]], header: str = "") -> str:
    """A table with one row per figure: each server's value, the ratios, and notes.

    Columns are pusherd, then any other server in ``results`` (``pusherd/baseline``,
    soketi), then pusherd/soketi and pusherd/baseline where both were measured. A ratio is
    marked ✅ when pusherd is at least as good (lower is better for costs and latencies,
    higher for rates).
    """
    names = ["pusherd", *(n for n in results if n != "pusherd")]
    if "soketi" not in names:
        names.append("soketi")  # the column stays, empty, so old tables still compare
    by_name = {name: {(f.scenario, f.name): f for f in results.get(name, [])} for name in names}
    peers = [p for p in ("soketi", "pusherd/baseline") if p in by_name]
    keys = list(dict.fromkeys(k for name in names for k in by_name[name]))
    lines = [header] if header else []
    columns = ["baseline" if n == "pusherd/baseline" else n for n in names]
    heads = [*columns, *(f"pusherd/{p.removeprefix('pusherd/')}" for p in peers)]
    lines += [
        "| scenario | figure | " + " | ".join(heads) + " | notes |",
        "|---|---|" + "---|" * len(heads) + "---|",
    ]
    for key in keys:
        row = [by_name[name].get(key) for name in names]
        unit = next((f.unit for f in row if f is not None), "")
        ours = by_name["pusherd"].get(key)
        cells = [_fmt(f.value if f else None, unit) for f in row]
        cells += [_ratio(ours, by_name[p].get(key)) for p in peers]
        notes = "; ".join(
            f"{n}: {f.note}" for n, f in zip(columns, row, strict=True) if f and f.note
        )
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + f" | {notes} |")
    return "\n".join(lines) + "\n"


def median_figures(rounds: list[list[Figure]]) -> list[Figure]:
    """One figure per name: the median over ``rounds`` (one list per repetition).

    Its note says how many rounds there were and their spread, so a ratio can be read
    against the noise; failed rounds (unit "") are left out of the median.
    """
    if len(rounds) == 1:
        return rounds[0]
    by_key: dict[tuple[str, str], list[Figure]] = {}
    for figures in rounds:
        for figure in figures:
            by_key.setdefault((figure.scenario, figure.name), []).append(figure)
    merged = []
    for measured in by_key.values():
        ok = [f for f in measured if f.unit] or measured
        values = sorted(f.value for f in ok)
        middle = min(ok, key=lambda f: abs(f.value - statistics.median(values)))
        spread = (
            f"median of {len(ok)}, {_fmt(values[0], ok[0].unit)}–{_fmt(values[-1], ok[0].unit)}"
        )
        note = f"{spread}; {middle.note}" if middle.note else spread
        merged.append(replace(middle, value=statistics.median(values), note=note))
    return merged


def publish(table: str, output: Path) -> None:
    """Print ``table`` and write it to ``output`` (creating its directory)."""
    print(table)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
