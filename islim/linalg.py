"""Dense linear algebra shared by the models and the embedding extractors (lowest numeric layer).

* The in-place SPD inverse: a blocked Cholesky factorisation (:func:`cholesky_inplace`, LAPACK
  ``?potrf`` on diagonal blocks, BLAS ``?trsm``/``?syrk``/``?gemm`` for the rest) and LAPACK
  ``?potri``, or torch/MKL above :data:`OPENBLAS_MAX_BYTES`; and the zero-diagonal ridge closed
  form built on it (EASE).
* Two column-space orthonormalisations that differ on purpose: :func:`qr_orthonormal_basis`
  (reduced QR, always ``d`` columns) and :func:`column_space_basis` (SVD-based
  ``scipy.linalg.orth``, falling back to the input when it is rank-deficient).

This module imports only numpy/scipy (torch lazily) and the low utilities
(:mod:`islim.errors`, :mod:`islim.memory`).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.linalg.cython_blas
import scipy.linalg.cython_lapack

from islim.errors import DataFormatError, NumericalError
from islim.memory import dense_bytes, ensure_fits

#: Above this many bytes the inverse goes through torch's LAPACK (MKL) instead of scipy's bundled
#: OpenBLAS. The MKL path needs two more ``n²`` buffers (the Cholesky factor and the inverse before
#: it is copied back): 20.4 GB peak at MSD's shape (41,140 items). It was introduced when scipy's
#: ``?potrf`` segfaulted at that size; the cause (below, :data:`CHOLESKY_BLOCK`) is now avoided on
#: the scipy path too, but ``?potri`` has only been run up to 32,000² there, so the limit stays.
OPENBLAS_MAX_BYTES = 2**32

#: Order of the diagonal blocks of :func:`cholesky_inplace`. OpenBLAS's threaded ``?potrf``
#: (0.3.30, ``potrf_L_parallel`` → ``?syrk_thread_LN``) packs the first thread's share of the
#: trailing update (``⌈(n − Q)/√T⌉`` columns for ``T`` threads, ``Q`` the kernel's GEMM_Q) times ``Q``
#: into a fixed 32 MiB buffer without checking its size, and segfaults (or writes into a neighbouring
#: allocation) once that share is larger than about GEMM_R columns. With 2 threads that happens above
#: n = 26,289 (float32) / 15,545 (float64) for the SkylakeX kernel and above n = 36,931 (float32) /
#: 22,703 (float64) for the Haswell kernel; one thread never does. Here no threaded symmetric update
#: is ever larger than this order (the off-diagonal updates are GEMMs, which OpenBLAS partitions
#: safely), so any size is safe with any thread count.
CHOLESKY_BLOCK = 2048


def spd_inverse_inplace(A: np.ndarray, block: int = CHOLESKY_BLOCK) -> np.ndarray:
    """Invert a symmetric positive-definite matrix in place via Cholesky; returns the full symmetric inverse.

    ``A`` must be a C- or F-contiguous float32/float64 square array; it is overwritten and the
    returned array shares its memory. Cost: ``n³/3`` (factor) + ``2n³/3`` (inverse) flops; no
    extra ``n²`` buffer up to :data:`OPENBLAS_MAX_BYTES`, two above it. ``block``: the order of the
    diagonal blocks of the factorisation (:data:`CHOLESKY_BLOCK`; smaller only to test the blocking).

    Raises
    ------
    NumericalError
        If ``A`` is not (numerically) positive definite, naming the first failing leading minor.
    """
    if not (A.flags.c_contiguous or A.flags.f_contiguous):
        raise ValueError("spd_inverse_inplace needs a contiguous array")
    if A.nbytes > OPENBLAS_MAX_BYTES:
        return _spd_inverse_torch(A)
    # LAPACK works on Fortran order: a C array is handled as its transpose (same matrix, since A = Aᵀ),
    # whose lower triangle is the C array's upper triangle.
    c_order = A.flags.c_contiguous
    work = A.T if c_order else A
    info = cholesky_inplace(work, block)
    if info != 0:
        raise NumericalError(f"Cholesky factorisation failed (LAPACK info={info}): the matrix is not positive definite; increase lambda")
    (potri,) = scipy.linalg.get_lapack_funcs(("potri",), (work,))
    inverse, info = potri(work, lower=True, overwrite_c=True)
    if info != 0:
        raise NumericalError(f"Cholesky inverse failed (LAPACK info={info}): the Cholesky factor is singular; increase lambda")
    mirror_upper_triangle(inverse.T)  # the valid lower triangle of `inverse` is the upper one of its transpose
    return inverse.T if c_order else inverse  # same memory and order as the input


def cholesky_inplace(work: np.ndarray, block: int = CHOLESKY_BLOCK) -> int:
    """Blocked lower Cholesky factorisation ``work = L Lᵀ`` in place, with threaded updates that stay small.

    Right-looking, by blocks of ``block`` columns: ``?potrf`` factors the diagonal block, ``?trsm``
    the panel below it, and the trailing matrix is updated block column by block column (``?syrk``
    on the diagonal block, ``?gemm`` below it), all through scipy's BLAS and LAPACK with the
    leading dimension of ``work``, so nothing is copied. Same flops as ``?potrf`` (``n³/3``); no
    symmetric update handed to OpenBLAS is larger than ``block`` (see :data:`CHOLESKY_BLOCK`).

    Parameters
    ----------
    work : ndarray, shape (n, n)
        F-contiguous float32/float64 symmetric matrix; its lower triangle is read and replaced by
        ``L``, its strict upper triangle is left as it was.
    block : int, default CHOLESKY_BLOCK
        Order of the diagonal blocks.

    Returns
    -------
    int
        LAPACK's ``info``: 0, or the order ``k`` of the first leading minor that is not positive
        definite (the factorisation stops there; columns before it hold ``L``).
    """
    if work.ndim != 2 or work.shape[0] != work.shape[1] or not work.flags.f_contiguous or not work.flags.writeable:
        raise DataFormatError(
            f"cholesky_inplace needs a writeable F-contiguous square array, got shape {work.shape} "
            f"(F-contiguous: {work.flags.f_contiguous}, writeable: {work.flags.writeable}); pass the transpose of a C-ordered one"
        )
    if block < 1:
        raise ValueError(f"cholesky_inplace needs a block order of at least 1, got {block}")
    routines = _routines(work.dtype)
    n, itemsize, base = work.shape[0], work.itemsize, work.ctypes.data

    def at(row: int, col: int) -> ctypes.c_void_p:
        return ctypes.c_void_p(base + (row + col * n) * itemsize)

    def integer(value: int):
        return ctypes.byref(ctypes.c_int(value))

    lower, right, transpose, plain = ctypes.c_char_p(b"L"), ctypes.c_char_p(b"R"), ctypes.c_char_p(b"T"), ctypes.c_char_p(b"N")
    one, minus_one = ctypes.byref(routines.scalar(1.0)), ctypes.byref(routines.scalar(-1.0))
    lda, info = integer(n), ctypes.c_int(0)
    for k0 in range(0, n, block):
        kb = min(block, n - k0)
        k1 = k0 + kb
        routines.potrf(lower, integer(kb), at(k0, k0), lda, ctypes.byref(info))
        if info.value != 0:
            return k0 + info.value
        if k1 == n:
            break
        # L21 = A21 L11⁻ᵀ, then A22 -= L21 L21ᵀ one block column at a time
        routines.trsm(right, lower, transpose, plain, integer(n - k1), integer(kb), one, at(k0, k0), lda, at(k1, k0), lda)
        for j0 in range(k1, n, block):
            jb = min(block, n - j0)
            j1 = j0 + jb
            routines.syrk(lower, plain, integer(jb), integer(kb), minus_one, at(j0, k0), lda, one, at(j0, j0), lda)
            if j1 < n:
                routines.gemm(
                    plain,
                    transpose,
                    integer(n - j1),
                    integer(jb),
                    integer(kb),
                    minus_one,
                    at(j1, k0),
                    lda,
                    at(j0, k0),
                    lda,
                    one,
                    at(j1, j0),
                    lda,
                )
    return 0


class _Routines(NamedTuple):
    """scipy's BLAS/LAPACK routines of one precision, callable with pointers (Fortran conventions)."""

    potrf: Callable[..., None]
    trsm: Callable[..., None]
    syrk: Callable[..., None]
    gemm: Callable[..., None]
    scalar: type


