"""The package map of docs/architecture.md holds: inside ``edge_monitor`` imports point one way.

Each package imports only packages to its left in the chain
``util ← config ← audio ← features ← model ← decide ← publish, web ← service ← commands ← cli``
(packages in one link, such as ``publish`` and ``web``, do not import each other). Every import
counts: at module level, inside functions, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAIN = "util ← config ← audio ← features ← model ← decide ← publish, web ← service ← commands ← cli"
RANK = {name: i for i, link in enumerate(CHAIN.split(" ← ")) for name in link.split(", ")}


def _package(path: Path) -> str:
    """The link of the chain a source file belongs to (``cli`` for cli.py, ``""`` outside the chain)."""
    parts = path.relative_to(REPO / "edge_monitor").parts
    name = parts[0].removesuffix(".py")
    return name if name in RANK and (len(parts) > 1 or name == "cli") else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, package)`` of every ``edge_monitor.<package>`` import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("edge_monitor.")]
    return out


def test_the_chain_is_the_one_docs_show() -> None:
    assert f"\n{CHAIN}\n" in (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert set(RANK) - {"cli"} == {p.name for p in (REPO / "edge_monitor").iterdir() if (p / "__init__.py").is_file()}


def test_imports_point_one_way() -> None:
    wrong = []
    for path in sorted((REPO / "edge_monitor").rglob("*.py")):
        pkg = _package(path)
        if not pkg:
            continue
        for line, target in _imports(path):
            if target in RANK and target != pkg and RANK[target] >= RANK[pkg]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {pkg} imports edge_monitor.{target}")
    assert wrong == []


def test_a_wrong_way_import_is_found(tmp_path: Path) -> None:
    """The check sees imports inside functions too (the lazy ones a reader misses)."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from edge_monitor.service.daemon import Daemon\n", encoding="utf-8")
    assert _imports(f) == [(2, "service")]
