"""Evaluation cost: EASE scores, fold-in mask, top-100 and all metrics for held-out users.

Usage::

    python -m benchmarks.bench_eval --shape ml-20m --users 10000 [--batch 2000] [--threads 2]

The held-out users are the last ``--users`` rows of the cached synthetic matrix, each split 80/20
into fold-in and target rows (seeded). The item–item weights are a seeded dense float32
``(n_items, n_items)`` matrix with EASE's zero diagonal: the cost of scoring does not depend on the
values, and fitting EASE here would add 40 s unrelated to evaluation (``bench_ease.py`` times it).
islim's batched :func:`islim.evaluate.evaluate` (threaded product, torch ``topk``) runs with
``--batch`` users at a time; the baseline is the usual notebook recipe (every user at once, scipy's
single-threaded product, ``argpartition``). Prints time, peak extra memory (MiB), the ratios, and
checks that both give the same NDCG@100.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from benchmarks.measure import SHAPES, blas_summary, measure, synthetic_matrix
from islim.evaluate import evaluate
from islim.metrics import Ranked, parse_metric
from islim.spmm import sparse_dense_product


def fold_in_and_target(X: sp.csr_matrix, n_users: int, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The last ``n_users`` rows of ``X`` split into fold-in (80 %) and target (20 %) CSR matrices."""
    rows = sp.csr_matrix(X[-n_users:])
    rng = np.random.default_rng(seed)
    in_target = rng.random(rows.nnz) < 0.2
    coo = rows.tocoo()

    def part(mask):
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=rows.shape)

    return part(~in_target), part(in_target)


def item_weights(n_items: int, seed: int = 0) -> np.ndarray:
    """A seeded dense float32 ``(n_items, n_items)`` weight matrix with a zero diagonal."""
    B = np.random.default_rng(seed).standard_normal((n_items, n_items), dtype=np.float32)
    np.fill_diagonal(B, 0.0)
    return B


def islim_evaluation(B: np.ndarray, fold_in: sp.csr_matrix, target: sp.csr_matrix, batch: int) -> float:
    """islim's path: batched :func:`islim.evaluate.evaluate` with the threaded EASE product."""
    return evaluate(lambda x: sparse_dense_product(x, B), fold_in, target, batch)["ndcg@100"]


def textbook_evaluation(B: np.ndarray, fold_in: sp.csr_matrix, target: sp.csr_matrix) -> float:
    """The usual recipe (vae_cf's notebook): all users at once, scipy product, ``argpartition`` top-k."""
    scores = np.asarray(fold_in @ B)
    scores[fold_in.nonzero()] = -np.inf
    part = np.argpartition(-scores, 99, axis=1)[:, :100]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    return float(parse_metric("ndcg@100")(Ranked.of(top[users], target[users])).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-20m")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    X = synthetic_matrix(*SHAPES[args.shape])
    fold_in, target = fold_in_and_target(X, args.users)
    fold_in = fold_in.astype(np.float32)
    B = item_weights(X.shape[1])
    del X
    print(f"{args.users:,} held-out users x {B.shape[0]:,} items, fold-in nnz {fold_in.nnz:,}, target nnz {target.nnz:,}; {blas_summary()}")
    ours = measure(islim_evaluation, B, fold_in, target, args.batch, threads=args.threads)
    print(f"islim evaluate (batch {args.batch}): {ours['seconds']:7.2f} s  {ours['extra_peak_mb']:8.0f} MiB extra")
    base = measure(textbook_evaluation, B, fold_in, target, threads=args.threads)
    print(f"textbook, one batch:           {base['seconds']:7.2f} s  {base['extra_peak_mb']:8.0f} MiB extra")
    print(
        f"ratio (baseline / islim): time {base['seconds'] / ours['seconds']:.2f}x, memory {base['extra_peak_mb'] / max(ours['extra_peak_mb'], 1):.2f}x"
    )
    assert np.isclose(ours["result"], base["result"]), "islim and the textbook recipe disagree"


if __name__ == "__main__":
    main()
