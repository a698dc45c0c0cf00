"""Getting bytes to a final path: HTTP(S)/file GETs with ``Range`` resumption, retries, timeouts, a
deadline and a minimum throughput, local copies, and the ``<final>.part`` file that is verified before
it is renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import http.client
import logging
import os
import re
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from islim.download.sources import Expected, Limits, default_limits
from islim.download.verify import CHUNK_BYTES, Digest, bad_copy_path, check, write_pin
from islim.errors import DataFormatError, DownloadError, IntegrityError

log = logging.getLogger(__name__)

#: Longest wait for the server, in seconds: for the connection, then for each read of the body.
#: A download waits less when its source's ``throughput_window_s`` or the time left before its
#: ``deadline_s`` is shorter.
TIMEOUT_S = 60
#: Requests per download: the first plus the resumptions after a connection broke mid-file.
MAX_ATTEMPTS = 4
USER_AGENT = "islim-download (Python urllib)"
#: Default of :func:`download_file`'s ``expected``: nothing checked.
_NOTHING_EXPECTED = Expected()

# A connection that breaks while the body is read: the download resumes.
_CONNECTION_CUTS = (http.client.IncompleteRead, ConnectionError, TimeoutError)

#: A check of the finished ``.part`` file beyond its size and digests (see :func:`download_file`).
PartCheck = Callable[[Path], None]


def part_path(final: Path) -> Path:
    """The temporary file ``final`` is written to before it is verified and renamed.

    Parameters
    ----------
    final : Path
        The final path.

    Returns
    -------
    Path
        ``<final>.part``. At most one exists per final path: a run killed mid-download leaves
        it, and the next download of the same file resumes it (:func:`download_file`) or
        starts it over.
    """
    return final.with_name(final.name + ".part")


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
        #: Why the download's completeness cannot be told (set by :func:`download_file`), or None.
        self.caveat: str | None = None
        self.received = 0
        self.digest = Digest(with_md5=expected.md5 is not None)
        self.stripper = _HeaderStripper(strip_lines)

    def restart(self, total: int | None = None) -> None:
        """Forget every byte received so far: the source sends the file again from its start."""
        self.received = 0
        self.digest = Digest(with_md5=self.expected.md5 is not None)
        self.stripper = _HeaderStripper(self.strip_lines)
        self.out.seek(0)
        self.out.truncate()
        self.bar.reset(total=total)

    def adopt(self) -> None:
        """Take over the bytes already in the file (a killed run's download), to append the rest."""
        self.out.seek(0)
        while chunk := self.out.read(CHUNK_BYTES):
            self.received += len(chunk)
            self.digest.update(self.stripper.feed(chunk))
        self.bar.update(self.received)

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


class _Pace:
    """The deadline and the minimum throughput of one download, over all its requests."""

    def __init__(self, limits: Limits, label: str):
        self.limits, self.label = limits, label
        self.start = self.window_start = time.monotonic()
        self.window_bytes = 0

    def timeout(self, received: int) -> float:
        """Seconds the next request may wait for the server; raise if the deadline has passed."""
        left = self.start + self.limits.deadline_s - time.monotonic()
        if left <= 0:
            raise self._late(received)
        return min(TIMEOUT_S, self.limits.throughput_window_s, left)

    def account(self, n: int, received: int) -> None:
        """Count ``n`` more bytes (``received`` in all); raise past the deadline or below the minimum rate."""
        now = time.monotonic()
        if now - self.start > self.limits.deadline_s:
            raise self._late(received)
        self.window_bytes += n
        elapsed = now - self.window_start
        if elapsed < self.limits.throughput_window_s:
            return
        rate = self.window_bytes / elapsed
        if rate < self.limits.min_bytes_per_s:
            raise DownloadError(
                f"{self.label}: too slow: {self.window_bytes} bytes in the last {elapsed:.3g} s ({rate:,.0f} B/s), "
                f"below the source's min_bytes_per_s = {self.limits.min_bytes_per_s:g} averaged over its "
                f"throughput_window_s = {self.limits.throughput_window_s:g} s ({received} bytes received in all); "
                "gave up on this source: use another source, or lower min_bytes_per_s if the link is known to be that slow"
            )
        self.window_start, self.window_bytes = now, 0

    def _late(self, received: int) -> DownloadError:
        return DownloadError(
            f"{self.label}: not complete within the source's deadline_s = {self.limits.deadline_s:g} s "
            f"({received} bytes received); gave up on this source: try again later, use another source, "
            "or raise deadline_s if the link is known to be that slow"
        )


@contextlib.contextmanager
def _locked(final: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """Open ``<final>.part`` (created if missing, kept if not) under an exclusive lock.

    The lock (``flock``) makes a second process writing the same final path fail at once instead
    of mixing its bytes into the first one's; it is released when the process dies, so a killed
    run's ``.part`` is taken over by the next one. Temporary files of older islim versions
    (``.<final>.XXXXXXXX.part``) are removed.
    """
    path = part_path(final)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        out = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+b")
        try:
            fcntl.flock(out, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.close()
            raise DownloadError(
                f"{path} is being written by another process (it holds a lock on it); wait for that fetch of "
                f"{final.name} to finish, or stop it"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(out.fileno()).st_ino:
                break
        out.close()  # the other process renamed or removed the file between our open and our lock
    else:
        raise DownloadError(f"{path} keeps being replaced by another process; wait for the other fetch of {final.name} to finish")
    try:
        for old in final.parent.glob(glob.escape(f".{final.name}.") + "????????.part"):  # mkstemp's 8 random characters
            log.info("removing %s, left by an interrupted run", old)
            old.unlink(missing_ok=True)
        yield path, out
    finally:
        out.close()


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
    resume: bool = False,
    check_part: PartCheck | None = None,
) -> Iterator[_PartFile]:
    """Yield a :class:`_PartFile` on ``<final>.part``; verify it when the block ends, then rename it.

    With ``resume``, bytes a killed run left in the ``.part`` are kept (the caller asks for the
    rest), else they are dropped. A block that raises leaves nothing behind. A complete copy whose
    size, digests, line count or pin do not match, or that ``check_part`` (called with the ``.part``
    path once those passed) refuses with an :class:`IntegrityError` or :class:`DataFormatError`,
    is moved to :func:`~islim.download.verify.bad_copy_path` (replacing an older one) and the error
    says so. Writes the pin on first success.
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
    with bar, _locked(final) as (tmp, out):
        part = _PartFile(out, expected, label, strip_lines, bar)
        leftover = os.fstat(out.fileno()).st_size
        if leftover and resume and (expected.size is None or leftover < expected.size):
            log.info("%s: resuming from the %d bytes an interrupted run left in %s", label, leftover, tmp)
            part.adopt()
        else:
            if leftover:
                log.info("%s: dropping the %d bytes an interrupted run left in %s", label, leftover, tmp)
            part.restart(total)
        moved = False  # once renamed, the path may be another process's new .part
        try:
            yield part
            out.flush()
            part.stripper.finish(label)
            try:
                check(part.digest, expected, label, pin)
                if check_part is not None:
                    check_part(tmp)
            except (IntegrityError, DataFormatError) as err:
                bad = bad_copy_path(final)
                os.replace(tmp, bad)
                moved = True
                kept = f"the rejected copy is kept as {bad} for inspection (delete it when done)"
                if part.caveat is None:
                    raise type(err)(f"{err}; {kept}") from None
                raise type(err)(
                    f"{label}: {part.caveat}; this copy ({part.received} bytes) failed the checks that could be made, "
                    f"so it is most likely truncated: {err}; {kept}; try again later or use another source"
                ) from None
            os.replace(tmp, final)
            moved = True
        finally:
            if not moved:
                tmp.unlink(missing_ok=True)
    if part.caveat is not None and check_part is None and expected.lines is None and (pin is None or not pin.exists()):
        log.warning("%s: %s; nothing else could check it, so it was accepted unverified", label, part.caveat)
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


def _get_into(url: str, part: _PartFile, pace: _Pace) -> tuple[int | None, str | None]:
    """One GET of ``url`` appended to ``part``: from byte ``part.received`` on (HTTP Range) if it is > 0.

    A server that ignores the range sends the whole file again, and ``part`` restarts. A
    connection that breaks or stays silent mid-body ends the request quietly: the caller decides
    whether to resume. Returns the total size the server announced (or ``None``) and how the
    connection broke (``None`` if the body ended normally).
    """
    offset = part.received
    headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
    timeout = pace.timeout(offset)
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        start, total = _announced_range(response, offset)
        if start != offset:
            if start != 0:
                raise DownloadError(f"{url}: asked for bytes {offset}- and got bytes {start}-; the server mishandles ranges")
            log.warning("%s: the server ignored the range request; downloading from the start", url)
            part.restart(total)
        try:
            while chunk := response.read1(CHUNK_BYTES):  # read1: returns what has arrived, so the pace is checked
                part.write(chunk)
                pace.account(len(chunk), part.received)
        except _CONNECTION_CUTS as err:
            cut = f"no data for {timeout:.3g} s" if isinstance(err, TimeoutError) else f"connection broken: {type(err).__name__}: {err}"
            log.warning("%s: %s after %d bytes", url, cut, part.received)
            return total, cut
    return total, None


def _has_own_checks(expected: Expected) -> bool:
    """Whether ``expected`` can tell a truncated copy from a complete one by itself."""
    return expected.size is not None or expected.sha256 is not None or expected.md5 is not None


def download_file(
    url: str,
    dest: str | os.PathLike,
    expected: Expected = _NOTHING_EXPECTED,
    *,
    pin: Path | None = None,
    progress: bool = True,
    limits: Limits | None = None,
    check_part: PartCheck | None = None,
) -> Path:
    """Stream ``url`` (http, https or file) to ``dest``, verified and atomically.

    Parameters
    ----------
    url : str
        Where to read from. When the connection breaks, or sends nothing for ``TIMEOUT_S``
        (or the source's ``throughput_window_s`` if shorter), before the announced
        Content-Length (or, without one, before the body ended normally), the download resumes
        where it stopped (an HTTP ``Range`` request; from the start if the server ignores
        ranges), up to ``MAX_ATTEMPTS`` requests in all.
    dest : path-like
        Final path; written only once every check passed. The bytes go to ``<dest>.part``
        (:func:`part_path`); one that a killed run left there is resumed if ``expected`` has a
        size or digest to check the result with, else started over.
    expected : Expected
        Size, digests and line count to check.
    pin : Path, optional
        Trust-on-first-use pin file (see :mod:`islim.download`).
    progress : bool
        Show a tqdm bar on an interactive stderr.
    limits : Limits, optional
        Deadline and minimum throughput (default :func:`~islim.download.sources.default_limits`).
    check_part : callable, optional
        Called with the path of the complete ``.part`` file once ``expected`` is met and before
        the rename; it raises :class:`IntegrityError` or :class:`DataFormatError` to refuse the
        file (e.g. :mod:`~islim.download.fetching` extracts and verifies an archive's member).
        Without Content-Length and without a size or digest in ``expected`` it is the only
        evidence that a body is complete.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    IntegrityError
        Still truncated after ``MAX_ATTEMPTS`` requests, or overlong: ``dest`` is untouched and
        nothing is left behind. Size / digest / line-count mismatch of a complete download, or
        refused by ``check_part``: ``dest`` is untouched and the copy is kept as ``<dest>.bad``
        (the message says so).
    DataFormatError
        Refused by ``check_part``: as a mismatch.
    DownloadError
        Past the deadline, below the minimum throughput, broken off on every request without a
        Content-Length, or another process holds ``<dest>.part``: nothing is left behind.
    OSError
        Network or HTTP error (``urllib.error.URLError`` / ``HTTPError``).
    """
    dest = Path(dest)
    label = f"{dest.name} from {url}"
    pace = _Pace(limits or default_limits(), label)
    log.info("downloading %s to %s", url, dest)
    with _receiving(dest, expected, label, pin=pin, progress=progress, resume=_has_own_checks(expected), check_part=check_part) as part:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            total, cut = _get_into(url, part, pace)
            if total is not None and part.received > total:
                raise IntegrityError(f"{label}: overlong: {total} bytes announced, {part.received} received; use another source")
            if part.received == total or (total is None and cut is None):
                break
            if attempt == MAX_ATTEMPTS:
                if total is None:
                    raise DownloadError(
                        f"{label}: incomplete: the server announced no length and the body broke off on each of {attempt} "
                        f"request(s), the last after {part.received} bytes ({cut}); try again later or use another source"
                    )
                raise IntegrityError(
                    f"{label}: truncated or overlong: {total} bytes announced, {part.received} received "
                    f"after {attempt} request(s) (the last: {cut or 'the body ended early'}); try again later or use another source"
                )
            of_total = f" of {total}" if total is not None else ""
            log.warning("%s: %d%s bytes received; resuming (request %d of %d)", label, part.received, of_total, attempt + 1, MAX_ATTEMPTS)
        if total is None and not _has_own_checks(expected):
            part.caveat = (
                "the server sent no Content-Length and the source gives no size or digest of the download, "
                "so a stream cut short cannot be told from a complete one"
            )
    return dest
