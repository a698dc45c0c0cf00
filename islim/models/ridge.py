"""Closed-form ridge-regression steps of the linear embedding models (spec §3.4).

Conventions (transposed with respect to the paper's d×I / d×U matrices, one row per entity):

* ``X`` — ``(n_users, n_items)`` CSR binary feedback ``R``.
* ``Q`` — ``(n_items, d)`` item (decoder) embeddings; ``P`` — ``(n_users, d)`` user factors.
* ``b`` — ``(n_items,)`` fixed item bias (item mean of ``R``) or ``None``; prediction ``P Qᵀ + 1 bᵀ``.

``R − 1bᵀ`` is dense and is never formed: every product with it is expanded as
``(R − 1bᵀ) Q = R Q − 1 (bᵀQ)`` and ``(R − 1bᵀ)ᵀ P = Rᵀ P − b (1ᵀP)``.
The d×d systems are factorised once by Cholesky in float64; the sparse × dense products run in
the embeddings' dtype, split over the job's threads (:func:`islim.spmm.sparse_dense_product`: row
blocks of ``X_batch`` for ``R Q``, item blocks of ``X_batchᵀ`` for ``Rᵀ P``; each output entry is
summed in the same order as scipy's single-threaded product, so results do not change). Users are
processed in batches, so no ``(n_users, n_items)`` dense array and, during training, no
``(n_users, d)`` array exists at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.sparse as sp

from islim.errors import ConfigError
from islim.memory import dense_bytes, ensure_fits
from islim.spmm import sparse_dense_product

#: Users per batch in the fitting and encoding loops (memory ``batch × d``, not ``batch × I``).
DEFAULT_BATCH_SIZE = 8192

#: Maps a ``(b, n_items)`` CSR batch of user rows to ``(b, d)`` user factors.
UserEncoder = Callable[[sp.csr_matrix], np.ndarray]


class ItemStatistics(NamedTuple):
    """Sufficient statistics of the item step, accumulated over user batches.

    Attributes
    ----------
    gram : ndarray of float64, shape (d, d)
        ``PᵀP``.
    cross : ndarray of float64, shape (n_items, d)
        ``Rᵀ P``.
    total : ndarray of float64, shape (d,)
        ``1ᵀ P`` (column sums of ``P``).
    """

    gram: np.ndarray
    cross: np.ndarray
    total: np.ndarray


def item_popularity(X: sp.csr_matrix) -> np.ndarray:
    """``c_i = Σ_u R_ui``: ``(n_items,)`` float64 column sums of ``X``. O(nnz)."""
    return np.asarray(X.sum(axis=0), dtype=np.float64).ravel()


def item_means(X: sp.csr_matrix) -> np.ndarray:
    """Item bias ``b_i = c_i / n_users``: ``(n_items,)`` float64 column means of ``X``. O(nnz)."""
    return item_popularity(X) / X.shape[0]


def user_batches(n_users: int, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[slice]:
    """Consecutive row slices of at most ``batch_size`` users covering ``range(n_users)``."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive number of users, got {batch_size}")
    for start in range(0, n_users, batch_size):
        yield slice(start, min(start + batch_size, n_users))


