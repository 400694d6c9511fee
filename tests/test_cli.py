"""The ``pusherd`` command line: ``keygen`` and ``check-config`` through ``main(argv)``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pusherd.cli import main

__all__: list[str] = []

GOOD = """\
[server]
port = 6001

[[apps]]
id = "111"
key = "key-one"
secret = "secret-one"
"""


def _keygen(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["keygen"]) == 0
    out = capsys.readouterr().out
    values = dict(re.findall(r'^(\w+) = "([^"]*)"$', out, re.MULTILINE))
    assert set(values) == {"id", "key", "secret"}, out
    return values


def test_cli_keygen_prints_numeric_id_key_and_secret(capsys: pytest.CaptureFixture[str]) -> None:
    values = _keygen(capsys)
    assert values["id"].isdigit()
    assert not values["id"].startswith("0")
    assert len(values["key"]) >= 16
    assert len(values["secret"]) >= 32
    assert values["key"] != values["secret"]


def test_cli_keygen_output_is_valid_app_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["keygen"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "app.toml"
    path.write_text("[[apps]]\n" + out, encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 0


def test_cli_keygen_is_fresh_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    first = _keygen(capsys)
    second = _keygen(capsys)
    assert first["key"] != second["key"]
    assert first["secret"] != second["secret"]


def test_cli_check_config_good_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "good.toml" in captured.out
    assert captured.err == ""
    assert "secret-one" not in captured.out


def test_cli_check_config_example_file(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    assert main(["check-config", "--config", str(example)]) == 0
    assert "app-secret" not in capsys.readouterr().out


def test_cli_check_config_bad_file_reports_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nhost = "h"\nport = "eighty"\n', encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"{path}:3" in captured.err
    assert "port" in captured.err
    assert captured.out == ""


def test_cli_check_config_invalid_toml_reports_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("debug = false\n[server\nport = 1\n", encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 1
    assert f"{path}:2" in capsys.readouterr().err


def test_cli_check_config_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    assert main(["check-config", "--config", str(path)]) == 1
    assert "missing.toml" in capsys.readouterr().err


def test_cli_check_config_needs_config_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-config"])
    assert info.value.code == 2
    capsys.readouterr()


def test_cli_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    capsys.readouterr()


def test_cli_module_entry_point_runs_keygen(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pusherd", "keygen"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r'^id = "\d+"$', result.stdout, re.MULTILINE)


def test_cli_module_entry_point_check_config_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[scaling]\ndriver = 1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pusherd", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{path}:2" in result.stderr


def test_cli_serve_env_file_reads_laravel_reverb_block(tmp_path: Path) -> None:
    from tests.server_process import ServerProcess, clean_env

    env_file = tmp_path / ".env"
    env_file.write_text(
        'APP_ENV=staging\nREVERB_APP_ID=4711\nREVERB_APP_KEY="key-${APP_ENV}"\n'
        "REVERB_APP_SECRET='sec#ret' # the secret\n",
        encoding="utf-8",
    )
    with ServerProcess({}, extra_args=["--env-file", str(env_file)]) as server:
        assert "app id=4711 key=key-staging" in server.output()
        listing = subprocess.run(
            [
                sys.executable,
                "-m",
                "pusherd",
                "channels",
                "--env-file",
                str(env_file),
                "--url",
                server.http_url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=clean_env(),
        )
        assert listing.returncode == 0, listing.stdout + listing.stderr
        assert listing.stdout.splitlines() == ["CHANNEL  SUBSCRIPTIONS", "0 channel(s)"]


def test_cli_version_names_python_and_uvloop(capsys: pytest.CaptureFixture[str]) -> None:
    import platform

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"pusherd \d+\.\d+\.\d+\S* \(Python [\d.]+, uvloop [\d.]+\)", out), out
    assert platform.python_version() in out


@pytest.mark.parametrize("password", ["", "short-pass"])
def test_cli_check_config_refuses_an_enabled_console_without_a_long_password(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
) -> None:
    monkeypatch.delenv("PUSHERD_CONSOLE_PASSWORD", raising=False)
    path = tmp_path / "console.toml"
    path.write_text(f'[console]\nenabled = true\npassword = "{password}"\n', encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "console" in err and "12 characters" in err
    if password:
        assert password not in err


def test_cli_check_config_takes_the_console_password_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "console.toml"
    path.write_text("[console]\nenabled = true\n", encoding="utf-8")
    monkeypatch.setenv("PUSHERD_CONSOLE_PASSWORD", "a-long-enough-password")
    assert main(["check-config", "--config", str(path)]) == 0
    assert "a-long-enough" not in capsys.readouterr().out


def test_cli_banner_names_the_console_address_when_enabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dataclasses import replace

    from pusherd.config import Config, ConsoleConfig, MetricsConfig
    from pusherd.tools.serve import _banner

    config = replace(Config(), console=ConsoleConfig(enabled=True, password="x" * 12))
    _banner(config)
    out = capsys.readouterr().out
    assert "debug console http://127.0.0.1:8080/console/" in out
    assert "x" * 12 not in out
    hidden = replace(
        config,
        console=replace(config.console, listen="metrics"),
        metrics=MetricsConfig(port=9100, host="10.0.0.5"),
    )
    _banner(hidden)
    assert "debug console http://10.0.0.5:9100/console/" in capsys.readouterr().out
    _banner(Config())
    assert "console" not in capsys.readouterr().out
