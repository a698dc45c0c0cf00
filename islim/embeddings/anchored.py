"""Implicit second step for any first-step weights ``S``: the anchored LLE update (spec §2.4, §7a).

Item-major (one row per item), with ``C = (I − S)(I − S)ᵀ`` and the anchor ``F = M_τ E₀`` (rows of
items below the popularity threshold zeroed), the update is

    E = argmin ‖(I − S)ᵀ E‖²_F + α ‖Fᵀ (E − E₀)‖²_F   ⇔   (C + α F Fᵀ) E = α F (Fᵀ E₀).

ImplicitSLIM is this problem for the surrogate ``(I − S̃)ᵀ = Δ Π`` where Woodbury gives a closed form
(:func:`islim.embeddings.implicit.implicit_slim`). For a general ``S``, ``C⁻¹`` is neither sparse
nor cheap, so the system is solved directly:

* dense ``S`` — Cholesky of the dense ``C + α F Fᵀ`` (``n³/3`` flops, two n² arrays);
* sparse ``S`` — conjugate gradients on all ``d`` right-hand sides at once (one sparse product with
  ``I − S`` and one with its transpose per iteration), preconditioned by ``Diag(C) + α F Fᵀ``
  inverted by Woodbury;
* ``S = 0`` (the identity / null first step) — ``C = I`` and Woodbury applies:
  ``E = α F (I_d + α FᵀF)⁻¹ Fᵀ E₀``, a shrinkage of the input.

The system matrix is positive definite unless a null vector of ``C`` is orthogonal to every anchor
column (e.g. unit column sums give ``C1 = 0``; then ``Fᵀ1 ≠ 0`` is needed).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from islim.embeddings._linalg import IterationResult, solve_spd, subspace_iteration
from islim.errors import ConfigError, DataFormatError, NumericalError
from islim.linalg import cholesky_inplace, symmetric_product
from islim.memory import dense_bytes, ensure_fits

#: Rows processed at once by the blocked updates of n×n arrays.
ROW_BLOCK = 1024


@dataclass
class CGInfo:
    """Convergence of a block conjugate-gradient solve.

    Attributes
    ----------
    n_iter : int
        Iterations run.
    residual : float
        Largest relative residual ``‖b − A x‖ / ‖b‖`` over the right-hand sides at exit.
    converged : bool
        Whether ``residual ≤ tol``.
    """

    n_iter: int
    residual: float
    converged: bool


def block_cg(matvec, B: np.ndarray, precondition, tol: float = 1e-6, maxiter: int | None = None) -> tuple[np.ndarray, CGInfo]:
    """Preconditioned conjugate gradients for ``A X = B`` with many right-hand sides at once.

    Each column runs its own CG recurrence (own step sizes); the columns share the products
    ``A P`` so the work per iteration is one call of ``matvec`` on an (n, r) block.

    Parameters
    ----------
    matvec : callable
        ``P ↦ A P`` for (n, r) arrays, ``A`` symmetric positive definite.
    B : ndarray, shape (n, r)
    precondition : callable
        ``R ↦ P⁻¹ R`` for (n, r) arrays, ``P`` symmetric positive definite (``P ≈ A``).
    tol : float
        Relative residual per column at which to stop.
    maxiter : int, optional
        Default ``10·n``.

    Returns
    -------
    X : ndarray, shape (n, r), float64
    info : CGInfo
    """
    B = np.asarray(B, dtype=np.float64)
    maxiter = maxiter or 10 * B.shape[0]
    norms = np.linalg.norm(B, axis=0)
    norms[norms == 0] = 1.0
    X = np.zeros_like(B)
    R = B.copy()
    Z = precondition(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    residual = float(np.max(np.linalg.norm(R, axis=0) / norms))
    n_iter = 0
    while residual > tol and n_iter < maxiter:
        Q = matvec(P)
        curvature = np.einsum("ij,ij->j", P, Q)
        step = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
        X += P * step
        R -= Q * step
        Z = precondition(R)
        rz_next = np.einsum("ij,ij->j", R, Z)
        beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
        P = Z + P * beta
        rz = rz_next
        n_iter += 1
        residual = float(np.max(np.linalg.norm(R, axis=0) / norms))
    return X, CGInfo(n_iter, residual, residual <= tol)


def _anchor(E0: np.ndarray, threshold_mask) -> np.ndarray:
    if threshold_mask is None:
        return E0
    mask = np.asarray(threshold_mask, dtype=bool)
    if mask.shape != (E0.shape[0],):
        raise DataFormatError(f"threshold_mask must be a boolean (n_items={E0.shape[0]},) array, got shape {mask.shape}")
    return E0 * mask[:, None]


#: Sparse systems up to this many items are solved densely by ``solver="auto"`` (n³/3 flops).
DIRECT_SOLVE_MAX_ITEMS = 6000


def dense_system(S, budget_bytes: int | None = None) -> np.ndarray:
    """``C = (I − S)(I − S)ᵀ`` as a dense float64 ``(n_items, n_items)`` array (``2n³`` flops).

    Memory is checked for the two n² arrays the anchored solve then needs.
    """
    n_items = S.shape[0]
    ensure_fits(
        dense_bytes((n_items, n_items), 8, 2), f"anchored update, dense system ({n_items:,} x {n_items:,} float64, 2 copies)", budget_bytes
    )
    A = -(S.toarray() if sp.issparse(S) else np.asarray(S, dtype=np.float64)).astype(np.float64, copy=False)
    A[np.diag_indices_from(A)] += 1.0
    return symmetric_product(A)  # not A @ A.T: OpenBLAS's threaded ?syrk segfaults on large n


def _dense_update(C: np.ndarray, F: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    """``(C + α F Fᵀ)⁻¹ rhs`` by Cholesky on a copy of the dense system ``C``.

    The factorisation is islim's blocked one (:func:`islim.linalg.cholesky_inplace`): scipy's
    ``cho_factor`` reaches OpenBLAS's threaded ``?potrf``, which segfaults on large systems.
    """
    M = C.copy(order="C")
    for start in range(0, M.shape[0], ROW_BLOCK):
        rows = slice(start, start + ROW_BLOCK)
        M[rows] += alpha * (F[rows] @ F.T)
    lower = M.T  # M is symmetric: its transpose is the same matrix in Fortran order
    if cholesky_inplace(lower) != 0:
        raise NumericalError(
            "the anchored system (I-S)(I-S)' + alpha F F' is singular: a null vector of (I-S)' is orthogonal to "
            "every anchor column; use other input embeddings or a lower popularity threshold"
        )
    return scipy.linalg.cho_solve((lower, True), rhs)


def _low_rank_jacobi(diagonal: np.ndarray, F: np.ndarray, alpha: float):
    """``R ↦ (D + α F Fᵀ)⁻¹ R`` by Woodbury (D diagonal > 0): the Jacobi preconditioner of ``C``
    plus the exact rank-d anchor term, which would otherwise dominate the condition number."""
    inv_diag = (1.0 / diagonal)[:, None]
    scaled = F * inv_diag  # D⁻¹ F
    core = np.eye(F.shape[1]) / alpha + F.T @ scaled  # I/α + Fᵀ D⁻¹ F
    factor = scipy.linalg.cho_factor(core, lower=True)

    def apply(R):
        return R * inv_diag - scaled @ scipy.linalg.cho_solve(factor, scaled.T @ R)

    return apply


def _sparse_update(S, F: np.ndarray, rhs: np.ndarray, alpha: float, tol: float, maxiter: int | None) -> np.ndarray:
    n_items = S.shape[0]
    A = (sp.identity(n_items, format="csr") - sp.csr_matrix(S, dtype=np.float64)).tocsr()
    At = A.T.tocsr()
    diagonal = np.asarray(A.multiply(A).sum(axis=1)).ravel()  # diag (I − S)(I − S)ᵀ > 0

    def matvec(P):
        return A @ (At @ P) + alpha * (F @ (F.T @ P))

    solution, info = block_cg(matvec, rhs, _low_rank_jacobi(diagonal, F, alpha), tol=tol, maxiter=maxiter)
    if not info.converged:
        warnings.warn(
            f"anchored update: conjugate gradients stopped after {info.n_iter} iterations at relative residual {info.residual:.2e} > tol={tol:g}; raise maxiter or tol",
            RuntimeWarning,
            stacklevel=3,
        )
    return solution


def uses_cg(S, solver: str) -> bool:
    """Whether :func:`anchored_update` solves the system of ``S`` by conjugate gradients."""
    return sp.issparse(S) and (solver == "cg" or (solver == "auto" and S.shape[0] > DIRECT_SOLVE_MAX_ITEMS))


def anchored_update(
    S,
    E0: np.ndarray,
    alpha: float,
    threshold_mask: np.ndarray | None = None,
    tol: float = 1e-10,
    maxiter: int | None = None,
    budget_bytes: int | None = None,
    solver: str = "auto",
    system: np.ndarray | None = None,
) -> np.ndarray:
    """Solve ``min_E ‖(I − S)ᵀ E‖² + α ‖Fᵀ (E − E₀)‖²`` for item-major embeddings ``E``.

    Parameters
    ----------
    S : ndarray or scipy sparse, shape (n_items, n_items)
        First-step weights (column ``i`` reconstructs item ``i``).
    E0 : ndarray, shape (n_items, d)
        Input embeddings, one row per item.
    alpha : float
        α > 0, weight of the anchor.
    threshold_mask : ndarray of bool, shape (n_items,), optional
        Items that anchor the solution (``c_i ≥ τ``); default all. ``F = E₀`` with other rows zeroed.
    tol, maxiter
        Conjugate-gradient relative residual and iteration cap (sparse ``S`` only); a warning is
        issued if the tolerance is not reached. The system is ill-conditioned (the anchor term
        ``α F Fᵀ`` dwarfs the bottom of ``C``'s spectrum), so the error is much larger than the
        residual: on ml-latest-small (k = 50, d = 64) ``tol = 1e-10`` gave relative errors of
        1e-8 to 3e-6 against the dense solve, ``1e-6`` only 5e-4 to 9e-2.
    budget_bytes : int, optional
        Memory budget for the dense path (raises :class:`MemoryBudgetError` if two n² float64
        arrays do not fit).
    solver : {"auto", "cg", "direct"}
        For sparse ``S``: conjugate gradients, or a dense Cholesky solve of the same system.
        ``"auto"`` solves directly up to :data:`DIRECT_SOLVE_MAX_ITEMS` items (exact, and seconds
        where the ill-conditioned CG needs minutes) and by CG beyond.
    system : ndarray, optional
        A precomputed :func:`dense_system` of ``S`` for the direct solve (repeated updates reuse it).

    Returns
    -------
    ndarray, shape (n_items, d), dtype of ``E0`` (float32 unless float64)
    """
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha!r}")
    if solver not in ("auto", "cg", "direct"):
        raise ConfigError(f"solver must be 'auto', 'cg' or 'direct', got {solver!r}")
    E0 = np.asarray(E0)
    out_dtype = np.float64 if E0.dtype == np.float64 else np.float32
    E0 = E0.astype(np.float64)
    if S.shape != (E0.shape[0], E0.shape[0]):
        raise DataFormatError(f"S has shape {S.shape} but the embeddings have {E0.shape[0]} rows; expected ({E0.shape[0]}, {E0.shape[0]})")
    F = _anchor(E0, threshold_mask)
    cross = alpha * (F.T @ E0)  # α Fᵀ E₀, d×d
    if sp.issparse(S) and S.nnz == 0:
        d = E0.shape[1]
        out = F @ solve_spd(np.eye(d) + alpha * (F.T @ F), cross, "I_d + alpha F'F")
    elif uses_cg(S, solver):
        out = _sparse_update(S, F, F @ cross, alpha, tol, maxiter)
    else:
        out = _dense_update(dense_system(S, budget_bytes) if system is None else system, F, F @ cross, alpha)
    return out.astype(out_dtype, copy=False)


def iterate_anchored_update(
    S,
    E0: np.ndarray,
    alpha: float,
    n_iter: int = 100,
    tol: float = 1e-4,
    threshold_mask: np.ndarray | None = None,
    cg_tol: float = 1e-10,
    cg_maxiter: int | None = None,
    budget_bytes: int | None = None,
) -> IterationResult:
    """Repeated :func:`anchored_update` with column orthonormalisation (inverse subspace iteration).

    With orthonormal ``F = E_t`` (no threshold) the update's column space is that of ``C⁻¹ E_t``
    (push-through identity), so the iteration converges to the bottom-d eigenvectors of
    ``C = (I − S)(I − S)ᵀ`` — the explicit LLE solution, constant vector included when the columns
    of ``S`` sum to one.

    Parameters
    ----------
    S, E0, alpha, threshold_mask, budget_bytes
        As in :func:`anchored_update`; ``cg_tol``/``cg_maxiter`` are its ``tol``/``maxiter``.
    n_iter : int
        Maximum number of updates.
    tol : float
        Stop when the largest principal angle between consecutive iterates is below ``tol`` degrees.

    Returns
    -------
    IterationResult
    """

    system = None if uses_cg(S, "auto") or (sp.issparse(S) and S.nnz == 0) else dense_system(S, budget_bytes)

    def step(E):
        return anchored_update(S, E, alpha, threshold_mask, tol=cg_tol, maxiter=cg_maxiter, budget_bytes=budget_bytes, system=system)

    return subspace_iteration(step, np.asarray(E0, dtype=np.float64), n_iter, tol)
