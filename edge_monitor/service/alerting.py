"""The alert path of the scoring loop: from a decider event to the published alert.

:class:`Alerting` (held by :class:`edge_monitor.service.daemon.Daemon`) keeps
the last ``decision.n`` scored windows (:mod:`edge_monitor.decide.candidates`)
so that an alert start describes the strongest window that raised it: that
window is saved as evidence (:mod:`edge_monitor.decide.evidence`), explained
(:mod:`edge_monitor.decide.explain`) and its detectors reported in the
:class:`~edge_monitor.publish.messages.AlertMessage`. Each alert is published
durably (outbox first) and noted in the open-alert file
(:mod:`edge_monitor.publish.open_alerts`), so that the next start closes an
alert a crash left open (:meth:`Alerting.close_interrupted`).

While an alert is open, the strongest window since it opened is kept in memory
(one window more). When it beat the window the start described, the ``end``
carries *its* evidence WAV and explanation: the recording of the fault's worst
moment, at the cost of one more file per alert, never one per window.

No failure here loses an alert: a full disk costs the evidence, a failing
explainer the explanation, never the message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_monitor.decide.candidates import Candidate, CandidateWindows
from edge_monitor.decide.evidence import EvidenceStore
from edge_monitor.decide.explain import BundleExplainer
from edge_monitor.model.model_info import model_ref
from edge_monitor.publish.messages import AlertMessage, Detectors, Payload, iso_utc
from edge_monitor.publish.open_alerts import OpenAlerts

if TYPE_CHECKING:
    from edge_monitor.config.schema import Config
    from edge_monitor.decide.decision import AlertEvent
    from edge_monitor.model.bundle import ModelBundle
    from edge_monitor.model.scorer import WindowScore
    from edge_monitor.service.daemon import Counters
    from edge_monitor.service.protocols import Logger, PublisherLike

__all__ = ["Alerting"]


class Alerting:
    """Turns the decider's alert events into published, noted alerts.

    Args:
        cfg: the validated configuration (``decision.n``, ``evidence``, ``device_id``, the outbox folder).
        bundle: the model bundle (sample rate of the evidence WAVs, the explainer, the model reference).
        publisher: where alerts go (``publish_alert``, ``set_state``).
        log: structlog logger.
        counters: the daemon's counters (``alerts``, ``evidence_errors``).
        safe: the daemon's guarded call: ``safe(fn, *args)`` logs and counts a publisher failure.
        on_error: records an error line for the health message (``last_error``).
    """

    def __init__(self, cfg: Config, bundle: ModelBundle, publisher: PublisherLike, log: Logger,
                 counters: Counters, safe: Callable[..., None], on_error: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.bundle = bundle
        self.publisher = publisher
        self.log = log
        self.counters = counters
        self._safe = safe
        self._on_error = on_error
        self.model_rate = int(bundle.features.sample_rate)
        # The last n scored windows' WindowScore (with the audio it scored): an alert's strongest window.
        self.candidates: CandidateWindows[WindowScore] = CandidateWindows(cfg.decision.n)
        self.evidence = (EvidenceStore(cfg.evidence_dir, int(cfg.evidence.max_mb * 1_000_000))
                         if cfg.evidence.enabled else None)
        self.explainer = self._make_explainer()
        self.open_alerts = OpenAlerts(cfg.outbox_path.parent)  # closes an alert a crash left open
        # The open alert's strongest window so far, and the start of the one its start described.
        self._peak: Candidate[WindowScore] | None = None
        self._described: float | None = None

    def _make_explainer(self) -> BundleExplainer | None:
        try:
            return BundleExplainer.from_bundle(self.bundle)
        except (ValueError, KeyError, TypeError) as exc:
            self.log.info("alerts without explanations", reason=str(exc))
            return None

    def push(self, ws: WindowScore, start: float, end: float) -> None:
        """Remember a scored window (``start``/``end``: Unix seconds) as a candidate for the next alert."""
        pushed = self.candidates.push(ws.score, start, end, ws)
        if self._peak is not None and pushed.score > self._peak.score:
            self._peak = pushed  # the open alert's new peak

    def close_interrupted(self) -> None:
        """Publish the end of an alert the previous run left open (it stopped or crashed meanwhile)."""
        for end in self.open_alerts.interrupted(iso_utc(time.time())):
            self.log.warning("alert end (interrupted): the previous run stopped while it was open",
                             event_id=end["event_id"], opened_at=end["opened_at"])
            self._safe(self.publisher.publish_alert, end)
            self._safe(self.publisher.set_state, "normal")
            self._note_open_alert(end)

    def alert(self, ev: AlertEvent, ws: WindowScore, source: str | None) -> Payload:
        """Publish alert ``ev`` (``ws``: the window that raised it; ``source``: its kind); the payload sent."""
        evidence_path = None
        explanation = None
        if ev.event == "start":
            self.counters.alerts += 1
            # Evidence, explanation and detectors describe the strongest window that raised the alert.
            peak = self.candidates.find(ev.peak_window_start)
            if peak is not None:
                ws = peak.data
            self._peak = peak or Candidate(float(ws.score), ev.peak_window_start, ev.peak_window_end, ws)
            self._described = ev.peak_window_start
            evidence_path = self._save_evidence(ev, ws)
            explanation = self._explain(ev, ws)
        else:
            # A window stronger than the one the start described: the end carries its recording.
            peak, self._peak = self._peak, None
            if peak is not None and peak.window_start == ev.peak_window_start != self._described:
                evidence_path = self._save_evidence(ev, peak.data)
                explanation = self._explain(ev, peak.data)
        msg = AlertMessage(
            event_id=ev.event_id, device_id=self.cfg.device_id, machine=self.bundle.machine, event=ev.event,
            time=time.time(), window_start=ev.window_start, window_end=ev.window_end, score=ev.score,
            threshold=ev.threshold, peak_score=ev.peak_score, peak_window_start=ev.peak_window_start,
            peak_window_end=ev.peak_window_end, source=source, model=model_ref(self.bundle),
            evidence=evidence_path, explanation=explanation, windows=ev.windows,
            detectors=Detectors(ws.detector, ws.z) if ev.event == "start" and ws.z else None,
            opened_at=ev.opened_at if ev.event == "end" else None)
        payload = msg.to_payload()
        self.log.info("alert " + ev.event, event_id=ev.event_id, score=round(ev.score, 6),
                      peak_score=round(ev.peak_score, 6), threshold=ev.threshold,
                      window_start=payload["window_start"], evidence=evidence_path,
                      explanation=(explanation or {}).get("text"))
        self._safe(self.publisher.publish_alert, payload)
        self._safe(self.publisher.set_state, "anomaly" if ev.event == "start" else "normal")
        self._note_open_alert(payload)
        return payload

    def _note_open_alert(self, payload: Payload) -> None:
        """Keep (start) or forget (end) the open alert on disk, for the next start after a crash."""
        error = self.open_alerts.record(payload)
        if error is not None:
            self._on_error(error)
            self.log.error("open alert not noted on disk", error=error)

    def _save_evidence(self, ev: AlertEvent, ws: WindowScore) -> str | None:
        if self.evidence is None or ws.samples is None:
            return None
        try:
            return str(self.evidence.save(ev.event_id, ws.samples, self.model_rate, ev.peak_window_start))
        except Exception as exc:  # noqa: BLE001 - a full disk must not lose the alert
            self.counters.evidence_errors += 1
            self._on_error(f"evidence not saved: {exc}")
            self.log.error("evidence not saved", event_id=ev.event_id, error=str(exc))
            return None

    def _explain(self, ev: AlertEvent, ws: WindowScore) -> Payload | None:
        if self.explainer is None:
            return None
        try:
            # The unclipped log-mel (ws.db) or the scored samples give exact levels (the model
            # input is clipped to the bundle's [clip_lo, clip_hi], which can flatten very loud
            # clicks) and reliable impacts. The detector that fired decides the view: its
            # reconstruction, or the normal band levels.
            explanation: Payload = dict(self.explainer(ws, samples=ws.samples).to_dict())
            return explanation
        except Exception as exc:  # noqa: BLE001
            self.log.warning("no explanation", event_id=ev.event_id, error=str(exc))
            return None
