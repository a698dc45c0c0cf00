"""Small dense linear-algebra helpers shared by the embedding extractors (numpy and torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from islim.errors import IslimError, NumericalError
from islim.linalg import qr_orthonormal_basis


def is_torch(array) -> bool:
    """Whether ``array`` is a torch tensor (checked without importing torch)."""
    return type(array).__module__.startswith("torch")


def eye_like(T):
    """The identity matrix with the shape, dtype (and device) of square ``T``."""
    if is_torch(T):
        import torch

        return torch.eye(T.shape[0], dtype=T.dtype, device=T.device)
    return np.eye(T.shape[0], dtype=T.dtype)


def solve_spd(B, R, what: str):
    """``B⁻¹ R`` for a small symmetric positive-definite ``B`` (d×d), by Cholesky in float64.

    Works for numpy arrays and torch tensors (result in ``R``'s dtype and device).
    Raises :class:`NumericalError` naming ``what`` if ``B`` is not SPD or not finite.
    """
    if is_torch(B):
        import torch

        factor, info = torch.linalg.cholesky_ex(B.double())
        if int(info) != 0 or not bool(torch.isfinite(factor).all()):
            raise NumericalError(
                f"{what} is not positive definite (Cholesky info={int(info)}); check that the embeddings are finite and alpha > 0"
            )
        return torch.cholesky_solve(R.double(), factor).to(R.dtype)
    try:
        factor = scipy.linalg.cho_factor(np.asarray(B, dtype=np.float64), lower=True, check_finite=True)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise NumericalError(
            f"{what} is not positive definite or not finite ({exc}); check that the embeddings are finite and alpha > 0"
        ) from exc
    return scipy.linalg.cho_solve(factor, np.asarray(R, dtype=np.float64)).astype(R.dtype, copy=False)


def max_principal_angle_degrees(A: np.ndarray, B: np.ndarray) -> float:
    """Largest principal angle between the column spaces of ``A`` and ``B`` (n×d each), in degrees."""
    return float(np.degrees(scipy.linalg.subspace_angles(np.asarray(A, np.float64), np.asarray(B, np.float64))[0]))


@dataclass
class IterationResult:
    """Outcome of a repeated, orthonormalised embedding update (a subspace iteration).

    Attributes
    ----------
    embeddings : ndarray, shape (n_items, d)
        Last iterate, orthonormal columns.
    angles : list of float
        Largest principal angle (degrees) between consecutive iterates, one per iteration.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the last angle fell below the tolerance.
    """

    embeddings: np.ndarray
    angles: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False


def subspace_iteration(step: Callable[[np.ndarray], np.ndarray], E0: np.ndarray, n_iter: int, tol: float) -> IterationResult:
    """Iterate ``E ← orth(step(E))`` from ``orth(E0)`` until the subspace moves less than ``tol`` degrees.

    Parameters
    ----------
    step : callable
        Maps (n_items, d) embeddings to (n_items, d) embeddings.
    E0 : ndarray, shape (n_items, d)
    n_iter : int
        Maximum number of iterations (≥ 1).
    tol : float
        Stop once the largest principal angle between consecutive iterates is below ``tol`` degrees.
    """
    if n_iter < 1:
        raise IslimError(f"n_iter must be at least 1, got {n_iter}")
    result = IterationResult(embeddings=qr_orthonormal_basis(E0))
    for _ in range(n_iter):
        nxt = qr_orthonormal_basis(step(result.embeddings))
        result.angles.append(max_principal_angle_degrees(result.embeddings, nxt))
        result.embeddings = nxt
        result.n_iter += 1
        if result.angles[-1] < tol:
            result.converged = True
            break
    return result
