"""``pusherd trigger CHANNEL EVENT [DATA]``: one signed ``POST /apps/{id}/events``."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from pusherd.errors import ConfigError
from pusherd.protocol.channels import channel_kind
from pusherd.tools.crypto import encrypt, master_key
from pusherd.tools.target import Answer, Target

__all__ = ["trigger"]


def trigger(
    target: Target,
    channels: list[str],
    event: str,
    data: str,
    socket_id: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Publish ``data`` (sent as given: a string, usually JSON) and print the answer.

    Returns 0 on a 2xx answer, 1 otherwise. Encrypted channels are sealed with the app's
    master key first, as the server SDKs do.
    """
    if any(channel_kind(c).is_encrypted for c in channels):
        if len(channels) > 1:
            raise ConfigError("an encrypted channel must be triggered on its own")
        key = master_key(target.app, os.environ)
        if key is None:
            raise ConfigError(
                f"{channels[0]} is encrypted: set the app's encryption_master_key_base64 "
                "(or $PUSHERD_ENCRYPTION_MASTER_KEY_BASE64)"
            )
        data = encrypt(channels[0], key, data)
    body: dict[str, object] = {"name": event, "channels": channels, "data": data}
    if socket_id:
        body["socket_id"] = socket_id
    answer = target.call("POST", f"/apps/{target.app.id}/events", body)
    _print(answer, out)
    return 0 if answer.ok else 1


def _print(answer: Answer, out: TextIO) -> None:
    text = answer.text.rstrip("\n")
    if answer.ok:
        print(text, file=out)
    else:
        print(f"HTTP {answer.status}: {text}", file=out)
