"""README's command table and the parsers agree: every command is in both, every option shown exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from edge_monitor.cli import make_parser as runtime_parser
from trainer.cli import make_parser as trainer_parser

REPO = Path(__file__).resolve().parents[1]
PARSERS = {"edge-monitor": runtime_parser, "edge-monitor-train": trainer_parser}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(action.choices)


def _readme_commands() -> list[tuple[str, str, list[str]]]:
    """``(program, command, options)`` for each command named in README's ## Commands table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows, "README's ## Commands table not found"
    found = []
    for row in rows:
        cell = row.split("|")[1]
        program = ""
        for usage in re.findall(r"`([^`]+)`", cell):
            words = usage.split()
            if words[0] in PARSERS:
                program, words = words[0], words[1:]
            assert program, f"README row names no program: {row}"
            found.append((program, words[0], [w.strip("[]") for w in words if w.strip("[]").startswith("--")]))
    return found


def test_every_command_is_in_the_readme_and_every_readme_command_exists() -> None:
    in_readme = {(program, command) for program, command, _ in _readme_commands()}
    in_parsers = {(program, name) for program, make in PARSERS.items() for name in _subcommands(make())}
    assert in_readme - in_parsers == set(), "README lists commands the CLI does not have"
    assert in_parsers - in_readme == set(), "commands missing from README's table"


@pytest.mark.parametrize("program,command,options", _readme_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_readme_options_exist_in_the_commands_help(program: str, command: str, options: list[str]) -> None:
    sub = _subcommands(PARSERS[program]())[command]
    known = set(sub._option_string_actions)  # noqa: SLF001
    assert [o for o in options if o not in known] == []
    shown = sub.format_help()
    assert [o for o in options if o not in shown] == []


def test_a_missing_command_module_is_an_import_error_not_a_missing_command() -> None:
    """A packaging mistake must fail loudly at start-up, not turn `run` into argparse's exit 2."""
    from edge_monitor.cli import build_parser

    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        build_parser("edge-monitor", "edge_monitor.commands", {"ghost": "no_such_command"}, "", "0")
