"""``pusherd tail`` against the live server: it sees what ``pusherd trigger`` and the Python
SDK publish, on public, private, presence and encrypted channels."""

from __future__ import annotations

import json
import signal

import pusher

from .conftest import RunCli, StartCli

__all__: list[str] = []


async def test_tail_prints_event_triggered_by_cli(
    start_cli: StartCli, cli: RunCli, uid: str
) -> None:
    channel = f"orders-{uid}"
    tail = await start_cli("tail", channel, "--count", "1")
    await tail.wait_for("waiting for events")
    result = cli("trigger", channel, "shipped", '{"id": 7}')
    assert result.returncode == 0, result
    assert json.loads(result.stdout) == {}
    assert await tail.line() == f'{channel} shipped {{"id": 7}}'
    code, _, _ = await tail.finish()
    assert code == 0


async def test_tail_authorizes_private_and_presence_with_config_secret(
    start_cli: StartCli, cli: RunCli, uid: str
) -> None:
    private, presence = f"private-a-{uid}", f"presence-b-{uid}"
    tail = await start_cli("tail", private, presence, "--json", "--count", "2", "--user-id", "u9")
    await tail.wait_for("waiting for events")
    assert any(f"subscribed to {private}" in line for line in tail.err)
    assert any(f"subscribed to {presence}" in line for line in tail.err)
    members = cli("members", presence)
    assert members.returncode == 0, members
    assert members.stdout.splitlines()[1].strip() == "u9"
    assert cli("trigger", private, "one", '{"n": 1}').returncode == 0
    assert cli("trigger", presence, "two", '{"n": 2}').returncode == 0
    first, second = json.loads(await tail.line()), json.loads(await tail.line())
    assert (first["channel"], first["event"], first["data"]) == (private, "one", {"n": 1})
    assert (second["channel"], second["event"], second["data"]) == (presence, "two", {"n": 2})
    assert (await tail.finish())[0] == 0


async def test_tail_decrypts_event_the_python_sdk_encrypted(
    start_cli: StartCli, sdk: pusher.Pusher, uid: str
) -> None:
    channel = f"private-encrypted-c-{uid}"
    tail = await start_cli("tail", channel, "--count", "1")
    await tail.wait_for("waiting for events")
    sdk.trigger(channel, "sealed", {"card": "4242"})
    line = await tail.line()
    name, event, data = line.split(" ", 2)
    assert (name, event, json.loads(data)) == (channel, "sealed", {"card": "4242"})


async def test_tail_prints_ciphertext_without_master_key(
    start_cli: StartCli, sdk: pusher.Pusher, uid: str, tmp_path: object, cli_config: object
) -> None:
    from pathlib import Path

    assert isinstance(cli_config, Path)
    keyless = cli_config.with_name("keyless.toml")
    keyless.write_text(
        "\n".join(line for line in cli_config.read_text().splitlines() if "encryption" not in line)
        + "\n"
    )
    channel = f"private-encrypted-d-{uid}"
    tail = await start_cli("tail", "--config", str(keyless), channel, "--count", "1", config=False)
    await tail.wait_for("waiting for events")
    sdk.trigger(channel, "sealed", {"card": "4242"})
    line = await tail.line()
    payload = json.loads(line.split(" ", 2)[2])
    assert set(payload) == {"nonce", "ciphertext"}
    assert "4242" not in line
    code, _, err = await tail.finish()
    assert code == 0
    assert "no encryption master key is configured: printing ciphertext" in err


async def test_tail_sigint_closes_cleanly(start_cli: StartCli, uid: str) -> None:
    tail = await start_cli("tail", f"idle-{uid}")
    await tail.wait_for("waiting for events")
    tail.proc.send_signal(signal.SIGINT)
    code, out, err = await tail.finish()
    assert code == 0
    assert out == ""
    assert "interrupted, closing" in err


async def test_tail_refused_subscription_exits_non_zero(
    start_cli: StartCli, cli_config: object, uid: str
) -> None:
    from pathlib import Path

    assert isinstance(cli_config, Path)
    wrong = cli_config.with_name("wrong-secret.toml")
    wrong.write_text(cli_config.read_text().replace('"app-secret"', '"not-the-secret"'))
    tail = await start_cli("tail", "--config", str(wrong), f"private-e-{uid}", config=False)
    code, _, err = await tail.finish()
    assert code == 1
    assert f"cannot subscribe to private-e-{uid}" in err
