"""Channel kinds by prefix and channel-name rules (PROTOCOL.md §1.6)."""

from __future__ import annotations

import pytest

from pusherd.protocol import channels
from pusherd.protocol.channels import (
    MAX_CHANNEL_NAME_LENGTH,
    ChannelKind,
    channel_kind,
    channel_name_error,
)

__all__: list[str] = []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("my-channel", ChannelKind.PUBLIC),
        ("private-chat", ChannelKind.PRIVATE),
        ("private-encrypted-x", ChannelKind.PRIVATE_ENCRYPTED),
        ("private-encrypted-cache-x", ChannelKind.PRIVATE_ENCRYPTED_CACHE),
        ("private-cache-x", ChannelKind.PRIVATE_CACHE),
        ("presence-room", ChannelKind.PRESENCE),
        ("presence-cache-x", ChannelKind.PRESENCE_CACHE),
        ("cache-x", ChannelKind.CACHE),
        ("#server-to-user-1", ChannelKind.SERVER_TO_USER),
        ("foo-private-x", ChannelKind.PUBLIC),
        ("foo-presence-x", ChannelKind.PUBLIC),
        ("privatechat", ChannelKind.PUBLIC),
        ("presencex", ChannelKind.PUBLIC),
        ("cachex", ChannelKind.PUBLIC),
        ("private-encryptedx", ChannelKind.PRIVATE),
        ("Private-x", ChannelKind.PUBLIC),
    ],
)
def test_channel_kind_matches_prefix_exactly(name: str, kind: ChannelKind) -> None:
    assert channel_kind(name) is kind


def test_channel_kind_needs_auth_only_for_private_presence_and_encrypted() -> None:
    open_kinds = {ChannelKind.PUBLIC, ChannelKind.CACHE, ChannelKind.SERVER_TO_USER}
    for kind in ChannelKind:
        assert kind.needs_auth is (kind not in open_kinds), kind


def test_channel_kind_flags() -> None:
    assert {k for k in ChannelKind if k.is_presence} == {
        ChannelKind.PRESENCE,
        ChannelKind.PRESENCE_CACHE,
    }
    assert {k for k in ChannelKind if k.is_encrypted} == {
        ChannelKind.PRIVATE_ENCRYPTED,
        ChannelKind.PRIVATE_ENCRYPTED_CACHE,
    }
    assert {k for k in ChannelKind if k.is_cache} == {
        ChannelKind.CACHE,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRIVATE_ENCRYPTED_CACHE,
        ChannelKind.PRESENCE_CACHE,
    }
    assert {k for k in ChannelKind if k.allows_client_events} == {
        ChannelKind.PRIVATE,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRESENCE,
        ChannelKind.PRESENCE_CACHE,
    }


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "my-channel",
        "private-chat_1",
        "presence-room=1@x,y.z;w",
        "A-Za-z0-9_-=@,.;",
        "#server-to-user-1",
        "#server-to-user-abc.def",
        "x" * MAX_CHANNEL_NAME_LENGTH,
    ],
)
def test_channel_name_error_accepts_valid_names(name: str) -> None:
    assert channel_name_error(name) is None


def test_channel_name_error_limit_is_200() -> None:
    assert MAX_CHANNEL_NAME_LENGTH == 200
    assert channel_name_error("x" * 200) is None
    assert channel_name_error("x" * 201) is not None
    assert channel_name_error("private-" + "x" * 193) is not None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "has space",
        "slash/channel",
        "colon:channel",
        "star*",
        "plus+",
        "quote'",
        "unicodé",
        "new\nline",
        "#",
        "#foo",
        "#server-to-user-",
        "#server-to-user-a\nb",
        "##server-to-user-1",
        "x#y",
    ],
)
def test_channel_name_error_rejects_invalid_names(name: str) -> None:
    assert channel_name_error(name) is not None


@pytest.mark.parametrize("name", [None, 1, 1.5, True, ["a"], {"a": 1}, b"bytes"])
def test_channel_name_error_rejects_non_strings(name: object) -> None:
    error = channel_name_error(name)
    assert isinstance(error, str)
    assert error


def test_channel_name_error_accepts_any_printable_user_id_on_server_to_user_channels() -> None:
    # pusher-js subscribes to "#server-to-user-" + the signed-in id, whatever it contains.
    assert channel_name_error("#server-to-user-ann smith@example.com") is None


def test_names_already_checked_are_remembered_but_the_memory_stays_bounded() -> None:
    for index in range(channels._KNOWN_LIMIT + 10):
        assert channel_name_error(f"presence-room-{index}") is None
    assert 0 < len(channels._known) <= channels._KNOWN_LIMIT
    assert channel_name_error("presence-room-1") is None
    assert channel_kind("presence-room-1") is ChannelKind.PRESENCE
    assert channel_kind(f"presence-room-{channels._KNOWN_LIMIT + 5}") is ChannelKind.PRESENCE


def test_invalid_and_unhashable_names_are_refused_every_time() -> None:
    assert channel_name_error("bad name") is not None
    assert channel_name_error("bad name") is not None
    assert "bad name" not in channels._known
    assert channel_name_error(["a"]) == "channel name must be a non-empty string"
    assert channel_name_error({"a": 1}) == "channel name must be a non-empty string"
