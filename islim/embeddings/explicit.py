"""Explicit second step: LLE embeddings as bottom eigenvectors of ``L = (I − S)(I − S)ᵀ`` (spec §2.2–2.3).

:func:`lle_embeddings` takes any first-step weights ``S`` (column ``i`` reconstructs item ``i``):

* dense ``S`` → ``L`` is formed densely and ``scipy.linalg.eigh(..., subset_by_index=...)`` (LAPACK
  ``?syevr``) returns only the wanted eigenpairs — no shift-invert of the exactly singular ``L``
  (pitfall 6 of the spec);
* sparse ``S`` → ``L`` stays sparse and ``eigsh`` runs in shift-invert mode around a small
  **negative** shift ``σ = −shift·‖L‖₁``, so ``L − σI`` is positive definite and its sparse LU exists;
  if ``L`` has more than :data:`DENSE_FRACTION` of its entries filled (popular items sit in many
  neighbourhoods), it is densified and solved like the dense case instead.

If every column of ``S`` sums to one (LLE, SLIM-LLE, co-occurrence), ``(I − S)ᵀ1 = 0`` and the
constant vector is an eigenvector for the eigenvalue 0: it carries no information and is dropped,
so ``d + 1`` eigenpairs are computed and the first is discarded (``drop_constant="auto"``).

:func:`slim_lle` is the paper's explicit variant: SLIM-LLE weights + this step.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from islim.embeddings.weights import slim_lle_weights
from islim.errors import ConfigError, IslimError
from islim.linalg import symmetric_product
from islim.memory import dense_bytes, ensure_fits

#: Column sums within this distance of 1 count as "sum to one" for ``drop_constant="auto"``.
SUM_TO_ONE_ATOL = 1e-6
#: A sparse ``L`` denser than this fraction is solved densely (a sparse LU would fill in anyway).
DENSE_FRACTION = 0.1


def columns_sum_to_one(S) -> bool:
    """Whether every column of ``S`` (dense or sparse, n×n) sums to 1 within :data:`SUM_TO_ONE_ATOL`."""
    totals = np.asarray(S.sum(axis=0)).ravel()
    return bool(np.all(np.abs(totals - 1.0) <= SUM_TO_ONE_ATOL))


def lle_operator(S) -> sp.csr_matrix:
    """The sparse ``L = (I − S)(I − S)ᵀ`` (n×n CSR) of sparse weights ``S``; nnz up to ``n·k²``."""
    A = (sp.identity(S.shape[0], dtype=S.dtype, format="csr") - S).tocsr()
    return (A @ A.T).tocsr()


def _bottom_eigenpairs_of(L: np.ndarray, n_eig: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_eig`` smallest eigenpairs of a dense symmetric ``L`` (LAPACK ``?syevr``, overwrites ``L``)."""
    return scipy.linalg.eigh(L, subset_by_index=[0, n_eig - 1], driver="evr", overwrite_a=True, check_finite=False)


def _dense_bottom_eigenpairs(S: np.ndarray, n_eig: int, budget_bytes: int | None) -> tuple[np.ndarray, np.ndarray]:
    n_items = S.shape[0]
    ensure_fits(
        dense_bytes((n_items, n_items), S.dtype.itemsize, 2),
        f"LLE eigenproblem ({n_items:,} x {n_items:,} {S.dtype.name}, 2 dense copies)",
        budget_bytes,
    )
    A = -S
    A[np.diag_indices_from(A)] += 1.0
    L = symmetric_product(A)  # not A @ A.T: OpenBLAS's threaded ?syrk segfaults on large n
    del A
    return _bottom_eigenpairs_of(L, n_eig)


def _sparse_bottom_eigenpairs(
    S, n_eig: int, shift: float, tol: float, seed: int, budget_bytes: int | None
) -> tuple[np.ndarray, np.ndarray]:
    L = lle_operator(sp.csr_matrix(S, dtype=np.float64))
    n_items = L.shape[0]
    if L.nnz > DENSE_FRACTION * n_items**2:
        ensure_fits(dense_bytes((n_items, n_items), 8), f"LLE eigenproblem, densified ({n_items:,} x {n_items:,} float64)", budget_bytes)
        return _bottom_eigenpairs_of(L.toarray(), n_eig)
    sigma = -shift * float(abs(L).sum(axis=0).max())
    v0 = np.random.default_rng(seed).standard_normal(L.shape[0])
    values, vectors = scipy.sparse.linalg.eigsh(L, k=n_eig, sigma=sigma, which="LM", tol=tol, v0=v0)
    order = np.argsort(values)
    return values[order], vectors[:, order]


