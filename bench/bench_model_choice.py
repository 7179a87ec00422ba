#!/usr/bin/env python3
"""One fixed recipe, scored on every real and synthetic set we have.

    .venv/bin/python bench/bench_model_choice.py [--out bench/out/model_choice] [--only valve-60,synth]
        [--json FILE] [--recipe default|autoencoder] [--members] [--drop-kinds event_removed] [--defaults]

The recipe is ``edge-monitor-train train``'s default (``TrainConfig()``): the
candidates (level profile, frame Gaussian pooled over the worst frames and over
the whole window, subspace of 5-frame runs) are weighted per machine from
pseudo-anomalies made from the set's own normal training clips, and the threshold is what one false alert per
day allows (``edge_monitor.model.select``, ``edge_monitor.model.threshold``).
No per-set setting: every row uses only the training clips of the set it is
scored on. ``--recipe autoencoder`` adds the autoencoder to the candidates
(the workstation path; minutes per set).

Each bundle is trained with ``trainer.train.train_bundle``, its held-out clips
are scored through the runtime :class:`edge_monitor.model.scorer.Scorer` and
measured with ``trainer.evaluate.compute_metrics`` (the numbers
``edge-monitor-train evaluate`` reports). Datasets:

- ``valve-60``: the real DCASE 2023 valve of ``../shared/data/real-dev/valve``
  (60 normal training clips over two domains; 40 normal + 100 anomalous test
  clips), AUC source / target, pAUC and the DCASE official score;
- ``valve-10``: the same with the few-shot protocol (the first 5 source and the
  first 5 target training clips by name);
- ``synth``: the synthetic slide rail at default severity (3 ids x 40
  training clips, 15 + 15 test clips per id, SNR 6 dB);
- ``synth-hard``: the same machines at SNR -6 dB with severity 0.5;
- ``samples-<type>``: each machine type of ``../shared/data/real-samples/``
  (2-8 clips per id, a few normals held out per id: a sanity check, far too
  few for a meaningful AUC).

``--drop-kinds event_removed`` trains as if the machine had no events to
remove (a steady fan): the choice then rests on the other pseudo-anomaly
kinds only. ``--defaults`` measures fixed weightings of the four NumPy
candidates instead (every weight a multiple of 0.05, at least 0.05): the
mean test AUC over the labelled sets (valve-60, valve-10, synth, synth-hard;
the samples sets are too small to count), which is how
``edge_monitor.model.select.DEFAULT_WEIGHTS`` was chosen.

Columns: AUC, pAUC (FPR <= 0.1), recall / FPR of the clips at the bundle's own
threshold, the chosen detectors with their weights, the cost per window (the
median ``Scorer.score_window`` time: log-mel + the chosen detectors + fusion, one
thread) and the explanation of an alerting window timed apart. Real datasets
are skipped when ``../shared/data`` is absent. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SHARED = REPO.parent / "shared" / "data"

#: recipe name -> the candidates (None: the default ones)
RECIPES: dict[str, tuple[str, ...] | None] = {
    "default": None,
    "autoencoder": ("autoencoder", "profile", "frames", "frames_mean", "subspace"),
}


def log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _link_all(src: Path, dst: Path, names: list[str] | None = None) -> None:
    """Link ``src``'s WAVs (those in ``names``) into ``dst``; links left from another selection are removed."""
    dst.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in src.glob("*.wav") if names is None or p.name in names}
    for link in dst.glob("*.wav"):
        if link.is_symlink() and link.name not in wanted:
            link.unlink()
    for name in sorted(wanted):
        link = dst / name
        if not link.exists():
            link.symlink_to((src / name).resolve())


