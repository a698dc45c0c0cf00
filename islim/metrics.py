"""Ranking metrics of the strong-generalisation protocol (Liang et al., WWW 2018).

For a user with target set T and a ranking of all items with the fold-in items removed:

* ``Recall@K = |top-K ∩ T| / min(K, |T|)``
* ``NDCG@K = DCG@K / IDCG@K`` with ``DCG@K = Σ_{r=1..K} 1[item_r ∈ T] / log2(r + 1)`` and
  ``IDCG@K = Σ_{r=1..min(K, |T|)} 1 / log2(r + 1)``.

Rankings break ties by the lower item index, so results do not depend on the sort algorithm.
All functions work on a batch of users at once: ``scores`` is a dense ``(n_users, n_items)``
array, ``target`` a ``(n_users, n_items)`` CSR matrix whose non-zeros mark the target items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first; ties go to the lower index.

    Uses torch's multi-threaded partial selection (``topk``, O(I) per row, zero-copy on the
    numpy array) and an exact stable sort only for the rare rows whose k-th score is tied with
    scores outside the top k.

    Parameters
    ----------
    scores : ndarray of float, shape (n_users, n_items)
        ``-inf`` marks excluded items.
    k : int
        Number of items to return, ``1 <= k <= n_items``.

    Returns
    -------
    ndarray of int64, shape (n_users, k)
        Item indices.
    """
    n_users, n_items = scores.shape
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be between 1 and the number of items ({n_items}), got {k}")
    if k == n_items:
        return np.argsort(-scores, axis=1, kind="stable")
    import torch  # deferred: the metrics module itself stays importable without loading torch

    values, indices = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1, sorted=False)
    part, part_scores = indices.numpy(), values.numpy()
    kth_value = part_scores.min(axis=1)
    # Ties at the boundary: more items reach the k-th value than there are places.
    n_at_least = (scores >= kth_value[:, None]).sum(axis=1)
    # Order the top-k set by (score descending, index ascending).
    order = np.lexsort((part, -part_scores), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    for row in np.flatnonzero(n_at_least > k):
        top[row] = np.argsort(-scores[row], kind="stable")[:k]
    return top


def _hits(top: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n_users, k)``: is the item at each rank in the user's target set?"""
    rows = np.arange(top.shape[0])[:, None]
    return np.asarray(target[rows, top].todense() > 0)


def recall_at_k(top: np.ndarray, target: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-user Recall@k from precomputed rankings ``top`` (``(n_users, >= k)``); NaN for |T| = 0."""
    hits = _hits(top[:, :k], target).sum(axis=1)
    n_target = np.diff(target.indptr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_target > 0, hits / np.minimum(k, n_target), np.nan)


def ndcg_at_k(top: np.ndarray, target: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-user NDCG@k from precomputed rankings ``top`` (``(n_users, >= k)``); NaN for |T| = 0."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (_hits(top[:, :k], target) * discounts).sum(axis=1)
    n_target = np.diff(target.indptr)
    ideal_cumulative = np.concatenate(([0.0], np.cumsum(discounts)))
    idcg = ideal_cumulative[np.minimum(k, n_target)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_target > 0, dcg / idcg, np.nan)
