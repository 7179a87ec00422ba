"""The messages the monitor publishes: alert, sensor event, window score and health, as typed values.

The scoring loop builds each message once from what it decided; ``to_payload()``
gives the JSON object that goes to MQTT (``<base>/alert``, ``/sensor``,
``/score``, ``/status``), to the status page and to ``simulate``'s stdout.
The key order of each payload is part of the format (the bytes on the wire
follow it): keep it when adding a field. Times are ISO 8601 UTC with
milliseconds (:func:`iso_utc`); docs/mqtt.md describes every field.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

__all__ = ["AlertMessage", "Detectors", "HealthMessage", "ModelRef", "Payload", "ScoreMessage", "SensorMessage",
           "iso_utc"]

#: A message's JSON object (plain JSON values).
Payload = dict[str, object]
#: ``{"name": ..., "sha256": ...}``: the model a message was scored with (``model_info.model_ref``).
ModelRef = dict[str, str]


def iso_utc(t: float) -> str:
    """Unix time -> ISO 8601 UTC with milliseconds (``2026-11-25T12:00:00.000Z``)."""
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ScoreMessage:
    """One scored window (``<base>/score``, QoS 0). Times are Unix seconds."""

    device_id: str
    time: float
    window_start: float
    window_end: float
    score: float
    threshold: float
    state: str
    source: str | None  # "microphone" or "replay": where the audio came from

    def to_payload(self) -> Payload:
        return {"device_id": self.device_id, "time": iso_utc(self.time),
                "window_start": iso_utc(self.window_start), "window_end": iso_utc(self.window_end),
                "score": self.score, "threshold": self.threshold, "state": self.state, "source": self.source}


@dataclass(frozen=True)
class Detectors:
    """Which detector opened an alert and every detector's standardised score (z, rounded to 3 places)."""

    fired: str
    z: dict[str, float]

    def to_payload(self) -> Payload:
        return {"fired": self.fired, "z": {k: round(v, 3) for k, v in self.z.items()}}


@dataclass(frozen=True)
class AlertMessage:
    """An alert's start or end (``<base>/alert``, durable). Times are Unix seconds.

    ``detectors`` only on a start (of a bundle with standardised scores);
    ``opened_at`` only on an end (``duration_s`` is derived from it).
    """

    event_id: str
    device_id: str
    machine: str
    event: str  # "start" | "end"
    time: float
    window_start: float
    window_end: float
    score: float
    threshold: float
    peak_score: float
    peak_window_start: float  # the strongest window of the event
    peak_window_end: float
    source: str | None
    model: ModelRef
    evidence: str | None
    explanation: Payload | None
    windows: int
    detectors: Detectors | None = None
    opened_at: float | None = None

    def to_payload(self) -> Payload:
        payload: Payload = {
            "event_id": self.event_id,
            "device_id": self.device_id,
            "machine": self.machine,
            "event": self.event,
            "time": iso_utc(self.time),
            "window_start": iso_utc(self.window_start),
            "window_end": iso_utc(self.window_end),
            "score": self.score,
            "threshold": self.threshold,
            "peak_score": self.peak_score,
            "peak_window_start": iso_utc(self.peak_window_start),
            "peak_window_end": iso_utc(self.peak_window_end),
            "source": self.source,
            "model": self.model,
            "evidence": self.evidence,
            "explanation": self.explanation,
            "windows": self.windows,
        }
        if self.detectors is not None:
            payload["detectors"] = self.detectors.to_payload()
        if self.opened_at is not None:
            payload["opened_at"] = iso_utc(self.opened_at)
            payload["duration_s"] = round(self.window_end - self.opened_at, 3)
        return payload


@dataclass(frozen=True)
class SensorMessage:
    """A microphone fault episode's start or end (``<base>/sensor``, durable). Times are Unix seconds.

    ``since``: when the episode began; ``at``: the window that started or ended it.
    """

    event: str  # "start" | "end"
    kind: str
    since: float
    at: float
    detail: str
    windows: int
    event_id: str
    device_id: str
    source: str | None
    time: float

    def to_payload(self) -> Payload:
        return {"event": self.event, "kind": self.kind, "since": iso_utc(self.since), "at": iso_utc(self.at),
                "detail": self.detail, "windows": self.windows, "event_id": self.event_id,
                "device_id": self.device_id, "source": self.source, "time": iso_utc(self.time)}


@dataclass(frozen=True)
class HealthMessage:
    """The periodic health message (``<base>/status``, retained). ``time``/``started_at``: Unix seconds.

    ``mqtt``: the publisher's counters (its ``last_error`` left out); ``storage``: the
    outbox's storage report (``None`` without MQTT); ``evidence_errors``: evidence WAVs not saved;
    ``queue_depth`` is sent only when the publisher has an outbox.
    """

    device_id: str
    time: float
    started_at: float
    state: str
    last_score: float | None
    threshold: float
    windows: int
    windows_scored: int
    windows_sensor_fault: int
    windows_scored_partial: int
    alerts: int
    mqtt: Payload
    xruns: int
    overruns: int
    last_error: str | None
    storage: Payload | None  # the outbox: "disk", or "memory" while the disk cannot be written
    evidence_errors: int
    source: Payload | None
    sensor: Payload | None
    model: ModelRef
    queue_depth: int | None = None

    def to_payload(self) -> Payload:
        payload: Payload = {
            "device_id": self.device_id,
            "time": iso_utc(self.time),
            "uptime_s": round(self.time - self.started_at, 1),
            "state": self.state,
            "last_score": self.last_score,
            "threshold": self.threshold,
            "windows": self.windows,
            "windows_scored": self.windows_scored,
            "windows_sensor_fault": self.windows_sensor_fault,
            "windows_scored_partial": self.windows_scored_partial,
            "alerts": self.alerts,
            "mqtt": {k: v for k, v in self.mqtt.items() if k != "last_error"},
            "xruns": self.xruns,
            "overruns": self.overruns,
            "last_error": self.last_error,
            "storage": self.storage,
            "evidence_errors": self.evidence_errors,
            "source": self.source,
            "sensor": self.sensor,
            "model": self.model,
        }
        if self.queue_depth is not None:
            payload["queue_depth"] = self.queue_depth
        return payload
