"""README's ## Repository list and the source tree agree: every package and every module named once.

Each package of ``edge_monitor/``, ``trainer/`` and ``devtools/`` has one line in the list, holding its
modules (``.py`` files but ``__init__``) as comma-separated names; a list ending in a comma goes on
on the next line; after two spaces comes a description. A package or module added, moved or
removed without the README following fails here, as ``test_cli_docs.py`` does for commands.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("edge_monitor", "trainer", "devtools")
_PATH_LINE = re.compile(r"^(?P<indent> *)(?P<path>[\w/]+/)(?: +(?P<rest>.*))?$")
_NAMES = re.compile(r"^(?P<names>\w+(?:, \w+)*)(?P<more>,?)(?: {2,}.*)?$")


def _readme_packages() -> list[tuple[str, list[str]]]:
    """``(package path, module names)`` for each package line of README's repository list, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Repository", 1)[1].split("```", 2)[1]
    found: list[tuple[str, list[str]]] = []
    root: str | None = None
    more = False
    for line in block.splitlines():
        m = _PATH_LINE.match(line)
        if m and not (more and m["indent"]):
            path = m["path"].rstrip("/")
            if not m["indent"]:
                root = path if path in ROOTS else None
            elif root is None:
                continue
            else:
                path = f"{root}/{path}"
            if root is None:
                more = False
                continue
            found.append((path, []))
            rest = m["rest"] or ""
        elif more and line.strip():
            rest = line.strip()
        else:
            continue
        names = _NAMES.match(rest)
        more = bool(names and names["more"])
        if names:
            found[-1][1].extend(names["names"].split(", "))
    return found


def _tree_packages() -> dict[str, set[str]]:
    """Package path -> its module names, for every package under the roots."""
    out: dict[str, set[str]] = {}
    for root in ROOTS:
        for init in sorted((REPO / root).rglob("__init__.py")):
            pkg = init.parent
            out[pkg.relative_to(REPO).as_posix()] = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    return out


def test_every_package_of_the_tree_has_one_line_in_the_readme() -> None:
    listed = [path for path, _ in _readme_packages()]
    assert len(listed) == len(set(listed)), f"packages listed twice: {sorted(p for p in listed if listed.count(p) > 1)}"
    tree = _tree_packages()
    assert set(tree) - set(listed) == set(), "packages missing from README's repository list"
    assert set(listed) - set(tree) == set(), "README lists packages the tree does not have"


def test_every_module_is_named_once_under_its_package() -> None:
    tree = _tree_packages()
    for path, names in _readme_packages():
        assert len(names) == len(set(names)), f"{path}: named twice: {sorted(n for n in names if names.count(n) > 1)}"
        assert set(tree[path]) - set(names) == set(), f"{path}: modules missing from README"
        assert set(names) - set(tree[path]) == set(), f"{path}: README names modules the tree does not have"


def test_the_parser_reads_continued_lists() -> None:
    """The list of a long package goes on after a trailing comma; a description line is not a list."""
    packages = dict(_readme_packages())
    assert "learn" in packages["edge_monitor/model"] and "recorder" in packages["edge_monitor/audio"]
    assert len(packages) == len(_tree_packages())
