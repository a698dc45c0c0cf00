"""Most-popular items: the sanity baseline every personalised model must beat.

Every item is scored by its training count ``c_j = |{u : X_uj ≠ 0}|`` (how many training users
interacted with it), so every user gets the same ranking; the evaluator removes each user's fold-in
items from it. Fitting is one pass over the non-zeros of ``X``; scoring copies one ``n_items``
vector per user.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from islim.errors import DataFormatError, IslimError
from islim.memory import dense_bytes, ensure_fits
from islim.models.base import OneStepRecommender


def _feedback_matrix(X) -> sp.csr_matrix:
    """``X`` as a CSR matrix (no copy when it already is one); a dense input is refused clearly."""
    if not sp.issparse(X):
        raise DataFormatError(
            f"expected a scipy.sparse (n_users, n_items) feedback matrix, got {type(X).__name__}; convert it with scipy.sparse.csr_matrix"
        )
    return X.tocsr()


class Popularity(OneStepRecommender):
    """Item popularity: ``score(u, j) = c_j``, the number of training users of item ``j``.

    No hyper-parameters. Explicit zeros stored in ``X`` are not interactions, a (user, item) pair
    stored twice counts once, and the value of a non-zero does not matter (feedback is binary).

    Attributes
    ----------
    popularity_ : ndarray, shape (n_items,), float32
        ``c_j``, the training count of each item (exact in float32 up to 2²⁴ users).
    history_, best_epoch_
        One epoch (0), validated when ``fit`` is given ``validate``.
    """

    def __init__(self):
        self._store_params(locals())

    @classmethod
    def memory_bytes(cls, n_users, n_items, params, grid) -> int:
        """``n_items`` float32 counts, plus their int64 ``bincount`` while they are made: ``12 I`` bytes."""
        return 12 * n_items

    def _fit_step(self, X: sp.spmatrix) -> None:
        """Count each item's training users; any non-zero of ``X`` ``(n_users, n_items)`` counts as
        one interaction. ``O(nnz(X) + n_items)`` time, ``n_items`` float32 values of state."""
        X = _feedback_matrix(X)
        if not X.has_canonical_format:  # duplicate (user, item) entries: one interaction each
            X = X.copy()
            X.sum_duplicates()
        self.popularity_ = np.bincount(X.indices[X.data != 0], minlength=X.shape[1]).astype(np.float32)

    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores ``(b, n_items)`` float32 of a batch of fold-in rows: ``popularity_`` in every row
        (a fresh, writable array; ``users`` and the rows' contents are ignored)."""
        if getattr(self, "popularity_", None) is None:
            raise IslimError("Popularity is not fitted yet; call fit(X_train) before scoring")
        n_items = self.popularity_.shape[0]
        if rows.shape[1] != n_items:
            raise DataFormatError(f"expected fold-in rows over {n_items} items, got {rows.shape[1]} columns")
        ensure_fits(
            dense_bytes((rows.shape[0], n_items), 4), f"popularity scores ({rows.shape[0]:,} x {n_items:,} float32); use smaller batches"
        )
        return np.tile(self.popularity_, (rows.shape[0], 1))
