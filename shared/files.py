"""Writing files that other processes may read, or write, at the same moment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temp)`` on a temporary path beside ``path``, then rename it over ``path``.

    A reader never sees half a file, and concurrent writers of one path (two processes filling a
    shared cache, or building one model on first use) each write a temporary file of their own, so
    both renames succeed and the last one wins. The temporary name keeps ``path``'s suffix, from
    which some writers pick the format (soundfile) or to which they append one (``numpy.save``).
    If ``write`` raises, the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path
        The file to create or replace; its folder is created if missing.
    write
        Writes the complete file to the path it is given.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.partial{path.suffix}")
    try:
        write(temp)
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
