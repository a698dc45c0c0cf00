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


#: Short epoch budgets and small networks, so every model trains in seconds.
TINY_TRAINING = {
    "activate": True,
    "models": {
        "mf": {"params": {"n_factors": 16, "n_epochs": 2, "r_p": 10.0}, "variants": {"baseline": {"init": "random", "regularizer": "none", "n_init_steps": 0}, "implicit_slim": {"init": "implicit_slim", "regularizer": "implicit_slim"}}, "grid": {}},
        "plrec": {"params": {"n_factors": 16, "n_epochs": 1, "r_q": 10.0}, "variants": {"baseline": {"init": "svd"}, "implicit_slim": {"init": "implicit_slim", "regularizer": "implicit_slim", "s_q": 10.0}}, "grid": {}},
        "multvae": {"params": {"n_epochs": 2, "hidden_dim": 32, "latent_dim": 8, "implicit_slim": {"step": 1, "lam": 50.0}}, "variants": {"baseline": {}, "implicit_slim": {"implicit_slim": {"mode": "replace"}}}},
        "recvae": {"params": {"n_epochs": 2, "hidden_dim": 32, "latent_dim": 8, "implicit_slim": {"step": 1, "lam": 50.0}}, "variants": {"baseline": {}, "implicit_slim": {"implicit_slim": {"mode": "replace"}}}},
        "hvamp": {"params": {"n_epochs": 2, "hidden_dim": 32, "z1_dim": 8, "z2_dim": 8, "n_components": 10, "warmup_epochs": 2, "implicit_slim": {"step": 1, "lam": 50.0}}, "variants": {"baseline": {}, "implicit_slim": {"implicit_slim": {"mode": "replace"}}}},
    },
}

#: A factorial grid at one small d over both neighbourhoods, three first steps and two second
#: steps (the `lle` and `implicit_iterated` arms are covered by unit tests; with ml-latest-small's
#: 5,660 items they would add minutes of dense eigen/Cholesky work to CI).
TINY_ABLATIONS = {
    "activate": True,
    "dims": [16],
    "neighbourhood": {"all": {}, "knn": {"k": [20]}},
    "first_step": {"ease": {"lam": [100]}, "lle": None, "cooccurrence": {}, "identity": {}},
    "second_step": {"explicit": {}, "implicit": {"alpha": [1.0], "threshold": [0]}, "implicit_iterated": None},
    "references": ["random", "svd"],
    "scorers": {"mf": {"r_p": [10]}, "plrec": {"power": [1], "r_q": [10]}},
}


def write_tiny_config(directory: Path, extra: dict | None = None) -> Path:
    """A config running a small synthetic dataset and ml-latest-small from the shared-data mirror."""
    config = {
        "run_datasets": ["synthetic-tiny", "ml-latest-small"],
        "data_mirror": str(SHARED_DATA / "ml-latest-small"),
        "threads": 2,
        "ease": {"lambda_grid": [100, 300]},
        "ablations": TINY_ABLATIONS,
        "training": TINY_TRAINING,
        "datasets": {
            "synthetic-tiny": {"kind": "synthetic", "n_users": 600, "n_items": 300, "n_interactions": 15000, "heldout_users": 50, "seed": 7},
        },
    }
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
