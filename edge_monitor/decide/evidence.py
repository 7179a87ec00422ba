"""Evidence WAVs: the strongest window that raised an alert, kept on disk within a quota.

Files are ``<state_dir>/evidence/<UTC time>_<event id>.wav`` (16-bit PCM,
written atomically). After each save the folder is trimmed to ``max_bytes``,
oldest first (by the time in the name, which sorts lexically). Only alerts
write to disk: no per-window writes wear the Pi's SD card.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_monitor.audio import audio_io

__all__ = ["EvidenceStore"]


class EvidenceStore:
    """Saves alert windows under ``folder`` and keeps the folder under ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.deleted = 0

    def save(self, event_id: str, samples: np.ndarray, sample_rate: int, window_start: float) -> Path:
        """Write one window; returns its path. Raises ``OSError``/``AudioFileError`` on failure."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(window_start))
        path = self.folder / f"{stamp}_{event_id}.wav"
        audio_io.write_wav(path, samples, sample_rate)
        self.enforce_quota(keep=path)
        return path

    def files(self) -> list[Path]:
        """Evidence files, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.wav") if p.is_file())

    def enforce_quota(self, keep: Path | None = None) -> list[Path]:
        """Delete the oldest files until the folder fits ``max_bytes``; return the deleted paths.

        ``keep`` (the file just written) is never deleted, even when it alone
        exceeds the quota.
        """
        files = self.files()
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        removed: list[Path] = []
        for p in files:
            if total <= self.max_bytes:
                break
            if keep is not None and p == keep:
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            total -= sizes[p]
            removed.append(p)
        self.deleted += len(removed)
        return removed
