"""What a run was made of: package versions and the checksums of the raw data it read."""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

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
