"""Read a Laravel ``.env`` file the way Laravel's dotenv (vlucas/phpdotenv 5) reads it.

Supported, as there: ``KEY=value`` lines with an optional ``export`` prefix; ``#``
comment lines and `` # comments`` after a value; unquoted values (trimmed, ``${VAR}``
expanded); single-quoted values (literal: no escapes, no expansion); double-quoted
values (``\\"``, ``\\\\``, ``\\$``, ``\\n``, ``\\r``, ``\\t``, ``\\f``, ``\\v`` escapes,
``${VAR}`` expanded, and they may span several lines). ``${VAR}`` is looked up in the
process environment first (Laravel never overrides a variable that is already set), then
in the lines above it; an unknown one expands to "". ``$VAR`` without braces stays as
written, as in phpdotenv 5.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pusherd.errors import ConfigError

__all__ = ["load_env_file", "parse_dotenv"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_REFERENCE = re.compile(r"(?<!\\)\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v"}


def _expand(value: str, seen: Mapping[str, str], environ: Mapping[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in environ:
            return environ[name]
        return seen.get(name, "")

    return _REFERENCE.sub(lookup, value)


def _double_quoted(text: str, start: int, path: str, line: int) -> tuple[str, int]:
    """Parse from just after an opening ``"``; return the value and the index after the end."""
    out: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following in _ESCAPES:
                # \$ stays escaped until expansion has run, then becomes a plain $.
                out.append("\\$" if following == "$" else _ESCAPES[following])
                index += 2
                continue
            out.append(char)
            index += 1
            continue
        if char == '"':
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise ConfigError(f"{path}:{line}: a double-quoted value is never closed")


def _rest_is_comment(rest: str, path: str, line: int, name: str) -> None:
    stripped = rest.split("\n", 1)[0].strip()
    if stripped and not stripped.startswith("#"):
        raise ConfigError(f"{path}:{line}: unexpected text after the quoted value of {name}")


def parse_dotenv(
    text: str, environ: Mapping[str, str] | None = None, path: str = ".env"
) -> dict[str, str]:
    """Return the variables ``text`` defines, expanded (see the module docstring)."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    index = 0
    length = len(text)
    while index < length:
        line_no = text.count("\n", 0, index) + 1
        end = text.find("\n", index)
        end = length if end < 0 else end
        raw = text[index:end]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            index = end + 1
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        name, sep, _ = stripped.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise ConfigError(f"{path}:{line_no}: expected NAME=value, got {raw.strip()!r}")
        value_start = text.index("=", index) + 1
        while value_start < end and text[value_start] in " \t":
            value_start += 1
        first = text[value_start] if value_start < end else ""
        if first == '"':
            value, after = _double_quoted(text, value_start + 1, path, line_no)
            line_end = text.find("\n", after)
            line_end = length if line_end < 0 else line_end
            _rest_is_comment(text[after:line_end], path, line_no, name)
            value = _expand(value, values, env).replace("\\$", "$")
            index = line_end + 1
        elif first == "'":
            close = text.find("'", value_start + 1)
            if close < 0:
                raise ConfigError(f"{path}:{line_no}: a single-quoted value is never closed")
            value = text[value_start + 1 : close]
            line_end = text.find("\n", close)
            line_end = length if line_end < 0 else line_end
            _rest_is_comment(text[close + 1 : line_end], path, line_no, name)
            index = line_end + 1
        else:
            unquoted = text[value_start:end]
            comment = re.search(r"\s#", unquoted)
            if comment:
                unquoted = unquoted[: comment.start()]
            elif unquoted.startswith("#"):
                unquoted = ""
            value = _expand(unquoted.strip(), values, env)
            index = end + 1
        values[name] = value
    return values


def load_env_file(path: str | os.PathLike[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with ``path``'s variables added; variables already set win."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    return {**parse_dotenv(text, environ, str(file)), **environ}
