"""``pusherd channels`` and ``pusherd members``: REST answers printed as tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from pusherd.protocol.channels import channel_kind
from pusherd.tools.target import Answer, Target

__all__ = ["channels", "format_table", "members"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    numeric = [bool(rows) and all(str(r[i]).isdigit() for r in rows) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(cell).rjust(width) if is_number else str(cell).ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _fail(answer: Answer, out: TextIO) -> int:
    print(f"HTTP {answer.status}: {answer.text.rstrip()}", file=out)
    return 1


def channels(target: Target, prefix: str = "", out: TextIO = sys.stdout) -> int:
    """Print every occupied channel (optionally only those starting with ``prefix``)."""
    params = {"info": "subscription_count"}
    if prefix:
        params["filter_by_prefix"] = prefix
    if prefix.startswith("presence-"):
        params["info"] = "subscription_count,user_count"
    answer = target.call("GET", f"/apps/{target.app.id}/channels", params=params)
    if not answer.ok:
        return _fail(answer, out)
    found = answer.json()
    assert isinstance(found, dict)
    listed: dict[str, dict[str, int]] = found.get("channels", {})
    header = ["CHANNEL", "SUBSCRIPTIONS"] + (["USERS"] if "user_count" in params["info"] else [])
    rows = []
    for name in sorted(listed):
        info = listed[name]
        row = [name, str(info.get("subscription_count", ""))]
        if len(header) == 3:
            row.append(str(info.get("user_count", "")))
        rows.append(row)
    print(format_table(header, rows), file=out)
    print(f"{len(rows)} channel(s)", file=out)
    return 0


def members(target: Target, channel: str, out: TextIO = sys.stdout) -> int:
    """Print the user ids of a presence channel's members."""
    if not channel_kind(channel).is_presence:
        print(f"{channel} is not a presence channel (members need presence-…)", file=out)
        return 1
    answer = target.call("GET", f"/apps/{target.app.id}/channels/{channel}/users")
    if not answer.ok:
        return _fail(answer, out)
    found = answer.json()
    assert isinstance(found, dict)
    users = sorted(str(user["id"]) for user in found.get("users", []))
    print(format_table(["USER_ID"], [[u] for u in users]), file=out)
    print(f"{len(users)} member(s) in {channel}", file=out)
    return 0
