"""Laravel ``.env`` files read the way Laravel's dotenv reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pusherd.dotenv import load_env_file, parse_dotenv
from pusherd.errors import ConfigError

__all__: list[str] = []

LARAVEL_11 = Path(__file__).parent / "tools" / "data" / "laravel11.env"


def test_dotenv_laravel_11_file_quoting_edge_cases() -> None:
    env = parse_dotenv(LARAVEL_11.read_text(), {})
    assert env["APP_NAME"] == "Acme Orders"
    assert env["APP_KEY"] == "base64:2fl+Ktvkfl+Fuz4Qp/A75G2RTiWVA/ZoKZvp6fiiM10="
    assert env["LOG_CHANNEL"] == "stack"
    assert env["DB_PASSWORD"] == "p@ss#word with $dollar ${NOT_EXPANDED}"
    assert env["REVERB_APP_ID"] == "804211"
    assert env["REVERB_APP_KEY"] == "k3y-local"
    assert env["REVERB_APP_SECRET"] == "s3cr3t#not-a-comment"
    assert env["REVERB_SERVER_HOST"] == "0.0.0.0"
    assert env["REVERB_SERVER_PORT"] == "9090"
    assert env["REVERB_SERVER_PATH"] == ""
    assert env["PUSHER_APP_ID"] == ""
    assert env["VITE_REVERB_APP_KEY"] == "k3y-local"
    assert env["VITE_APP_NAME"] == "Acme Orders"
    assert env["MAIL_FROM_NAME"] == 'Acme Orders "Support"\ttab\nline'
    assert env["MULTILINE"] == "first\nsecond"
    assert env["EMPTY_QUOTED"] == ""
    assert "REDIS_PASSWORD" in env and env["REDIS_PASSWORD"] == "null"


def test_dotenv_reference_prefers_process_environment_and_unknown_is_empty() -> None:
    text = 'A=from-file\nB="${A}-${MISSING}-${HOME_X}"\nC=$A\nD="\\${A}"\n'
    env = parse_dotenv(text, {"HOME_X": "proc", "A": "process-wins"})
    assert env["B"] == "process-wins--proc"
    assert env["C"] == "$A"  # no braces: no expansion, as in phpdotenv 5
    assert env["D"] == "${A}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('A="never closed\n', "never closed"),
        ("A='never closed\n", "never closed"),
        ("not a line\n", "expected NAME=value"),
        ('A="x" trailing\n', "unexpected text"),
        ("1A=x\n", "expected NAME=value"),
    ],
)
def test_dotenv_malformed_lines_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_dotenv("OK=1\n" + text, {}, "x.env")
    assert "x.env:2" in str(info.value)


def test_dotenv_load_env_file_set_variables_win(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("REVERB_APP_ID=1\nREVERB_APP_KEY=k\n")
    merged = load_env_file(path, {"REVERB_APP_ID": "2", "OTHER": "o"})
    assert merged == {"REVERB_APP_ID": "2", "REVERB_APP_KEY": "k", "OTHER": "o"}
    with pytest.raises(ConfigError, match="cannot read"):
        load_env_file(tmp_path / "missing.env", {})
