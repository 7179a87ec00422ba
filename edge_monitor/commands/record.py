"""``edge-monitor record``: record normal-operation clips on site for training."""

from __future__ import annotations

import argparse
import sys
import time

HELP = "record N seconds from the microphone as 10 s training clips"
DESCRIPTION = """\
Record --seconds of audio from the input device and save it as consecutive
clips of --clip-seconds (default 10 s, the model's window) at 16 kHz mono,
16-bit, named normal_id_<ID>_<UTC time>_<n>.wav, the layout the trainer reads
(point --out at <dataset>/train). Record while the machine runs NORMALLY: the
model learns that this is what normal sounds like. Clips are consecutive: no
sample is lost or repeated between them. A partial last clip is dropped.

If the device goes away (unplugged, the audio server stopped), record keeps
trying to reopen it for --give-up-after seconds (default 60), then stops with
one line saying so; the clips saved until then stay.

Exit status: 0 all clips saved; 1 device not found, cannot be opened, or
fewer clips than asked (interrupted); 2 bad arguments; 3 the device stayed
gone past --give-up-after; 78 config error.
"""

EX_DEVICE_GONE = 3  # the device stayed gone past --give-up-after (edge_monitor.audio.recorder.EX_DEVICE_GONE)


def _device(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, required=True, help="total seconds to record")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the clips (created)")
    parser.add_argument("--device", type=_device, default=None,
                        help="input device: name substring or index (default: the config's, else the system default)")
    parser.add_argument("--config", "-c", default=None, help="take audio.* settings from this config")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of the clips in Hz (default 16000)")
    parser.add_argument("--machine-id", default="00", help="the XX in normal_id_XX_* (default 00)")
    parser.add_argument("--give-up-after", type=float, default=60.0, metavar="SECONDS",
                        help="stop (exit status 3) when the device stays gone this long (default 60 s)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge_monitor.audio import audio_io
    from edge_monitor.audio.recorder import (
        DeviceGone,
        Recorder,
        RecordError,
        check_device,
        load_audio,
    )
    from edge_monitor.commands.common import fail
    from edge_monitor.model.conditioning import to_model_audio
    from edge_monitor.service import logs

    if args.seconds <= 0 or args.clip_seconds <= 0 or args.seconds < args.clip_seconds:
        return fail("record", "need --seconds >= --clip-seconds > 0", 2)
    if not args.give_up_after > 0:
        return fail("record", "need --give-up-after > 0", 2)
    try:
        _cfg, audio = load_audio(args.config, args.device)
    except RecordError as exc:
        return fail("record", exc, exc.status)
    try:
        check_device(audio)
    except RecordError as exc:
        return fail("record", exc, exc.status)
    logs.configure("info", "auto")
    log = logs.get_logger("edge_monitor.record")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    want = int(args.seconds // args.clip_seconds)
    saved = 0
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    recorder = Recorder(audio, args.rate, args.clip_seconds, log)
    n = round(args.clip_seconds * args.rate)
    try:
        recorder.start()
    except RecordError as exc:
        return fail("record", exc, exc.status)
    try:
        for win in recorder.windows(want, args.give_up_after):
            path = out / f"normal_id_{args.machine_id}_{stamp}_{saved:04d}.wav"
            mono = to_model_audio(win.raw, win.sample_rate, args.rate, n, audio.channel)  # as the daemon scores it
            audio_io.write_wav(path, mono, args.rate)
            saved += 1
            peak = float(abs(mono).max()) if mono.size else 0.0
            warn = "  CLIPPING?" if peak >= 0.999 else "  SILENT? (check the device and gain)" if peak == 0.0 else ""
            print(f"[{saved}/{want}] {path}  peak {peak:.3f}{warn}", flush=True)
    except DeviceGone as exc:
        return fail("record", f"{exc}; saved {saved} of {want} clip(s) in {out}", exc.status)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        recorder.stop()
    if recorder.xruns:
        print(f"warning: {recorder.xruns} input overflow(s) during recording", file=sys.stderr)
    print(f"saved {saved} clip(s) of {args.clip_seconds:g} s in {out}")
    return 0 if saved == want else 1
