"""A real small filesystem for full-disk tests: a tmpfs of a few hundred kB mounted for one test.

Writes on it fail the way they fail on a full SD card (``ENOSPC`` from the
kernel, "database or disk is full" from SQLite); nothing is injected. Mounting
needs root (the CI container runs as root); elsewhere the test is skipped with
that reason, and under ``CI=true`` it fails (:func:`tests.conftest.require`).
Usage::

    with SmallDisk(tmp_path / "disk", size_kb=512) as disk:
        ...                      # disk.path is the mount point
        disk.fill()              # take every free byte (a filler file)
        disk.free()              # give them back
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from conftest import require


def can_mount() -> bool:
    return os.name == "posix" and os.geteuid() == 0 and shutil.which("mount") is not None


class SmallDisk:
    """A tmpfs of ``size_kb`` at ``path`` (created), unmounted on exit."""

    def __init__(self, path: Path, size_kb: int = 512, inodes: int | None = None) -> None:
        self.path = Path(path)
        self.size_kb = int(size_kb)
        self.inodes = inodes
        self._fillers: list[Path] = []

    def __enter__(self) -> SmallDisk:
        require(can_mount(), "mounting a small tmpfs for the full-disk test needs root")
        self.path.mkdir(parents=True, exist_ok=True)
        options = f"size={self.size_kb}k,mode=0755" + (f",nr_inodes={self.inodes}" if self.inodes else "")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                              str(self.path)], capture_output=True, text=True, timeout=20)
        require(res.returncode == 0, f"cannot mount a tmpfs here: {res.stderr.strip()}")
        return self

    def fill(self) -> int:
        """Write a filler file until the kernel says ENOSPC; returns the bytes taken."""
        filler = self.path / f".filler-{len(self._fillers)}"
        self._fillers.append(filler)
        taken = 0
        with open(filler, "wb", buffering=0) as fh:
            for chunk in (65536, 4096, 512, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        fh.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    taken += chunk
        return taken

    def fill_inodes(self) -> int:
        """Create empty files until no new file can be made (ENOSPC); returns how many."""
        folder = self.path / f".inodes-{len(self._fillers)}"
        try:
            folder.mkdir()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return 0
        self._fillers.append(folder)
        n = 0
        while True:
            try:
                (folder / str(n)).touch()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return n
            n += 1

    def free(self) -> None:
        """Remove the filler files: the space is back."""
        for f in self._fillers:
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink(missing_ok=True)
        self._fillers.clear()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=20)
