"""EASE (Steck, WWW 2019): the closed-form item–item ridge regression with a zero diagonal.

``B = argmin_B ||X − XB||²_F + λ||B||²_F  s.t. diag(B) = 0`` has the closed form
``P = (XᵀX + λI)⁻¹``, ``B_ij = −P_ij / P_jj`` (i ≠ j), ``B_jj = 0``. Scores of a user with
fold-in row ``x`` are ``x B``.

The SPD inverse is computed in place by LAPACK's Cholesky routines (``?potrf`` + ``?potri``), so
one dense ``n_items²`` array (plus the Gram matrix when sweeping λ) is all the memory used.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from islim.gram import dense_gram
from islim.linalg import OPENBLAS_MAX_BYTES, ease_from_gram
from islim.memory import dense_bytes, ensure_fits
from islim.spmm import sparse_dense_product


class EASE:
    """EASE recommender.

    Args:
        lam: L2 weight λ > 0 (config name ``lambda``).
        dtype: ``"float32"`` (default) or ``"float64"``.
        budget_bytes: memory budget for the dense ``n_items²`` arrays (default: available memory).

    Attributes:
        weights_: ``(n_items, n_items)`` item–item weights with a zero diagonal.
    """

    def __init__(self, lam: float = 500.0, dtype: str = "float32", budget_bytes: int | None = None):
        self.lam = lam
        self.dtype = dtype
        self.budget_bytes = budget_bytes

    def fit(self, X: sp.spmatrix, gram: np.ndarray | None = None) -> "EASE":
        """Fit on the ``(n_users, n_items)`` training matrix; pass a precomputed ``gram`` (not modified) to reuse it."""
        n_items = X.shape[1]
        itemsize = np.dtype(self.dtype).itemsize
        # One dense n_items² array, the Gram matrix inverted in place (or the copy of a given one);
        # two more above OPENBLAS_MAX_BYTES (the MKL path).
        copies = 1 if dense_bytes((n_items, n_items), itemsize) <= OPENBLAS_MAX_BYTES else 3
        ensure_fits(dense_bytes((n_items, n_items), itemsize, copies), f"EASE ({n_items:,} x {n_items:,} {self.dtype}, {copies} dense copies)", self.budget_bytes)
        if gram is None:
            self.weights_ = ease_from_gram(dense_gram(X, self.dtype, budget_bytes=self.budget_bytes), self.lam, overwrite=True)
        else:
            self.weights_ = ease_from_gram(gram.astype(self.dtype, copy=False), self.lam)
        return self

    def score_batch(self, fold_in: sp.spmatrix) -> np.ndarray:
        """Scores ``(b, n_items)`` of a CSR batch of fold-in rows: ``fold_in @ weights_``."""
        return sparse_dense_product(fold_in, self.weights_)
