"""``pusherd channels`` and ``pusherd members`` print the REST answers as tables."""

from __future__ import annotations

from pusherd.tools.listing import format_table

from .conftest import RunCli, StartCli

__all__: list[str] = []


def test_listing_table_pads_columns_and_right_aligns_numbers() -> None:
    text = format_table(["CHANNEL", "N"], [["a", "1"], ["longer-name", "12"]])
    assert text.splitlines() == ["CHANNEL       N", "a             1", "longer-name  12"]


async def test_listing_channels_prefix_shows_subscriptions_and_users(
    start_cli: StartCli, cli: RunCli, uid: str
) -> None:
    first = await start_cli("tail", f"presence-l-{uid}", f"list-{uid}", "--user-id", "a")
    second = await start_cli("tail", f"presence-l-{uid}", "--user-id", "b")
    await first.wait_for("waiting for events")
    await second.wait_for("waiting for events")
    result = cli("channels", "--prefix", f"presence-l-{uid}")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CHANNEL", "SUBSCRIPTIONS", "USERS"]
    assert lines[1].split() == [f"presence-l-{uid}", "2", "2"]
    assert lines[2] == "1 channel(s)"
    public = cli("channels", "--prefix", f"list-{uid}")
    assert public.stdout.splitlines()[1].split() == [f"list-{uid}", "1"]
    members = cli("members", f"presence-l-{uid}")
    assert members.stdout.splitlines() == ["USER_ID", "a", "b", f"2 member(s) in presence-l-{uid}"]


def test_listing_members_of_non_presence_channel_fails(cli: RunCli) -> None:
    result = cli("members", "private-x")
    assert result.returncode == 1
    assert "not a presence channel" in result.stdout
