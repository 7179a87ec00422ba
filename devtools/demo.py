"""The end-to-end demo behind ``make demo``.

Runs the same commands a user would, printing each one first::

    edge-monitor-train synth     -> a synthetic slide-rail dataset (DCASE layout)
    edge-monitor-train train     -> a model bundle (model.json + detectors.npz)
    edge-monitor-train evaluate  -> metrics table + an HTML report
    edge-monitor simulate        -> normal, then anomalous, then normal audio streamed
                                    through the daemon; alerts printed as an MQTT
                                    subscriber receives them

Everything lands in ``demo-out/`` (or ``--out``). A local broker is started
for the streaming step: mosquitto when installed (installed with apt when run
as root), otherwise an embedded one (amqtt).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
import wave
from pathlib import Path

BIN = Path(sys.executable).parent


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _run(cmd: list[str], stdout: Path | None = None) -> None:
    shown = [Path(cmd[0]).name, *cmd[1:]]
    print("$ " + shlex.join(shown) + (f" > {stdout}" if stdout else ""), flush=True)
    if stdout is None:
        subprocess.run(cmd, check=True)
    else:
        with stdout.open("w") as fh:
            subprocess.run(cmd, check=True, stdout=fh)


def _seconds(wav: Path) -> float:
    """Length of a WAV file (s)."""
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def _config_yaml(out: Path, model: Path, port: int) -> Path:
    cfg = out / "config.yaml"
    cfg.write_text(
        "# Written by the demo: the daemon's config for the streaming step.\n"
        "device_id: demo-rail\n"
        f"model: {model.resolve()}\n"
        f"state_dir: {(out / 'state').resolve()}\n"
        "audio:\n"
        "  hop_seconds: 10\n"
        "decision:\n"
        "  threshold: null\n"
        "  k: 2\n"
        "  n: 3\n"
        "  clear_windows: 3\n"
        "mqtt:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  base_topic: edge-monitor/demo-rail\n"
        "  discovery: true\n"
        "evidence: {enabled: true, max_mb: 50}\n"
    )
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=40, help="normal training clips per machine id")
    args = parser.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    data, model, report = out / "data", out / "model", out / "report"
    train_cli, runtime_cli = str(BIN / "edge-monitor-train"), str(BIN / "edge-monitor")
    t0 = time.monotonic()

    _banner("1/4  Synthesize slide-rail audio (normal training clips; normal and faulty test clips)")
    _run([train_cli, "synth", str(data), "--seed", str(args.seed), "--train", str(args.train),
          "--test-normal", "12", "--test-anomaly", "12"])

    _banner("2/4  Fit the detectors on normal sound only (no faults needed)")
    _run([train_cli, "train", str(data / "slider"), "--out", str(model), "--seed", str(args.seed)])

    _banner("3/4  Evaluate on held-out normal and anomalous clips (the daemon's scorer)")
    _run([train_cli, "evaluate", str(model), str(data / "slider"), "--out", str(report)])

    _banner("4/4  Stream audio through the daemon; alerts arrive over MQTT")
    from devtools.broker import AlertPrinter, start_broker

    test_dir = data / "slider" / "test"
    normals = sorted(test_dir.glob("normal_id_00_*.wav"))
    anomalies = sorted(test_dir.glob("anomaly_id_00_*.wav"))
    stream = normals[:4] + anomalies[:6] + normals[4:8]
    print(f"stream: {4} normal, {len(anomalies[:6])} anomalous, then {len(normals[4:8])} normal clips of machine id_00")
    broker = start_broker()
    print(f"broker: {broker.kind} on {broker.host}:{broker.port}")
    try:
        cfg = _config_yaml(out, model, broker.port)
        events = out / "simulate-events.jsonl"
        print("Lines below marked ALERT/SENSOR are printed by an MQTT subscriber as messages arrive:")
        with AlertPrinter(broker.host, broker.port, "edge-monitor/demo-rail") as printer:
            _run([runtime_cli, "simulate", "--config", str(cfg), "--fast", "--log-level", "warning",
                  *map(str, stream)], stdout=events)
            time.sleep(1.0)  # let the last messages reach the subscriber
        n_alerts = sum(1 for topic, _ in printer.received if topic.endswith("/alert"))
    finally:
        broker.stop()
    if n_alerts:
        played = sum(_seconds(p) for p in stream)
        print(f"note: evidence WAVs are named by stream time, the replay's own clock: it starts at the wall clock "
              f"and --fast runs it ahead by the audio played ({played:.0f} s here), so an evidence name can be "
              f"up to {played:.0f} s later than the alert's wall-clock time above.")

    _banner("Done")
    print(f"alert messages received over MQTT: {n_alerts}")
    print(f"report:  {(report / 'index.html').resolve()}")
    print(f"bundle:  {model.resolve()}")
    print(f"took {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
