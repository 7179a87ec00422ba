"""Recogniser of ``tonal``: a steady tone (with its harmonics) where the detector errs (a squeal, a whine)."""

from __future__ import annotations

import numpy as np

from edge_monitor.decide.explain.bands import Bands
from edge_monitor.decide.explain.explanation import ExplainSettings, Explanation
from edge_monitor.decide.explain.observation import Observation
from edge_monitor.decide.explain.wording import tone_text

__all__ = ["tone"]


def tone(obs: Observation, bands: Bands, s: ExplainSettings) -> Explanation | None:
    """A steady tone (with its harmonics) where the detector errs, or None.

    Two ways to find the tone's band: the sharpest peak of the level rise
    (input minus reference, dB, 75th percentile over frames, minus the median
    of the neighbouring bands), where the error is also above p99; else the
    band with the most excess error, when it stands well above its neighbours
    and its family (tone + harmonics) carries a fair share of all the excess.
    """
    sig, z = obs.sig, obs.z
    rise = obs.in_db - obs.ref_db
    r = np.percentile(rise, 75, axis=1)
    peak = r - _local_median(r)
    cand: list[tuple[np.ndarray, int]] = []
    p_rise = int(np.argmax(peak))
    if peak[p_rise] >= s.tonal_peak_db and float(z[max(0, p_rise - 1) : p_rise + 2].max()) >= 1.0:
        cand.append((np.maximum(peak, 0.0), p_rise))
    total = float(sig.sum())
    if total > 0:
        p_sig = int(np.argmax(sig))
        if sig[p_sig] >= 2.0:
            cand.append((sig, p_sig))
    for spec, p in cand:
        a, b = _grow(bands, s, spec, p)
        fa, fb = _fundamental(bands, s, spec, p, (a, b))
        family = _family(bands, s, spec, fa, fb, (a, b))
        if spec is sig:
            share = float(sig[family].sum()) / total
            contrast = max(_contrast(sig, fa, fb), _contrast(sig, a, b))
            if share < s.tonal_share or contrast < s.tonal_contrast:
                continue
        if not _steady(rise, fa, fb, s):
            continue
        peak_hz = _tone_hz(bands, obs.in_db, obs.ref_db, fa, fb)
        prof = rise[fa : fb + 1].mean(axis=0)
        on = np.flatnonzero(prof >= np.percentile(prof, 50))  # the frames where the tone sounds
        lvl, at_least = bands.level(obs.in_db, obs.ref_db, obs.capped, fa, fb, on)
        lo_hz, hi_hz = bands.hz(fa, fb)
        harmonics = (fa, fb) != (a, b) or family.sum() > (fb - fa + 1) + 2
        return Explanation(
            "tonal",
            lo_hz,
            hi_hz,
            None,
            lvl,
            tone_text(peak_hz, lo_hz, hi_hz, bool(harmonics), lvl, at_least),
            peak_hz=peak_hz,
            bands=(fa, fb),
        )
    return None


def _local_median(r: np.ndarray, half: int = 8) -> np.ndarray:
    """Median of ``r`` over bands ``b - half .. b + half`` without ``b - 1 .. b + 1``."""
    n = r.size
    out = np.empty(n)
    for b in range(n):
        idx = [i for i in range(max(0, b - half), min(n, b + half + 1)) if abs(i - b) > 1]
        out[b] = float(np.median(r[idx])) if idx else 0.0
    return out


def _fundamental(bands: Bands, s: ExplainSettings, spec: np.ndarray, p: int,
                 rng: tuple[int, int]) -> tuple[int, int]:
    """The band range of the fundamental when band ``p`` is a 2nd or 3rd harmonic, else ``rng``."""
    centres = bands.centres
    for k in (3, 2):
        f0 = centres[p] / k
        q = int(np.argmin(np.abs(centres - f0)))
        lo_q, hi_q = max(0, q - 1), min(len(spec) - 1, q + 1)
        qq = lo_q + int(np.argmax(spec[lo_q : hi_q + 1]))
        if (spec[qq] >= 0.15 * spec[p] and spec[qq] > 0 and abs(np.log2(centres[qq] / f0)) < 0.1
                and _contrast(spec, qq, qq) >= s.tonal_contrast):
            return _grow(bands, s, spec, qq)
    return rng


