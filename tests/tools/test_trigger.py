"""``pusherd trigger``: a signed publish; an error answer is printed and exits 1."""

from __future__ import annotations

import json

from tests.server_process import free_port

from .conftest import RunCli, StartCli

__all__: list[str] = []


def test_trigger_bad_channel_prints_error_answer_and_fails(cli: RunCli) -> None:
    result = cli("trigger", "bad channel!", "ev")
    assert result.returncode == 1
    assert result.stdout.startswith("HTTP 400: Invalid channel")


def test_trigger_encrypted_and_public_together_is_refused(cli: RunCli, uid: str) -> None:
    result = cli("trigger", f"private-encrypted-x-{uid},public-{uid}", "ev")
    assert result.returncode == 1
    assert "an encrypted channel must be triggered on its own" in result.stderr


async def test_trigger_socket_id_excludes_that_socket(
    start_cli: StartCli, cli: RunCli, uid: str
) -> None:
    channel = f"excl-{uid}"
    tail = await start_cli("tail", channel, "--count", "1")
    connected = await tail.wait_for("as socket ")
    socket_id = connected.rsplit(" ", 1)[1]
    await tail.wait_for("waiting for events")
    assert cli("trigger", channel, "skipped", "{}", "--socket-id", socket_id).returncode == 0
    assert cli("trigger", channel, "seen", "plain text").returncode == 0
    assert await tail.line() == f"{channel} seen plain text"


def test_trigger_to_server_without_node_fails_with_message(cli: RunCli) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = cli("trigger", "--url", url, "c", "e")
    assert result.returncode == 1
    assert f"cannot reach {url}" in result.stderr


def test_trigger_with_wrong_secret_gets_401(cli: RunCli, cli_config: object) -> None:
    from pathlib import Path

    assert isinstance(cli_config, Path)
    wrong = cli_config.with_name("wrong-trigger.toml")
    wrong.write_text(cli_config.read_text().replace('"app-secret"', '"nope"'))
    result = cli("trigger", "--config", str(wrong), "c", "e", config=False)
    assert result.returncode == 1
    assert result.stdout.startswith("HTTP 401: Invalid signature")
    assert json.dumps("nope") not in result.stdout
