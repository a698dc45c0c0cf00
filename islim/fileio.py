"""Atomic writes: an interrupted run never leaves a half-written file at a final path.

Each writer produces a temporary file in the destination directory and renames it
into place only once it is complete (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; move it there only if the block succeeds.

    ``suffix`` is kept on the temporary name for writers that look at the extension
    (e.g. ``numpy.savez`` appends ``.npz`` when it is missing).
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part" + suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual permissions
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(final_path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    with atomic_path(final_path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def write_text(final_path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(final_path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv(final_path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV (no index) atomically."""
    with atomic_path(final_path) as tmp:
        frame.to_csv(tmp, index=False)


def write_parquet(final_path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as parquet (pyarrow, no index) atomically."""
    with atomic_path(final_path, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
