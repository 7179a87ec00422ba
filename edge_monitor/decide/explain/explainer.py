"""The order in which the recognisers are asked (:class:`Explainer`), and whose view (:class:`BundleExplainer`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from edge_monitor.decide.explain.bands import Bands
from edge_monitor.decide.explain.broadband import broadband
from edge_monitor.decide.explain.explanation import ExplainSettings, Explanation
from edge_monitor.decide.explain.impact import find_impacts, impact
from edge_monitor.decide.explain.level_shift import level_shift
from edge_monitor.decide.explain.observation import observe
from edge_monitor.decide.explain.tone import tone
from edge_monitor.decide.explain.wording import NOTHING_STANDS_OUT
from edge_monitor.features.frontend import FeatureParams
from edge_monitor.features.model_input import MinMaxNorm

if TYPE_CHECKING:
    from edge_monitor.model.bundle import ModelBundle
    from edge_monitor.model.scorer import WindowScore

__all__ = ["Explainer", "BundleExplainer", "explainers_for", "explain_window"]

_DEFAULTS = ExplainSettings()


class Explainer:
    """Explains windows of one model from one detector's view.

    Args:
        params: the bundle's front-end parameters.
        norm: the bundle's normalisation (per-band ``lo``/``hi`` in dB).
        band_error_stats: per-band error of the validation normals:
            ``{"mean": [n_mels], "p99": [n_mels]}`` (another high
            percentile key such as ``"p95"`` is accepted).
        threshold: the bundle's window threshold; a window at or below it with
            no band above its p99 is ``none``. Optional.
        band_level_db: per-band mean training level in dB (``n_mels``),
            optional; without it the detector's reference is the normal level.
        settings: tuning, see :class:`ExplainSettings`.
    """

    def __init__(
        self,
        params: FeatureParams,
        norm: MinMaxNorm,
        band_error_stats: Mapping[str, ArrayLike | None],
        threshold: float | None = None,
        band_level_db: Sequence[float] | np.ndarray | None = None,
        settings: ExplainSettings = _DEFAULTS,
    ) -> None:
        self.bands = Bands(params, norm, band_error_stats, band_level_db)
        self.params = params
        self.norm = norm
        self.err_mean = self.bands.err_mean
        self.err_spread = self.bands.err_spread
        self.threshold = threshold
        self.settings = settings

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, settings: ExplainSettings = _DEFAULTS,
                    reference: str = "recon") -> Explainer:
        """Build from a loaded :class:`edge_monitor.model.bundle.ModelBundle`.

        ``reference``: ``"recon"`` explains the autoencoder's error against its
        reconstruction (``band_error`` statistics); ``"mean"`` explains the
        NumPy detectors' deviation from each band's normal level
        (``band_deviation`` statistics, :attr:`WindowScore.reference`).
        """
        part = bundle.doc.band_error if reference == "recon" else bundle.doc.band_deviation
        stats = part.as_arrays() if part is not None else {}
        if not stats:
            raise ValueError(f"{bundle.path}: model.json has no band_error statistics")
        levels = bundle.doc.band_level_db
        level_mean = levels.mean if levels is not None else None
        return cls(bundle.features, bundle.norm, stats, threshold=bundle.threshold, band_level_db=level_mean,
                   settings=settings)

    def __call__(self, ws: WindowScore, db: np.ndarray | None = None, *,
                 samples: np.ndarray | None = None) -> Explanation:
        """Explain one window.

        Args:
            ws: the window's score (``input``, ``recon`` of shape
                ``(n_mels, frames)``, scaled as by the bundle's
                normalisation; ``score``; ``valid``). Its ``db``, when not
                ``None``, is used as ``db``.
            db: the window's unclipped log-mel in dB, shape ``(n_mels, >= frames)``.
            samples: or the window's mono samples (float, full scale 1.0, at the
                bundle's sample rate); its log-mel is computed here (~10 ms).

        Give ``db`` or ``samples`` whenever you can: the model input is clipped
        to ``[norm.clip_lo, norm.clip_hi]``, so without them anything beyond
        the clip (a loud squeal, a click) reads as only as loud as the clip,
        and impacts are found far less reliably.
        """
        s, bands = self.settings, self.bands
        obs = observe(ws, bands, self.threshold, db, samples)
        # 0. the whole spectrum moved alike: the microphone, whatever the score.
        shift = level_shift(obs, bands, s)
        if shift is not None:
            return shift
        imp = find_impacts(obs.in_db - obs.ref_db, bands, s)
        prominence = -np.inf if imp is None or imp.hits.size == 0 else imp.prominence
        # Impacts need a window that is anomalous on other grounds, or very prominent bursts.
        strong = obs.evidence >= s.min_evidence or obs.above
        impact_ok = prominence >= (s.impact_prominence if strong else s.impact_prominence_alone)
        if (self.threshold is not None and not obs.above) or (not strong and not impact_ok):
            # Below the threshold the detector calls the window normal: say so,
            # whatever small differences the bands show.
            return Explanation("none", None, None, None, None, NOTHING_STANDS_OUT)
        # 1. a steady tone (with harmonics) where the detector errs, unless bursts
        #    stand out even more (then the "tone" is the bursts' ringing);
        # 2. impact: short, prominent bursts in some band range;
        # 3. broadband: the narrowest run of bands holding most of the excess.
        if obs.evidence >= s.min_evidence and prominence < s.impact_prominence_alone:
            found = tone(obs, bands, s)
            if found is not None:
                return found
        if impact_ok and imp is not None:
            return impact(obs, imp, bands)
        return broadband(obs, bands, s)


class BundleExplainer:
    """Explains a window of any bundle from the view of the detector that fired.

    ``BundleExplainer.from_bundle(bundle)(window_score, samples=...)``: the
    autoencoder's error against its reconstruction when it fired
    (``window_score.reference == "recon"``), the deviation from each band's
    normal level when a NumPy detector fired (``"mean"``); the explanation's
    ``detector`` names it.
    """

    def __init__(self, explainers: Mapping[str, Explainer]) -> None:
        if not explainers:
            raise ValueError("no explainer")
        self.explainers = dict(explainers)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, settings: ExplainSettings = _DEFAULTS) -> BundleExplainer:
        """Raises ``ValueError`` when the bundle has no band statistics at all."""
        found = explainers_for(bundle, settings)
        if not found:
            raise ValueError(f"{bundle.path}: model.json has no band statistics (band_error or band_deviation)")
        return cls(found)

    def __call__(self, ws: WindowScore, db: np.ndarray | None = None, *,
                 samples: np.ndarray | None = None) -> Explanation:
        explainer = self.explainers.get(ws.reference)
        if explainer is None:
            raise ValueError(f"the bundle has no statistics to explain a window by {ws.reference!r}")
        out = explainer(ws, db, samples=samples)
        return replace(out, detector=ws.detector) if ws.detector else out


def explainers_for(bundle: ModelBundle, settings: ExplainSettings = _DEFAULTS) -> dict[str, Explainer]:
    """One :class:`Explainer` per reference the bundle's detectors use: ``{"recon": ..., "mean": ...}``.

    A window is explained by the detector that fired
    (``explainers_for(b)[window_score.reference](window_score, ...)``): the
    autoencoder's reconstruction error, or the NumPy detectors' deviation from
    the normal level. A reference whose statistics the bundle lacks is left out.
    """
    out: dict[str, Explainer] = {}
    for ref in ("recon", "mean"):
        try:
            out[ref] = Explainer.from_bundle(bundle, settings, reference=ref)
        except ValueError:
            continue
    return out


def explain_window(
    ws: WindowScore,
    bundle: ModelBundle,
    db: np.ndarray | None = None,
    *,
    samples: np.ndarray | None = None,
    settings: ExplainSettings = _DEFAULTS,
) -> Explanation:
    """One-shot :class:`Explainer` for ``bundle`` (a loaded ``ModelBundle``) applied to ``ws``.

    For many windows build one :class:`Explainer` and call it instead.
    """
    return Explainer.from_bundle(bundle, settings)(ws, db=db, samples=samples)
