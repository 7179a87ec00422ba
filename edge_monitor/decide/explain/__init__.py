"""Explain an anomalous window in words: what changed, where, how much.

An anomaly score alone says "something is different". This package turns one
scored window (:class:`edge_monitor.model.scorer.WindowScore`) into an
:class:`Explanation`: the frequency range in Hz that carries most of the
*excess* error (error above what the detector makes on normal validation audio,
band by band), its kind, the repetition period of impacts, the level change
in dB against normal, and one plain sentence for people.

Kinds (``Explanation.kind``):

``tonal``
    a narrow frequency range, sustained over the window (a squeal, a whine).
``impact``
    broadband and short (clicks, knocks), with ``period_s`` when they repeat.
``broadband``
    a wide range, sustained: louder or rougher running.
``level_shift``
    the whole spectrum moved by about the same number of dB: far more likely
    a moved or re-gained microphone than a machine fault. The text suggests
    ``edge-monitor-train calibrate``. The window is still scored.
``none``
    nothing stands out (a normal window).

Use::

    explainer = BundleExplainer.from_bundle(bundle)  # once, at start-up
    ex = explainer(window_score, samples=window)     # per window above threshold
    alert["explanation"] = ex.to_dict()              # {kind, freq_lo_hz, ...}
    print(ex.text)  # "A new tone near 3.1 kHz (2.9-3.3 kHz), 12 dB above normal."

or the one-shot :func:`explain_window`. Pure NumPy (plus the front end's
``scipy.fft`` when ``samples`` are given); ~20 ms per window.

The modules, in the order a window passes them:

- ``bands``: what the explainer knows of the model, fixed at start-up: band
  edges in Hz, the per-band error statistics, the dB scaling, the level of a
  band range against normal;
- ``observation``: what the detector saw in one window: the error per band in
  units of its validation spread, the levels in dB now and as normal, the
  cells pinned at the input's clip;
- ``level_shift``, ``tone``, ``impact``, ``broadband``: one recogniser per
  kind, each a pure function of the observation;
- ``wording``: the sentence for each kind;
- ``explainer``: the order in which the recognisers are asked
  (:class:`Explainer`), and the choice of the fired detector's view
  (:class:`BundleExplainer`).

Inputs. The model input is per-band min/max scaled dB
(:class:`edge_monitor.features.model_input.MinMaxNorm`), so levels in dB are recovered as
``lo + x * (hi - lo)``; ``x`` is clipped to the bundle's ``[clip_lo, clip_hi]``
(``[-1, 2]`` for new bundles: one training range of headroom on either side;
``[0, 1]`` for old ones; ``None`` = no bound on that side). A level that hit
the clip reads as *at least* its value ("at least N dB"), and a click train
louder than the clip is flattened. Pass the window's samples
(``samples=``) or unclipped log-mel (``db=``) for exact levels and reliable
impacts. The training level per band comes from the bundle's
``band_level_db.mean`` when present, else from the detector's reference for
the window (what it expected to hear).
"""

from edge_monitor.decide.explain.explainer import BundleExplainer, Explainer, explain_window, explainers_for
from edge_monitor.decide.explain.explanation import KINDS, ExplainSettings, Explanation
from edge_monitor.decide.explain.wording import NOTHING_STANDS_OUT

__all__ = [
    "KINDS",
    "Explanation",
    "explainers_for",
    "BundleExplainer",
    "ExplainSettings",
    "Explainer",
    "explain_window",
    "NOTHING_STANDS_OUT",
]
