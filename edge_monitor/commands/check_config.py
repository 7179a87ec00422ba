"""``edge-monitor check-config``: validate a configuration file without running."""

from __future__ import annotations

import argparse
import sys

HELP = "validate a configuration file (exit 0 when valid, 78 otherwise)"
DESCRIPTION = """\
Load and validate a configuration file exactly as `edge-monitor run` does and
print a short summary. An unknown key, a wrong type, an out-of-range value or
bad YAML gives one line naming the file, the line and the key path, and exit
status 78 (EX_CONFIG). With --model the model bundle is loaded and verified too.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="C.yaml", help="configuration file")
    parser.add_argument("--model", action="store_true", help="also load and verify the model bundle")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.config import EX_CONFIG, ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"edge-monitor: config error: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.model:
        from edge_monitor.bundle import BundleError, load_bundle

        try:
            bundle = load_bundle(cfg.model)
        except BundleError as exc:
            print(f"edge-monitor: model error: {exc}", file=sys.stderr)
            return EX_CONFIG
        if cfg.audio.hop_seconds > bundle.features.window_seconds:
            print(f"edge-monitor: config error: {args.config}: audio.hop_seconds: must not exceed the model's "
                  f"window of {bundle.features.window_seconds:g} s, got {cfg.audio.hop_seconds:g}", file=sys.stderr)
            return EX_CONFIG
    d = cfg.decision
    m = cfg.mqtt
    print(f"{args.config}: OK")
    print(f"  device_id  {cfg.device_id}")
    print(f"  model      {cfg.model}")
    print(f"  state_dir  {cfg.state_dir}")
    print(f"  audio      device={cfg.audio.device!r} hop={cfg.audio.hop_seconds:g}s channels={cfg.audio.channels}")
    print(f"  decision   threshold={'bundle' if d.threshold is None else d.threshold} k={d.k} n={d.n} "
          f"clear_windows={d.clear_windows} clear_ratio={d.clear_ratio} cooldown={d.cooldown_seconds:g}s")
    if m.enabled:
        auth = f" user={m.username}" if m.username else ""
        print(f"  mqtt       {m.host}:{m.port} base={m.topic_base(cfg.device_id)} tls={'on' if m.tls else 'off'}{auth}")
    else:
        print("  mqtt       disabled")
    print(f"  evidence   {'on' if cfg.evidence.enabled else 'off'} max={cfg.evidence.max_mb:g} MB in {cfg.evidence_dir}")
    return 0
