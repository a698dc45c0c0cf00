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


#: Test configurations of the workflow, merged over the repository's config.yaml.
CONFIGS = Path(__file__).resolve().parent / "configs"


def tiny_config() -> dict:
    """A fresh copy of ``tests/configs/tiny.yaml`` (two small datasets, short training, a small ablation grid)."""
    return yaml.safe_load((CONFIGS / "tiny.yaml").read_text(encoding="utf-8"))


#: The tiny configuration's training and ablation sections (read-only views for unit tests).
TINY_TRAINING = tiny_config()["training"]
TINY_ABLATIONS = tiny_config()["ablations"]


def write_tiny_config(directory: Path, extra: dict | None = None) -> Path:
    """Write ``tests/configs/tiny.yaml`` to ``directory``, with this machine's shared-data mirror of
    ml-latest-small as ``data_mirror`` and the top-level keys of ``extra`` replacing the file's."""
    config = tiny_config()
    config["data_mirror"] = str(SHARED_DATA / "ml-latest-small")
    for key, value in (extra or {}).items():
        config[key] = value
    path = directory / "config.tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def snakemake(directory: Path, *args: str, configfile: Path | None = None, timeout: int = 2400) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile with ``directory`` as working directory.

    ``configfile`` is merged over the repository's ``config.yaml`` (as ``--configfile`` does).
    """
    configs = [str(REPO / "config.yaml")] + ([str(configfile)] if configfile else [])
    command = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(directory), "--configfile", *configs, *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
