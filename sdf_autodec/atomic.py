"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

Everything the project writes goes to a temporary name in the destination folder, then is renamed
into place with ``os.replace`` (atomic on POSIX and Windows within one filesystem).
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then rename ``tmp_path`` to ``path``.

    ``tmp_path`` keeps ``path``'s suffix, so writers that pick a format by suffix work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); the file gets what open() would give it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, write_file: Callable) -> None:
    """Like :func:`atomic_write`, but ``write_file`` receives an open binary file."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write_file(f)

    atomic_write(path, write)


def remove_temporaries(path: str | Path) -> None:
    """Remove the temporary files :func:`atomic_write` left for ``path`` when it was killed before its
    rename (a SIGKILL runs no cleanup). Call it before redoing the work that writes ``path``."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.stem)}.{'?' * 8}.tmp{glob.escape(path.suffix)}"):  # mkstemp's 8 random characters
        tmp.unlink(missing_ok=True)
