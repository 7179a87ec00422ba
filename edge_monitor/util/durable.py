"""Durable file replacement: what survives a power cut is the old file or the new one, never half of one.

``os.replace`` alone is atomic for a running system but not across a power
cut: the new file's data and the rename itself may still sit in the page
cache, and ext4 or F2FS on an SD card can come back with an empty file under
the new name. The recipe here is the standard one: write a temporary file in
the same folder, ``fsync`` it, rename it over the target, ``fsync`` the folder
(which makes the rename itself durable).

Used by the bundle writer (``model.json``, ``detectors.npz``), the config
writer (``learn --update-config``) and the daemon's small state files. Only
rare writes go through here (a model, a config, an alert opening): each costs
two fsyncs, never paid per window.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer", "fsync_dir", "replace_durably", "write_durably"]


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or an unlink inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows; nothing more can be done there
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (vfat over FUSE, /proc) refuse fsync on a folder: the rename still happened
    finally:
        os.close(fd)


def replace_durably(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename the already-synced ``tmp`` over ``target`` and sync the folder."""
    os.replace(tmp, target)
    fsync_dir(Path(target).parent)


@contextmanager
def atomic_writer(target: str | os.PathLike[str], mode: int | None = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``target`` durably when the block ends without an error.

    The temporary file lives in ``target``'s folder (a rename across
    filesystems would not be atomic) and is removed on any error, which
    propagates (``OSError`` for a full disk: ``errno.ENOSPC``). ``mode`` is
    applied before the rename (``None`` keeps the umask's: ``0o666 & ~umask``).
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        replace_durably(tmp, target)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_durably(target: str | os.PathLike[str], data: bytes | str, mode: int | None = 0o644) -> Path:
    """Replace ``target`` with ``data`` (``str`` is written as UTF-8) durably; returns ``target``."""
    with atomic_writer(target, mode) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(target)
