"""Prometheus metrics of the daemon, rendered from a :class:`~edge_monitor.web.status_board.Snapshot`.

The exposition text comes from ``prometheus_client`` (a private
``CollectorRegistry``, never the global one, so importing this module in a
test or a tool registers nothing process-wide). A custom collector turns the
snapshot the scoring loop published into metric families at scrape time: the
loop itself never touches a prometheus_client object (whose values sit behind
locks), so a scrape can never make it wait.

Only imported when ``http:`` is configured; the cost of ``prometheus_client``
is measured in docs/raspberry-pi.md.

Metric names (all prefixed ``edge_monitor_``; units in names, ``_total`` counters):

================================================  =========  =====================================
name                                              type       meaning
================================================  =========  =====================================
windows_total                                     counter    windows read from the ring
windows_scored_total                              counter    windows scored (incl. partially)
windows_scored_partial_total                      counter    scored on their valid frames only
windows_skipped_total{kind}                       counter    not scored: first sensor fault kind
window_errors_total                               counter    windows that failed to score
score                                             gauge      last window's score
window_score                                      histogram  scores; buckets are multiples of the
                                                             threshold (0.25 ... 8) rounded to 2
                                                             significant digits (le="3.4")
window_score_ratio                                histogram  score / threshold, buckets 0.25 ... 8
                                                             (le="1.0" = the threshold, fleet-wide)
threshold / clear_level                           gauge      the alert rule's levels
anomaly                                           gauge      1 while an alert is open
alerts_started_total / alerts_ended_total         counter    alert events
sensor_events_total{kind,event}                   counter    sensor fault start/end events
sensor_fault_active{kind}                         gauge      1 while that fault is active
input_level_dbfs                                  gauge      RMS of the last window (dBFS)
outbox_messages                                   gauge      MQTT outbox depth
outbox_degraded                                   gauge      1 while the outbox runs from memory
                                                             (the disk cannot be written)
outbox_memory_messages                            gauge      messages kept in memory meanwhile
outbox_dropped_total{kind}                        counter    alert/sensor messages dropped at the
                                                             memory queue's bound
outbox_damaged_files                              gauge      damaged outbox files moved aside (run)
evidence_errors_total                             counter    evidence WAVs that could not be saved
mqtt_connected                                    gauge      1 while connected to the broker
capture_xruns_total                               counter    input overflows reported by PortAudio
ring_overruns_total                               counter    windows lost: the loop fell behind
capture_restarts_total                            counter    audio device reopened after a loss
last_window_timestamp_seconds                     gauge      end of the last window (Unix s)
info{device_id,model_name,model_sha256,...}       info       identity of this monitor
================================================  =========  =====================================

plus the ``process_*`` metrics of prometheus_client's ``ProcessCollector``
(resident memory, CPU seconds, open fds, start time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from edge_monitor.audio.sensor_health import FAULT_KINDS
from edge_monitor.web.status_board import SCORE_BUCKET_FACTORS, Snapshot

__all__ = ["PREFIX", "MetricsRenderer", "SnapshotCollector"]

PREFIX = "edge_monitor"


def _n(name: str) -> str:
    return f"{PREFIX}_{name}"


def _cumulative(bounds: tuple[float, ...], counts: tuple[int, ...]) -> list[tuple[str, float]]:
    """``[(le, cumulative count), ...]`` with +Inf last; ``counts`` are per bucket (``len(bounds) + 1``)."""
    out, total = [], 0
    for bound, count in zip((*bounds, math.inf), counts or (0,) * (len(bounds) + 1)):
        total += count
        out.append(("+Inf" if math.isinf(bound) else repr(float(bound)), float(total)))
    return out


class SnapshotCollector:
    """A prometheus_client collector reading the latest snapshot from ``get_snapshot()``."""

    def __init__(self, get_snapshot: Callable[[], Snapshot]) -> None:
        self.get_snapshot = get_snapshot

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families are built per scrape

    def collect(self) -> Iterator[Metric]:
        s = self.get_snapshot()
        c = s.counters

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(_n(name), doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(_n(name), doc, value=value)

        yield counter("windows", "Windows read from the ring buffer.", c["windows"])
        yield counter("windows_scored", "Windows scored by the model (including partially scored ones).",
                      c["scored"])
        yield counter("windows_scored_partial", "Windows with short dropouts scored on their valid frames.",
                      c["scored_partial"])
        skipped = CounterMetricFamily(_n("windows_skipped"), "Windows not scored because of a sensor fault, "
                                      "by the first fault kind found.", labels=["kind"])
        for kind in sorted(set(FAULT_KINDS) | set(s.skipped_by_kind)):
            skipped.add_metric([kind], s.skipped_by_kind.get(kind, 0))
        yield skipped
        yield counter("window_errors", "Windows that failed to score (logged as errors).", c["errors"])
        yield gauge("score", "Anomaly score of the last scored window (the score the threshold applies to).",
                    s.last_score if s.last_score is not None else math.nan)
        # Two histograms of the same scores: absolute, on round bounds near the threshold, and
        # score / threshold on fixed bounds (comparable across a fleet; le="1.0" is the threshold).
        buckets = _cumulative(s.bucket_bounds, s.bucket_counts)
        ratio_buckets = _cumulative(SCORE_BUCKET_FACTORS, s.ratio_counts)
        yield HistogramMetricFamily(_n("window_score"), "Anomaly scores of scored windows (round bucket bounds "
                                    "from 0.25 to 8 times the threshold).", buckets=buckets, sum_value=s.score_sum)
        yield HistogramMetricFamily(_n("window_score_ratio"), "Anomaly score / threshold of scored windows "
                                    "(1 = at the threshold; the same buckets for every monitor).",
                                    buckets=ratio_buckets, sum_value=s.score_sum / s.threshold)
        yield gauge("threshold", "Alert threshold on the anomaly score.", s.threshold)
        yield gauge("clear_level", "Score below which windows count towards closing an alert.", s.clear_level)
        yield gauge("anomaly", "1 while an alert is open, else 0.", 1.0 if s.state == "anomaly" else 0.0)
        yield counter("alerts_started", "Alerts opened.", c["alerts_started"])
        yield counter("alerts_ended", "Alerts closed.", c["alerts_ended"])
        events = CounterMetricFamily(_n("sensor_events"), "Sensor fault events (start/end) by fault kind.",
                                     labels=["kind", "event"])
        for kind in sorted(set(FAULT_KINDS) | {k for k, _ in s.sensor_events}):
            for ev in ("start", "end"):
                events.add_metric([kind, ev], s.sensor_events.get((kind, ev), 0))
        yield events
        active = GaugeMetricFamily(_n("sensor_fault_active"), "1 while a sensor fault of this kind is active.",
                                   labels=["kind"])
        for kind in sorted(set(FAULT_KINDS) | set(s.sensor_active)):
            active.add_metric([kind], 1.0 if kind in s.sensor_active else 0.0)
        yield active
        yield gauge("input_level_dbfs", "RMS input level of the last window in dBFS (-Inf for digital silence).",
                    s.input_rms_dbfs if s.input_rms_dbfs is not None else -math.inf)
        yield gauge("outbox_messages", "Messages waiting in the MQTT outbox.",
                    s.outbox_depth if s.outbox_depth is not None else 0)
        storage = s.storage or {}
        yield gauge("outbox_degraded", "1 while the outbox keeps messages in memory because the disk cannot be "
                    "written (see /api/status storage.error).", 1.0 if storage.get("mode") == "memory" else 0.0)
        yield gauge("outbox_memory_messages", "Messages kept in memory while the outbox disk is unusable.",
                    _number(storage.get("memory_messages")))
        dropped = CounterMetricFamily(_n("outbox_dropped"), "Alert and sensor messages dropped at the memory "
                                      "queue's bound.", labels=["kind"])
        memory_dropped = storage.get("memory_dropped")
        for kind in ("alert", "sensor"):
            dropped.add_metric([kind], _number(memory_dropped.get(kind)) if isinstance(memory_dropped, dict) else 0)
        yield dropped
        yield gauge("outbox_damaged_files", "Damaged outbox files moved aside since start.",
                    _number(storage.get("damaged_files")))
        yield counter("evidence_errors", "Evidence WAVs that could not be saved (e.g. a full disk).",
                      c.get("evidence_errors", 0))
        yield gauge("mqtt_connected", "1 while connected to the MQTT broker.", 1.0 if s.mqtt_connected else 0.0)
        yield counter("capture_xruns", "Input overflows (xruns) reported by the audio capture.", c["xruns"])
        yield counter("ring_overruns", "Windows lost because the scoring loop fell behind.", c["overruns"])
        yield counter("capture_restarts", "Times the audio device was reopened after a loss.", c["capture_restarts"])
        yield gauge("last_window_timestamp_seconds", "End time of the last window (Unix seconds).",
                    s.last_window_time if s.last_window_time is not None else math.nan)
        # InfoMetricFamily appends `_info`: edge_monitor_info{device_id=..., model_sha256=...} 1
        yield InfoMetricFamily(PREFIX, "Identity of this monitor: device, model and software version.",
                               value=dict(s.info))


class MetricsRenderer:
    """The exposition text for the snapshot source; one private registry per renderer."""

    def __init__(self, get_snapshot: Callable[[], Snapshot], process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(get_snapshot))
        if process:
            ProcessCollector(registry=self.registry)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """``(body, content type)`` in the format the scraper's ``Accept`` header asks for
        (the Prometheus text format by default, OpenMetrics when asked), as prometheus_client's
        own HTTP handler negotiates it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def _number(value: object) -> float:
    """A count from the storage report (JSON-ish); 0 when absent."""
    return float(value) if isinstance(value, (int, float)) else 0.0


def parse(text: str) -> dict[str, float]:
    """``{sample name with labels: value}`` of exposition ``text`` (for tests and the bench)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(smp.labels.items()))
            out[smp.name + (f"{{{labels}}}" if labels else "")] = smp.value
    return out
