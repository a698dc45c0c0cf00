"""Running the Snakemake workflow from tests: a tiny configuration in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def write_tiny_config(directory: Path, extra: dict | None = None) -> Path:
    """A config running a small synthetic dataset and ml-latest-small from the shared-data mirror."""
    config = {
        "run_datasets": ["synthetic-tiny", "ml-latest-small"],
        "data_mirror": str(SHARED_DATA / "ml-latest-small"),
        "threads": 2,
        "ease": {"lambda_grid": [100, 300]},
        "datasets": {
            "synthetic-tiny": {"kind": "synthetic", "n_users": 600, "n_items": 300, "n_interactions": 15000, "heldout_users": 50, "seed": 7},
        },
    }
    for key, value in (extra or {}).items():
        config[key] = value
    path = directory / "config.tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def snakemake(directory: Path, *args: str, configfile: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile with ``directory`` as working directory.

    ``configfile`` is merged over the repository's ``config.yaml`` (as ``--configfile`` does).
    """
    configs = [str(REPO / "config.yaml")] + ([str(configfile)] if configfile else [])
    command = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(directory), "--configfile", *configs, *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
