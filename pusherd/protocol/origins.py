"""The ``allowed_origins`` check: exact origins, bare hosts and ``*.`` wildcards."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["origin_allowed"]


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Return whether a browser ``Origin`` header passes ``allowed``.

    ``"*"`` allows everything, including requests without an ``Origin`` (server-side
    clients send none). Entries are full origins (``https://app.example.com``), bare
    hosts (``app.example.com``) or wildcards (``https://*.example.com``,
    ``*.example.com``); a wildcard matches subdomains only, not the apex.
    """
    if "*" in allowed:
        return True
    if not origin:
        return False
    origin = origin.strip().lower()
    parts = urlsplit(origin)
    scheme, host = parts.scheme, parts.netloc
    if not scheme or not host:
        return False
    for entry in allowed:
        entry = entry.strip().lower().rstrip("/")
        entry_scheme = ""
        entry_host = entry
        if "://" in entry:
            entry_scheme, _, entry_host = entry.partition("://")
        if entry_scheme and entry_scheme != scheme:
            continue
        if entry_host.startswith("*."):
            suffix = entry_host[1:]
            # Without a port in the entry, any port matches (as for bare hosts).
            candidate = host if ":" in entry_host else (parts.hostname or "")
            if candidate.endswith(suffix) and len(candidate) > len(suffix):
                return True
        elif host == entry_host or (":" not in entry_host and parts.hostname == entry_host):
            return True
    return False
