"""MF + ImplicitSLIM (init and regulariser, closed-form ALS): the threaded item step against the
previous single-threaded one, and against the `implicit` library's ALS.

Usage::

    python -m benchmarks.bench_mf --shape ml-20m --dim 256 [--epochs 10] [--implicit-iterations 15] [--threads 2] [--repeats 2]

islim's :class:`islim.models.linear.MatrixFactorization` with the paper's ML-20M setup (ImplicitSLIM
initialisation, ImplicitSLIM regulariser, ``--epochs`` ALS epochs, no validation) runs two ways:

* **new**: the item step's sparse products ``R Q`` (user encoder) and ``Rᵀ P`` split over the
  threads (:func:`islim.spmm.sparse_dense_product`; ``Rᵀ P`` by row blocks of the CSR transpose),
  as :mod:`islim.models.ridge` does now;
* **previous**: the item step as before issue 17 (:func:`previous_item_statistics`: scipy's products
  in the calling thread, ``Rᵀ P`` through the CSC view ``X_batch.T``), patched into the forked
  child; the results are identical (checked).

First one item step alone (:func:`islim.models.ridge.item_statistics` with seeded embeddings) runs
``--item-step-repeats`` times per path, then the fits ``--repeats`` times per path, the paths
alternating (medians reported); each fit also reports its seconds in the item step. The baseline is
``implicit.cpu.als.AlternatingLeastSquares`` (conjugate-gradient ALS, ``--implicit-iterations``
iterations, the library's defaults otherwise) on the same cached synthetic matrix and thread budget.
Each run is a fresh forked child. Needs ``pip install implicit`` (the ``bench`` extra). Prints time,
peak extra memory (MiB) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import scipy.linalg.blas
import scipy.sparse as sp

from benchmarks.measure import SHAPES, blas_summary, measure, measure_paths, median_summary, synthetic_matrix
from islim.models import linear, ridge
from islim.models.linear import MatrixFactorization

PATHS = ("new (threaded)", "previous (one thread)")


def _scipy_product(X: sp.spmatrix, dense: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """The user encoder's ``R Q`` before issue 17: scipy's kernel in the calling thread."""
    return np.asarray(sp.csr_matrix(X, dtype=dense.dtype) @ dense)


def previous_item_statistics(
    X: sp.csr_matrix, encoder: ridge.UserEncoder, d: int, batch_size: int = ridge.DEFAULT_BATCH_SIZE
) -> ridge.ItemStatistics:
    """:func:`islim.models.ridge.item_statistics` as it was before issue 17 (the baseline)."""
    gram_upper, cross, total = np.zeros((d, d), order="F"), np.zeros((X.shape[1], d)), np.zeros(d)
    for rows in ridge.user_batches(X.shape[0], batch_size):
        X_batch = X[rows]
        P = encoder(X_batch)
        P64 = P.astype(np.float64, copy=False)
        gram_upper = scipy.linalg.blas.dsyrk(1.0, P64, beta=1.0, c=gram_upper, trans=1, overwrite_c=True)
        cross += X_batch.T @ P
        total += P64.sum(axis=0)
    return ridge.ItemStatistics(np.triu(gram_upper) + np.triu(gram_upper, 1).T, cross, total)


def _take(path: str) -> None:
    """Make this (forked) process run the item step along ``path``."""
    if path == PATHS[1]:
        ridge.sparse_dense_product = _scipy_product
        linear.item_statistics = previous_item_statistics


def item_step_seconds(X: sp.csr_matrix, dim: int, path: str) -> dict:
    """Seconds of one item step's statistics (user encoder included) along ``path`` for seeded item
    embeddings, and a checksum of the result (run in a forked child)."""
    _take(path)
    Q = np.random.default_rng(0).standard_normal((X.shape[1], dim), dtype=np.float32)
    encoder = ridge.user_ridge_encoder(Q, 1.0, ridge.item_means(X))
    start = time.perf_counter()
    stats = linear.item_statistics(X, encoder, dim)
    return {"seconds": time.perf_counter() - start, "checksum": float(np.abs(stats.cross).sum())}


def fit_islim(X: sp.csr_matrix, dim: int, epochs: int, path: str) -> dict:
    """Fit MF + ImplicitSLIM along ``path`` (run in a forked child: it patches module attributes)."""
    _take(path)
    item_step = [0.0]
    statistics_of = linear.item_statistics

    def timed_item_statistics(*args, **kwargs):
        start = time.perf_counter()
        stats = statistics_of(*args, **kwargs)
        item_step[0] += time.perf_counter() - start
        return stats

    linear.item_statistics = timed_item_statistics
    model = MatrixFactorization(n_factors=dim, n_epochs=epochs).fit(X)
    return {"norm": float(np.linalg.norm(model.item_factors_)), "item_step_seconds": item_step[0]}


def fit_implicit(X: sp.csr_matrix, dim: int, iterations: int, threads: int) -> float:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")  # implicit's own advice: its threads, not OpenBLAS's, do the work
    model = AlternatingLeastSquares(factors=dim, iterations=iterations, num_threads=threads, random_state=0)
    model.fit(X, show_progress=False)
    return float(np.linalg.norm(model.item_factors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-20m")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--implicit-iterations", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="fits per path")
    parser.add_argument("--item-step-repeats", type=int, default=5, help="item steps alone per path (before the fits)")
    args = parser.parse_args()
    X = synthetic_matrix(*SHAPES[args.shape])
    print(f"shape {X.shape}, nnz {X.nnz:,}, d = {args.dim}; {blas_summary()}")
    print(f"load average before: {os.getloadavg()}")
    step_runs = measure_paths(item_step_seconds, X, args.dim, paths=PATHS, repeats=args.item_step_repeats, threads=args.threads)
    steps = {path: [r["result"] for r in results] for path, results in step_runs.items()}
    checksums = {r["checksum"] for results in steps.values() for r in results}
    assert len(checksums) <= 1, f"the two item steps disagree: {checksums}"
    new_step, previous_step = (statistics.median(r["seconds"] for r in steps[path]) for path in PATHS)
    for path in PATHS:
        seconds = [r["seconds"] for r in steps[path]]
        print(f"one item step alone, {path:21s}: {statistics.median(seconds):6.2f} s; runs {', '.join(format(t, '.2f') for t in seconds)}")
    print(f"ratio previous / new, item step alone: {previous_step / new_step:.2f}x")
    runs = measure_paths(fit_islim, X, args.dim, args.epochs, paths=PATHS, repeats=args.repeats, threads=args.threads)
    summary = {}
    for path, results in runs.items():
        summary[path] = median_summary(results, "item_step")
        print(
            f"islim MF + ImplicitSLIM, {args.epochs} epochs, {path:21s}: {summary[path]['seconds']:8.2f} s "
            f"(item step {summary[path]['item_step']:6.2f} s)  {summary[path]['memory']:7.0f} MiB extra; "
            f"runs {', '.join(format(r['seconds'], '.2f') for r in results)}"
        )
    norms = [r["result"]["norm"] for results in runs.values() for r in results]
    assert np.allclose(norms, norms[0], rtol=1e-6), f"the two paths disagree: item factor norms {norms}"
    base = measure(fit_implicit, X, args.dim, args.implicit_iterations, args.threads, threads=args.threads)
    print(f"implicit ALS, {args.implicit_iterations} iterations: {base['seconds']:8.2f} s  {base['extra_peak_mb']:7.0f} MiB extra")
    new, previous = (summary[path] for path in PATHS)
    print(
        f"ratio previous / new: fit {previous['seconds'] / new['seconds']:.2f}x, item step {previous['item_step'] / new['item_step']:.2f}x; "
        f"implicit / new: time {base['seconds'] / new['seconds']:.2f}x, memory {base['extra_peak_mb'] / max(new['memory'], 1):.2f}x"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
