"""The state folder at start-up: a fault a restart cannot fix is a config error; a full disk is not.

``state_dir`` holds the outbox, the open-alert and open-sensor-event notes and the evidence. Two
kinds of trouble look alike at ``mkdir`` and must be told apart for systemd:

* the folder cannot be one: the path names a file, lies under ``/proc``, or
  this user may not write there (a read-only filesystem included). Restarting
  changes nothing, so this is a :class:`~edge_monitor.config.schema.ConfigError`
  (exit 78, one line, no restart loop);
* the disk is full or failing (``ENOSPC``, ``EIO``, ``EDQUOT``): that can pass,
  and the daemon must keep monitoring meanwhile, so it is logged and the
  outbox runs from memory (:mod:`edge_monitor.publish.storage`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from edge_monitor.config.schema import ConfigError

__all__ = ["TRANSIENT_ERRNOS", "prepare_state_dir"]

#: Disk errors that may pass (space freed, a card that recovers): never a reason to exit.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.ENOMEM, errno.EAGAIN})


def prepare_state_dir(path: Path, log: FilteringBoundLogger) -> None:
    """Create ``path`` if needed; ``ConfigError`` when it can never be used, a logged error when it may recover."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{path}: exists and is not a folder", key="state_dir") from None
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            log.error("state_dir cannot be created now; alerts are kept in memory until it can",
                      state_dir=str(path), error=exc.strerror or str(exc))
            return
        raise ConfigError(f"{path}: cannot create the folder: {exc.strerror or exc}", key="state_dir") from None
    if not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder", key="state_dir")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: not writable by this user (uid {os.geteuid()}) or on a read-only filesystem",
                          key="state_dir")
