"""Safe, streaming access to one member of a zip, wheel, tar or compressed tar archive.

Only the one requested member is ever read, and it is never extracted under its own
archive path: :func:`open_member` yields a binary stream that the caller writes to a
destination of its choosing (``islim.download`` writes it atomically, verifying it on
the way). A member is refused with :class:`~islim.errors.DataFormatError` when

* its name is absolute (``/x``, ``C:/x``), contains ``..`` or a backslash, i.e. would
  resolve outside the extraction directory;
* it is not a regular file: directories, symbolic links and hard links are refused
  whatever they point to (an archive of a rating table has no reason to contain them),
  as are devices and FIFOs;
* for tar archives, ``tarfile.data_filter`` (the ``filter="data"`` policy, Python ≥ 3.11.4)
  rejects it;
* decompressing it would produce more than :data:`MAX_EXPANDED_BYTES`, or more than
  :data:`RATIO_FLOOR_BYTES` at a compression ratio above :data:`MAX_RATIO` (a zip bomb). The
  sizes come from the archive's headers, before anything is decompressed: for zip the member's
  own sizes (its stream never yields more than the declared size); for a tar stream the bytes up
  to the end of each member on the way, against the size of the whole compressed file.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from islim.errors import DataFormatError

__all__ = ["MAX_EXPANDED_BYTES", "MAX_RATIO", "RATIO_FLOOR_BYTES", "check_expansion", "check_member_name", "open_member"]

#: Most bytes one member may decompress to (a tar stream: everything up to its end).
MAX_EXPANDED_BYTES = 64 * 2**30
#: Highest compression ratio accepted above :data:`RATIO_FLOOR_BYTES`; rating tables compress
#: 3–10×, zip bombs 1000× and more.
MAX_RATIO = 200
#: Outputs up to this size are not held to :data:`MAX_RATIO` (small files of zeros compress well).
RATIO_FLOOR_BYTES = 16 * 2**20
#: Decompressing readers of compressed tar files, by the magic numbers ``tarfile`` recognises. Each
#: raises ``EOFError`` when its stream ends before the end-of-stream marker and checks the stream's
#: checksum.
_DECOMPRESSORS = ((b"\x1f\x8b\x08", gzip.open), (b"BZh91", bz2.open), (b"\xfd7zXZ", lzma.open))
#: Bytes read at a time when an archive is read to its end.
_CHUNK_BYTES = 1 << 20


def check_member_name(member: str) -> str:
    """Return ``member`` if it is a safe relative POSIX path, else raise ``DataFormatError``.

    Safe means: non-empty, not absolute, no drive letter, no backslash and no ``..``
    component, so that ``<dir>/<member>`` resolves inside ``<dir>`` for every ``<dir>``.
    Cost O(len(member)).
    """
    path = PurePosixPath(member)
    escapes = (
        not member
        or path.is_absolute()
        or "\\" in member
        or (len(member) > 1 and member[0].isalpha() and member[1] == ":")
        or ".." in path.parts
    )
    if escapes:
        raise DataFormatError(
            f"refusing archive member {member!r}: expected a relative path without '..', "
            "a drive letter or a backslash, because it would resolve outside the extraction "
            "directory; the archive is malformed or malicious, use a trusted copy"
        )
    return member


def check_expansion(archive: Path, member: str, expanded: int, compressed: int) -> None:
    """Raise ``DataFormatError`` if ``compressed`` bytes of ``archive`` would expand too much.

    ``expanded`` is the byte count decompression produces up to the end of ``member``.
    """
    ratio = expanded / max(compressed, 1)
    if expanded > MAX_EXPANDED_BYTES or (expanded > RATIO_FLOOR_BYTES and ratio > MAX_RATIO):
        raise DataFormatError(
            f"refusing member {member!r} of {archive}: it would decompress to {expanded:,} bytes from "
            f"{compressed:,} compressed ({ratio:,.0f}x); the limits are {MAX_EXPANDED_BYTES:,} bytes and "
            f"{MAX_RATIO}x above {RATIO_FLOOR_BYTES:,} bytes (islim.archive). The archive is a "
            "decompression bomb or corrupt; use a trusted copy"
        )


@contextlib.contextmanager
def open_member(
    archive: str | os.PathLike, member: str, dest_dir: str | os.PathLike, *, to_end: bool = False
) -> Iterator[tuple[BinaryIO, int]]:
    """Open one regular-file member of an archive for streaming reads.

    Parameters
    ----------
    archive : path-like
        A zip file (``.zip``, ``.whl``) or a tar file, plain or compressed with gzip,
        bzip2 or xz. The format is detected from the content, not the name.
    member : str
        Path of the member inside the archive (for tar, a leading ``./`` in the
        archive's own names is ignored when matching).
    dest_dir : path-like
        Directory the member's content is destined for; tar members are checked
        against it with ``tarfile.data_filter``.
    to_end : bool
        Check that the archive is complete when the member's stream reaches its end (before it
        returns its final empty read): for a tar, read every later header and the compressed
        stream up to its end-of-stream marker and checksum (a zip's central directory, at its
        very end, is read on opening anyway). For an archive whose own size and digest are
        unknown, e.g. a download the server sent without ``Content-Length``.

    Yields
    ------
    (stream, size) : (binary file object, int)
        The member's decompressed bytes and their count as recorded in the archive.
        For zip members the CRC-32 is checked when the stream reaches its end.

    Raises
    ------
    DataFormatError
        Unsafe or non-regular member, too large an expansion, member not found, not an
        archive, or (``to_end``) a tar archive that ends early.

    Notes
    -----
    Tar archives are read in stream mode (one sequential pass, stopping at the
    member), so a 700 MB ``.tar.gz`` is decompressed at most once.
    """
    check_member_name(member)
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            info = _zip_member(zf, member, archive)
            with zf.open(info) as stream:
                yield stream, info.file_size
    elif tarfile.is_tarfile(archive):
        with _decompressed(archive) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
            info = _tar_member(tf, member, archive, Path(dest_dir))
            stream = tf.extractfile(info)
            yield (_ThenToEnd(stream, lambda: _read_tar_to_end(tf, raw, archive)) if to_end else stream), info.size
    else:
        raise DataFormatError(
            f"{archive} is neither a zip nor a tar archive (nor the start of one: a zip cut short loses "
            f"its directory, which is at its end), but the source names member {member!r} inside it; "
            "if a fresh download fails the same way, check the source's url/filename, or drop 'member' "
            "if the download is the file itself"
        )


class _ThenToEnd:
    """A member's stream that calls ``at_end`` once, when a read first finds the stream exhausted."""

    def __init__(self, stream: BinaryIO, at_end: Callable[[], None]):
        self.stream, self.at_end = stream, at_end

    def read(self, n: int = -1) -> bytes:
        """Read like the wrapped stream; at its end, run ``at_end`` (which may raise) first."""
        data = self.stream.read(n)
        if (not data or n is None or n < 0) and self.at_end is not None:
            at_end, self.at_end = self.at_end, None
            at_end()
        return data


