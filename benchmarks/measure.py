"""Shared benchmark plumbing: synthetic matrices cached on disk, and time + peak memory of one call
measured in a fresh child process (so peak RSS belongs to that call alone).

Benchmarks report ratios against a baseline run in the same invocation; nothing here is asserted.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import resource
import time
from pathlib import Path

import scipy.sparse as sp

from islim.data.synthetic import generate
from islim.threads import blas_description, limit_threads

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


def _child(queue, function, args, threads):
    limit_threads(threads)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": seconds, "peak_mb": peak / 1024, "extra_peak_mb": (peak - baseline) / 1024, "result": result})


def measure(function, *args, threads: int = 2) -> dict:
    """Run ``function(*args)`` in a forked child limited to ``threads``; return seconds and peak RSS (MiB).

    ``extra_peak_mb`` is the growth of the child's peak RSS during the call, i.e. memory beyond
    the inputs it inherited. ``function`` should return something small (it is pickled back).
    """
    context = mp.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, function, args, threads))
    process.start()
    while True:
        try:
            outcome = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not process.is_alive():  # killed (OOM, segfault) before reporting
                raise RuntimeError(f"the measured call {function.__name__} died with exit code {process.exitcode}") from None
    process.join()
    return outcome


def blas_summary() -> str:
    """One line naming each BLAS library, its kernel and thread count."""
    return "; ".join(
        f"{b['internal_api']} {b['version']} kernel={b['architecture']} threads={b['num_threads']}" for b in blas_description()
    )
