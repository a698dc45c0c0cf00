"""Item-based k-nearest neighbours with shrunk cosine similarity: the classic neighbourhood baseline.

Over the binary training columns ``x_i`` (the users of item ``i``),

``sim(i, j) = x_iᵀ x_j / (‖x_i‖ ‖x_j‖ + shrink)``,

and column ``j`` of the item–item matrix ``S`` keeps the ``k`` largest ``sim(i, j)``, ``i ≠ j``
(item ``j``'s neighbours; ties at the ``k``-th value go to the lowest item indices). A user with
fold-in row ``x`` scores ``x S``: item ``j`` collects the similarities of the user's items that are
among its neighbours.

Items without training users have ``sim = 0`` with every item (never NaN). Similarities are
non-negative, and zeros are not stored: a column holds ``min(k, n_items − 1)`` entries at most,
fewer when fewer items co-occur with it.

``S`` is built one slab of columns at a time, on a thread pool: the sparse product
``X[:, slab]ᵀ X`` (scipy releases the GIL), its densified ``(slab, n_items)`` block, the shrunk cosine
and the top-``k`` selection, so the dense working set stays within :data:`WORKSPACE_BYTES` and no
dense ``n_items²`` array is formed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from islim.errors import ConfigError, DataFormatError, IslimError
from islim.memory import dense_bytes, ensure_fits
from islim.models.base import OneStepRecommender, largest
from islim.threads import compute_threads

#: Dense working set of the similarity slabs, all threads together (bytes).
WORKSPACE_BYTES = 256 * 2**20
#: Peak bytes per cell of a slab, an upper bound over its phases: the sparse product (float32
#: value + int32 index) with its dense float32 block (12); the block with its denominator (8); the
#: block with its partitioned copy (8), then two boolean masks, an int32 rank of the ties and two
#: boolean temporaries (12).
SLAB_CELL_BYTES = 22
#: Stored similarities: float32 value and int32 index (CSR or CSC).
ENTRY_BYTES = 8
#: Fold-in rows scored per sparse product (bounds its sparse intermediate).
SCORE_BLOCK = 256

T = TypeVar("T")


def _check_params(k, shrink) -> None:
    """Raise :class:`ConfigError` unless ``k`` is an integer ≥ 1 and ``shrink`` a finite number ≥ 0."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ConfigError(f"itemknn: k must be an integer >= 1 (neighbours kept per item), got {k!r}")
    if isinstance(shrink, bool) or not isinstance(shrink, numbers.Real) or not math.isfinite(shrink) or shrink < 0:
        raise ConfigError(f"itemknn: shrink must be a finite number >= 0 (added to the cosine's denominator), got {shrink!r}")