def _cholesky(matrix: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """Cholesky factor of an SPD d×d matrix, with an actionable error if it is not SPD."""
    try:
        return scipy.linalg.cho_factor(matrix, lower=False, check_finite=True)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise ConfigError(
            f"{what} is not positive definite (or not finite); use a strictly positive ridge strength and finite embeddings"
        ) from exc


def user_ridge_encoder(Q: np.ndarray, r_p: float, bias: np.ndarray | None = None) -> UserEncoder:
    """The MF user step as a function of a batch of user rows (training or fold-in).

    ``P = (R − 1bᵀ) Q (r_p I + QᵀQ)⁻¹``, i.e. every user's row of ``P`` is the ridge regression of
    its (bias-centred) feedback row on the item embeddings. The d×d matrix is factorised once here.

    Parameters
    ----------
    Q : ndarray, shape (n_items, d)
        Item embeddings (float32 or float64).
    r_p : float
        Ridge strength ``r_p > 0``.
    bias : ndarray, shape (n_items,), or None
        Item bias ``b`` or ``None`` for no bias.

    Returns
    -------
    UserEncoder
        ``encode(X_batch) -> (b, d)`` array in ``Q``'s dtype.

    Notes
    -----
    Cost: O(I d² + d³) here, then O(nnz_batch · d + b d²) per call.
    """
    factor = _cholesky(r_p * np.eye(Q.shape[1]) + Q.T.astype(np.float64) @ Q, "r_p I + QᵀQ")
    shift = None if bias is None else np.asarray(bias, dtype=np.float64) @ Q

    def encode(X_batch: sp.csr_matrix) -> np.ndarray:
        rhs = sparse_dense_product(X_batch, Q).astype(np.float64, copy=False)
        if shift is not None:
            rhs -= shift
        return scipy.linalg.cho_solve(factor, rhs.T).T.astype(Q.dtype, copy=False)

    return encode


def plrec_item_weights(X: sp.csr_matrix, power: float) -> np.ndarray:
    """PLRec's item weights ``ω_i = 1 / (c_i^{1/p} + 1e-4)`` from the *training* popularity.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix, shape (n_users, n_items)
        CSR training matrix (never a fold-in batch, spec §8 pitfall 3).
    power : float
        ``p > 0``; large ``p`` means (almost) no popularity weighting.

    Returns
    -------
    ndarray of float64, shape (n_items,)
    """
    if not power > 0:
        raise ConfigError(f"PLRec power must be positive, got {power}")
    return 1.0 / (np.power(item_popularity(X), 1.0 / power) + 1e-4)


def plrec_encoder(W: np.ndarray, item_weights: np.ndarray) -> UserEncoder:
    """PLRec's user projection ``P = R Diag(ω) W`` as a function of a batch of user rows.

    Parameters
    ----------
    W : ndarray, shape (n_items, d)
        Encoder embeddings.
    item_weights : ndarray, shape (n_items,)
        ``ω`` from :func:`plrec_item_weights` (training popularity).

    Returns
    -------
    UserEncoder
        ``encode(X_batch) -> (b, d)`` in ``W``'s dtype; O(nnz_batch · d) per call.
    """
    scaled = (np.asarray(item_weights)[:, None] * W).astype(W.dtype, copy=False)

    def encode(X_batch: sp.csr_matrix) -> np.ndarray:
        return sparse_dense_product(X_batch, scaled)

    return encode


def encode_users(X: sp.csr_matrix, encoder: UserEncoder, d: int, dtype, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """All users' factors ``(n_users, d)`` in ``dtype``, computed batch by batch (memory checked)."""
    dtype = np.dtype(dtype)
    ensure_fits(dense_bytes((X.shape[0], d), dtype.itemsize), f"user factors ({X.shape[0]} x {d} {dtype})")
    out = np.empty((X.shape[0], d), dtype=dtype)
    for rows in user_batches(X.shape[0], batch_size):
        out[rows] = encoder(X[rows])
    return out


def item_statistics(X: sp.csr_matrix, encoder: UserEncoder, d: int, batch_size: int = DEFAULT_BATCH_SIZE) -> ItemStatistics:
    """Accumulate ``PᵀP``, ``RᵀP`` and ``1ᵀP`` over user batches, ``P`` given by ``encoder``.

    Memory: ``(n_items, d)`` float64 plus one ``(batch, d)`` block; ``P`` is never stored whole.
    Cost: O(nnz · d + n_users · d²) plus the encoder's own cost.
    """
    n_items = X.shape[1]
    ensure_fits(dense_bytes((n_items, d), 8, 2), f"item-step statistics ({n_items} x {d} float64, x2)")
    gram_upper = np.zeros((d, d), order="F")
    cross = np.zeros((n_items, d))
    total = np.zeros(d)
    for rows in user_batches(X.shape[0], batch_size):
        X_batch = X[rows]
        P = encoder(X_batch)
        P64 = P.astype(np.float64, copy=False)
        # Symmetric rank-k update (BLAS syrk): only the upper triangle, half the flops of Pᵀ P.
        gram_upper = scipy.linalg.blas.dsyrk(1.0, P64, beta=1.0, c=gram_upper, trans=1, overwrite_c=True)
        cross += sparse_dense_product(X_batch.T.tocsr(), P)
        total += P64.sum(axis=0)
    gram = np.triu(gram_upper) + np.triu(gram_upper, 1).T
    return ItemStatistics(gram, cross, total)


def solve_item_step(
    stats: ItemStatistics,
    r_q: float,
    bias: np.ndarray | None = None,
    s_q: float = 0.0,
    target: np.ndarray | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """The MF item step, optionally pulled towards a target ``V`` (ImplicitSLIM regulariser).

    Minimises ``‖R − P Qᵀ − 1bᵀ‖² + r_q ‖Q‖² + s_q ‖Q − V‖²`` over ``Q``:
    ``Q = (Rᵀ P − b (1ᵀP) + s_q V) ((r_q + s_q) I + PᵀP)⁻¹`` (paper layout:
    ``((r_q+s_q) I + PPᵀ)⁻¹ (P R − (P1) bᵀ + s_q V)``).

    Parameters
    ----------
    stats : ItemStatistics
        :class:`ItemStatistics` of the current user factors.
    r_q : float
        Ridge strength ``≥ 0``.
    bias : ndarray, shape (n_items,), or None
        Item bias or ``None``.
    s_q : float
        Strength of the pull towards ``target`` (``≥ 0``).
    target : ndarray, shape (n_items, d), or None
        ``V``; required when ``s_q > 0``.
    dtype : dtype
        Dtype of the returned ``(n_items, d)`` array.

    Returns
    -------
    ndarray, shape (n_items, d)
        ``Q``.

    Notes
    -----
    Cost: O(d³ + I d²); memory two ``(n_items, d)`` float64 arrays.
    """
    rhs = stats.cross.copy()
    if bias is not None:
        rhs -= np.outer(np.asarray(bias, dtype=np.float64), stats.total)
    if s_q:
        if target is None:
            raise ConfigError("the item step has s_q > 0 but no target V; pass target=V or s_q=0")
        rhs += s_q * np.asarray(target, dtype=np.float64)
    d = stats.gram.shape[0]
    factor = _cholesky((r_q + s_q) * np.eye(d) + stats.gram, "(r_q + s_q) I + PᵀP")
    return scipy.linalg.cho_solve(factor, rhs.T).T.astype(dtype)


def user_ridge(
    X: sp.csr_matrix, Q: np.ndarray, r_p: float, bias: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """The MF user step for every row of ``X``: ``(n_users, d)`` in ``Q``'s dtype.

    See :func:`user_ridge_encoder`; this materialises ``P`` (memory checked) and is meant for
    inspection and tests — training accumulates :class:`ItemStatistics` batch by batch instead.
    """
    return encode_users(X, user_ridge_encoder(Q, r_p, bias), Q.shape[1], Q.dtype, batch_size)


def item_ridge(
    X: sp.csr_matrix,
    P: np.ndarray,
    r_q: float,
    bias: np.ndarray | None = None,
    s_q: float = 0.0,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """The MF item step for a materialised ``P`` (``(n_users, d)``); returns ``(n_items, d)`` in ``P``'s dtype.

    See :func:`solve_item_step` for the formula.
    """
    P64 = np.asarray(P, dtype=np.float64)
    stats = ItemStatistics(P64.T @ P64, np.asarray(X.T @ P64), P64.sum(axis=0))
    return solve_item_step(stats, r_q, bias, s_q, target, dtype=P.dtype)
