"""Opening raw interaction files whatever their compression, and the words of their errors.

A raw file may be plain, gzip- or zstd-compressed. The compression is told by the file's first
bytes (gzip ``1f 8b``, zstd ``28 b5 2f fd``), never by its name alone: a file named ``.gz`` or
``.zst`` that does not start with the matching bytes is refused (a wrong name or a failed
download), and a compressed file is read whatever its name. A stream that is cut short or corrupt
raises :class:`~islim.errors.DataFormatError` naming the file (gzip checks its CRC; zstd detects a
cut frame, and corrupt data only when the file was written with checksums). Several concatenated
members (gzip) or frames (zstd) are read as one stream, as ``zcat`` and ``zstdcat`` do.

Everything here reads the file afresh, so errors are worded with 1-based line numbers of the
uncompressed text, as an editor (or ``zless``) shows them.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from islim.errors import DataFormatError

#: First bytes of each compression, as written by ``gzip`` and ``zstd``.
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
#: File-name suffixes that announce a compression; the magic bytes must then agree.
SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
#: Characters of a bad value quoted in an error message.
SHOWN_CHARS = 60
#: Compressed bytes read at once from a zstd file.
_CHUNK = 1 << 20


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_CHARS` characters with the full length when longer."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(str(value)):,} characters)"


def compression_of(path: Path) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``None`` (plain) for the file at ``path``, from its first bytes.

    Raises
    ------
    DataFormatError
        The name announces a compression (:data:`SUFFIXES`) that the first bytes do not show.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    found = next((name for name, magic in MAGIC.items() if head.startswith(magic)), None)
    named = SUFFIXES.get(path.suffix.lower())
    if named is not None and found != named:
        raise DataFormatError(
            f"{path}: the name says {named}-compressed, but the file does not start with the {named} bytes "
            f"{MAGIC[named].hex(' ')} (it starts with {head.hex(' ') or 'nothing: it is empty'}); "
            f"fetch it again, or rename it without {path.suffix!r} if it is not compressed"
        )
    return found


def plain_name(path: Path) -> Path:
    """``path`` without a compression suffix (``ratings.csv.gz`` -> ``ratings.csv``), to tell its format."""
    return path.with_suffix("") if path.suffix.lower() in SUFFIXES else path


class _ZstdReader(io.RawIOBase):
    """Decompressed bytes of a zstd file, frame after frame; a cut last frame raises ``EOFError``.

    ``zstandard``'s own stream reader ends quietly at a cut frame, which would drop the end of a
    file without a word.
    """

    def __init__(self, handle: BinaryIO):
        self._handle = handle
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False
        self._out = b""
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at == len(self._out):
            chunk = self._handle.read(_CHUNK)
            if not chunk:
                if self._in_frame:
                    raise EOFError("the zstd stream ends inside a frame (the file is cut short)")
                return 0
            self._out, self._at = self._decompress(chunk), 0
        count = min(len(buffer), len(self._out) - self._at)
        buffer[:count] = self._out[self._at : self._at + count]
        self._at += count
        return count

    def _decompress(self, chunk: bytes) -> bytes:
        parts = []
        while chunk:
            if self._frame.eof:
                self._frame = zstandard.ZstdDecompressor().decompressobj()
            parts.append(self._frame.decompress(chunk))
            self._in_frame = not self._frame.eof
            chunk = self._frame.unused_data if self._frame.eof else b""
        return b"".join(parts)

    def close(self) -> None:
        self._handle.close()
        super().close()


@contextmanager
def open_raw(path: Path) -> Iterator[BinaryIO]:
    """The uncompressed bytes of ``path`` as a buffered binary file (plain, gzip or zstd).

    Errors of a cut or corrupt stream surface while reading: wrap the reading in
    :func:`decompression_errors`.
    """
    compression = compression_of(path)
    handle = open(path, "rb")
    if compression == "gzip":
        stream = gzip.GzipFile(fileobj=handle, mode="rb")
    elif compression == "zstd":
        stream = io.BufferedReader(_ZstdReader(handle), buffer_size=_CHUNK)
    else:
        stream = handle
    try:
        yield stream
    finally:
        stream.close()
        handle.close()


def read_raw_bytes(path: Path) -> bytes:
    """All uncompressed bytes of ``path`` (see :func:`open_raw`)."""
    with decompression_errors(path), open_raw(path) as handle:
        return handle.read()


@contextmanager
def decompression_errors(path: Path) -> Iterator[None]:
    """Turn the errors of a cut or corrupt gzip/zstd stream into a :class:`DataFormatError` naming ``path``."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError) as exc:
        raise DataFormatError(
            f"{path}: the compressed data is cut short or corrupt ({exc}); fetch the file again, or check it with `gzip -t` / `zstd -t`"
        ) from exc


def not_utf8_line(path: Path, number: int, line: bytes, bad: UnicodeDecodeError, what: str) -> DataFormatError:
    """The error for line ``number`` (1-based) of ``path``, whose bytes ``line`` are not UTF-8 at ``bad``."""
    return DataFormatError(
        f"{path}, line {number}: bytes {line[bad.start : bad.end]!r} at character {len(line[: bad.start].decode('utf-8')) + 1} "
        f"are not UTF-8 text; expected {what} in UTF-8. Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) "
        "or fix that line"
    )
