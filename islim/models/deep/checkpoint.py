"""Per-epoch checkpoints of deep-model training, so that a killed run resumes where it stopped.

A checkpoint holds everything the next epoch depends on: the state of every *stateful* object of
the run (the model, each optimiser, the best epoch so far, the ImplicitSLIM hook — anything with
``state_dict``/``load_state_dict``), the torch (CPU and CUDA) and numpy RNG states, and the
progress (last epoch, optimiser steps, curve rows, elapsed time, whether training has ended). It
also stores a *fingerprint* of the run — islim code, model name, resolved parameters, training and
validation matrices — and the format version. It is written atomically after every epoch
(:func:`islim.fileio.atomic_path`), so a kill at any moment leaves the previous checkpoint or the
new one, never a partial file. A checkpoint whose fingerprint or version differs, or that cannot
be read, is ignored with a warning; training then starts at epoch 0 and overwrites it.

Resuming on CPU reproduces the uninterrupted run bit for bit (same weights, same curve apart
from ``wall_seconds``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from islim.codehash import reachable_modules
from islim.fileio import atomic_path

log = logging.getLogger(__name__)

#: Format of the checkpoint payload; a checkpoint of another version is ignored.
CHECKPOINT_VERSION = 1


@functools.cache
def code_digest() -> str:
    """sha256 of every islim source a training run executes: the modules the torch estimator
    (:mod:`islim.models.deep.estimator`) reaches by import (:func:`islim.codehash.reachable_modules`,
    read once per process). A change to any of them makes older checkpoints unusable."""
    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in reachable_modules(package / "models" / "deep" / "estimator.py", package):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_fingerprint(model_name: str, params: Mapping[str, Any], matrices: list[sp.csr_matrix]) -> str:
    """sha256 of what determines a training run: the islim code (:func:`code_digest`), the model,
    its resolved parameters and its data (shape and CSR arrays of each matrix). Costs one pass over
    the matrices."""
    digest = hashlib.sha256(
        json.dumps({"code": code_digest(), "model": model_name, "params": params}, sort_keys=True, default=repr).encode()
    )
    for matrix in matrices:
        digest.update(repr(matrix.shape).encode())
        for array in (matrix.indptr, matrix.indices, matrix.data):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _rng_states(rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": rng.bit_generator.state,
    }


def _set_rng_states(states: Mapping[str, Any], rng: np.random.Generator, device: torch.device) -> None:
    torch.set_rng_state(states["torch"].cpu())
    if device.type == "cuda" and states["cuda"] is not None:
        torch.cuda.set_rng_state(states["cuda"].cpu(), device)
    rng.bit_generator.state = states["numpy"]


@dataclass
class Checkpoint:
    """The checkpoint file of one training run and what it saves and restores.

    Attributes
    ----------
    path : Path
        The file.
    fingerprint : str
        :func:`run_fingerprint` of the run.
    stateful : mapping of str to object
        Objects with ``state_dict``/``load_state_dict``, by name.
    rng : numpy.random.Generator
        The numpy generator of the run (the torch RNGs are global).
    device : torch.device
        The training device (CUDA RNG state, where tensors are loaded to).
    """

    path: Path
    fingerprint: str
    stateful: Mapping[str, Any]
    rng: np.random.Generator
    device: torch.device

    def save(self, progress: Mapping[str, Any]) -> None:
        """Write the checkpoint atomically; ``progress`` holds plain values only (numbers, strings,
        lists and dicts of them)."""
        payload = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "states": {name: obj.state_dict() for name, obj in self.stateful.items()},
            "rng": _rng_states(self.rng, self.device),
            "progress": dict(progress),
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def resume(self) -> dict[str, Any] | None:
        """Restore the stateful objects and the RNGs if the file exists and belongs to this run;
        return its progress, or ``None`` (nothing restored) otherwise."""
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location=self.device, weights_only=True)
        except Exception as exc:  # torch raises many unrelated types for unreadable files
            log.warning("ignoring checkpoint %s: it cannot be read (%s); training starts at epoch 0", self.path, exc)
            return None
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION or payload.get("fingerprint") != self.fingerprint:
            log.warning(
                "ignoring checkpoint %s: it was written for other settings, data or islim code "
                "(fingerprint or format version differs); training starts at epoch 0 and replaces it",
                self.path,
            )
            return None
        for name, obj in self.stateful.items():
            obj.load_state_dict(payload["states"][name])
        _set_rng_states(payload["rng"], self.rng, self.device)
        return payload["progress"]