def lle_embeddings(
    S,
    d: int,
    drop_constant: bool | str = "auto",
    shift: float = 1e-6,
    tol: float = 0.0,
    seed: int = 0,
    return_eigenvalues: bool = False,
    budget_bytes: int | None = None,
):
    """Item embeddings from the ``d`` (non-trivial) smallest eigenpairs of ``L = (I − S)(I − S)ᵀ``.

    Parameters
    ----------
    S : ndarray or scipy sparse, shape (n_items, n_items)
        First-step weights (column ``i`` reconstructs item ``i``). Dense → dense ``eigh``
        (overwrites nothing; needs two n² arrays); sparse → shift-invert ``eigsh`` on sparse ``L``
        (dense ``eigh`` if ``L`` is too full).
    d : int
        Embedding dimension.
    drop_constant : bool or "auto"
        Drop the first eigenvector (the constant one, eigenvalue 0). "auto": iff the columns of
        ``S`` sum to one.
    shift : float
        Sparse path: shift ``σ = −shift·‖L‖₁`` of the shift-invert mode.
    tol : float
        Sparse path: ``eigsh`` tolerance (0 = machine precision).
    seed : int
        Sparse path: seed of the Lanczos start vector.
    return_eigenvalues : bool
        Also return the eigenvalues of the kept eigenvectors.
    budget_bytes : int, optional
        Memory budget for the dense path.

    Returns
    -------
    ndarray, shape (n_items, d), float64
        Orthonormal columns, eigenvalues ascending. With ``return_eigenvalues``, a tuple
        ``(embeddings, eigenvalues)`` where ``eigenvalues`` has all ``d (+1)`` computed values.

    Notes
    -----
    Dense cost: one n³ product for ``L`` + the tridiagonal reduction of ``eigh`` (``≈ 4n³/3``)
    + ``O(n² d)``. Sparse cost: a sparse LU of ``L − σI`` + ``O(n·d)`` per Lanczos step.
    """
    n_items = S.shape[0]
    drop = columns_sum_to_one(S) if drop_constant == "auto" else bool(drop_constant)
    n_eig = d + int(drop)
    if not 1 <= n_eig < n_items:
        raise ConfigError(f"cannot extract {d} embedding dimensions ({n_eig} eigenpairs) from {n_items} items; choose d < n_items - 1")
    if sp.issparse(S):
        values, vectors = _sparse_bottom_eigenpairs(S, n_eig, shift, tol, seed, budget_bytes)
    else:
        values, vectors = _dense_bottom_eigenpairs(np.asarray(S), n_eig, budget_bytes)
    if not np.all(np.isfinite(values)):
        raise IslimError("the LLE eigensolver returned non-finite eigenvalues; check that S is finite")
    embeddings = np.ascontiguousarray(vectors[:, int(drop) :])
    return (embeddings, values) if return_eigenvalues else embeddings


def slim_lle(X, lam: float, d: int, dtype=np.float64, budget_bytes: int | None = None) -> np.ndarray:
    """The paper's explicit SLIM-LLE embeddings: SLIM-LLE weights, then :func:`lle_embeddings`.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
    lam : float
        λ > 0 of the SLIM-LLE regression.
    d : int
        Embedding dimension.
    dtype : numpy dtype
        Compute dtype of the dense steps (default float64).
    budget_bytes : int, optional

    Returns
    -------
    ndarray, shape (n_items, d)
        Eigenvectors 2 … d+1 (ascending) of ``(I − S)(I − S)ᵀ``, orthonormal columns.

    Notes
    -----
    Peak memory about three dense n² arrays (weights, ``I − S``, ``L``); checked before allocating.
    """
    n_items = X.shape[1]
    ensure_fits(
        dense_bytes((n_items, n_items), np.dtype(dtype).itemsize, 3),
        f"SLIM-LLE ({n_items:,} x {n_items:,} {np.dtype(dtype).name}, 3 dense copies)",
        budget_bytes,
    )
    S = slim_lle_weights(X, lam, dtype=dtype, budget_bytes=budget_bytes)
    return lle_embeddings(S, d, drop_constant=True, budget_bytes=budget_bytes)
