"""Fetch a dataset file from an ordered list of sources and verify it.

A *source* is a mapping (one entry of a dataset's ``sources`` list in the config):

=======================  ==================================================================
key                      meaning
=======================  ==================================================================
``url``                  ``http(s)://`` or ``file://`` URL, or a local path, of the file.
``pypi``                 Instead of ``url``: an exact requirement ``name==version``. The
                         release's wheel is located with PyPI's JSON API
                         (``/pypi/<name>/<version>/json``, then ``/pypi/<name>/json``); if
                         PyPI's JSON cannot be read, ``python -m pip download --no-deps
                         --only-binary=:all:`` fetches it (so pip's index configuration
                         applies). With several wheels, the one whose sha256 (or filename)
                         matches the source is taken.
``filename``             Name of the download in ``raw_dir``; default the URL's basename.
                         Required for a ``pypi`` source without ``member``.
``size``                 Size of the download in bytes.
``md5``, ``sha256``      Hex digests of the download (either case).
``member``               Path of the wanted file inside the download, a zip / wheel / tar /
                         tar.gz archive (see :mod:`islim.archive` for what is refused).
``save_as``              Name of the extracted member in ``raw_dir``; default the member's
                         basename. Sources of the same dataset should agree on it.
``strip_header_lines``   Number of leading lines (each ending in ``\\n``) of the member to
                         drop while extracting; needs ``member``.
``member_size``,         Size and digests of the extracted member **after** the header lines
``member_md5``,          are dropped, i.e. of the file that ends up in ``raw_dir``. Example:
``member_sha256``        RecBole's ``ml-100k.inter`` is one header line followed by
                         GroupLens' ``u.data``; with ``strip_header_lines: 1`` the result
                         must have ``u.data``'s sha256.
``expect_lines``         Number of lines of the final file (newline count, plus one if the
                         last line has no newline), for files without published digests.
``deadline_s``           Seconds the download may take in all, resumptions included
                         (default 43200, 12 h); then the source is given up.
``min_bytes_per_s``      Slowest accepted rate, averaged over each ``throughput_window_s``
                         (default 4096; 0: no minimum); a slower download is given up.
``throughput_window_s``  Seconds the rate is averaged over (default 120). A connection
                         silent this long (at most ``transfer.TIMEOUT_S``, 60 s) is dropped
                         and the download resumed.
=======================  ==================================================================

The ``source`` definition of the configuration schema (``islim/schemas/config.schema.yaml``)
is the only validation of these fields, for the config and for :func:`fetch` alike: a source
that does not satisfy it is a :class:`~islim.errors.ConfigError` naming the field.

The *final file* is the extracted member if ``member`` is given, else the download.

Trust on first use: when the final file has no published sha256 (no ``sha256`` resp.
``member_sha256``), the sha256 of the first copy that passes every other check
(``expect_lines`` above all) is written to ``<final>.sha256`` in ``sha256sum`` format.
Every later verification of that file, including a fresh download, must reproduce it
and fails with :class:`~islim.errors.IntegrityError` otherwise. Delete the pin file only
if the upstream file is known to have changed legitimately.

Every file is written to ``<final>.part`` in its destination directory while its size and
digests are computed, and renamed into place only once every check that can be made has
passed, so a final path never holds a partial or unverified file:

- the download's ``size``, ``md5``, ``sha256`` and the server's ``Content-Length``;
- for a source with a ``member``: the member is extracted from the ``.part`` archive and
  verified (its own sizes and digests, ``expect_lines``, the pin; the zip CRC) *before* the
  archive and the member are renamed into place; when nothing vouches for the archive's
  completeness (no Content-Length, no ``size`` or digest of its own), a tar archive is also
  read to its end (every header, the compressed stream's end marker and checksum), and a zip
  cut short has lost its directory, which is at its end;
- without a member: ``expect_lines`` and the pin.

A body that ends without ``Content-Length`` cannot be told from a complete one by its size;
when none of the above applies the download is accepted with a warning that says so (and its
sha256 pinned on first use). A download whose connection breaks or falls silent mid-file is
resumed with an HTTP ``Range`` request (restarted if the server ignores ranges), up to
``transfer.MAX_ATTEMPTS`` requests; one past its ``deadline_s`` or below its
``min_bytes_per_s`` is given up. A complete copy that fails verification (an archive whose
member does included) is kept as ``<final>.bad`` for inspection, and the error names it; an
incomplete one is deleted. The ``.part`` file is locked while it is written (a second process
fetching the same file fails at once); one that a killed run left is resumed when the
download has a size or digest to check the result with, else started over, so at most one
exists per final path.

Modules, one concern each (imports run one way, top to bottom):

- :mod:`~islim.download.sources`: :class:`Source`, :class:`Expected`, building a source from a
  config mapping (schema validation, then conversion), URL helpers.
- :mod:`~islim.download.verify`: size / md5 / sha256 / line-count checks, pins, ``.bad`` copies.
- :mod:`~islim.download.transfer`: HTTP(S)/file GETs with ``Range`` resumption, retries,
  timeouts, deadline and minimum throughput, local copies, the locked and verified ``.part`` file.
- :mod:`~islim.download.pypi`: PyPI's JSON API, the choice of a wheel, ``pip download``.
- :mod:`~islim.download.fetching`: :func:`fetch`, the order existing file, mirror, sources, and
  the extraction of members (:mod:`islim.archive`).
"""

from islim.download.fetching import fetch
from islim.download.sources import Expected, Limits, Source, default_limits, parse_source, validate_source
from islim.download.transfer import download_file
from islim.download.verify import bad_copy_path, verify_file

__all__ = [
    "Expected",
    "Limits",
    "Source",
    "bad_copy_path",
    "default_limits",
    "download_file",
    "fetch",
    "parse_source",
    "validate_source",
    "verify_file",
]
