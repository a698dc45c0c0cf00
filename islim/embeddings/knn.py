"""First step with k-nearest-neighbour neighbourhoods: a sparse weight matrix from k×k local problems.

``N(i)`` = the ``k`` items with the largest co-occurrence ``(XᵀX)_ij``, ``j ≠ i`` (spec §7a). Column ``i``
of the returned ``S`` holds the weights of ``N(i)`` (so ``S_ii = 0`` by construction), computed by
the same rule as the global-neighbourhood functions of :mod:`islim.embeddings.weights`:

* ``"ease"`` — ridge regression ``w = (C_NN + λI)⁻¹ C_Ni``; with ``sum_to_one`` the rank-1 correction
  restricted to ``N``: ``w ← w + (1 − 1ᵀw) p / 1ᵀp``, ``p = (C_NN + λI)⁻¹ 1`` (SLIM-LLE);
* ``"lle"`` — Roweis–Saul: ``G_jl = (x_i − x_j)·(x_i − x_l)``, ``w ∝ (G + r I)⁻¹ 1``, ``r = reg·tr G / k``;
* ``"cooccurrence"`` — ``w = C_Ni / 1ᵀC_Ni``;
* ``"identity"`` — ``S = 0``.

With ``k = n_items − 1`` every rule reproduces its dense counterpart. The local systems are solved in
batches of items; memory is the dense ``XᵀX`` (checked against the budget) plus ``batch × k²``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from islim.embeddings.weights import _item_gram, identity_weights
from islim.errors import ConfigError

#: First-step rules available with k-NN neighbourhoods.
KNN_RULES = ("ease", "lle", "cooccurrence", "identity")

#: Items whose local systems are solved in one batch.
ITEM_BATCH = 512


def top_k_neighbours(gram: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` items co-occurring most with each item, itself excluded; (n_items, k) int64, sorted.

    Ties at the k-th value are broken by ``numpy.argpartition`` (deterministic, unspecified order).
    O(n²) time, one column block of ``gram`` at a time.
    """
    n_items = gram.shape[0]
    if not 1 <= k <= n_items - 1:
        raise ConfigError(f"k must be between 1 and n_items - 1 = {n_items - 1}, got {k}")
    neighbours = np.empty((n_items, k), dtype=np.int64)
    for start in range(0, n_items, ITEM_BATCH):
        items = np.arange(start, min(start + ITEM_BATCH, n_items))
        scores = np.array(gram[:, items].T, dtype=np.float64)  # row r: co-occurrences of item items[r]
        scores[np.arange(len(items)), items] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        neighbours[items] = np.sort(top, axis=1)
    return neighbours


def _solve_spd_batch(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve the SPD systems ``A[b] x = B[b]`` for a batch: A (m, k, k), B (m, k, r) → (m, k, r)."""
    return scipy.linalg.solve(A, B, assume_a="pos", check_finite=False)


def _local_weights(C: np.ndarray, items: np.ndarray, N: np.ndarray, rule: str, lam: float, reg: float, sum_to_one: bool) -> np.ndarray:
    """Weights (m, k) of the neighbourhoods ``N`` (m, k) of ``items`` (m,) under ``rule``."""
    C_Ni = C[N, items[:, None]].astype(np.float64)  # (m, k): C[N(i), i]
    if rule == "cooccurrence":
        totals = C_Ni.sum(axis=1, keepdims=True)
        return np.divide(C_Ni, totals, out=np.zeros_like(C_Ni), where=totals > 0)
    C_NN = C[N[:, :, None], N[:, None, :]].astype(np.float64)  # (m, k, k)
    k = N.shape[1]
    eye = np.eye(k)
    ones = np.ones((len(items), k, 1))
    if rule == "lle":
        pop = C[items, items].astype(np.float64)
        G = C_NN - C_Ni[:, :, None] - C_Ni[:, None, :] + pop[:, None, None]
        trace = np.trace(G, axis1=1, axis2=2)
        ridge = np.where(trace > 0, reg * trace / k, reg)
        w = _solve_spd_batch(G + ridge[:, None, None] * eye, ones)[:, :, 0]
        return w / w.sum(axis=1, keepdims=True)
    system = C_NN + lam * eye
    if not sum_to_one:
        return _solve_spd_batch(system, C_Ni[:, :, None])[:, :, 0]
    solved = _solve_spd_batch(system, np.concatenate([C_Ni[:, :, None], ones], axis=2))
    w, p = solved[:, :, 0], solved[:, :, 1]
    return w + ((1.0 - w.sum(axis=1)) / p.sum(axis=1))[:, None] * p


def knn_weights(
    X,
    k: int,
    rule: str = "ease",
    lam: float = 500.0,
    reg: float = 1e-3,
    sum_to_one: bool = False,
    dtype=np.float64,
    gram: np.ndarray | None = None,
    budget_bytes: int | None = None,
) -> sp.csc_matrix:
    """Sparse first-step weights with k-NN neighbourhoods.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
        Training matrix (not used if ``gram`` is given).
    k : int
        Neighbours per item, ``1 ≤ k ≤ n_items − 1``.
    rule : {"ease", "lle", "cooccurrence", "identity"}
    lam : float
        λ > 0 of the ``"ease"`` rule.
    reg : float
        Trace-regulariser factor (> 0) of the ``"lle"`` rule.
    sum_to_one : bool
        ``"ease"`` only: add the LLE constraint (columns sum to one).
    dtype : numpy dtype
        Output dtype (local solves run in float64).
    gram : ndarray, shape (n_items, n_items), optional
        Precomputed dense ``XᵀX`` (not modified).
    budget_bytes : int, optional

    Returns
    -------
    scipy.sparse.csc_matrix, shape (n_items, n_items)
        ``S`` with ``k`` stored entries per column (column ``i`` = weights of ``N(i)``), zero diagonal.

    Notes
    -----
    Cost: the dense Gram matrix (``O(Σ_u n_u²)``), top-k selection ``O(n²)``, and ``n`` local
    ``k×k`` solves ``O(n k³)``; memory one dense ``n²`` array plus ``ITEM_BATCH·k²`` values.
    """
    if rule not in KNN_RULES:
        raise ConfigError(f"unknown first-step rule {rule!r}; expected one of {KNN_RULES}")
    n_items = X.shape[1] if gram is None else gram.shape[0]
    if rule == "identity":
        return identity_weights(n_items, dtype)
    if rule == "ease" and not lam > 0:
        raise ConfigError(f"lam must be > 0, got {lam!r}")
    if rule == "lle" and not reg > 0:
        raise ConfigError(f"reg must be > 0, got {reg!r}")
    C = gram if gram is not None else _item_gram(X, None, np.float32, 1, "k-NN co-occurrence", budget_bytes)
    N = top_k_neighbours(C, k)
    data = np.empty((n_items, k), dtype=np.float64)
    for start in range(0, n_items, ITEM_BATCH):
        items = np.arange(start, min(start + ITEM_BATCH, n_items))
        data[items] = _local_weights(C, items, N[items], rule, lam, reg, sum_to_one)
    indptr = np.arange(0, n_items * k + 1, k)
    return sp.csc_matrix((data.ravel().astype(dtype), N.ravel(), indptr), shape=(n_items, n_items))
