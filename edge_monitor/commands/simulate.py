"""``edge-monitor simulate``: replay WAV files through the daemon's pipeline."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_monitor.service.protocols import PublisherLike

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
A replay stays a replay: its payloads carry "source": "replay", and it
queues them in an outbox of its own, removed at exit, so messages the broker
did not take are never sent by a later run (the daemon's outbox in state_dir
is not touched). --outbox PATH keeps them in PATH instead, for a later
`simulate --outbox PATH` to deliver.
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
    parser.add_argument("--outbox", type=Path, metavar="PATH", default=None,
                        help="keep undelivered messages in this SQLite outbox (default: one of this run's own, "
                             "removed at exit)")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.replay import ReplaySource, expand_paths
    from edge_monitor.commands.common import config_error, fail
    from edge_monitor.commands.run import prepare, serve_status_page
    from edge_monitor.config.schema import ConfigError
    from edge_monitor.model.model_info import model_info
    from edge_monitor.service.daemon import Daemon, EchoPublisher, NullPublisher, make_publisher

    prepared = prepare(args)
    if isinstance(prepared, int):
        return prepared
    cfg, log = prepared.cfg, prepared.log
    paths = expand_paths(args.inputs)
    if not paths:
        return fail("simulate", "no WAV files found in " + " ".join(args.inputs), EX_NOINPUT)
    with tempfile.TemporaryDirectory(prefix="edge-monitor-replay-") as tmp:
        outbox = args.outbox if args.outbox is not None else Path(tmp) / "outbox.sqlite"
        try:
            inner = (NullPublisher() if args.no_mqtt
                     else make_publisher(cfg, model_info(prepared.bundle), log, outbox=outbox))
            daemon = Daemon(cfg, prepared.scorer, EchoPublisher(inner, sys.stdout), log)
            # An alert or fault a replay leaves open is ended by the next replay on that outbox, never by `run`.
            daemon.keep_notes_in(outbox.parent)
            serve_status_page(daemon, cfg, log)
        except ConfigError as exc:  # includes MqttConfigError: an unreadable mqtt.password_file (never the password)
            return config_error("simulate", exc)
        daemon.install_signal_handlers()
        source = ReplaySource(paths, daemon.model_rate, daemon.windowing, log, fast=args.fast, loop=args.loop,
                              block_seconds=cfg.audio.block_seconds)
        status = daemon.run(source)
        if not args.no_mqtt and cfg.mqtt.enabled:
            _report_undelivered(inner, outbox, kept=args.outbox is not None)
    if source.samples_played == 0 and source.files_skipped > 0:
        return fail("simulate", "none of the files could be read", EX_NOINPUT)
    return status


def _report_undelivered(publisher: PublisherLike, outbox: Path, kept: bool) -> None:
    """One line on stderr when the broker did not take every alert or sensor event of this replay."""
    try:
        depth = publisher.stats().get("outbox_depth")  # still answers after stop()
        left = depth if isinstance(depth, int) else 0
    except Exception:  # noqa: BLE001 - the publisher has already reported its own trouble
        return
    if left:
        what = f"kept in {outbox}" if kept else "discarded with this replay's outbox (--outbox PATH keeps them)"
        from edge_monitor.commands.common import error_line

        print(error_line("simulate", f"{left} replay message(s) not delivered to the broker, {what}"), file=sys.stderr)
