"""``edge-monitor check-mic``: listen a few seconds and say whether the microphone is placed and set right."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

HELP = "listen N seconds and judge the microphone: level, peak, clipping, noise floor, bands, verdict"
DESCRIPTION = """\
Listen for --seconds (default 10) on the input device (the config's
audio.device, or --device, or the system default) while the machine runs, and
print:

  level        RMS level in dBFS (a full-scale sine is -3 dBFS)
  peak         the largest sample in dBFS
  clipping     share of samples at full scale
  noise floor  10th percentile of the RMS of 0.1 s blocks (the quiet moments)
  strongest    the loudest octave bands
  verdict      "OK", "too quiet: move closer or raise gain", "clipping: lower
               the gain", "very loud: ...", or "no signal: ..."

--json prints the same as one JSON object. The daemon's status page shows the
same numbers for every window while it runs (http: in the config).

Exit status: 0 verdict OK; 4 the verdict asks for a change; 1 the device
cannot be found or opened, or gave no audio; 2 bad arguments; 78 config error.
"""

EX_ADJUST = 4  # the microphone works but its placement or gain should change


def _device(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds to listen (default 10)")
    parser.add_argument("--device", type=_device, default=None,
                        help="input device: name substring or index (default: the config's, else the system default)")
    parser.add_argument("--config", "-c", default=None, help="take audio.* settings from this config")
    parser.add_argument("--rate", type=int, default=16000,
                        help="sample rate to ask for in Hz (default 16000, the model's); the device's own "
                             "rate is used when it refuses it")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.capture import DeviceError, MicrophoneSource, find_input_device
    from edge_monitor.audio.mic_check import analyse
    from edge_monitor.audio.ring_buffer import Windowing
    from edge_monitor.commands.common import config_error, fail
    from edge_monitor.config.loader import load_config
    from edge_monitor.config.schema import AudioConfig, ConfigError
    from edge_monitor.service import logs

    if not 0.5 <= args.seconds <= 3600:
        return fail("check-mic", "need 0.5 <= --seconds <= 3600", 2)
    audio = AudioConfig()
    if args.config:
        try:
            audio = load_config(args.config).audio
        except ConfigError as exc:
            return config_error("check-mic", exc)
    if args.device is not None:
        audio = dataclasses.replace(audio, device=args.device)
    try:
        device = find_input_device(audio.device)
    except DeviceError as exc:
        return fail("check-mic", exc)
    except Exception as exc:  # noqa: BLE001 - PortAudio missing or broken
        return fail("check-mic", f"cannot list audio devices: {exc}")
    logs.configure("warning", "auto", stream=sys.stderr)
    log = logs.get_logger("edge_monitor.check_mic")

    source = MicrophoneSource(audio, args.rate, Windowing(args.seconds, args.seconds), log)
    if not source.start():
        return fail("check-mic", f"cannot open {device.name!r}: {source.last_error}")
    if not args.json:
        print(f"listening {args.seconds:g} s on {device.name!r} ...", file=sys.stderr, flush=True)
    win = None
    deadline = time.monotonic() + args.seconds + max(10.0, audio.stall_seconds * 2)
    try:
        while win is None and time.monotonic() < deadline:
            win = source.read(timeout=0.5)
            source.poll()
    except KeyboardInterrupt:
        return 130
    finally:
        source.stop()
    if win is None:
        return fail("check-mic", f"no audio from {device.name!r} within {args.seconds:g} s "
                    f"({source.last_error or 'the stream delivered nothing'})")
    report = analyse(win.samples, win.sample_rate)
    if args.json:
        print(json.dumps({"device": device.name, "xruns": int(win.xruns), **report.to_dict()}))
    else:
        print(f"device       {device.name} ({win.sample_rate} Hz, {win.samples.shape[1]} channel(s))")
        for line in report.lines():
            print(line)
        if win.xruns:
            print(f"warning: {win.xruns} input overflow(s) while listening", file=sys.stderr)
    return 0 if report.verdict == "ok" else EX_ADJUST
