"""``edge-monitor simulate``: replay WAV files through the daemon's pipeline."""

from __future__ import annotations

import argparse
import sys

HELP = "replay WAV files through the full pipeline (real time, or --fast)"
DESCRIPTION = """\
Replay WAV files (or every *.wav under the folders given) through exactly the
pipeline of `edge-monitor run`: ring buffer, sensor checks, scoring, decision,
evidence, MQTT. Files play back to back as one continuous stream, in real
time by default, or as fast as they can be scored with --fast. Files of any
rate, width or channel count are accepted; an unreadable file is reported and
skipped.

Each alert and sensor event is also printed on stdout as one JSON line
({"topic": "alert", ...}); logs go to stderr. --no-mqtt skips the broker.
Window times are stream times: the start of the run plus the audio played.
With an http: section in the config the status page and /metrics are served
while the replay runs, exactly as under `run` (with --loop, until stopped).

Exit status: 0 when the files were played (or after SIGTERM/SIGINT), 66
(EX_NOINPUT) when no WAV file was found or none could be read, 78 for a bad
configuration or model, 1 for anything unexpected.
"""

EX_NOINPUT = 66  # sysexits.h: no input file could be used


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge_monitor.commands.run import add_common

    add_common(parser)
    parser.add_argument("inputs", nargs="+", metavar="WAV_OR_DIR", help="WAV files or folders of them")
    parser.add_argument("--fast", action="store_true", help="as fast as possible instead of real time")
    parser.add_argument("--loop", action="store_true", help="start again after the last file (until stopped)")
    parser.add_argument("--no-mqtt", action="store_true", help="do not connect to the broker; print events only")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.replay import ReplaySource, expand_paths
    from edge_monitor.commands.common import config_error
    from edge_monitor.commands.run import prepare
    from edge_monitor.config.schema import ConfigError
    from edge_monitor.model.model_info import model_info
    from edge_monitor.service.daemon import Daemon, EchoPublisher, NullPublisher, make_publisher

    prepared = prepare(args)
    if isinstance(prepared, int):
        return prepared
    cfg, log, bundle, scorer = prepared
    paths = expand_paths(args.inputs)
    if not paths:
        print("edge-monitor: no WAV files found in " + " ".join(args.inputs), file=sys.stderr)
        return EX_NOINPUT
    try:
        inner = NullPublisher() if args.no_mqtt else make_publisher(cfg, model_info(bundle), log)
        daemon = Daemon(cfg, scorer, EchoPublisher(inner, sys.stdout), log)
    except ConfigError as exc:  # includes MqttConfigError: an unreadable mqtt.password_file (never the password)
        return config_error(exc)
    daemon.install_signal_handlers()
    source = ReplaySource(paths, daemon.model_rate, daemon.make_ring, log, fast=args.fast, loop=args.loop,
                          block_seconds=cfg.audio.block_seconds)
    status = daemon.run(source)
    if source.samples_played == 0 and source.files_skipped > 0:
        print("edge-monitor: none of the files could be read", file=sys.stderr)
        return EX_NOINPUT
    return status