@functools.cache
def _routines(dtype: np.dtype) -> _Routines:
    """The routines of ``dtype`` from scipy's Cython BLAS/LAPACK API (``scipy.linalg.cython_blas``)."""
    prefixes = {np.dtype(np.float32): ("s", ctypes.c_float), np.dtype(np.float64): ("d", ctypes.c_double)}
    if np.dtype(dtype) not in prefixes:
        raise DataFormatError(f"the Cholesky factorisation needs a float32 or float64 matrix, got {np.dtype(dtype)}; convert it first")
    prefix, scalar = prefixes[np.dtype(dtype)]
    # private prototypes of the C API (setting restype on ctypes.pythonapi's would change them for everyone)
    get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
    get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", ctypes.pythonapi))

    def routine(module, name: str, n_args: int):
        capsule = module.__pyx_capi__[prefix + name]
        return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * n_args)(get_pointer(capsule, get_name(capsule)))

    return _Routines(
        potrf=routine(scipy.linalg.cython_lapack, "potrf", 5),
        trsm=routine(scipy.linalg.cython_blas, "trsm", 11),
        syrk=routine(scipy.linalg.cython_blas, "syrk", 10),
        gemm=routine(scipy.linalg.cython_blas, "gemm", 13),
        scalar=scalar,
    )


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
        raise NumericalError(f"Cholesky factorisation failed (info={int(info)}): the matrix is not positive definite; increase lambda")
    torch.cholesky_inverse(factor, out=matrix)
    return A


def symmetric_product(A: np.ndarray, block: int = CHOLESKY_BLOCK) -> np.ndarray:
    """``A Aᵀ`` of a dense ``(n, k)`` array as a new C-ordered ``(n, n)`` array, by blocks of rows.

    numpy computes ``A @ A.T`` with one threaded ``?syrk`` of order ``n``, which OpenBLAS overflows
    and segfaults on for large ``n`` just as its ``?potrf`` (:data:`CHOLESKY_BLOCK`; e.g. above
    15,161 float64 rows with the SkylakeX kernel and 2 threads). Here row block ``i`` is
    ``A[rows_i] @ A[:end_i].T`` (a ``?syrk`` of order ``block`` for the first, ``?gemm`` for the
    others), then the lower triangle is mirrored: ``n² k`` flops like ``?syrk``, no extra ``n²``
    buffer, exactly symmetric.
    """
    n = A.shape[0]
    out = np.empty((n, n), dtype=np.result_type(A.dtype, np.float32))
    for start in range(0, n, block):
        stop = min(start + block, n)
        np.matmul(A[start:stop], A[:stop].T, out=out[start:stop, :stop])
    mirror_upper_triangle(out.T)  # the lower triangle of `out` is the upper one of its transpose
    return out


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
