"""Lingering close: how long a closing socket keeps reading what the client still sends.

Closing a TCP socket with unread input makes the kernel answer with a reset, and a reset
can destroy the last thing the server wrote before the client reads it: a WebSocket
close frame (the client sees 1006 instead of 1009 or 4xxx) or an HTTP 413/408 response.
So after its last write the server keeps reading and dropping input until the client's
close frame or EOF, bounded in time and bytes (RFC 6455 §7.1.1; nginx's
``lingering_close``, ``lingering_time`` and ``lingering_timeout``).
"""

from __future__ import annotations

__all__ = ["LINGER_BYTES", "LINGER_SECONDS"]

LINGER_SECONDS = 5.0
LINGER_BYTES = 16 * 1024 * 1024