def _family(bands: Bands, s: ExplainSettings, spec: np.ndarray, fa: int, fb: int,
            rng: tuple[int, int]) -> np.ndarray:
    """Bands of the tone ``fa..fb``, of ``rng`` and of the harmonics that stand out in ``spec``."""
    centres = bands.centres
    family = np.zeros(len(spec), dtype=bool)
    family[fa : fb + 1] = True
    family[rng[0] : rng[1] + 1] = True
    f0 = float(centres[(fa + fb) // 2])
    for k in range(2, 6):
        if f0 * k > bands.edges[-1]:
            break
        q = int(np.argmin(np.abs(centres - f0 * k)))
        lo_q, hi_q = max(0, q - 1), min(len(spec) - 1, q + 1)
        if _contrast(spec, lo_q, hi_q) >= s.tonal_contrast:
            family[lo_q : hi_q + 1] |= spec[lo_q : hi_q + 1] > 0
    return family


def _steady(rise: np.ndarray, a: int, b: int, s: ExplainSettings) -> bool:
    """True when the rise in bands ``a..b`` over their neighbours lasts: on in
    >= 15 % of the frames, in runs of >= 3 frames (~0.1 s) on average. A
    squeal holds; a rattle ringing the same mode flickers; clicks are single frames."""
    n = rise.shape[0]
    nb = [i for i in range(max(0, a - 8), min(n, b + 9)) if i < a - 1 or i > b + 1]
    base = rise[nb].mean(axis=0) if nb else np.zeros(rise.shape[1])
    prof = rise[a : b + 1].mean(axis=0) - base
    top = float(np.percentile(prof, 90))
    if top <= 0:
        return False
    on = prof >= 0.5 * top
    padded = np.concatenate(([False], on, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = edges[1::2] - edges[0::2]
    return bool(on.mean() >= 0.15 and runs.size and runs.mean() >= s.tonal_min_run)


def _contrast(sig: np.ndarray, a: int, b: int) -> float:
    """Mean excess in bands ``a..b`` over the mean in equally wide flanks on both sides."""
    w = max(3, b - a + 1)
    flanks = np.concatenate((sig[max(0, a - w) : a], sig[b + 1 : b + 1 + w]))
    inside = float(sig[a : b + 1].mean())
    outside = float(flanks.mean()) if flanks.size else 0.0
    return inside / outside if outside > 0 else (np.inf if inside > 0 else 0.0)


def _grow(bands: Bands, s: ExplainSettings, sig: np.ndarray, p: int) -> tuple[int, int]:
    """Bands around ``p`` holding >= 25 % of its excess, at most ``tonal_octaves`` wide."""
    a = b = p
    while True:
        grown = False
        for cand in (a - 1, b + 1):
            if 0 <= cand < len(sig) and sig[cand] >= 0.25 * sig[p]:
                lo_c, hi_c = min(a, cand), max(b, cand)
                if bands.octaves(lo_c, hi_c) <= s.tonal_octaves:
                    a, b, grown = lo_c, hi_c, True
        if not grown:
            return a, b


def _tone_hz(bands: Bands, in_db: np.ndarray, ref_db: np.ndarray, a: int, b: int) -> float:
    """The tone's frequency: the band with the largest level rise, refined by its neighbours."""
    rise = (in_db[a : b + 1] - ref_db[a : b + 1]).mean(axis=1)
    i = a + int(np.argmax(rise))
    if 0 < i < len(bands.centres) - 1:
        # Weighted centre of the three bands around the peak (power of the rise).
        w = 10.0 ** (np.maximum((in_db[i - 1 : i + 2] - ref_db[i - 1 : i + 2]).mean(axis=1), 0.0) / 10.0) - 1.0
        if float(w.sum()) > 0:
            return float(2.0 ** (np.dot(w, bands.log2c[i - 1 : i + 2]) / w.sum()))
    return float(bands.centres[i])
