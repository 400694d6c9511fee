"""Run ``python -m pusherd``: the same as the ``pusherd`` console script."""

from __future__ import annotations

from pusherd.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
