"""``edge-monitor-train``: synthesise data, train, calibrate and evaluate (workstation).

Subcommands live in ``trainer/commands/<name>.py`` with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; TensorFlow is imported
inside ``run`` only.
"""

from __future__ import annotations

import argparse
import sys

from edge_monitor import __version__
from edge_monitor.cli import build_parser, dispatch

COMMANDS: dict[str, str] = {
    "synth": "synth",
    "train": "train",
    "calibrate": "calibrate",
    "evaluate": "evaluate",
}


def make_parser() -> argparse.ArgumentParser:
    """The ``edge-monitor-train`` parser with every subcommand."""
    return build_parser(
        "edge-monitor-train", "trainer.commands", COMMANDS,
        "Build Edge Monitor model bundles from recordings of normal machine sound.",
        __version__,
    )


def main(argv: list[str] | None = None) -> int:
    return dispatch(make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
