"""``edge-monitor-train``: synthesise data, train, calibrate and evaluate (workstation).

Subcommands live in ``trainer/commands/<name>.py`` with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; TensorFlow is imported
inside ``run`` only.
"""

from __future__ import annotations

import sys

from edge_monitor import __version__
from edge_monitor.cli import build_parser, dispatch

COMMANDS: dict[str, str] = {
    "synth": "synth",
    "train": "train",
    "calibrate": "calibrate",
    "evaluate": "evaluate",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        "edge-monitor-train", "trainer.commands", COMMANDS,
        "Build Edge Monitor model bundles from recordings of normal machine sound.",
        __version__,
    )
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
