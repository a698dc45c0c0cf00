"""Getting bytes to a final path: HTTP(S)/file GETs with ``Range`` resumption, retries and
timeouts, local copies, and the ``.part`` file that is verified before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from islim.download.sources import Expected
from islim.download.verify import CHUNK_BYTES, Digest, bad_copy_path, check, write_pin
from islim.errors import DataFormatError, DownloadError, IntegrityError
from islim.fileio import atomic_path

log = logging.getLogger(__name__)

#: Seconds a request may wait for the server (connection and each read).
TIMEOUT_S = 60
#: Requests per download: the first plus the resumptions after a connection broke mid-file.
MAX_ATTEMPTS = 4
USER_AGENT = "islim-download (Python urllib)"
#: Default of :func:`download_file`'s ``expected``: nothing checked.
_NOTHING_EXPECTED = Expected()

# A connection that breaks while the body is read: the download resumes.
_CONNECTION_CUTS = (http.client.IncompleteRead, ConnectionError, TimeoutError)


class _HeaderStripper:
    """Drop the first ``n`` newline-terminated lines of a chunked byte stream."""

    def __init__(self, n: int):
        self.remaining = n

    def feed(self, chunk: bytes) -> bytes:
        """Return what is left of ``chunk`` once the pending header lines are dropped."""
        while self.remaining and chunk:
            cut = chunk.find(b"\n")
            if cut < 0:
                return b""
            chunk = chunk[cut + 1 :]
            self.remaining -= 1
        return chunk

    def finish(self, label: str) -> None:
        """Check, at the end of the stream, that every header line was seen.

        Raises
        ------
        DataFormatError
            The stream ended inside the header lines.
        """
        if self.remaining:
            raise DataFormatError(
                f"{label}: ended {self.remaining} line(s) short of the header lines to drop "
                "(strip_header_lines); the file is not the expected one"
            )


class _PartFile:
    """The ``.part`` file of one final path, digested (after dropping header lines) as it grows."""

    def __init__(self, out: BinaryIO, expected: Expected, label: str, strip_lines: int, bar: tqdm):
        self.out, self.expected, self.label, self.strip_lines, self.bar = out, expected, label, strip_lines, bar
        self.restart()

    def restart(self, total: int | None = None) -> None:
        """Forget every byte received so far: the source sends the file again from its start."""
        self.received = 0
        self.digest = Digest(with_md5=self.expected.md5 is not None)
        self.stripper = _HeaderStripper(self.strip_lines)
        self.out.seek(0)
        self.out.truncate()
        self.bar.reset(total=total)

    def write(self, chunk: bytes) -> None:
        """Append a chunk of the source's bytes; refuse more than the expected size."""
        self.received += len(chunk)
        self.bar.update(len(chunk))
        data = self.stripper.feed(chunk)
        self.digest.update(data)
        self.out.write(data)
        if self.expected.size is not None and self.digest.size > self.expected.size:
            raise IntegrityError(f"{self.label}: more than the expected {self.expected.size} bytes; not the expected file")

    def copy_from(self, stream: BinaryIO) -> None:
        """Append everything ``stream`` yields."""
        while chunk := stream.read(CHUNK_BYTES):
            self.write(chunk)


@contextlib.contextmanager
def _receiving(
    final: Path,
    expected: Expected,
    label: str,
    *,
    strip_lines: int = 0,
    pin: Path | None = None,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[_PartFile]:
    """Yield a :class:`_PartFile` beside ``final``; verify it when the block ends, then rename it.

    A block that raises leaves nothing behind. A complete copy whose size, digests, line count or
    pin do not match is moved to :func:`~islim.download.verify.bad_copy_path` (replacing an older
    one) and the :class:`IntegrityError` says so. Writes the pin on first success.
    """
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=final.name,
        disable=not progress or not sys.stderr.isatty(),
        leave=False,
    )
    with bar, atomic_path(final) as tmp:
        with open(tmp, "wb") as out:
            part = _PartFile(out, expected, label, strip_lines, bar)
            yield part
        part.stripper.finish(label)
        try:
            check(part.digest, expected, label, pin)
        except IntegrityError as err:
            bad = bad_copy_path(final)
            os.replace(tmp, bad)
            raise IntegrityError(f"{err}; the rejected copy is kept as {bad} for inspection (delete it when done)") from None
    if pin is not None and not pin.exists():
        write_pin(pin, final, part.digest.sha256)