@contextlib.contextmanager
def _decompressed(archive: Path) -> Iterator[BinaryIO]:
    """The tar stream of ``archive``: decompressed by the module its magic number names, else raw."""
    with open(archive, "rb") as head:
        magic = head.read(6)
    opener = next((opener for prefix, opener in _DECOMPRESSORS if magic.startswith(prefix)), open)
    with opener(archive, "rb") as stream:
        yield stream


def _read_tar_to_end(tf: tarfile.TarFile, raw: BinaryIO, archive: Path) -> None:
    """Read the rest of a stream-mode tar: every header, then the compressed stream to its end."""
    compressed = archive.stat().st_size
    try:
        for info in tf:
            check_expansion(archive, info.name, info.offset_data + info.size, compressed)
        while raw.read(_CHUNK_BYTES):
            check_expansion(archive, "<end of archive>", raw.tell(), compressed)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataFormatError(
            f"{archive} ends early or is corrupt after the member was read ({type(err).__name__}: {err}); "
            "the archive is truncated or damaged: fetch it again or use a verified copy"
        ) from err


def _zip_member(zf: zipfile.ZipFile, member: str, archive: Path) -> zipfile.ZipInfo:
    """Return the ZipInfo of ``member``; refuse directories and symbolic links."""
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise _not_found(member, archive, zf.namelist()) from None
    unix_mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISLNK(unix_mode):
        raise DataFormatError(
            f"refusing member {member!r} of {archive}: expected a regular file, found a {'directory' if info.is_dir() else 'symbolic link'}"
        )
    check_expansion(archive, member, info.file_size, info.compress_size)
    return info


def _tar_member(tf: tarfile.TarFile, member: str, archive: Path, dest_dir: Path) -> tarfile.TarInfo:
    """Advance the stream-mode tar to ``member`` and return its vetted TarInfo."""
    seen: list[str] = []
    compressed = archive.stat().st_size
    for info in tf:
        check_expansion(archive, info.name, info.offset_data + info.size, compressed)
        name = info.name.removeprefix("./")
        if name != member:
            seen.append(info.name)
            continue
        check_member_name(info.name)
        if not info.isreg():
            raise DataFormatError(
                f"refusing member {member!r} of {archive}: expected a regular file, found "
                f"tar type {info.type!r} (links, directories and devices are never extracted)"
            )
        data_filter = getattr(tarfile, "data_filter", None)  # absent before Python 3.11.4
        try:
            if data_filter is not None:
                data_filter(info, str(dest_dir))
        except tarfile.FilterError as err:
            raise DataFormatError(f"refusing member {member!r} of {archive}: {err}") from err
        return info
    raise _not_found(member, archive, seen)


def _not_found(member: str, archive: Path, names: list[str]) -> DataFormatError:
    """Build the error for a missing member, listing same-basename candidates."""
    base = PurePosixPath(member).name
    similar = [n for n in names if PurePosixPath(n).name == base][:5]
    hint = f"; members with the same basename: {similar}" if similar else ""
    return DataFormatError(f"{archive} has no member {member!r} ({len(names)} other members){hint}; fix the source's 'member' path")
