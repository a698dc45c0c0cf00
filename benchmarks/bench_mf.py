"""MF + ImplicitSLIM (init and regulariser, closed-form ALS) vs the `implicit` library's ALS.

Usage::

    python -m benchmarks.bench_mf --shape ml-20m --dim 256 [--epochs 10] [--implicit-iterations 15] [--threads 2]

islim's :class:`islim.models.linear.MatrixFactorization` with the paper's ML-20M setup (ImplicitSLIM
initialisation, ImplicitSLIM regulariser, ``--epochs`` ALS epochs, no validation) against
``implicit.cpu.als.AlternatingLeastSquares`` (conjugate-gradient ALS, ``--implicit-iterations``
iterations, the library's defaults otherwise) on the same cached synthetic matrix and the same
thread budget, each in a fresh forked child. Needs ``pip install implicit`` (the ``bench`` extra).
Prints time, peak extra memory (MiB) and the ratios.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from benchmarks.measure import SHAPES, blas_summary, measure, synthetic_matrix
from islim.models.linear import MatrixFactorization


def fit_islim(X: sp.csr_matrix, dim: int, epochs: int) -> float:
    model = MatrixFactorization(n_factors=dim, n_epochs=epochs).fit(X)
    return float(np.linalg.norm(model.item_factors_))


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
    args = parser.parse_args()
    X = synthetic_matrix(*SHAPES[args.shape])
    print(f"shape {X.shape}, nnz {X.nnz:,}, d = {args.dim}; {blas_summary()}")
    ours = measure(fit_islim, X, args.dim, args.epochs, threads=args.threads)
    print(f"islim MF + ImplicitSLIM, {args.epochs} epochs: {ours['seconds']:8.2f} s  {ours['extra_peak_mb']:7.0f} MiB extra")
    base = measure(fit_implicit, X, args.dim, args.implicit_iterations, args.threads, threads=args.threads)
    print(f"implicit ALS, {args.implicit_iterations} iterations:      {base['seconds']:8.2f} s  {base['extra_peak_mb']:7.0f} MiB extra")
    print(
        f"ratio (implicit / islim): time {base['seconds'] / ours['seconds']:.2f}x, memory {base['extra_peak_mb'] / max(ours['extra_peak_mb'], 1):.2f}x"
    )


if __name__ == "__main__":
    main()