def datasets(out: Path, only: set[str] | None) -> dict[str, Path]:
    """name -> machine folder; synthetic ones are generated (cached under ``out``)."""
    from trainer.synth import generate_dataset

    found: dict[str, Path] = {}
    valve = SHARED / "real-dev" / "valve"
    if valve.is_dir():
        found["valve-60"] = valve
        few = out / "valve-10" / "valve"
        names = sorted(p.name for p in (valve / "train").glob("*.wav"))
        pick = [n for n in names if "_source_" in n][:5] + [n for n in names if "_target_" in n][:5]
        _link_all(valve / "train", few / "train", pick)
        _link_all(valve / "test", few / "test")
        found["valve-10"] = few
    else:
        log(f"{valve} is absent: real valve rows skipped")
    for name, kw in (("synth", {}), ("synth-hard", {"snr_db": -6.0, "severity": 0.5})):
        root = out / name
        if (only is None or name in only) and not (root / "slider" / "metadata.csv").exists():
            generate_dataset(root, 7, machine_ids=("id_00", "id_02", "id_04"), n_train=40, n_test_normal=15,
                             n_test_anomaly=15, **kw)
        found[name] = root / "slider"
    samples = SHARED / "real-samples"
    for d in sorted(samples.glob("*")) if samples.is_dir() else []:
        found[f"samples-{d.name}"] = d
    return {k: v for k, v in found.items() if only is None or k in only}


def window_ms(scorer, samples: np.ndarray, n: int = 30) -> float:
    scorer.score_window(samples)
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        scorer.score_window(samples)
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def explain_ms(bundle, scorer, samples: np.ndarray, n: int = 10) -> float | None:
    from edge_monitor.decide.explain import explainers_for

    ex = explainers_for(bundle)
    if not ex:
        return None
    ws = scorer.score_window(samples)
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        ex[ws.reference](ws, db=ws.db)
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def measure(name: str, root: Path, recipe: str, out: Path, epochs: int, drop: tuple[str, ...] = ()) -> dict:
    from edge_monitor.audio import audio_io
    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.model.pseudo import KINDS
    from edge_monitor.model.scorer import Scorer
    from trainer.evaluate import compute_metrics, evaluation_clips, score_clips
    from trainer.train import TrainConfig, train_bundle

    t0 = time.monotonic()
    kinds = tuple(k for k in KINDS if k not in drop)
    if drop:
        name = f"{name} without {', '.join(drop)}"
    res = train_bundle(root, out / "bundles" / name.replace(" ", "_").replace(",", "") / recipe,
                       TrainConfig(epochs=epochs, detectors=RECIPES[recipe], score_test=False, pseudo_kinds=kinds),
                       progress=None)
    train_s = time.monotonic() - t0
    bundle = load_bundle(res.bundle_dir)
    scorer = Scorer(bundle)
    clips, _ = evaluation_clips(root, None, bundle.doc.training)
    results, failures = score_clips(scorer, clips)
    m = compute_metrics(results, scorer.threshold, failures)
    samples = audio_io.clip_windows(audio_io.read_wav(clips[0].path, sample_rate=16000),
                                    bundle.features.window_samples)[0]
    weights = dict(bundle.fusion.weights) if bundle.fusion.rule == "weighted" else {
        n: 1.0 for n in bundle.detector_names}
    row = {
        "dataset": name, "recipe": recipe, "chosen": weights, "train_s": round(train_s, 1),
        "n_train_clips": res.meta["training"].get("train_clips", 0) + res.meta["training"].get("val_clips", 0),
        "auc": m.get("auc"), "pauc": m.get("pauc"), "auc_source": m.get("auc_source"),
        "auc_target": m.get("auc_target"), "official": m.get("official_score"),
        "tpr": m.get("recall"), "fpr": m["fp"] / max(1, m["fp"] + m["tn"]), "threshold": scorer.threshold,
        "threshold_rule": bundle.doc.threshold.describe(),
        "selection": res.meta.get("selection"),
        "ms": window_ms(scorer, samples), "explain_ms": explain_ms(bundle, scorer, samples),
        "macs": res.meta["model"]["macs_per_window"],
    }
    log(f"{name} {recipe}: AUC {row['auc']:.3f} pAUC {row['pauc']:.3f} recall {row['tpr']:.2f} FPR {row['fpr']:.2f} "
        f"chosen {_weights(weights)}; {row['ms']:.2f} ms/window, trained in {train_s:.0f} s")
    return row


