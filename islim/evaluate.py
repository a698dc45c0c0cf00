"""Batched evaluation of a recommender on held-out users (fold-in → target).

Memory is bounded by ``batch_size × n_items`` scores at a time, so 50 k users × 41 k items
never materialise at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from islim.errors import DataFormatError
from islim.metrics import ndcg_at_k, recall_at_k, top_k_items
from islim.numerics import require_finite

#: The metrics reported everywhere: (name, function, cut-off).
REPORTED_METRICS = (("recall@20", recall_at_k, 20), ("recall@50", recall_at_k, 50), ("ndcg@100", ndcg_at_k, 100))

ScoreFunction = Callable[[sp.csr_matrix], np.ndarray]


def _to_numpy(scores) -> np.ndarray:
    """Accept numpy arrays, numpy matrices and torch tensors (on any device)."""
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    return np.asarray(scores)


def per_user_metrics(
    score_batch: ScoreFunction,
    fold_in: sp.csr_matrix,
    target: sp.csr_matrix,
    batch_size: int = 2000,
    user_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Metrics for every evaluated user (those with a non-empty target set).

    Parameters
    ----------
    score_batch : ScoreFunction
        Maps a ``(b, n_items)`` CSR batch of fold-in rows to ``(b, n_items)`` scores (numpy array
        or torch tensor). Fold-in items are excluded here, not by the model.
    fold_in : scipy.sparse.csr_matrix, shape (n_users, n_items)
        CSR fold-in interactions of the held-out users.
    target : scipy.sparse.csr_matrix, shape (n_users, n_items)
        CSR target interactions, same shape.
    batch_size : int, default 2000
        Users scored at once.
    user_ids : ndarray of int, shape (n_users,), optional
        The training-matrix row of each row of ``fold_in``, for models that score *known* users
        (``Recommender.user_scoring == "known_users"``, the per-user hold-out protocol): then
        ``score_batch(rows, user_ids[batch])`` is called. ``None`` (strong generalisation: the
        users are not in the training matrix) calls ``score_batch(rows)``.

    Returns
    -------
    dict of str to ndarray
        ``{"user": indices of evaluated users, "recall@20": ..., "recall@50": ..., "ndcg@100": ...}``,
        each a 1-D array over the evaluated users.
    """
    if fold_in.shape != target.shape:
        raise ValueError(f"fold-in {fold_in.shape} and target {target.shape} must have the same shape")
    if user_ids is not None and len(user_ids) != fold_in.shape[0]:
        raise ValueError(f"user_ids has {len(user_ids)} entries for {fold_in.shape[0]} fold-in rows")
    fold_in = sp.csr_matrix(fold_in)
    target = sp.csr_matrix(target)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    k_max = min(max(k for _, _, k in REPORTED_METRICS), fold_in.shape[1])
    out: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in REPORTED_METRICS}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        x = fold_in[batch]
        raw = score_batch(x) if user_ids is None else score_batch(x, np.asarray(user_ids)[batch])
        scores = np.array(_to_numpy(raw), dtype=np.float32, copy=True)
        if scores.shape != x.shape:
            raise ValueError(f"score function returned shape {scores.shape}, expected {x.shape}")
        require_finite(
            scores, f"scores of users {batch[0]}..{batch[-1]}", "the model's weights or embeddings are not finite; check its training log"
        )
        scores[x.nonzero()] = -np.inf
        top = top_k_items(scores, k_max)
        t = target[batch]
        for name, metric, k in REPORTED_METRICS:
            out[name].append(metric(top, t, min(k, k_max)))
    result = {name: np.concatenate(values) if values else np.empty(0) for name, values in out.items()}
    result["user"] = users
    return result


def summarize(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean and standard error (``std(ddof=1) / sqrt(n)``) of each metric, plus ``n_users``."""
    summary: dict[str, float] = {"n_users": int(len(per_user["user"]))}
    for name, _, _ in REPORTED_METRICS:
        values = per_user[name]
        n = len(values)
        summary[name] = float(values.mean()) if n else float("nan")
        summary[f"{name}_se"] = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return summary


def evaluate(
    score_batch: ScoreFunction,
    fold_in: sp.csr_matrix,
    target: sp.csr_matrix,
    batch_size: int = 2000,
    user_ids: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean ± standard error of Recall@20, Recall@50 and NDCG@100 over held-out users.

    See :func:`per_user_metrics` for the arguments. Returns keys ``recall@20``, ``recall@20_se``,
    ``recall@50``, ``recall@50_se``, ``ndcg@100``, ``ndcg@100_se`` and ``n_users``.
    """
    return summarize(per_user_metrics(score_batch, fold_in, target, batch_size, user_ids))


def holdout_validator(
    fold_in: sp.spmatrix, target: sp.spmatrix, batch_size: int = 2000, user_ids: np.ndarray | None = None
) -> Callable[[object], dict[str, float]]:
    """A ``validate`` callback for ``Recommender.fit``: the mean metrics of held-out users.

    Parameters
    ----------
    fold_in, target : scipy.sparse matrix, shape (n_users, n_items)
        Fold-in and target interactions of the validation users (same shape).
    batch_size : int
        Users scored at once.
    user_ids : ndarray of int, optional
        Training-matrix rows of the validation users, for models that score known users (see
        :func:`per_user_metrics`).

    Returns
    -------
    callable
        ``validate(model) -> {"recall@20": …, "recall@50": …, "ndcg@100": …}`` (means over the
        evaluated users), scoring with ``model.score_batch``.

    Raises
    ------
    DataFormatError
        The shapes differ or the target holds no interaction (no user could be evaluated).
    """
    fold_in, target = sp.csr_matrix(fold_in, dtype=np.float32), sp.csr_matrix(target, dtype=np.float32)
    if fold_in.shape != target.shape:
        raise DataFormatError(f"validation fold-in {fold_in.shape} and target {target.shape} must have the same shape")
    if target.nnz == 0:
        raise DataFormatError("the validation target matrix is empty: no user can be evaluated")

    def validate(model) -> dict[str, float]:
        summary = evaluate(model.score_batch, fold_in, target, batch_size, user_ids)
        return {name: summary[name] for name, _, _ in REPORTED_METRICS}

    return validate
