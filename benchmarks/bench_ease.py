"""EASE fit at a paper dataset's shape: islim (Cholesky, in place) vs ``numpy.linalg.inv`` float32.

Usage::

    python benchmarks/bench_ease.py --shape ml-20m [--threads 2] [--skip-baseline]
    python benchmarks/bench_ease.py --users 20000 --items 4000 --interactions 1000000

Prints the machine's float32 GEMM rate, islim's time by stage (Gram matrix on the job's threads and
on one, Cholesky inverse and its GFLOP/s as a share of the GEMM rate), time and peak memory (MiB,
child-process RSS growth beyond the input matrix) of both fits and the ratios baseline / islim.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

from benchmarks.measure import SHAPES, blas_summary, measure, synthetic_matrix
from islim.gram import dense_gram
from islim.linalg import ease_from_gram


def fit_islim(X: sp.csr_matrix, lam: float) -> dict:
    """islim's EASE fit, timed by stage: threaded Gram matrix, then the in-place Cholesky inverse."""
    start = time.perf_counter()
    gram = dense_gram(X)
    gram_done = time.perf_counter()
    weights = ease_from_gram(gram, lam, overwrite=True)
    return {"gram_s": gram_done - start, "inverse_s": time.perf_counter() - gram_done, "check": float(weights[0, 1])}


def gram_one_thread(X: sp.csr_matrix) -> float:
    """The same Gram matrix on one thread (how much the second core buys)."""
    return float(dense_gram(X, n_threads=1)[0, 1])


def gemm_rate(n: int = 4096, repeats: int = 3) -> float:
    """The machine's float32 GEMM rate (GFLOP/s, best of ``repeats``) for ``n × n`` operands."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


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
    rate = measure(gemm_rate, threads=args.threads)["result"]
    ours = measure(fit_islim, X, args.lam, threads=args.threads)
    stages = ours["result"]
    n = X.shape[1]
    inverse_rate = n**3 / stages["inverse_s"] / 1e9  # potrf n³/3 + potri 2n³/3 flops
    print(f"float32 GEMM rate: {rate:.0f} GFLOP/s")
    print(f"islim EASE:        {ours['seconds']:8.2f} s  {ours['extra_peak_mb']:9.0f} MiB extra")
    print(f"  Gram matrix      {stages['gram_s']:8.2f} s on {args.threads} threads")
    print(f"  Cholesky inverse {stages['inverse_s']:8.2f} s = {inverse_rate:.0f} GFLOP/s, {inverse_rate / rate:.0%} of the GEMM rate")
    if not args.skip_baseline:
        single = measure(gram_one_thread, X, threads=1)
        print(f"  Gram matrix      {single['seconds']:8.2f} s on 1 thread (speed-up {single['seconds'] / stages['gram_s']:.2f}x)")
        base = measure(fit_numpy_inv, X, args.lam, threads=args.threads)
        print(f"numpy.linalg.inv:  {base['seconds']:8.2f} s  {base['extra_peak_mb']:9.0f} MiB extra")
        print(
            f"ratio (baseline / islim): time {base['seconds'] / ours['seconds']:.2f}x, memory {base['extra_peak_mb'] / max(ours['extra_peak_mb'], 1):.2f}x"
        )
        assert np.isclose(stages["check"], base["result"], rtol=1e-2, atol=1e-5), "the two fits disagree"


if __name__ == "__main__":
    main()
