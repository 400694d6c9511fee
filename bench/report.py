"""Render measured figures for several servers as one markdown table with ratios."""

from __future__ import annotations

from pathlib import Path

from bench.scenarios import Figure

__all__ = ["publish", "render_table"]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value / 1000:.1f} k" if value >= 10000 else f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.2f} {unit}"


def render_table(results: dict[str, list[Figure]], header: str = "") -> str:
    """A table with one row per figure: pusherd, soketi, pusherd/soketi and notes.

    The ratio is marked ✅ when pusherd is at least as good as soketi (lower is better for
    costs and latencies, higher for rates).
    """
    ours = {(f.scenario, f.name): f for f in results.get("pusherd", [])}
    peer = {(f.scenario, f.name): f for f in results.get("soketi", [])}
    keys = list(dict.fromkeys([*ours, *peer]))
    lines = [header] if header else []
    lines += [
        "| scenario | figure | pusherd | soketi | pusherd/soketi | notes (pusherd; soketi) |",
        "|---|---|---|---|---|---|",
    ]
    for key in keys:
        a, b = ours.get(key), peer.get(key)
        unit = (a or b).unit if (a or b) else ""
        ratio = ""
        if a is not None and b is not None and a.value > 0 and b.value > 0:
            r = a.value / b.value
            good = r <= 1 if a.better == "lower" else r >= 1
            ratio = f"{r:.2f} {'✅' if good else '❌'}"
        notes = "; ".join(x.note for x in (a, b) if x is not None and x.note)
        lines.append(
            f"| {key[0]} | {key[1]} | {_fmt(a.value if a else None, unit)} | "
            f"{_fmt(b.value if b else None, unit)} | {ratio} | {notes} |"
        )
    return "\n".join(lines) + "\n"


def publish(table: str, output: Path) -> None:
    """Print ``table`` and write it to ``output`` (creating its directory)."""
    print(table)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