def split_windows(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The set's log-mels as ``train`` cuts them: ``(train db, train clip of each window, test db,
    test clip of each window, test clip labels (True: anomaly))``."""
    from edge_monitor.features.frontend import FeatureParams, model_frames
    from trainer.train import load_windows, select_clips

    params = FeatureParams()
    frames = model_frames(params.window_frames)
    train, test = select_clips(root)
    db_train, groups_train = load_windows(train, params, frames)
    db_test, groups = load_windows(test, params, frames)
    return db_train, groups_train, db_test, groups, np.array([c.label == "anomaly" for c in test])


def member_aucs(root: Path) -> dict[str, float]:
    """Each NumPy candidate alone: fitted on the set's training clips, AUC of its clip scores on the test clips."""
    from sklearn.metrics import roc_auc_score

    from edge_monitor.model.fit import NUMPY_CANDIDATES, fit_detector

    db_train, _, db_test, groups, labels = split_windows(root)
    out = {}
    for spec in NUMPY_CANDIDATES:
        det = fit_detector(spec, db_train)
        win = np.array([det.score(w).score for w in db_test])
        clip = np.array([win[groups == i].mean() for i in range(labels.size)])
        out[spec.name] = float(roc_auc_score(labels, clip)) if 0 < labels.sum() < labels.size else float("nan")
    return out


