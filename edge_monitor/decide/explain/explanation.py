"""The result of an explanation (:class:`Explanation`) and its tuning (:class:`ExplainSettings`)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KINDS", "Explanation", "ExplainSettings"]

KINDS: tuple[str, ...] = ("tonal", "impact", "broadband", "level_shift", "none")

#: A JSON value of the alert's ``explanation`` object.
Field = str | float | None


@dataclass(frozen=True)
class Explanation:
    """What stands out in one window.

    The six public fields (:meth:`to_dict`) go into the alert JSON as
    ``explanation``; the rest are for plots (the evaluation report's error maps).

    Attributes:
        kind: one of :data:`KINDS`.
        freq_lo_hz: lower edge of the frequency range carrying most of the
            excess error (Hz); ``None`` for ``none``.
        freq_hi_hz: upper edge of that range (Hz); ``None`` for ``none``.
        period_s: repetition period of impacts (s), ``None`` unless ``impact``
            and repeating.
        level_change_db: level in that range minus the normal level there
            (dB, positive = louder); ``None`` for ``none``.
        text: one plain sentence.
        peak_hz: centre of the strongest band (Hz) (the tone's frequency for
            ``tonal``); ``None`` for ``none``.
        bands: first and last mel band index (inclusive) of the range, or ``None``.
        event_times_s: for ``impact``, the times (s from the window start) of
            the impacts found; empty otherwise.
        detector: the bundle's detector that fired and whose view this explains
            (``"autoencoder"``, ``"profile"``, ``"frames"``); ``None`` when unknown.
    """

    kind: str
    freq_lo_hz: float | None
    freq_hi_hz: float | None
    period_s: float | None
    level_change_db: float | None
    text: str
    peak_hz: float | None = None
    bands: tuple[int, int] | None = None
    event_times_s: tuple[float, ...] = field(default_factory=tuple)
    detector: str | None = None

    def to_dict(self) -> dict[str, Field]:
        """The alert payload's ``explanation``: ``{kind, freq_lo_hz, freq_hi_hz,
        period_s, level_change_db, text}`` (+ ``detector`` when known); numbers rounded, ``None`` as null."""

        def r(v: float | None, nd: int) -> float | None:
            return None if v is None else round(float(v), nd)

        return {
            "kind": self.kind,
            "freq_lo_hz": r(self.freq_lo_hz, 0),
            "freq_hi_hz": r(self.freq_hi_hz, 0),
            "period_s": r(self.period_s, 2),
            "level_change_db": r(self.level_change_db, 1),
            "text": self.text,
            **({"detector": self.detector} if self.detector else {}),
        }


@dataclass(frozen=True)
class ExplainSettings:
    """Tuning of the explanation (defaults work for the 128-band front end).

    Attributes:
        min_evidence: spectral evidence needed to explain anything but an
            impact: the sum over bands of ``max(0, z - 2)``, where a band's
            ``z = (error - mean) / (p99 - mean)`` from the validation statistics.
        tonal_octaves: widest range, in octaves, still called ``tonal``.
        tonal_share: share of the excess a tone and its harmonics must carry
            to be tonal (the rest may be rougher running around it).
        tonal_contrast: the tone's bands must carry this many times the mean
            excess of their neighbours (a peak, not a plateau).
        tonal_peak_db: a level-rise peak this many dB above the neighbouring
            bands' rise marks a tone.
        tonal_min_run: mean length (frames) of the runs in which the tone
            sounds (a squeal holds; a rattle ringing one mode flickers).
        range_share: the reported range is the narrowest run of bands holding
            this share of the excess (for non-tonal kinds).
        shift_db: smallest uniform level change called ``level_shift`` (dB).
        shift_spread_db: the band-to-band spread (10th..90th percentile) of the
            level change must stay below this for ``level_shift`` (dB).
        min_period_s: shortest repetition period reported (s); also the
            shortest gap between two impacts.
        hp_frames: the impact curve is the residual minus its running median
            over ``2 * hp_frames + 1`` frames (keeps only short events).
        impact_top_frames: share of frames whose mean robust z is the
            prominence of a candidate impact range (0.025 = 8 of 312 frames).
        impact_z: robust z an impact frame must reach.
        impact_prominence: prominence needed to call an anomalous window
            (spectral evidence or score above the threshold) ``impact``.
        impact_prominence_alone: prominence that makes a window ``impact``
            without other evidence.
    """

    min_evidence: float = 5.0
    tonal_octaves: float = 0.5
    tonal_share: float = 0.3
    tonal_contrast: float = 3.0
    tonal_peak_db: float = 6.0
    tonal_min_run: float = 3.0
    range_share: float = 0.7
    shift_db: float = 4.0
    shift_spread_db: float = 4.0
    min_period_s: float = 0.15
    hp_frames: int = 3
    impact_top_frames: float = 0.025
    impact_z: float = 6.0
    impact_prominence: float = 5.0
    impact_prominence_alone: float = 8.0
