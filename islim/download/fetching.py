"""Obtaining a dataset's verified final file: an existing copy, the mirror, then each source."""

from __future__ import annotations

import http.client
import logging
import os
import tarfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from islim.archive import open_member
from islim.download.pypi import resolve
from islim.download.sources import Source, parse_source
from islim.download.transfer import copy_file, download_file, write_verified
from islim.download.verify import verify_file, write_pin
from islim.errors import ConfigError, DataFormatError, DownloadError, IntegrityError

log = logging.getLogger(__name__)

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

# What reading a truncated or damaged archive raises besides DataFormatError.
_UNREADABLE_ARCHIVE = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError)


def _extract(source: Source, archive: Path, raw_dir: Path, progress: bool, *, to_end: bool = False) -> Path:
    """Extract and verify the source's member of ``archive`` into its final path.

    With ``to_end``, the rest of the archive is read too, so that a truncated one is refused
    (see :func:`islim.archive.open_member`).
    """
    try:
        with open_member(archive, source.member, raw_dir, to_end=to_end) as (stream, size):
            return write_verified(
                stream,
                source.final_path(raw_dir),
                source.final_expected,
                f"{source.member} in {archive}",
                announced=size,
                strip_lines=source.strip_header_lines,
                pin=source.pin_path(raw_dir),
                progress=progress,
            )
    except _UNREADABLE_ARCHIVE as err:
        raise DataFormatError(
            f"{archive} is not a readable archive ({type(err).__name__}: {err}); it is truncated or damaged: "
            "fetch it again or use a verified copy"
        ) from err


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
        write_pin(pin, final, sha256)
    return final


def _from_network(source: Source, raw_dir: Path, progress: bool) -> Path:
    """Download the source (reusing a cached archive with a verified digest) and finish it.

    An archive is renamed into place only once its member has been extracted from the ``.part``
    file and verified; the archive is read to its end first when nothing else shows that the
    download is complete (no size or digest of its own).
    """
    if source.member is None:
        with resolve(source) as (url, filename):
            return download_file(
                url,
                raw_dir / filename,
                source.final_expected,
                pin=source.pin_path(raw_dir),
                progress=progress,
                limits=source.limits,
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
    unchecked = source.download.size is None and not has_digest
    with resolve(source) as (url, filename):
        download_file(
            url,
            raw_dir / filename,
            source.download,
            progress=progress,
            limits=source.limits,
            check_part=lambda part: _extract(source, part, raw_dir, progress, to_end=unchecked),
        )
    return source.final_path(raw_dir)


def _from_mirror_download(source: Source, path: Path, raw_dir: Path, progress: bool) -> Path:
    """Use a mirrored copy of the download: extract from it in place, or copy it."""
    if source.member is None:
        return copy_file(
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
    return copy_file(
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


def _attempts(sources: Sequence[Source], raw_dir: Path, mirror: Path | None, progress: bool) -> Iterator[tuple[str, Callable[[], Path]]]:
    """(description, thunk) of every way to obtain the file: mirror first, then sources."""
    if mirror is not None:
        for source in sources:
            for name, handler in _mirror_names(source):
                if (mirror / name).is_file():
                    yield f"mirror {mirror / name}", lambda s=source, p=mirror / name, h=handler: h(s, p, raw_dir, progress)
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
        Sources as described in :mod:`islim.download`.
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
    if mirror_dir is not None and not any((mirror_dir / n).is_file() for s in parsed for n, _ in _mirror_names(s)):
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
        + "; it is verified there before use. For example, with the file in /data/mirror: "
        f"`snakemake --cores 2 --config data_mirror=/data/mirror`, or `islim fetch {name} --mirror /data/mirror`."
    )


def _wanted_names(sources: Sequence[Source]) -> list[str]:
    return list(dict.fromkeys(n for s in sources for n, _ in _mirror_names(s)))