def write_verified(
    stream: BinaryIO,
    final: Path,
    expected: Expected,
    label: str,
    *,
    announced: int | None,
    strip_lines: int = 0,
    pin: Path | None = None,
    progress: bool = False,
) -> Path:
    """Copy a local ``stream`` to ``final`` through a ``.part`` file, verifying before the rename.

    Parameters
    ----------
    stream : binary file object
        Read to its end in ``CHUNK_BYTES`` chunks.
    final : Path
        Destination; written only once every check passed.
    expected : Expected
        Size, digests and line count of the bytes written, i.e. after ``strip_lines``
        leading lines are dropped.
    label : str
        Name of the copy in messages.
    announced : int or None
        Byte count the producer promised (archive header, file size).
    strip_lines : int
        Leading lines of ``stream`` to drop.
    pin : Path, optional
        Trust-on-first-use pin file.
    progress : bool
        Show a tqdm bar on an interactive stderr.

    Returns
    -------
    Path
        ``final``.

    Raises
    ------
    IntegrityError
        Fewer or more bytes than ``announced``, or a mismatch with ``expected`` / the pin
        (the complete copy is then kept as ``<final>.bad``).
    DataFormatError
        ``stream`` ended inside the header lines to drop.
    """
    with _receiving(final, expected, label, strip_lines=strip_lines, pin=pin, progress=progress, total=announced) as part:
        part.copy_from(stream)
        if announced is not None and part.received != announced:
            raise IntegrityError(f"{label}: truncated or overlong: {announced} bytes announced, {part.received} received")
    return final


def copy_file(src: Path, dest: Path, expected: Expected, *, strip_lines: int, pin: Path | None, progress: bool) -> Path:
    """Copy a local file to ``dest`` like :func:`download_file`, dropping header lines.

    Parameters
    ----------
    src : Path
        The local file (e.g. a mirror's copy).
    dest : Path
        Destination; written only once every check passed.
    expected : Expected
        What the copy (after dropping ``strip_lines`` lines) must match.
    strip_lines : int
        Leading lines of ``src`` to drop.
    pin : Path or None
        Trust-on-first-use pin file.
    progress : bool
        Show a tqdm bar on an interactive stderr.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    IntegrityError, DataFormatError
        As :func:`write_verified`.
    """
    with open(src, "rb") as stream:
        return write_verified(
            stream,
            dest,
            expected,
            f"{dest.name} from {src}",
            announced=src.stat().st_size,
            strip_lines=strip_lines,
            pin=pin,
            progress=progress,
        )


def _announced_range(response, offset: int) -> tuple[int, int | None]:
    """(first byte, total size or None) of what an HTTP/file response to a request at ``offset`` carries."""
    content_range = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", content_range)
    if getattr(response, "status", None) == 206 and match:
        return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.strip().isdigit() else None


def _get_into(url: str, part: _PartFile) -> int | None:
    """One GET of ``url`` appended to ``part``: from byte ``part.received`` on (HTTP Range) if it is > 0.

    A server that ignores the range sends the whole file again, and ``part`` restarts. A
    connection that breaks mid-body ends the request quietly (the caller compares sizes).
    Returns the total size the server announced, or ``None``.
    """
    offset = part.received
    headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as response:
        start, total = _announced_range(response, offset)
        if start != offset:
            if start != 0:
                raise DownloadError(f"{url}: asked for bytes {offset}- and got bytes {start}-; the server mishandles ranges")
            log.warning("%s: the server ignored the range request; downloading from the start", url)
            part.restart(total)
        try:
            part.copy_from(response)
        except _CONNECTION_CUTS as err:
            log.warning("%s: connection broken after %d bytes: %s", url, part.received, err)
    return total


def download_file(
    url: str,
    dest: str | os.PathLike,
    expected: Expected = _NOTHING_EXPECTED,
    *,
    pin: Path | None = None,
    progress: bool = True,
) -> Path:
    """Stream ``url`` (http, https or file) to ``dest``, verified and atomically.

    Parameters
    ----------
    url : str
        Where to read from, in 1 MiB chunks. When the connection breaks before the announced
        Content-Length, the download resumes where it stopped (an HTTP ``Range`` request; from
        the start if the server ignores ranges), up to ``MAX_ATTEMPTS`` requests in all.
    dest : path-like
        Final path; written only once every check passed.
    expected : Expected
        Size, digests and line count to check.
    pin : Path, optional
        Trust-on-first-use pin file (see :mod:`islim.download`).
    progress : bool
        Show a tqdm bar on an interactive stderr.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    IntegrityError
        Still truncated after ``MAX_ATTEMPTS`` requests, or overlong: ``dest`` is untouched and
        nothing is left behind. Size / digest / line-count mismatch of a complete download:
        ``dest`` is untouched and the copy is kept as ``<dest>.bad`` (the message says so).
    OSError
        Network or HTTP error (``urllib.error.URLError`` / ``HTTPError``).
    """
    dest = Path(dest)
    label = f"{dest.name} from {url}"
    log.info("downloading %s to %s", url, dest)
    with _receiving(dest, expected, label, pin=pin, progress=progress) as part:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            total = _get_into(url, part)
            if total is None or part.received == total:
                break
            if part.received > total or attempt == MAX_ATTEMPTS:
                raise IntegrityError(
                    f"{label}: truncated or overlong: {total} bytes announced, {part.received} received "
                    f"after {attempt} request(s); try again later or use another source"
                )
            log.warning("%s: %d of %d bytes received; resuming (request %d of %d)", label, part.received, total, attempt + 1, MAX_ATTEMPTS)
    return dest