def member_z(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each NumPy candidate's z scores (``weighted`` fusion's standardisation) of the test windows.

    Returns ``(z (windows, 4), clip of each window, clip labels)``, candidates in ``NUMPY_CANDIDATES`` order.
    """
    from edge_monitor.model.fit import NUMPY_CANDIDATES, fit_numpy_detectors
    from edge_monitor.model.fusion import Fusion, NormalStats

    db_train, groups_train, db_test, groups, labels = split_windows(root)
    fit = fit_numpy_detectors(NUMPY_CANDIDATES, db_train, groups_train)
    names = [s.name for s in NUMPY_CANDIDATES]
    stats = {n: NormalStats.robust_log(fit.oof_scores[n]) for n in names}
    fusion = Fusion("weighted", stats, dict.fromkeys(names, 1.0))
    z = np.stack([fusion.z(n, [det.score(w).score for w in db_test]) for n, det in zip(names, fit.detectors)], axis=1)
    return z, groups, labels


def fixed_weightings(sets: dict[str, Path]) -> str:
    """The mean test AUC of every fixed weighting of the NumPy candidates over ``sets`` (best first)."""
    import itertools

    from edge_monitor.model.fit import NUMPY_CANDIDATES
    from edge_monitor.model.fusion import weighted_power_mean
    from edge_monitor.model.select import DEFAULT_WEIGHTS, auc

    names = [s.name for s in NUMPY_CANDIDATES]
    data = {}
    for name, root in sets.items():
        data[name] = member_z(root)
        log(f"{name}: members scored")

    def aucs(w: np.ndarray) -> list[float]:
        out = []
        for z, groups, labels in data.values():
            fused = weighted_power_mean(z.T, w)
            clip = np.array([fused[groups == i].mean() for i in range(labels.size)])
            out.append(auc(clip[~labels], clip[labels]))
        return out

    grid = [np.array(c) / 20 for c in itertools.product(range(1, 18), repeat=len(names)) if sum(c) == 20]
    rows = sorted(((float(np.mean(a)), w, a) for w in grid for a in [aucs(w)]), key=lambda r: -r[0])
    default = np.array([DEFAULT_WEIGHTS[n] for n in names])
    lines = ["| weights (" + ", ".join(names) + ") | mean AUC | " + " | ".join(data) + " |",
             "|---|---:|" + "---:|" * len(data)]
    for mean, w, a in [*rows[:8], (float(np.mean(aucs(default))), default, aucs(default))]:
        lines.append(f"| {', '.join(f'{x:.2f}' for x in w)} | {mean:.3f} | " + " | ".join(f"{x:.3f}" for x in a) + " |")
    return "\n".join(lines)


def members_table(rows: list[dict]) -> str:
    names = sorted({n for r in rows for n in r.get("members", {})})
    lines = ["| data | " + " | ".join(names) + " | chosen recipe |", "|---|" + "---:|" * (len(names) + 1)]
    for r in rows:
        if r.get("members"):
            lines.append(f"| {r['dataset']} | " + " | ".join(_f(r["members"].get(n)) for n in names)
                         + f" | {_f(r['auc'])} |")
    return "\n".join(lines)


def _weights(w: dict[str, float]) -> str:
    return " + ".join(f"{n} {v:.2f}" for n, v in w.items())


def _f(v: float | None, nd: int = 3) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def table(rows: list[dict]) -> str:
    lines = ["| data | chosen (weight) | AUC | pAUC | AUC source / target | official | recall / FPR at threshold "
             "| ms per window | MMAC |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        st = f"{_f(r['auc_source'])} / {_f(r['auc_target'])}" if r["auc_source"] is not None else ""
        rates = f"{_f(r['tpr'], 2)} / {_f(r['fpr'], 2)}" if r["tpr"] is not None else ""
        lines.append(f"| {r['dataset']} | {_weights(r['chosen'])} | {_f(r['auc'])} | {_f(r['pauc'])} | {st} | "
                     f"{_f(r['official'])} | {rates} | {r['ms']:.2f} | {r['macs'] / 1e6:.1f} |")
    return "\n".join(lines)


def figures(rows: list[dict]) -> str:
    """Every candidate's mean pseudo-AUC per dataset (the evidence the choice rests on)."""
    names = sorted({m["name"] for r in rows if r.get("selection") for m in r["selection"]["members"]})
    lines = ["| data | " + " | ".join(names) + " | fused |", "|---|" + "---:|" * (len(names) + 1)]
    for r in rows:
        sel = r.get("selection")
        if not sel:
            continue
        figs = {m["name"]: m["pseudo_auc"] for m in sel["members"]}
        lines.append(f"| {r['dataset']} | " + " | ".join(_f(figs.get(n)) for n in names)
                     + f" | {_f(sel['fused']['pseudo_auc'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "model_choice")
    ap.add_argument("--epochs", type=int, default=15, help="autoencoder epochs (recipe autoencoder)")
    ap.add_argument("--only", help="comma-separated dataset names (valve-60, valve-10, synth, synth-hard, "
                                   "samples-slider, ...)")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--members", action="store_true",
                    help="also score each NumPy candidate alone on the test clips (its own AUC)")
    ap.add_argument("--drop-kinds", default="",
                    help="comma-separated pseudo-anomaly kinds the choice leaves out (e.g. event_removed)")
    ap.add_argument("--defaults", action="store_true",
                    help="only measure fixed weightings over the labelled sets (how DEFAULT_WEIGHTS was chosen)")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    t_start = time.monotonic()
    if args.defaults:
        labelled = {k: v for k, v in datasets(args.out, only).items() if not k.startswith("samples-")}
        print("\nFixed weightings of the NumPy candidates, mean test AUC over the labelled sets (the best 8, then "
              "DEFAULT_WEIGHTS)\n")
        print(fixed_weightings(labelled))
        return 0
    drop = tuple(k.strip() for k in args.drop_kinds.split(",") if k.strip())
    rows = []
    for name, root in datasets(args.out, only).items():
        try:
            rows.append(measure(name, root, args.recipe, args.out, args.epochs, drop))
            if args.members:
                rows[-1]["members"] = member_aucs(root)
        except Exception as exc:  # noqa: BLE001 - one failing row must not lose the table
            log(f"{name} {args.recipe}: failed: {exc}")
    print(f"\nRecipe {args.recipe!r} by dataset ({(time.monotonic() - t_start) / 60:.1f} min; cost on one thread of "
          f"this machine; recall / FPR of clips at the bundle's own threshold)\n")
    print(table(rows))
    print("\nMean pseudo-AUC of each candidate (what the weights were chosen from)\n")
    print(figures(rows))
    if args.members:
        print("\nAUC of each candidate alone on the test clips (fitted on the training clips)\n")
        print(members_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
