"""Evaluation cost: EASE scores, fold-in mask, top-100 and all metrics for held-out users.

Usage::

    python -m benchmarks.bench_eval --shape ml-20m --users 10000 [--batch 2000] [--threads 2] [--repeats 3]

The held-out users are the last ``--users`` rows of the cached synthetic matrix, each split 80/20
into fold-in and target rows (seeded). The item–item weights are a seeded dense float32
``(n_items, n_items)`` matrix with EASE's zero diagonal: the cost of scoring does not depend on the
values, and fitting EASE here would add 40 s unrelated to evaluation (``bench_ease.py`` times it).

Compared, each in a fresh forked child, ``--repeats`` times in alternation (medians reported):

* **new**: :func:`islim.evaluate.evaluate` in batches of ``--batch`` users with EASE's scoring,
  :func:`islim.spmm.column_tiled_product` (column tiles of the weights, read once per batch);
* **previous**: the same with the row-block product :func:`islim.spmm.sparse_dense_product`
  (one 80 KB weight row streamed per fold-in interaction), EASE's scoring before issue 17;
* **textbook** (once): every user at once, scipy's single-threaded product, ``argpartition``.

For the two islim paths the scoring alone (the products of all batches) is timed inside the child
as well. Prints times, peak extra memory (MiB) and ratios, and checks that all paths give the same
NDCG@100.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp

from benchmarks.measure import SHAPES, blas_summary, measure, measure_paths, median_summary, synthetic_matrix
from islim.evaluate import evaluate
from islim.metrics import Ranked, parse_metric
from islim.spmm import column_tiled_product, sparse_dense_product

PATHS = {"new (column tiles)": column_tiled_product, "previous (row blocks)": sparse_dense_product}


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


def islim_evaluation(B: np.ndarray, fold_in: sp.csr_matrix, target: sp.csr_matrix, batch: int, path: str) -> dict:
    """islim's batched :func:`islim.evaluate.evaluate` with the scoring product of ``path``; returns
    NDCG@100 and the seconds spent in the products."""
    product = PATHS[path]
    scoring = [0.0]

    def score(rows):
        start = time.perf_counter()
        scores = product(rows, B)
        scoring[0] += time.perf_counter() - start
        return scores

    ndcg = evaluate(score, fold_in, target, batch)["ndcg@100"]
    return {"ndcg": ndcg, "scoring_seconds": scoring[0]}


def textbook_evaluation(B: np.ndarray, fold_in: sp.csr_matrix, target: sp.csr_matrix) -> dict:
    """The usual recipe (vae_cf's notebook): all users at once, scipy product, ``argpartition`` top-k."""
    scores = np.asarray(fold_in @ B)
    scores[fold_in.nonzero()] = -np.inf
    part = np.argpartition(-scores, 99, axis=1)[:, :100]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    return {"ndcg": float(parse_metric("ndcg@100")(Ranked.of(top[users], target[users])).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-20m")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X = synthetic_matrix(*SHAPES[args.shape])
    fold_in, target = fold_in_and_target(X, args.users)
    fold_in = fold_in.astype(np.float32)
    B = item_weights(X.shape[1])
    del X
    print(f"{args.users:,} held-out users x {B.shape[0]:,} items, fold-in nnz {fold_in.nnz:,}, target nnz {target.nnz:,}; {blas_summary()}")
    print(f"load average before: {os.getloadavg()}")
    runs = measure_paths(islim_evaluation, B, fold_in, target, args.batch, paths=PATHS, repeats=args.repeats, threads=args.threads)
    base = measure(textbook_evaluation, B, fold_in, target, threads=args.threads)
    summary = {}
    for path, results in runs.items():
        summary[path] = median_summary(results, "scoring")
        print(
            f"islim evaluate, {path:22s} (batch {args.batch}): {summary[path]['seconds']:7.2f} s "
            f"(scoring {summary[path]['scoring']:6.2f} s)  {summary[path]['memory']:8.0f} MiB extra; "
            f"runs {', '.join(format(r['seconds'], '.2f') for r in results)}"
        )
    print(f"textbook, one batch: {base['seconds']:7.2f} s  {base['extra_peak_mb']:8.0f} MiB extra")
    new, previous = (summary[path] for path in PATHS)
    print(
        f"ratio previous / new: evaluation {previous['seconds'] / new['seconds']:.2f}x, scoring {previous['scoring'] / new['scoring']:.2f}x; "
        f"textbook / new: time {base['seconds'] / new['seconds']:.2f}x, memory {base['extra_peak_mb'] / max(new['memory'], 1):.2f}x"
    )
    print(f"load average after: {os.getloadavg()}")
    ndcgs = [r["result"]["ndcg"] for results in runs.values() for r in results] + [base["result"]["ndcg"]]
    assert np.allclose(ndcgs, ndcgs[0]), f"the paths disagree on NDCG@100: {ndcgs}"


if __name__ == "__main__":
    main()
