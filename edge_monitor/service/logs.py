"""Logging for the daemon and the CLI: structlog, human on a terminal, JSON lines otherwise.

``configure(level, fmt, stream)`` sets it up once per process. Output goes to
stderr by default, so that stdout stays free for command output such as
``simulate``'s alert lines; ``edge-monitor run`` (the service) logs to stdout,
which systemd hands to journald. ``fmt="auto"`` picks a console renderer when
the stream is a TTY and JSON lines otherwise, which is what ``journalctl -o cat``
shows cleanly.

Secrets never reach the output: any event key that looks like a password,
secret or token is replaced by ``"***"`` before rendering.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = ["configure", "get_logger", "redact_secrets", "LEVELS"]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_WORDS = ("password", "passwd", "secret", "token")


def redact_secrets(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """structlog processor: mask the values of secret-looking keys (also one level deep)."""
    for key in list(event):
        if any(w in key.lower() for w in _SECRET_WORDS) and event[key] is not None:
            event[key] = "***"
        elif isinstance(event[key], dict):
            event[key] = {k: ("***" if any(w in str(k).lower() for w in _SECRET_WORDS) and v is not None else v)
                          for k, v in event[key].items()}
    return event


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog for this process.

    Args:
        level: ``debug`` (one line per window), ``info`` (state changes,
            alerts), ``warning`` or ``error``.
        fmt: ``auto``, ``console`` or ``json``.
        stream: where to write (default ``sys.stderr``).
    """
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "edge_monitor") -> FilteringBoundLogger:
    """A bound structlog logger carrying ``logger=name``."""
    logger: FilteringBoundLogger = structlog.get_logger(name).bind(logger=name)
    return logger
