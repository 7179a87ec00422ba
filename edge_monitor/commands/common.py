"""What several ``edge-monitor`` subcommands share: the one-line fatal error.

Not a subcommand itself (:data:`edge_monitor.cli.COMMANDS` does not list it); the
subcommands import it inside ``run`` so that ``--help`` stays quick.
"""

from __future__ import annotations

import sys

from edge_monitor.config.schema import EX_CONFIG


def config_error(exc: BaseException | str, what: str = "config") -> int:
    """Print ``edge-monitor: <what> error: <exc>`` as one line on stderr and return 78.

    78 (EX_CONFIG) is in the unit's ``RestartPreventExitStatus=``: systemd shows
    the line instead of restart-looping on a file or model it cannot fix.
    """
    print(f"edge-monitor: {what} error: {exc}", file=sys.stderr, flush=True)
    return EX_CONFIG
