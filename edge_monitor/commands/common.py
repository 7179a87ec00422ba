"""What several subcommands share: the one-line error, in one form for every command.

``<program> <command>: <detail>``, with a category before the detail where it
tells the reader where to look (``config error``, ``model error``)::

    edge-monitor run: config error: /etc/edge-monitor/config.yaml:7: audio.hop_secnds: unknown key; did you mean ...
    edge-monitor score: model error: models/rail: model bundle directory does not exist
    edge-monitor learn: need either --minutes N (record from the microphone) or --from-wav PATH... (not both)
    edge-monitor-train evaluate: data/rail: no clips found ...

Not a subcommand itself (:data:`edge_monitor.cli.COMMANDS` does not list it); the
subcommands import it inside ``run`` so that ``--help`` stays quick.
"""

from __future__ import annotations

import sys

from edge_monitor.config.schema import EX_CONFIG

__all__ = ["error_line", "fail", "config_error"]


def error_line(command: str, detail: BaseException | str, what: str | None = None,
               program: str = "edge-monitor") -> str:
    """``"edge-monitor score: model error: <detail>"`` (``what="model"``) or ``"edge-monitor score: <detail>"``."""
    return f"{program} {command}: {f'{what} error: ' if what else ''}{detail}"


def fail(command: str, detail: BaseException | str, status: int = 1, what: str | None = None,
         program: str = "edge-monitor") -> int:
    """Print :func:`error_line` as one line on stderr and return ``status``."""
    print(error_line(command, detail, what, program), file=sys.stderr, flush=True)
    return status


def config_error(command: str, exc: BaseException | str, what: str = "config") -> int:
    """Print ``edge-monitor <command>: <what> error: <exc>`` as one line on stderr and return 78.

    78 (EX_CONFIG) is in the unit's ``RestartPreventExitStatus=``: systemd shows
    the line instead of restart-looping on a file or model it cannot fix.
    """
    return fail(command, exc, EX_CONFIG, what)
