"""EASE (Steck, WWW 2019): the closed-form item–item ridge regression with a zero diagonal.

``B = argmin_B ||X − XB||²_F + λ||B||²_F  s.t. diag(B) = 0`` has the closed form
``P = (XᵀX + λI)⁻¹``, ``B_ij = −P_ij / P_jj`` (i ≠ j), ``B_jj = 0``. Scores of a user with
fold-in row ``x`` are ``x B``.

The SPD inverse is computed in place by a blocked Cholesky factorisation and LAPACK's ``?potri``
(:func:`islim.linalg.spd_inverse_inplace`, safe at every size), so one dense ``n_items²`` array
(plus the Gram matrix when sweeping λ) is all the memory used. A λ too small for the Gram matrix
(not numerically positive definite) fails the fit with a :class:`~islim.errors.NumericalError`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from islim.errors import DataFormatError, IslimError
from islim.gram import dense_gram
from islim.linalg import OPENBLAS_MAX_BYTES, ease_from_gram
from islim.memory import dense_bytes, ensure_fits
from islim.models.base import OneStepRecommender
from islim.spmm import column_tiled_product


class EASE(OneStepRecommender):
    """EASE recommender.

    Parameters
    ----------
    lam : float
        L2 weight λ > 0 (config name ``lambda``).
    dtype : {"float32", "float64"}
        Dtype of the dense ``n_items²`` arrays.
    budget_bytes : int, optional
        Memory budget for the dense ``n_items²`` arrays (default: available memory).

    Attributes
    ----------
    weights_ : ndarray, shape (n_items, n_items)
        Item–item weights with a zero diagonal.
    history_, best_epoch_
        One epoch (0), validated when ``fit`` is given ``validate``.
    """

    def __init__(self, lam: float = 500.0, dtype: str = "float32", budget_bytes: int | None = None):
        self._store_params(locals())

    def _fit_step(self, X: sp.spmatrix, gram: np.ndarray | None = None) -> None:
        """Fit on the ``(n_users, n_items)`` training matrix in closed form.

        Pass a precomputed dense ``gram`` (``XᵀX``, not modified) to ``fit`` to reuse it across a
        λ sweep.
        """
        n_items = X.shape[1]
        itemsize = np.dtype(self.dtype).itemsize
        # One dense n_items² array, the Gram matrix inverted in place (or the copy of a given one);
        # two more above OPENBLAS_MAX_BYTES (the MKL path).
        copies = 1 if dense_bytes((n_items, n_items), itemsize) <= OPENBLAS_MAX_BYTES else 3
        ensure_fits(
            dense_bytes((n_items, n_items), itemsize, copies),
            f"EASE ({n_items:,} x {n_items:,} {self.dtype}, {copies} dense copies)",
            self.budget_bytes,
        )
        if gram is None:
            self.weights_ = ease_from_gram(dense_gram(X, self.dtype, budget_bytes=self.budget_bytes), self.lam, overwrite=True)
        else:
            self.weights_ = ease_from_gram(gram.astype(self.dtype, copy=False), self.lam)

    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores ``(b, n_items)`` of a CSR batch of fold-in rows: ``rows @ weights_`` (``users`` is ignored).

        Computed by column tiles of ``weights_`` (:func:`islim.spmm.column_tiled_product`): each
        tile is read from memory once per batch instead of one weight row per fold-in interaction;
        the result is the same, bit for bit.
        """
        if getattr(self, "weights_", None) is None:
            raise IslimError("EASE is not fitted yet; call fit(X_train) before scoring")
        if rows.shape[1] != self.weights_.shape[0]:
            raise DataFormatError(f"expected fold-in rows over {self.weights_.shape[0]} items, got {rows.shape[1]} columns")
        return column_tiled_product(rows, self.weights_)
