"""The command-line tools around the server: REST client verbs, ``tail``, the dev auth
server and config import. Each module backs one ``pusherd`` verb; ``pusherd.cli`` only
parses arguments and dispatches here."""

from __future__ import annotations

__all__: list[str] = []
