"""Compare two ``edge-monitor score --json`` outputs (x86 and emulated arm64) file by file.

    python .ci/arm64_compare.py x86.jsonl arm64.jsonl [--rtol 1e-5] [--label arm64-py3.11]

Both outputs are JSON lines, one object per WAV, keyed by ``"file"``. Every
field present on either side is compared: numbers (also inside lists and
nested objects) must agree within ``rtol`` relative (``|a - b| <= rtol *
max(|a|, |b|)``; exact zeros must be zeros), everything else must be equal.
A fused bundle's ``score`` and ``window_scores`` are standardised (z) values
that may sit near zero, where a relative difference means nothing: there the
bound is ``rtol * max(|a|, |b|, 1)`` (1e-5 of a normal standard deviation);
the detectors' own scores (``detector_scores``: MSE, distances) are held to the
plain relative bound.
The keys are read from the output itself, so fields the scorer adds later are
checked too. Prints each file's ``score`` side by side and every mismatch;
exit status 1 on any mismatch or missing file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterator


def load(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"{path}:{n}: not a JSON line ({exc}): {line[:120]}")
        rows[Path(obj["file"]).name] = obj
    return rows


#: Fields holding fused (standardised) scores when the row has ``detector_scores``.
FUSED_FIELDS = ("score", "window_scores")


def diffs(a: Any, b: Any, rtol: float, where: str, floor: float = 0.0) -> Iterator[str]:
    """Every place where ``a`` and ``b`` differ beyond ``rtol``, as ``where: a vs b`` lines.

    ``floor``: the smallest magnitude the relative bound is taken of (1 for standardised scores).
    """
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        if a != b:
            yield f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not (math.isfinite(a) and math.isfinite(b)):
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                yield f"{where}: {a!r} vs {b!r}"
        elif abs(a - b) > rtol * max(abs(a), abs(b), floor):
            yield f"{where}: {a!r} vs {b!r} (relative {abs(a - b) / max(abs(a), abs(b), floor, 1e-300):.2e})"
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from diffs(x, y, rtol, f"{where}[{i}]", floor)
    elif isinstance(a, dict) and isinstance(b, dict):
        fused = "detector_scores" in a and "detector_scores" in b
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield f"{where}.{key}: only in {'x86' if key in a else 'arm64'}"
            elif key != "file":
                yield from diffs(a[key], b[key], rtol, f"{where}.{key}",
                                 1.0 if fused and key in FUSED_FIELDS else floor)
    elif a != b:
        yield f"{where}: {a!r} vs {b!r}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("x86", type=Path)
    ap.add_argument("arm64", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance on every number (default 1e-5)")
    ap.add_argument("--label", default="arm64", help="column title of the second output")
    args = ap.parse_args(argv)

    x86, arm = load(args.x86), load(args.arm64)
    problems: list[str] = []
    print(f"{'file':<34} {'x86 score':>20} {args.label + ' score':>20} {'relative diff':>14}")
    for name in sorted(set(x86) | set(arm)):
        a, b = x86.get(name), arm.get(name)
        if a is None or b is None:
            problems.append(f"{name}: scored only on {'x86' if b is None else args.label}")
            continue
        sa, sb = a.get("score"), b.get("score")
        rel = (abs(sa - sb) / max(abs(sa), abs(sb), 1e-300)
               if isinstance(sa, (int, float)) and isinstance(sb, (int, float)) else float("nan"))
        print(f"{name:<34} {sa!s:>20} {sb!s:>20} {rel:>14.2e}")
        for det, da in (a.get("detector_scores") or {}).items():
            db = (b.get("detector_scores") or {}).get(det)
            if isinstance(da, (int, float)) and isinstance(db, (int, float)):
                r = abs(da - db) / max(abs(da), abs(db), 1e-300)
                print(f"{'  detector ' + det:<34} {da!s:>20} {db!s:>20} {r:>14.2e}")
        problems += [f"{name}{d}" for d in diffs(a, b, args.rtol, "")]
    if not x86:
        problems.append(f"{args.x86}: no scores")
    for p in problems:
        print(f"MISMATCH {p}", file=sys.stderr)
    fields = sorted({k for row in x86.values() for k in row})
    print(f"{len(x86)} files, fields compared: {', '.join(fields)}; tolerance {args.rtol:g} relative: "
          + ("all equal" if not problems else f"{len(problems)} mismatch(es)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
