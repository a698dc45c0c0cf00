"""Shared benchmark plumbing: synthetic matrices cached on disk, and time + peak memory of one call
measured in a fresh child process (so peak RSS belongs to that call alone).

Benchmarks report ratios against a baseline run in the same invocation; nothing here is asserted.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from islim.data.synthetic import generate
from islim.scaling import measure_call
from islim.threads import blas_description

CACHE = Path(os.environ.get("ISLIM_BENCH_CACHE", "/tmp/islim-bench"))
SHAPES = {
    "ml-20m": (136_677, 20_108, 10_000_000),
    "netflix": (463_435, 17_769, 56_880_037),
    "msd": (571_355, 41_140, 33_633_450),
}


def synthetic_matrix(n_users: int, n_items: int, n_interactions: int, seed: int = 0) -> sp.csr_matrix:
    """The seeded synthetic matrix of that shape, generated once and cached as ``.npz``."""
    path = CACHE / f"synthetic-{n_users}x{n_items}-{n_interactions}-s{seed}.npz"
    if path.exists():
        return sp.load_npz(path).tocsr()
    matrix = generate(n_users, n_items, n_interactions, seed=seed)
    CACHE.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path, matrix, compressed=False)
    return matrix


#: Time and peak memory of one call in a fresh forked child (shared with the workflow's scaling measurement).
measure = measure_call


def measure_paths(function: Callable, *args: Any, paths: Iterable[str], repeats: int, threads: int) -> dict[str, list[dict[str, Any]]]:
    """:func:`measure` of ``function(*args, path)`` for every path, ``repeats`` times over.

    The paths take turns within each repeat, so a drift of the machine's load falls on all of them
    alike. Returns each path's :func:`measure` results, in repeat order.
    """
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    for _ in range(repeats):
        for path in runs:
            runs[path].append(measure(function, *args, path, threads=threads))
    return runs


def median_summary(results: list[dict[str, Any]], stage: str) -> dict[str, float]:
    """Medians over the :func:`measure` results of one path: ``seconds`` (wall), ``<stage>`` (the
    seconds the call itself reports as ``<stage>_seconds``) and ``memory`` (extra peak MiB)."""
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        stage: statistics.median(r["result"][f"{stage}_seconds"] for r in results),
        "memory": statistics.median(r["extra_peak_mb"] for r in results),
    }


def blas_summary() -> str:
    """One line naming each BLAS library, its kernel and thread count."""
    return "; ".join(
        f"{b['internal_api']} {b['version']} kernel={b['architecture']} threads={b['num_threads']}" for b in blas_description()
    )
