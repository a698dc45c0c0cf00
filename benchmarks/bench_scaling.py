"""Cost of EASE, SLIM-LLE and ImplicitSLIM against the number of items (the report's scaling figure).

Usage::

    python -m benchmarks.bench_scaling [--items 1000 2000 4000 8000 16000] [--explicit-max-items 4000]
        [--d 64] [--threads 2] [--out benchmarks/results/scaling.csv]

Synthetic matrices with ML-20M's profile scaled down: ``7 × n_items`` users and ``500 × n_items``
ones (cached, ``benchmarks/measure.py``). Each method runs in a fresh forked child on ``--threads``
threads (torch is imported before they fork, so no child pays for the import); its wall time and
peak memory growth are one CSV row ``method,n_items,d,seconds,peak_mb``
(written atomically). SLIM-LLE (dense I × I eigenproblem) runs up to ``--explicit-max-items``.
The fitted log-log slopes are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch  # noqa: F401  imported before the children fork, so no child pays for the import

from benchmarks.measure import blas_summary, measure, synthetic_matrix
from islim.embeddings import implicit_slim, slim_lle
from islim.fileio import write_csv
from islim.models.ease import EASE

LAM = 500.0


def fit_ease(X: sp.csr_matrix, d: int) -> float:
    return float(EASE(lam=LAM).fit(X).weights_[0, 1])


def fit_slim_lle(X: sp.csr_matrix, d: int) -> float:
    return float(slim_lle(X, LAM, d)[0, 0])


def fit_implicit_slim(X: sp.csr_matrix, d: int) -> float:
    E0 = np.random.default_rng(0).standard_normal((X.shape[1], d)).astype(np.float32)
    return float(implicit_slim(E0, X, LAM, 1.0)[0, 0])


METHODS = {"EASE": fit_ease, "SLIM-LLE": fit_slim_lle, "ImplicitSLIM": fit_implicit_slim}


def log_log_slope(table: pd.DataFrame, column: str) -> float:
    """Least-squares slope of ``log column`` against ``log n_items``."""
    return float(np.polyfit(np.log(table["n_items"]), np.log(table[column]), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--explicit-max-items", type=int, default=4000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.csv"))
    args = parser.parse_args()
    print(blas_summary())
    rows = []
    for n_items in args.items:
        X = synthetic_matrix(7 * n_items, n_items, 500 * n_items, seed=n_items)
        for method, fit in METHODS.items():
            if method == "SLIM-LLE" and n_items > args.explicit_max_items:
                continue
            outcome = measure(fit, X, args.d, threads=args.threads)
            rows.append(
                {"method": method, "n_items": n_items, "d": args.d, "seconds": outcome["seconds"], "peak_mb": outcome["extra_peak_mb"]}
            )
            print(f"I = {n_items:6,d}  {method:13s} {outcome['seconds']:8.2f} s  {outcome['extra_peak_mb']:8.0f} MiB", flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(args.out, table)
    for method, part in table.groupby("method", sort=False):
        print(f"{method}: time ~ I^{log_log_slope(part, 'seconds'):.2f}, memory ~ I^{log_log_slope(part, 'peak_mb'):.2f}")
    print("written", args.out)


if __name__ == "__main__":
    main()
