"""Dense linear algebra shared by the models and the embedding extractors (lowest numeric layer).

* The in-place SPD inverse (LAPACK Cholesky ``?potrf`` + ``?potri``, or torch/MKL above
  :data:`OPENBLAS_MAX_BYTES`) and the zero-diagonal ridge closed form built on it (EASE).
* Two column-space orthonormalisations that differ on purpose: :func:`qr_orthonormal_basis`
  (reduced QR, always ``d`` columns) and :func:`column_space_basis` (SVD-based
  ``scipy.linalg.orth``, falling back to the input when it is rank-deficient).

This module imports only numpy/scipy (torch lazily) and the low utilities
(:mod:`islim.errors`, :mod:`islim.memory`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from islim.errors import IslimError
from islim.memory import dense_bytes, ensure_fits

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

    ensure_fits(
        dense_bytes(A.shape, A.itemsize, 2),
        f"Cholesky factor and inverse for the MKL path ({A.shape[0]:,} x {A.shape[0]:,} {A.dtype.name}, 2 dense copies)",
    )
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
    """EASE weights ``B`` (``(n_items, n_items)``, dtype of ``gram``) from a dense Gram matrix ``XᵀX``.

    ``B = argmin ||X − XB||²_F + λ||B||²_F`` s.t. ``diag(B) = 0``: ``P = (XᵀX + λI)⁻¹``,
    ``B_ij = −P_ij / P_jj``, ``B_jj = 0``. ``gram`` is overwritten when ``overwrite`` (else copied).
    """
    P = gram if overwrite else gram.copy()
    P[np.diag_indices_from(P)] += P.dtype.type(lam)
    return zero_diagonal_weights(spd_inverse_inplace(P))


def qr_orthonormal_basis(E: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``Q`` of the column space of ``E`` by reduced QR (``E = Q R``).

    ``E``: ``(n, d)`` with ``n ≥ d``; returns ``(n, d)`` in ``E``'s dtype with ``QᵀQ = I`` — always
    ``d`` columns, even when ``E`` is rank-deficient (then ``Q`` spans more than ``E``'s column
    space, completed arbitrarily). Householder QR, ``O(n d²)`` flops, one ``(n, d)`` output.
    """
    q, _ = np.linalg.qr(E, mode="reduced")
    return q


def column_space_basis(E: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of ``E`` by SVD (``scipy.linalg.orth``), or ``E`` itself.

    ``E``: ``(n, d)``. ``scipy.linalg.orth`` keeps the left singular vectors whose singular values
    exceed its rank tolerance; if that gives all ``d`` of them the ``(n, d)`` basis is returned,
    otherwise (``E`` numerically rank-deficient) ``E`` is returned unchanged, as the official
    ImplicitSLIM ``orth=True`` option does. Thin SVD, ``O(n d²)`` flops (a larger constant than
    QR), one ``(n, d)`` output; dtype follows scipy's SVD (float32 stays float32).
    """
    basis = scipy.linalg.orth(E)
    return basis if basis.shape[1] == E.shape[1] else E
