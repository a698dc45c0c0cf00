"""Verification of files: size, md5, sha256, line count, trust-on-first-use pins, ``.bad`` copies."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from islim.download.sources import Expected
from islim.errors import IntegrityError
from islim.fileio import write_text

log = logging.getLogger(__name__)

#: Bytes read at a time when a file is verified.
CHUNK_BYTES = 1 << 20


class Digest:
    """Running size, line count, sha256 and (optionally) md5 of a byte stream.

    Parameters
    ----------
    with_md5 : bool
        Also compute the md5 (only when a source publishes one).
    """

    def __init__(self, with_md5: bool):
        self.size = 0
        self._newlines = 0
        self._last = b""
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None

    def update(self, chunk: bytes) -> None:
        """Account for the next ``chunk`` of the stream."""
        if not chunk:
            return
        self.size += len(chunk)
        self._newlines += chunk.count(b"\n")
        self._last = chunk[-1:]
        self._sha256.update(chunk)
        if self._md5 is not None:
            self._md5.update(chunk)

    @property
    def lines(self) -> int:
        """Newline count, plus one if the stream ends with an unterminated line."""
        return self._newlines + (self._last not in (b"", b"\n"))

    @property
    def sha256(self) -> str:
        """Lower-case hex sha256 of the bytes so far."""
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str | None:
        """Lower-case hex md5 of the bytes so far, or ``None`` if not computed."""
        return None if self._md5 is None else self._md5.hexdigest()


def verify_file(path: str | os.PathLike, expected: Expected, label: str | None = None, pin: Path | None = None) -> str:
    """Check an existing file against ``expected`` (and a pin file, if it exists).

    Reads the file once in 1 MiB chunks: O(size) time, O(1) memory.

    Parameters
    ----------
    path : path-like
        The file to check.
    expected : Expected
        Size, digests and line count it must have.
    label : str, optional
        Name of the file in messages (default: ``path``).
    pin : Path, optional
        Trust-on-first-use pin file; checked only if it exists.

    Returns
    -------
    str
        The file's sha256 (hex).

    Raises
    ------
    IntegrityError
        Size, digest, line count or pinned digest differ; the message names the file,
        the expected and the actual value.
    """
    path = Path(path)
    digest = Digest(with_md5=expected.md5 is not None)
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    check(digest, expected, label or str(path), pin)
    return digest.sha256


def check(digest: Digest, expected: Expected, label: str, pin: Path | None) -> None:
    """Compare a finished :class:`Digest` with ``expected`` and with ``pin`` if it exists.

    Parameters
    ----------
    digest : Digest
        Of the whole file.
    expected : Expected
        What the file must match; ``None`` fields are not checked.
    label : str
        Name of the file in messages.
    pin : Path or None
        Trust-on-first-use pin file.

    Raises
    ------
    IntegrityError
        The first mismatch, naming the expected and the actual value.
    """
    what_to_do = "the file is corrupt, truncated or another version; use another source or a verified copy"
    if expected.size is not None and digest.size != expected.size:
        raise IntegrityError(f"{label}: expected {expected.size} bytes, found {digest.size}; {what_to_do}")
    for algo, want, got in (("sha256", expected.sha256, digest.sha256), ("md5", expected.md5, digest.md5)):
        if want is not None and got != want:
            raise IntegrityError(f"{label}: {algo} mismatch: expected {want}, actual {got}; {what_to_do}")
    if expected.lines is not None and digest.lines != expected.lines:
        raise IntegrityError(f"{label}: expected {expected.lines} lines, found {digest.lines}; {what_to_do}")
    if pin is not None and pin.exists():
        pinned = pin.read_text(encoding="utf-8").split(maxsplit=1)[0].lower()
        if digest.sha256 != pinned:
            raise IntegrityError(
                f"{label}: sha256 mismatch with the digest pinned on first download in {pin}: "
                f"expected {pinned}, actual {digest.sha256}; if the upstream file changed "
                f"legitimately, delete {pin} and fetch again"
            )


def write_pin(pin: Path, final: Path, sha256: str) -> None:
    """Record ``final``'s sha256 in ``pin`` (``sha256sum`` format): trust on first use.

    Parameters
    ----------
    pin : Path
        The pin file, written atomically.
    final : Path
        The verified file.
    sha256 : str
        Its hex sha256.
    """
    write_text(pin, f"{sha256}  {final.name}\n")
    log.info("pinned sha256 %s of %s in %s (trust on first use)", sha256, final, pin)


def bad_copy_path(final: Path) -> Path:
    """Where a copy of ``final`` that failed verification is kept for inspection.

    Parameters
    ----------
    final : Path
        The final path the copy was meant for.

    Returns
    -------
    Path
        ``<final>.bad``.
    """
    return final.with_name(final.name + ".bad")
