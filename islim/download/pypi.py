"""Locating the wheel of a ``pypi`` source: PyPI's JSON API, the choice among a release's wheels,
and ``pip download`` as the fallback (so that pip's index configuration applies).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from islim.download import transfer
from islim.download.sources import Source
from islim.errors import DownloadError

log = logging.getLogger(__name__)

PYPI_JSON_URL = "https://pypi.org/pypi"


def split_requirement(requirement: str) -> tuple[str, str]:
    """(project, version) of an exact pin ``name==version`` (already checked by the schema).

    Parameters
    ----------
    requirement : str
        A ``pypi`` source's value, e.g. ``"recbole==1.2.1"``.

    Returns
    -------
    tuple of str
        The project name and the version, without surrounding blanks.
    """
    project, _, version = requirement.partition("==")
    return project.strip(), version.strip()


def _read_json(url: str) -> dict:
    request = urllib.request.Request(url, headers={"User-Agent": transfer.USER_AGENT, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=transfer.TIMEOUT_S) as response:
        return json.load(response)


def release_files(project: str, version: str) -> list[dict]:
    """File records of a release from PyPI's JSON API (versioned, then project endpoint).

    Parameters
    ----------
    project, version : str
        The release.

    Returns
    -------
    list of dict
        PyPI's file records (``filename``, ``packagetype``, ``url``, ``digests``, ...).

    Raises
    ------
    DownloadError
        Neither endpoint could be read; the message lists both failures.
    """
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


def choose_wheel(files: list[dict], source: Source) -> tuple[str, str]:
    """The one wheel matching the source's sha256, else its filename, else the only wheel.

    Parameters
    ----------
    files : list of dict
        PyPI's file records of the release.
    source : Source
        The ``pypi`` source.

    Returns
    -------
    tuple of str
        (url, filename) of the wheel.

    Raises
    ------
    DownloadError
        No wheel or several wheels match.
    """
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


def pip_download(requirement: str, dest_dir: Path) -> Path:
    """Download one wheel with ``pip download --no-deps --only-binary=:all:``.

    Parameters
    ----------
    requirement : str
        Exact pin ``name==version``.
    dest_dir : Path
        An empty directory for pip to download into.

    Returns
    -------
    Path
        The wheel pip left in ``dest_dir``.

    Raises
    ------
    DownloadError
        pip failed, or left other than one file.
    """
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
        raise DownloadError(f"`{' '.join(cmd)}` exited with {result.returncode}: {result.stderr.strip()[-1000:]}")
    files = sorted(dest_dir.iterdir())
    if len(files) != 1:
        raise DownloadError(f"`{' '.join(cmd)}` should leave one file in {dest_dir}, found {[f.name for f in files]}")
    return files[0]


@contextlib.contextmanager
def resolve(source: Source) -> Iterator[tuple[str, str]]:
    """Yield (url, file name) of the source's download; PyPI sources are looked up.

    A ``url`` source yields its own URL and file name. A ``pypi`` source's wheel is located
    with PyPI's JSON API, else downloaded by pip into a temporary directory that exists
    until the block ends (the yielded URL is then a ``file://`` URL into it).

    Parameters
    ----------
    source : Source
        The source to resolve.

    Yields
    ------
    tuple of str
        (url, file name to store the download under).

    Raises
    ------
    DownloadError
        Neither PyPI's JSON API nor pip could provide the wheel.
    """
    if source.url is not None:
        yield source.url, source.filename
        return
    project, version = split_requirement(source.pypi)
    try:
        url, filename = choose_wheel(release_files(project, version), source)
    except DownloadError as err:
        log.warning("%s; falling back to pip download", err)
    else:
        yield url, source.filename or filename
        return
    with tempfile.TemporaryDirectory(prefix="islim-pip-") as tmp:
        wheel = pip_download(source.pypi, Path(tmp))
        yield wheel.as_uri(), source.filename or wheel.name
