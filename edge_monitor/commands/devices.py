"""``edge-monitor devices``: list the audio input devices PortAudio sees."""

from __future__ import annotations

import argparse
import json

HELP = "list audio input devices with their default sample rates"
DESCRIPTION = """\
List every input device PortAudio sees: index, name, host API, input channels
and default sample rate, with '*' on the system default. Use a distinctive part
of the name as audio.device in the config (indices change when USB devices come
and go). 'ok16k' says whether the device accepts 16 kHz directly (otherwise the
daemon captures at the default rate and resamples).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:

    from edge_monitor.audio.capture import choose_sample_rate, list_input_devices
    from edge_monitor.commands.common import fail

    try:
        devices = list_input_devices()
    except Exception as exc:  # noqa: BLE001 - PortAudio missing or broken
        return fail("devices", f"cannot list audio devices: {exc}")
    rows: list[dict[str, object]] = []
    for d in devices:
        ok16k = choose_sample_rate(d, 1, 16000) == 16000
        rows.append({"index": d.index, "name": d.name, "hostapi": d.hostapi, "channels": d.max_input_channels,
                     "default_samplerate": d.default_samplerate, "ok16k": ok16k, "default": d.is_default})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no input devices found")
        return 1
    print(f"{'':1} {'idx':>3}  {'name':40} {'host api':12} {'ch':>3} {'rate':>7} ok16k")
    for r in rows:
        print(f"{'*' if r['default'] else ' '} {r['index']:>3}  {str(r['name'])[:40]:40} {str(r['hostapi'])[:12]:12} "
              f"{r['channels']:>3} {r['default_samplerate']:>7.0f} {'yes' if r['ok16k'] else 'no'}")
    return 0
