"""What a run was made of: package versions, the checksums of the raw data it read, and every
setting of its configuration, as one table (``provenance.csv``) and an HTML page for the report."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from islim.document import Heading, Paragraph, Table, to_html

#: Distributions whose versions are reported (the islim package and what its results depend on).
DISTRIBUTIONS = ("islim", "snakemake", "numpy", "scipy", "pandas", "torch", "matplotlib", "seaborn", "pyarrow")


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``not installed``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def provenance_table(manifest_paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per package and per dataset: ``kind`` (package/data), ``name``, ``value``, ``detail``.

    Packages give their version (Python its own, with the platform as detail); datasets give the
    sha256 of their verified raw file from ``data/raw/<dataset>/manifest.json``, with its kind,
    size in bytes and file name as detail (a ``lightgcn`` dataset one row per file, named
    ``<dataset> (train)`` and ``<dataset> (test)``).
    """
    rows = [{"kind": "package", "name": "python", "value": platform.python_version(), "detail": platform.platform()}]
    rows += [{"kind": "package", "name": name, "value": package_version(name), "detail": ""} for name in DISTRIBUTIONS]
    for path in manifest_paths:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
        # A one-file dataset records its file at the top level, a two-file one (lightgcn) per role.
        for role, record in (manifest.get("files") or {None: manifest}).items():
            name = manifest["dataset"] if role is None else f"{manifest['dataset']} ({role})"
            detail = f"{manifest['kind']}, {record['size']} bytes, {Path(record['file']).name}"
            rows.append({"kind": "data", "name": name, "value": record["sha256"], "detail": detail})
    return pd.DataFrame(rows, columns=["kind", "name", "value", "detail"])


def setting_text(value: Any) -> str:
    """A setting's value as a reader writes it: lists joined by commas, ``none`` for an empty list or
    null, ``yes``/``no`` for booleans, ``{}`` for an empty mapping (every default)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(setting_text, value)) if value else "none"
    if isinstance(value, Mapping):
        return "{}" if not value else "; ".join(f"{key}: {setting_text(item)}" for key, item in value.items())
    return str(value)


def settings_rows(config: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """One row per leaf setting of ``config``: ``kind`` ``setting``, ``name`` its dotted path
    (``training.models.mf.params.n_factors``), ``value`` (:func:`setting_text`), empty ``detail``.
    Nested mappings are walked in their order; a list or an empty mapping is one value."""
    rows = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += settings_rows(value, f"{name}.")
        else:
            rows.append({"kind": "setting", "name": name, "value": setting_text(value), "detail": ""})
    return rows


def settings_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`settings_rows` of the workflow's configuration, with the columns of :func:`provenance_table`."""
    return pd.DataFrame(settings_rows(config), columns=["kind", "name", "value", "detail"])


def provenance_page(table: pd.DataFrame) -> str:
    """A standalone HTML page of a provenance table (:func:`provenance_table` and
    :func:`settings_table` rows): packages, data files, then settings."""
    sections = (
        (
            "package",
            "Packages",
            {"name": "package", "value": "version", "detail": "detail"},
            "Python and the packages the results depend on.",
        ),
        ("data", "Data", {"name": "dataset", "value": "sha256", "detail": "detail"}, "The sha256 of each dataset's verified raw file."),
        (
            "setting",
            "Settings",
            {"name": "setting", "value": "value"},
            "Every setting of the configuration the run used, defaults filled in.",
        ),
    )
    blocks = [Heading("What was run", level=1)]
    for kind, title, columns, text in sections:
        rows = table.loc[table["kind"] == kind, list(columns)].fillna("").astype(str).to_numpy().tolist()
        if rows:
            blocks += [Heading(title), Paragraph(text), Table(list(columns.values()), rows)]
    return to_html(blocks, "What was run")
