"""``edge-monitor check-config``: check a configuration file and its model as ``run`` would, without running."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_monitor.audio.capture import InputDevice
    from edge_monitor.config.schema import Config
    from edge_monitor.model.bundle import ModelBundle

HELP = "validate a configuration file and its model bundle (exit 0 when valid, 78 otherwise)"
DESCRIPTION = """\
Check a configuration file the way `edge-monitor run` does at start-up,
without capturing audio or connecting to the broker: the YAML (unknown keys,
types, ranges), the model bundle it names (the folder exists, model.json's
schema and feature parameters, model.tflite's checksum, an interpreter can be
created with the model's input shape, the hop fits the model's window) and the
MQTT password file. With --device-check, the audio.device name must also
resolve to an input device.

Prints a short summary and exits 0 when all is well; otherwise one line on
stderr naming the file, the line and the key path (or the model file and what
is wrong with it), and exit status 78 (EX_CONFIG).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="C.yaml", help="configuration file")
    parser.add_argument("--device-check", action="store_true",
                        help="also resolve audio.device to an input device (needs PortAudio and the device)")
    # The model is always checked; --model (named by the README and by `learn`) says so explicitly.
    parser.add_argument("--model", action="store_true",
                        help="check the model bundle too (always done; accepted so that scripts can say so)")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.commands.common import config_error
    from edge_monitor.config.checks import check_runtime
    from edge_monitor.config.loader import check_hop_fits, key_location, load_config
    from edge_monitor.config.schema import ConfigError
    from edge_monitor.model.bundle import BundleError, load_bundle
    from edge_monitor.model.scorer import Scorer

    try:
        cfg = load_config(args.config)
        check_runtime(cfg)  # folders, password and TLS files, token: what `run` checks at start-up too
    except ConfigError as exc:
        return config_error("check-config", exc)
    try:
        bundle = load_bundle(cfg.model)  # schema, feature parameters, checksum
        scorer = Scorer(bundle, num_threads=cfg.num_threads)  # the interpreter and its input shape
    except BundleError as exc:
        return config_error("check-config", f"{key_location(cfg, 'model')}: {exc}", "model")
    try:
        check_hop_fits(cfg, bundle.features.window_seconds)
    except ConfigError as exc:
        return config_error("check-config", exc)
    device = None
    if args.device_check:
        from edge_monitor.audio.capture import find_input_device

        try:
            device = find_input_device(cfg.audio.device)
        except Exception as exc:  # noqa: BLE001 - DeviceError, or PortAudio missing or broken
            return config_error("check-config", f"{args.config}: audio.device: {exc}")
    _summary(args.config, cfg, bundle, scorer.backend, device)
    return 0


def _summary(path: str, cfg: Config, bundle: ModelBundle, backend: str, device: InputDevice | None) -> None:
    d, m = cfg.decision, cfg.mqtt
    print(f"{path}: OK")
    print(f"  device_id  {cfg.device_id}")
    print(f"  model      {cfg.model} (sha256 {bundle.sha256[:12]}, {backend}, threshold {bundle.threshold:.6g})")
    print(f"  state_dir  {cfg.state_dir}")
    found = f" -> {device.index}: {device.name}" if device is not None else ""
    print(f"  audio      device={cfg.audio.device!r}{found} hop={cfg.audio.hop_seconds:g}s "
          f"channels={cfg.audio.channels}")
    print(f"  decision   threshold={'bundle' if d.threshold is None else d.threshold} k={d.k} n={d.n} "
          f"clear_windows={d.clear_windows} clear_ratio={d.clear_ratio} cooldown={d.cooldown_seconds:g}s")
    if m.enabled:
        auth = f" user={m.username}" if m.username else ""
        print(f"  mqtt       {m.host}:{m.port} base={m.topic_base(cfg.device_id)} tls={'on' if m.tls else 'off'}{auth}")
    else:
        print("  mqtt       disabled")
    evidence = "on" if cfg.evidence.enabled else "off"
    print(f"  evidence   {evidence} max={cfg.evidence.max_mb:g} MB in {cfg.evidence_dir}")