def binary_columns(X) -> sp.csc_matrix:
    """The non-zero pattern of ``X`` as a new float32 CSC matrix of ones (explicit zeros dropped).

    Parameters
    ----------
    X : scipy.sparse matrix, shape (n_users, n_items)

    Returns
    -------
    scipy.sparse.csc_matrix, shape (n_users, n_items), float32
        A copy; ``X`` is not modified.
    """
    if not sp.issparse(X):
        raise DataFormatError(
            f"expected a scipy.sparse (n_users, n_items) feedback matrix, got {type(X).__name__}; convert it with scipy.sparse.csr_matrix"
        )
    binary = sp.csc_matrix(X, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.eliminate_zeros()
    binary.data[:] = 1.0
    return binary


def top_k_mask(sim: np.ndarray, k: int) -> np.ndarray:
    """Which entries of each row of ``sim`` are among its ``k`` largest positive values.

    Parameters
    ----------
    sim : ndarray, shape (m, n)
        Non-negative scores; row ``r`` is ranked on its own.
    k : int
        Entries kept per row, ``1 ≤ k``; ``k ≥ n`` keeps every positive entry.

    Returns
    -------
    ndarray of bool, shape (m, n)
        ``True`` for the kept entries: every value above the row's ``k``-th largest, then, among
        the values equal to it, the lowest column indices until ``k`` are kept; zeros never.

    Notes
    -----
    ``O(m n)`` time (a partition, not a sort); ``m n`` int32 values for the ranks of ties.
    """
    n = sim.shape[1]
    if k >= n:
        return sim > 0
    kth = np.partition(sim, n - k, axis=1)[:, n - k, None]  # (m, 1): the k-th largest value of each row
    keep = sim > kth
    tied = sim == kth
    tied &= kth > 0
    need = k - keep.sum(axis=1, keepdims=True)
    rank = np.cumsum(tied, axis=1, dtype=np.int32)  # 1-based rank of each tie from the left
    keep |= tied & (rank <= need)
    return keep


def map_item_slabs(
    slab: Callable[[int, int], T],
    n_items: int,
    workspace_bytes: int,
    cell_bytes: int,
    what: str,
    n_threads: int | None = None,
    budget_bytes: int | None = None,
) -> list[T]:
    """``slab(start, stop)`` for consecutive slabs ``start:stop`` of ``n_items`` items, on a thread pool.

    Each slab works on a dense ``(stop − start, n_items)`` block of ``cell_bytes`` per cell. The slabs
    are as wide as the threads' blocks together allow within ``workspace_bytes`` (at least one item,
    at most ``⌈n_items / n_threads⌉``), and the working set of all workers is checked against the
    memory budget first.

    Parameters
    ----------
    slab : callable
        ``slab(start, stop)``, called once per slab from the worker threads.
    n_items : int
        Items to cover (``≥ 1``).
    workspace_bytes : int
        Bytes of the dense blocks of all threads together.
    cell_bytes : int
        Peak bytes per cell of one block.
    what : str
        Names the blocks in a :class:`~islim.errors.MemoryBudgetError`.
    n_threads : int, optional
        Worker threads (default :func:`islim.threads.compute_threads`).
    budget_bytes : int, optional
        Memory budget (default: available memory).

    Returns
    -------
    list
        The results of ``slab``, in item order.
    """
    n_threads = max(1, n_threads or compute_threads())
    width = max(1, min(-(-n_items // n_threads), workspace_bytes // (n_threads * cell_bytes * n_items)))
    workers = min(n_threads, -(-n_items // width))
    ensure_fits(workers * cell_bytes * n_items * width, f"{what} ({workers} x {width:,} x {n_items:,} cells)", budget_bytes)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda start: slab(start, min(start + width, n_items)), range(0, n_items, width)))


def cosine_knn(X, k: int, shrink: float, n_threads: int | None = None, budget_bytes: int | None = None) -> sp.csr_matrix:
    """The sparse top-``k`` shrunk-cosine item–item matrix of the binary pattern of ``X``.

    Parameters
    ----------
    X : scipy.sparse matrix, shape (n_users, n_items)
        Training feedback; its non-zero pattern is used.
    k : int
        Neighbours kept per item (column), ``k ≥ 1``; ``k ≥ n_items − 1`` keeps all.
    shrink : float
        ``≥ 0``, added to ``‖x_i‖ ‖x_j‖`` in the denominator.
    n_threads : int, optional
        Worker threads (default :func:`islim.threads.compute_threads`).
    budget_bytes : int, optional
        Memory budget for the dense slabs (default: available memory).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_items, n_items), float32
        ``S``: column ``j`` holds ``sim(i, j)`` of ``j``'s at most ``k`` neighbours ``i ≠ j`` with
        ``sim > 0``; zero diagonal; sorted indices.

    Notes
    -----
    ``O(Σ_u n_u²)`` for the co-occurrences plus ``O(n_items²)`` for the similarities and the
    selection; memory: two copies of ``X``'s pattern (by column and by row),
    ``min(WORKSPACE_BYTES, SLAB_CELL_BYTES · n_items²)`` for the slabs and ``ENTRY_BYTES · n_items · k``
    (three times while the pieces are joined) for ``S``.
    """
    _check_params(k, shrink)
    Xc = binary_columns(X)
    n_items = Xc.shape[1]
    Xt = Xc.T  # (n_items, n_users) CSR view of the same arrays, no copy
    Xr = Xc.tocsr()  # (n_users, n_items)
    norms = np.sqrt(np.diff(Xc.indptr).astype(np.float64)).astype(np.float32)
    k = min(int(k), max(n_items - 1, 0))
    if k == 0:  # a single item has no neighbours
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)

    def slab(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns ``start:stop`` of ``S``, as rows of a C-ordered ``(w, n_items)`` block (ranked along
        contiguous memory): entries per column, row indices, values."""
        sim = (Xt[start:stop] @ Xr).toarray()  # (w, n_items): x_jᵀ x_i for the slab's items j
        denominator = np.outer(norms[start:stop], norms)
        denominator += np.float32(shrink)
        denominator[denominator == 0] = 1.0  # an item without users: numerator 0, similarity 0
        sim /= denominator
        del denominator
        local = np.arange(stop - start)
        sim[local, start + local] = 0.0  # an item is not its own neighbour
        keep = top_k_mask(sim, k)
        columns, rows = np.nonzero(keep)  # by column of S, then neighbour index ascending
        return np.bincount(columns, minlength=stop - start), rows.astype(np.int32), sim[keep]

    pieces = map_item_slabs(
        slab, n_items, WORKSPACE_BYTES, SLAB_CELL_BYTES, "item-kNN similarity slabs", n_threads=n_threads, budget_bytes=budget_bytes
    )
    indptr = np.concatenate([[0], np.cumsum(np.concatenate([piece[0] for piece in pieces]))])
    indices = np.concatenate([piece[1] for piece in pieces])
    data = np.concatenate([piece[2] for piece in pieces]).astype(np.float32, copy=False)
    del pieces
    index_dtype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
    S = sp.csc_matrix((data, indices.astype(index_dtype, copy=False), indptr.astype(index_dtype)), (n_items, n_items))
    return S.tocsr()


class ItemKNN(OneStepRecommender):
    """Item-based k-NN with shrunk cosine similarity (see the module docstring).

    Parameters
    ----------
    k : int
        Neighbours kept per item, ``k ≥ 1`` (``k ≥ n_items − 1``: every co-occurring item).
    shrink : float
        Shrinkage ``≥ 0`` added to the cosine's denominator; damps similarities resting on few
        common users.
    budget_bytes : int, optional
        Memory budget for the dense similarity slabs and the score blocks (default: available memory).

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix, shape (n_items, n_items), float32
        ``S`` of :func:`cosine_knn`.
    history_, best_epoch_
        One epoch (0), validated when ``fit`` is given ``validate``.
    """

    def __init__(self, k: int = 100, shrink: float = 10.0, budget_bytes: int | None = None):
        self._store_params(locals())

    @classmethod
    def memory_bytes(cls, n_users, n_items, params, grid) -> int:
        """The similarity slabs (``min(WORKSPACE_BYTES, SLAB_CELL_BYTES · I²)``), three copies of
        ``S``'s ``I · min(k, I − 1)`` entries (slab pieces, joined CSC, CSR) at the grid's largest ``k``,
        and the sparse product of one score block (``3 · ENTRY_BYTES · SCORE_BLOCK · I``)."""
        k = min(int(largest(params, grid, "k")), max(n_items - 1, 0))
        return min(WORKSPACE_BYTES, SLAB_CELL_BYTES * n_items**2) + 3 * ENTRY_BYTES * n_items * (k + SCORE_BLOCK)

    def _fit_step(self, X: sp.spmatrix) -> None:
        """Build the top-``k`` similarity matrix (see :func:`cosine_knn`)."""
        _check_params(self.k, self.shrink)
        self.similarity_ = cosine_knn(X, self.k, self.shrink, budget_bytes=self.budget_bytes)

    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores ``(b, n_items)`` float32 of a CSR batch of fold-in rows: ``rows @ similarity_``
        (``users`` is ignored).

        Sparse products of :data:`SCORE_BLOCK` rows at a time; cost ``O(Σ_rows nnz(row) · k)``.
        """
        if getattr(self, "similarity_", None) is None:
            raise IslimError("ItemKNN is not fitted yet; call fit(X_train) before scoring")
        n_items = self.similarity_.shape[0]
        if rows.shape[1] != n_items:
            raise DataFormatError(f"expected fold-in rows over {n_items} items, got {rows.shape[1]} columns")
        rows = sp.csr_matrix(rows, dtype=np.float32)
        ensure_fits(
            dense_bytes((rows.shape[0], n_items), 4) + 3 * ENTRY_BYTES * min(SCORE_BLOCK, rows.shape[0]) * n_items,
            f"item-kNN scores ({rows.shape[0]:,} x {n_items:,} float32); use smaller batches",
            self.budget_bytes,
        )
        scores = np.empty((rows.shape[0], n_items), dtype=np.float32)
        for start in range(0, rows.shape[0], SCORE_BLOCK):
            scores[start : start + SCORE_BLOCK] = (rows[start : start + SCORE_BLOCK] @ self.similarity_).toarray()
        return scores
