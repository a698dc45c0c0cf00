"""EASE fit at a paper dataset's shape: islim (Cholesky, in place) vs ``numpy.linalg.inv`` float32.

Usage::

    python benchmarks/bench_ease.py --shape ml-20m [--threads 2] [--skip-baseline]
    python benchmarks/bench_ease.py --users 20000 --items 4000 --interactions 1000000

Prints time and peak memory (MiB, child-process RSS growth beyond the input matrix) of each and
the ratios baseline / islim.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from benchmarks.measure import SHAPES, blas_summary, measure, synthetic_matrix
from islim.models.ease import EASE


def fit_islim(X: sp.csr_matrix, lam: float) -> float:
    return float(EASE(lam=lam).fit(X).weights_[0, 1])


def fit_numpy_inv(X: sp.csr_matrix, lam: float) -> float:
    """The textbook recipe (Steck's notebook) in float32: dense Gram, ``np.linalg.inv``, divide."""
    G = (X.T @ X).toarray().astype(np.float32)
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = P / (-np.diag(P))
    np.fill_diagonal(B, 0.0)
    return float(B[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=4_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--lam", type=float, default=500.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    shape = SHAPES[args.shape] if args.shape else (args.users, args.items, args.interactions)
    X = synthetic_matrix(*shape)
    print(f"shape {X.shape}, nnz {X.nnz:,}; {blas_summary()}")
    ours = measure(fit_islim, X, args.lam, threads=args.threads)
    print(f"islim EASE:        {ours['seconds']:8.2f} s  {ours['extra_peak_mb']:9.0f} MiB extra")
    if not args.skip_baseline:
        base = measure(fit_numpy_inv, X, args.lam, threads=args.threads)
        print(f"numpy.linalg.inv:  {base['seconds']:8.2f} s  {base['extra_peak_mb']:9.0f} MiB extra")
        print(f"ratio (baseline / islim): time {base['seconds'] / ours['seconds']:.2f}x, memory {base['extra_peak_mb'] / max(ours['extra_peak_mb'], 1):.2f}x")
        assert np.isclose(ours["result"], base["result"], rtol=1e-2, atol=1e-5), "the two fits disagree"


if __name__ == "__main__":
    main()
