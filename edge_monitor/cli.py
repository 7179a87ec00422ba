"""``edge-monitor``: the runtime command line (runs on the Pi, never imports TensorFlow).

Each subcommand lives in ``edge_monitor/commands/<name>.py`` and exposes
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` (the
exit status). Heavy imports belong inside ``run`` so that ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from edge_monitor import __version__

# command name -> module under edge_monitor.commands
COMMANDS: dict[str, str] = {
    "run": "run",
    "simulate": "simulate",
    "score": "score",
    "devices": "devices",
    "record": "record",
    "check-config": "check_config",
    "learn": "learn",
    "check-mic": "check_mic",
}


def build_parser(prog: str, package: str, commands: dict[str, str], description: str,
                 version: str) -> argparse.ArgumentParser:
    """An argparse parser with one subparser per command module.

    Every module in ``commands`` must import: a missing one is an ImportError at
    start-up (a packaging mistake shows as such, and is not mistaken for a usage
    error, exit 2, that systemd would restart in a loop).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in commands.items():
        module = importlib.import_module(f"{package}.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen fault: one line, never a traceback
        # Exit 1 is restarted by systemd (Restart=on-failure): right for a fault that may pass; faults
        # a restart cannot fix are caught where they happen and exit 78 (EX_CONFIG).
        if os.environ.get("EDGE_MONITOR_TRACEBACK"):
            raise
        from edge_monitor.commands.common import fail

        return fail(str(args.command), f"{type(exc).__name__}: {exc} (set EDGE_MONITOR_TRACEBACK=1 for the traceback)",
                    1, "unexpected", parser.prog)


def make_parser() -> argparse.ArgumentParser:
    """The ``edge-monitor`` parser with every subcommand."""
    return build_parser(
        "edge-monitor", "edge_monitor.commands", COMMANDS,
        "Listen to a machine, score each window with the model bundle's detectors, alert over MQTT.",
        __version__,
    )


def main(argv: list[str] | None = None) -> int:
    return dispatch(make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
