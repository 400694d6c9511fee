"""The sans-I/O rule: importing ``pusherd.protocol`` pulls in no server or network library."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pusherd
import pusherd.protocol

__all__: list[str] = []

FORBIDDEN = ("redis", "starlette", "uvicorn", "httpx")


def _protocol_modules() -> list[str]:
    return sorted(
        f"pusherd.protocol.{info.name}" for info in pkgutil.iter_modules(pusherd.protocol.__path__)
    )


def test_import_rule_protocol_modules_exist() -> None:
    modules = set(_protocol_modules())
    for name in ("channels", "signing", "messages", "frames", "presence", "session", "origins"):
        assert f"pusherd.protocol.{name}" in modules


def test_import_rule_protocol_imports_no_io_libraries() -> None:
    modules = ["pusherd.protocol", *_protocol_modules()]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    for forbidden in FORBIDDEN:
        offenders = [m for m in loaded if m == forbidden or m.startswith(forbidden + ".")]
        assert offenders == [], f"pusherd.protocol imports {forbidden}: {offenders[:5]}"
    server = [m for m in loaded if m.startswith(("pusherd.server", "pusherd.brokers."))]
    assert server == []


def _imports_of(path: Path, module: str) -> set[str]:
    """Every ``pusherd`` module ``path`` imports, at any depth (``TYPE_CHECKING`` too)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("pusherd")}


def _import_graph() -> dict[str, set[str]]:
    root = Path(pusherd.__file__).resolve().parent
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        relative = path.relative_to(root.parent).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # "from pusherd.x import y" names module pusherd.x.y if there is one, else pusherd.x.
        graph[name] = {m for m in _imports_of(path, name) if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path back to its start), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        on_path = {start}
        while stack:
            name, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                on_path.discard(name)
                done.add(name)
                continue
            nxt = todo.pop()
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                stack.append((nxt, sorted(graph[nxt])))
                path.append(nxt)
                on_path.add(nxt)
    return None


def test_import_rule_no_import_cycle_inside_pusherd() -> None:
    # A package's __init__ re-exporting a submodule is not a cycle of the code itself.
    graph = _import_graph()
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_import_rule_cycle_finder_sees_a_type_only_cycle(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pusherd.server import hub\n"
    )
    assert "pusherd.server.hub" in _imports_of(source, "pusherd.m")
