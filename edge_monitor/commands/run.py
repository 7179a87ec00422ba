"""``edge-monitor run``: listen to the microphone and alert, until stopped."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from edge_monitor.config.schema import Config
    from edge_monitor.model.bundle import ModelBundle
    from edge_monitor.model.scorer import Scorer
    from edge_monitor.service.daemon import Daemon
    from edge_monitor.service.protocols import Logger

HELP = "listen to the microphone, score every window, publish alerts (the daemon)"
DESCRIPTION = """\
Run the monitor: capture from the configured input device, score a window of
the model's length every audio.hop_seconds, decide (k of n windows above the
threshold opens an alert, clear_windows below the clear level close it;
see deploy/config.example.yaml) and publish alerts, scores and health over MQTT.
With an http: section in the config it also serves a read-only status page,
/api/status, Prometheus /metrics and the evidence WAVs (127.0.0.1:8088 by
default; a LAN address needs http.token_env; docs/raspberry-pi.md section 11).

Exit status: 0 after SIGTERM/SIGINT (the window in flight is finished and the
outbox flushed), 78 for a bad configuration or model (systemd does not
restart on 78), 1 for anything unexpected. A start-up error is one line on
stderr. Logs go to stdout (journald under systemd): human-readable on a
terminal, JSON lines otherwise (or with --log-format json).
"""


def add_common(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    parser.add_argument("--config", "-c", required=config_required, metavar="C.yaml",
                        help="configuration file (see deploy/config.example.yaml)")
    parser.add_argument("--log-format", choices=("auto", "console", "json"), default=None,
                        help="log format (default: the config's logging.format, 'auto' = console on a TTY)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None,
                        help="log level (debug: one line per window)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)


def _command(args: argparse.Namespace) -> str:
    """The subcommand being run (``run`` or ``simulate``), for the error line."""
    return str(getattr(args, "command", None) or "run")


@dataclass(frozen=True)
class Prepared:
    """What ``run`` and ``simulate`` start from: the config, the logger, the model and its scorer."""

    cfg: Config
    log: Logger
    bundle: ModelBundle
    scorer: Scorer


def prepare(args: argparse.Namespace, log_stream: TextIO | None = None) -> Prepared | int:
    """Config, logger, bundle and scorer for ``args``; an exit status on failure (one line on stderr).

    Logs go to ``log_stream`` (default stderr, keeping stdout for command output).
    """
    from edge_monitor.commands.common import config_error
    from edge_monitor.config.checks import check_runtime
    from edge_monitor.config.loader import key_location, load_config
    from edge_monitor.config.schema import ConfigError
    from edge_monitor.model.bundle import BundleError, load_bundle
    from edge_monitor.model.scorer import Scorer
    from edge_monitor.service import logs

    try:
        cfg = load_config(args.config)
        check_runtime(cfg)  # the same start-up checks as check-config (edge_monitor.config.checks)
    except ConfigError as exc:
        return config_error(_command(args), exc)
    logs.configure(args.log_level or cfg.logging.level, args.log_format or cfg.logging.format, stream=log_stream)
    log = logs.get_logger("edge_monitor.service.daemon")
    try:
        bundle = load_bundle(cfg.model)
        scorer = Scorer(bundle, num_threads=cfg.num_threads)
    except BundleError as exc:
        # Once, on stderr (not also as a log line), with the config line that named the model.
        return config_error(_command(args), f"{key_location(cfg, 'model')}: {exc}", "model")
    log.info("model loaded", path=str(bundle.path), sha256=bundle.sha256[:12], machine=bundle.machine,
             threshold=bundle.threshold, backend=scorer.backend)
    return Prepared(cfg, log, bundle, scorer)


def serve_status_page(daemon: Daemon, cfg: Config, log: Logger) -> None:
    """With an ``http:`` section, add the status page and ``/metrics`` to the daemon's observers.

    The page reads the daemon only through its read-only view (``edge_monitor.web.view.DaemonView``).
    Raises ``ConfigError`` when ``http.token_env`` names an unset variable.
    """
    if cfg.http is None:
        return
    from edge_monitor.web.server import attach  # loads only when configured

    daemon.observers.append(attach(daemon, cfg.http, log, str(cfg.source) if cfg.source else None))


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.capture import MicrophoneSource
    from edge_monitor.commands.common import config_error
    from edge_monitor.config.schema import ConfigError
    from edge_monitor.model.model_info import model_info
    from edge_monitor.service.daemon import Daemon, make_publisher

    # The service logs to stdout, which systemd hands to journald; `run` prints nothing else there.
    prepared = prepare(args, log_stream=sys.stdout)
    if isinstance(prepared, int):
        return prepared
    cfg, log = prepared.cfg, prepared.log
    try:
        publisher = make_publisher(cfg, model_info(prepared.bundle), log)
        daemon = Daemon(cfg, prepared.scorer, publisher, log)
        serve_status_page(daemon, cfg, log)
    except ConfigError as exc:  # includes MqttConfigError: an unreadable mqtt.password_file (never the password)
        return config_error("run", exc)
    daemon.install_signal_handlers()
    source = MicrophoneSource(cfg.audio, daemon.model_rate, daemon.windowing, log)
    return daemon.run(source)
