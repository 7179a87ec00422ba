"""``edge-monitor score MODEL_DIR FILE.wav...``: score WAV files with a bundle, print the verdicts."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict

if TYPE_CHECKING:
    import numpy as np

    from edge_monitor.decide.explain import BundleExplainer
    from edge_monitor.model.scorer import ClipScore

HELP = "score WAV files with a model bundle and print score, threshold and verdict"
DESCRIPTION = """\
Score each WAV file with the bundle's detectors, exactly as the daemon scores
a window, and print one row per file: the score (the mean over the file's
windows, 10 s by default, of the window score: the fused detector score, or the
reconstruction error of an autoencoder-only bundle), the bundle's threshold and
the verdict (ANOMALY when score > threshold). Files of another sample rate are resampled,
stereo is averaged, a clip longer than one window is scored window by window.

A file that cannot be read gets one error line on stderr; the other files are
still scored. Exit status: 0 when every file was scored, 1 when any file (or
the model bundle) could not be used.

examples:
  edge-monitor score /var/lib/edge-monitor/model clip1.wav clip2.wav
  edge-monitor score model/ evidence/*.wav --json --explain
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="model bundle directory")
    parser.add_argument("files", metavar="FILE.wav", nargs="+", type=Path, help="WAV files to score")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="json", action="store_const", const="lines", default=None,
                     help='JSON lines: one object per file, printed as each file is scored ({"file", "score", '
                          '"threshold", "verdict", "windows", "window_scores"}; an unreadable file gives '
                          '{"file", "error"})')
    fmt.add_argument("--json-array", dest="json", action="store_const", const="array",
                     help="one JSON array of the same objects, printed at the end")
    parser.add_argument("--explain", action="store_true",
                        help="explain what stands out in each file's highest-scoring window: kind (tonal, "
                             "impact, broadband, level_shift, none), frequency range, period, level change "
                             "and a sentence")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="TFLite interpreter threads of an autoencoder (default 1)")


# One scored file, as ``--json`` prints it. The functional form because some keys are read only by
# the JSON's consumers, which a dead-code check cannot see.
_Scored = TypedDict("_Scored", {  # noqa: UP013
    "file": str, "score": float, "threshold": float, "verdict": str, "windows": int, "window_scores": list[float],
    "detector_scores": NotRequired[dict[str, float]], "fired": NotRequired[list[str]],
    "explanation": NotRequired[dict[str, str | float | None]],
})


class _Failed(TypedDict):
    """A file that could not be scored."""

    file: str
    error: str


def _row(path: Path, clip: ClipScore, threshold: float, explainer: BundleExplainer | None,
         windows: list[np.ndarray] | None = None) -> _Scored:
    scores = [w.score for w in clip.windows]
    row: _Scored = {
        "file": str(path),
        "score": float(clip.score),
        "threshold": float(threshold),
        "verdict": "anomaly" if clip.score > threshold else "normal",
        "windows": len(scores),
        "window_scores": [float(s) for s in scores],
    }
    if len(clip.windows[0].detector_scores) > 1:
        # Each detector's own (raw) clip score next to the fused one; the fired detector per window.
        row["detector_scores"] = {n: clip.detector_score(n) for n in clip.windows[0].detector_scores}
        row["fired"] = [w.detector for w in clip.windows]
    if explainer is not None:
        k = max(range(len(scores)), key=scores.__getitem__)
        # The window's own samples: exact levels and reliable impacts (the model input is clipped).
        samples = windows[k] if windows is not None and len(windows) == len(scores) else None
        row["explanation"] = explainer(clip.windows[k], samples=samples).to_dict()
    return row


def _table(rows: list[_Scored], explain: bool) -> str:
    header = ["FILE", "SCORE", "THRESHOLD", "VERDICT", "WINDOWS"]
    body = [[r["file"], f"{r['score']:.6g}", f"{r['threshold']:.6g}", r["verdict"].upper(), str(r["windows"])]
            for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    out = [line(header)]
    for r, cells in zip(rows, body):
        out.append(line(cells))
        if explain and "explanation" in r:
            out.append(f"    {r['explanation']['text']}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from edge_monitor.audio.audio_io import AudioFileError, clip_windows, read_wav
    from edge_monitor.commands.common import fail
    from edge_monitor.model.bundle import BundleError, load_bundle
    from edge_monitor.model.scorer import Scorer

    try:
        bundle = load_bundle(args.model_dir)
        scorer = Scorer(bundle, num_threads=args.threads)
    except BundleError as exc:
        return fail("score", exc, what="model")
    explainer = None
    if args.explain:
        from edge_monitor.decide.explain import BundleExplainer

        try:
            explainer = BundleExplainer.from_bundle(bundle)
        except ValueError as exc:
            return fail("score", f"cannot explain with this bundle: {exc}", what="model")

    rows: list[_Scored | _Failed] = []
    failed = 0
    for path in args.files:
        try:
            samples = read_wav(path, sample_rate=bundle.features.sample_rate)
            try:
                clip = scorer.score_clip(samples)
            except ValueError as exc:  # a clip under half a window
                raise AudioFileError(path, str(exc)) from None
            if not math.isfinite(clip.score):
                raise AudioFileError(path, f"score is not finite ({clip.score}): the model's output is broken")
            # The same windows score_clip scored (audio_io.clip_windows), for the explanation.
            windows = clip_windows(samples, scorer.window_samples) if explainer is not None else None
            row: _Scored | _Failed = _row(path, clip, scorer.threshold, explainer, windows)
        except (AudioFileError, OSError) as exc:
            failed += 1
            message = str(exc) if isinstance(exc, AudioFileError) else f"{path}: {exc.strerror or exc}"
            fail("score", message, what="audio")
            row = {"file": str(path), "error": message}
        rows.append(row)
        if args.json == "lines":  # streamed, so a long list shows progress
            print(json.dumps(row), flush=True)
    if args.json == "array":
        print(json.dumps(rows, indent=2))
    elif args.json is None:
        scored = [r for r in rows if "error" not in r]
        if scored:
            print(_table(scored, args.explain))
    return 1 if failed else 0
