"""``edge-monitor record``: record normal-operation clips on site for training."""

from __future__ import annotations

import argparse
import dataclasses
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

EX_DEVICE_GONE = 3  # the device stayed gone past --give-up-after


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

    from edge_monitor import audio_io, logs
    from edge_monitor.capture import DeviceError, MicrophoneSource, find_input_device
    from edge_monitor.commands.common import config_error
    from edge_monitor.config import AudioConfig, ConfigError, load_config
    from edge_monitor.ring_buffer import RingBuffer

    if args.seconds <= 0 or args.clip_seconds <= 0 or args.seconds < args.clip_seconds:
        print("edge-monitor: need --seconds >= --clip-seconds > 0", file=sys.stderr)
        return 2
    if not args.give_up_after > 0:
        print("edge-monitor: need --give-up-after > 0", file=sys.stderr)
        return 2
    audio = AudioConfig()
    if args.config:
        try:
            audio = load_config(args.config).audio
        except ConfigError as exc:
            return config_error(exc)
    if args.device is not None:
        audio = dataclasses.replace(audio, device=args.device)
    try:
        # Resolve the device first: a wrong name is one clear line (which inputs exist), not a
        # capture warning promising a retry that `record` never makes; and no empty --out is left.
        find_input_device(audio.device)
    except DeviceError as exc:
        print(f"edge-monitor: record: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - PortAudio missing or broken
        print(f"edge-monitor: record: cannot list audio devices: {exc}", file=sys.stderr)
        return 1
    logs.configure("info", "auto")
    log = logs.get_logger("edge_monitor.record")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def make_ring(rate: int, channels: int) -> RingBuffer:
        n = int(round(args.clip_seconds * rate))
        return RingBuffer(n, n, rate, channels)

    source = MicrophoneSource(audio, args.rate, make_ring, log)
    if not source.start():
        print(f"edge-monitor: cannot open the input device: {source.last_error}", file=sys.stderr)
        return 1
    want = int(args.seconds // args.clip_seconds)
    saved = 0
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    gone_since: float | None = None
    gave_up = False
    try:
        while saved < want:
            win = source.ring.read(timeout=0.5) if source.ring is not None else None
            source.poll()
            now = time.monotonic()
            if source.running:
                gone_since = None
            elif gone_since is None:
                gone_since = now
            elif now - gone_since > args.give_up_after:
                name = source.device.name if source.device is not None else audio.device
                print(f"edge-monitor: record: the input device {name!r} has been gone for "
                      f"{now - gone_since:.0f} s (--give-up-after {args.give_up_after:g}): "
                      f"{source.last_error or 'no audio'}; saved {saved} of {want} clip(s) in {out}",
                      file=sys.stderr, flush=True)
                gave_up = True
                break
            if win is None:
                if source.ring is None:
                    time.sleep(0.5)
                continue
            mono = audio_io.downmix(win.samples, audio.channel)
            if win.sample_rate != args.rate:
                mono = audio_io.resample(mono, win.sample_rate, args.rate)[: int(round(args.clip_seconds * args.rate))]
            path = out / f"normal_id_{args.machine_id}_{stamp}_{saved:04d}.wav"
            audio_io.write_wav(path, mono, args.rate)
            saved += 1
            peak = float(abs(mono).max()) if mono.size else 0.0
            warning = "  CLIPPING?" if peak >= 0.999 else "  SILENT? (check the device and gain)" if peak == 0.0 else ""
            print(f"[{saved}/{want}] {path}  peak {peak:.3f}{warning}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        source.stop()
    if not gave_up and source.ring is not None and source.ring.xruns:
        print(f"warning: {source.ring.xruns} input overflow(s) during recording", file=sys.stderr)
    if gave_up:
        return EX_DEVICE_GONE
    print(f"saved {saved} clip(s) of {args.clip_seconds:g} s in {out}")
    return 0 if saved == want else 1
