"""EASE (Steck, WWW 2019): the closed-form item–item ridge regression with a zero diagonal.

``B = argmin_B ||X − XB||²_F + λ||B||²_F  s.t. diag(B) = 0`` has the closed form
``P = (XᵀX + λI)⁻¹``, ``B_ij = −P_ij / P_jj`` (i ≠ j), ``B_jj = 0``. Scores of a user with
fold-in row ``x`` are ``x B``.

The SPD inverse is computed in place by LAPACK's Cholesky routines (``?potrf`` + ``?potri``), so
one dense ``n_items²`` array (plus the Gram matrix when sweeping λ) is all the memory used.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from islim.errors import IslimError
from islim.gram import dense_gram
from islim.memory import dense_bytes, ensure_fits
from islim.spmm import sparse_dense_product


#: Above this many bytes the inverse goes through torch's LAPACK (MKL) instead of scipy's bundled
#: OpenBLAS, which segfaulted in ``spotrf``/``spotri`` on a 41,140² float32 matrix (6.8 GB, MSD's
#: item count) on the 2-core development machine while 20,108² (1.6 GB) worked. The MKL path needs
#: two more ``n²`` buffers (the Cholesky factor and the inverse before it is copied back): 20.4 GB
#: peak at MSD's shape.
OPENBLAS_MAX_BYTES = 2**32


def spd_inverse_inplace(A: np.ndarray) -> np.ndarray:
    """Invert a symmetric positive-definite matrix in place via Cholesky; returns the full symmetric inverse.

    ``A`` must be a C- or F-contiguous float32/float64 square array; it is overwritten and the
    returned array shares its memory. Cost: ``n³/3`` (factor) + ``2n³/3`` (inverse) flops; no
    extra ``n²`` buffer up to :data:`OPENBLAS_MAX_BYTES`, two above it.
    """
    if not (A.flags.c_contiguous or A.flags.f_contiguous):
        raise ValueError("spd_inverse_inplace needs a contiguous array")
    if A.nbytes > OPENBLAS_MAX_BYTES:
        return _spd_inverse_torch(A)
    # LAPACK works on Fortran order: a C array is handled as its transpose (same matrix, since A = Aᵀ),
    # whose lower triangle is the C array's upper triangle.
    c_order = A.flags.c_contiguous
    work = A.T if c_order else A
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (work,))
    factor, info = potrf(work, lower=True, overwrite_a=True, clean=False)
    if info != 0:
        raise IslimError(f"Cholesky factorisation failed (LAPACK info={info}): the matrix is not positive definite; increase lambda")
    inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise IslimError(f"Cholesky inverse failed (LAPACK info={info})")
    mirror_upper_triangle(inverse.T)  # the valid lower triangle of `inverse` is the upper one of its transpose
    return inverse.T if c_order else inverse  # same memory and order as the input


def _spd_inverse_torch(A: np.ndarray) -> np.ndarray:
    """:func:`spd_inverse_inplace` through torch (MKL ``potrf``/``potri``); the result is written into ``A``."""
    import torch

    ensure_fits(dense_bytes(A.shape, A.itemsize, 2), f"Cholesky factor and inverse for the MKL path ({A.shape[0]:,} x {A.shape[0]:,} {A.dtype.name}, 2 dense copies)")
    matrix = torch.from_numpy(A)  # shares A's memory; A is symmetric, so its order does not matter
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        raise IslimError(f"Cholesky factorisation failed (info={int(info)}): the matrix is not positive definite; increase lambda")
    torch.cholesky_inverse(factor, out=matrix)
    return A


def mirror_upper_triangle(A: np.ndarray, block: int = 1024) -> None:
    """Copy the strict upper triangle of square ``A`` onto its lower triangle, in place, by blocks."""
    n = A.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        diagonal = A[start:stop, start:stop]
        lower = np.tril_indices(stop - start, k=-1)
        diagonal[lower] = diagonal.T[lower]
        A[stop:, start:stop] = A[start:stop, stop:].T


def zero_diagonal_weights(P: np.ndarray) -> np.ndarray:
    """``B = −P Diag(1/diag P)`` with a zero diagonal, in place: the Lagrange solution of the
    ridge regression with ``diag(B) = 0`` given the inverse ``P`` of the regularised Gram matrix."""
    diag = P.diagonal().copy()
    P /= -diag[None, :]
    np.fill_diagonal(P, 0.0)
    return P


def ease_from_gram(gram: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """EASE weights ``B`` (``(n_items, n_items)``, dtype of ``gram``) from a dense Gram matrix ``XᵀX``."""
    P = gram if overwrite else gram.copy()
    P[np.diag_indices_from(P)] += P.dtype.type(lam)
    return zero_diagonal_weights(spd_inverse_inplace(P))


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
