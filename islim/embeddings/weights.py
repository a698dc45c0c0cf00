"""First step of the LLE pipeline with the global neighbourhood ``N(i) = all items except i``.

Each function returns a dense ``(n_items, n_items)`` weight matrix ``S`` whose **column** ``i``
reconstructs item ``i`` from the others (``X ≈ X S``; spec §1), with ``S_ii = 0``:

* :func:`ease_weights` — EASE ridge regression, ``min ‖X − XS‖² + λ‖S‖²`` s.t. ``diag S = 0``:
  ``S_ij = −Π_ij / Π_jj`` with ``Π = (XᵀX + λI)⁻¹`` (Steck 2019); with ``sum_to_one`` the LLE
  constraint ``1ᵀS = 1ᵀ`` is added, giving SLIM-LLE (:func:`slim_lle_weights`, spec §2.3).
* :func:`lle_weights` — classic LLE weights (Roweis & Saul): per item ``min_w wᵀ(G⁽ⁱ⁾ + r_i I)w``
  s.t. ``1ᵀw = 1`` with the local Gram ``G⁽ⁱ⁾_jl = (x_i − x_j)·(x_i − x_l)`` and the trace
  regulariser ``r_i = reg · tr G⁽ⁱ⁾ / k``. Under ``1ᵀw = 1``, ``wᵀG⁽ⁱ⁾w = ‖x_i − Σ_j w_j x_j‖²``, so this
  is SLIM-LLE's column problem with an item-specific ridge ``r_i``; all columns are solved at once
  through one eigendecomposition of ``XᵀX``.
* :func:`cooccurrence_weights` — co-occurrence ``XᵀX`` with a zero diagonal, columns normalised to
  sum to one (a random-walk / Laplacian-eigenmap operator; no regression).
* :func:`identity_weights` — ``S = 0`` (no item–item model): ``(I − S)(I − S)ᵀ = I``, so the anchored
  update degenerates to a shrinkage of the input embeddings (null control).

The dense functions compute in float64 by default: the embeddings come from the bottom of the
spectrum of ``(I − S)(I − S)ᵀ`` and the sum-to-one correction subtracts nearly equal quantities.
Memory is checked with :func:`islim.memory.ensure_fits` before any ``n_items²`` allocation.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from islim.errors import ConfigError
from islim.gram import dense_gram
from islim.linalg import spd_inverse_inplace, zero_diagonal_weights
from islim.memory import dense_bytes, ensure_fits

#: Rows processed at once by the blocked in-place updates of n×n arrays.
ROW_BLOCK = 1024


def _item_gram(X, gram: np.ndarray | None, dtype, copies: int, what: str, budget_bytes: int | None) -> np.ndarray:
    """A writable dense ``XᵀX`` in ``dtype`` (a copy of ``gram`` if given) after checking ``copies`` n² arrays fit."""
    n_items = X.shape[1] if gram is None else gram.shape[0]
    itemsize = np.dtype(dtype).itemsize
    ensure_fits(
        dense_bytes((n_items, n_items), itemsize, copies),
        f"{what} ({n_items:,} x {n_items:,} {np.dtype(dtype).name}, {copies} dense copies)",
        budget_bytes,
    )
    if gram is not None:
        return np.array(gram, dtype=dtype, order="C", copy=True)
    return dense_gram(X, dtype=dtype, budget_bytes=budget_bytes)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def ease_weights(
    X, lam: float, sum_to_one: bool = False, dtype=np.float64, gram: np.ndarray | None = None, budget_bytes: int | None = None
) -> np.ndarray:
    """EASE (``sum_to_one=False``) or SLIM-LLE (``sum_to_one=True``) weights with the global neighbourhood.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
        Training matrix (not used if ``gram`` is given).
    lam : float
        λ > 0.
    sum_to_one : bool
        Add the LLE constraint ``1ᵀ S = 1ᵀ`` (columns sum to one): ``Π̃ = Π − (Π1)(Π1)ᵀ / 1ᵀΠ1``,
        ``S_ij = −Π̃_ij / Π̃_jj`` (spec §2.3).
    dtype : numpy dtype
        Compute and output dtype (default float64).
    gram : ndarray, shape (n_items, n_items), optional
        Precomputed ``XᵀX`` (not modified).
    budget_bytes : int, optional
        Memory budget (default: available memory).

    Returns
    -------
    ndarray, shape (n_items, n_items)
        ``S`` with zero diagonal (column ``j`` reconstructs item ``j``).

    Notes
    -----
    Cost ``O(Σ_u n_u²)`` for the Gram matrix + ``n³`` for the in-place Cholesky inverse; memory one
    dense ``n²`` array.
    """
    _check_positive("lam", lam)
    P = _item_gram(X, gram, dtype, 1, "SLIM-LLE weights" if sum_to_one else "EASE weights", budget_bytes)
    P[np.diag_indices_from(P)] += P.dtype.type(lam)
    P = spd_inverse_inplace(P)
    if sum_to_one:
        ones_image = P.sum(axis=1)  # Π 1
        total = ones_image.sum()  # 1ᵀ Π 1
        for start in range(0, P.shape[0], ROW_BLOCK):
            rows = slice(start, start + ROW_BLOCK)
            P[rows] -= np.outer(ones_image[rows], ones_image / total)
    return zero_diagonal_weights(P)


def slim_lle_weights(X, lam: float, dtype=np.float64, gram: np.ndarray | None = None, budget_bytes: int | None = None) -> np.ndarray:
    """SLIM-LLE weights (spec §2.3): EASE with zero diagonal **and** unit column sums.

    Equivalent to ``ease_weights(X, lam, sum_to_one=True, ...)``; see there for the parameters.
    """
    return ease_weights(X, lam, sum_to_one=True, dtype=dtype, gram=gram, budget_bytes=budget_bytes)


def _trace_ridge(C: np.ndarray, reg: float) -> np.ndarray:
    """Roweis–Saul ridge ``r_i = reg · tr G⁽ⁱ⁾ / k`` for ``N(i)`` = all other items, (n_items,) float64.

    ``tr G⁽ⁱ⁾ = Σ_{j≠i} ‖x_i − x_j‖² = k c_i + Σ_{j≠i} c_j − 2 Σ_{j≠i} C_ij`` with ``C = XᵀX``,
    ``c = diag C``, ``k = n_items − 1``. Items whose trace is 0 get ``r_i = reg``.
    """
    pop = np.diagonal(C).astype(np.float64)
    k = C.shape[0] - 1
    cooccurrence = C.sum(axis=0, dtype=np.float64) - pop
    trace = k * pop + (pop.sum() - pop) - 2.0 * cooccurrence
    return np.where(trace > 0, reg * trace / k, reg)


def lle_weights(X, reg: float = 1e-3, dtype=np.float64, gram: np.ndarray | None = None, budget_bytes: int | None = None) -> np.ndarray:
    """Classic LLE weights (Roweis & Saul) with the global neighbourhood, all columns at once.

    For item ``i`` the minimiser of ``‖x_i − X w‖² + r_i ‖w‖²`` s.t. ``w_i = 0``, ``1ᵀw = 1`` is
    ``w = e_i − (s_i a − b_i b) / (s_i a_i − b_i²)`` with ``a = Π_i e_i``, ``b = Π_i 1``,
    ``s_i = 1ᵀ b`` and ``Π_i = (XᵀX + r_i I)⁻¹`` (Lagrange conditions of the two constraints). With
    ``XᵀX = Q Λ Qᵀ``, ``a`` and ``b`` for all items are two n×n GEMMs:
    ``A = Q (Qᵀ ⊘ (Λ1ᵀ + 1 rᵀ))``, ``B = Q ((Qᵀ1)1ᵀ ⊘ (Λ1ᵀ + 1 rᵀ))``.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
    reg : float
        Trace-regulariser factor (> 0), ``r_i = reg · tr G⁽ⁱ⁾ / (n_items − 1)``.
    dtype, gram, budget_bytes
        As in :func:`ease_weights`.

    Returns
    -------
    ndarray, shape (n_items, n_items)
        ``S`` with zero diagonal and unit column sums.

    Notes
    -----
    Cost: a symmetric eigendecomposition (``≈ 9n³``) + two n³ GEMMs; memory about five n² arrays.
    """
    _check_positive("reg", reg)
    C = _item_gram(X, gram, dtype, 5, "LLE weights", budget_bytes)
    ridge = _trace_ridge(C, reg).astype(C.dtype)
    eigval, Q = scipy.linalg.eigh(C, overwrite_a=True, check_finite=False)
    del C
    denominators = eigval[:, None] + ridge[None, :]  # (Λ_k + r_i), rows k, columns i
    B = Q @ ((Q.sum(axis=0)[:, None] / denominators).astype(dtype))  # column i: Π_i 1
    scaled = Q.T / denominators
    del denominators
    A = Q @ scaled.astype(dtype, copy=False)  # column i: Π_i e_i
    del scaled, Q
    a_diag, b_diag, totals = A.diagonal().copy(), B.diagonal().copy(), B.sum(axis=0)
    A *= totals[None, :]
    A -= B * b_diag[None, :]
    A /= -(totals * a_diag - b_diag**2)[None, :]
    np.fill_diagonal(A, 0.0)
    return A


def cooccurrence_weights(X, dtype=np.float64, gram: np.ndarray | None = None, budget_bytes: int | None = None) -> np.ndarray:
    """Co-occurrence weights: ``S = C₀ Diag(1 / 1ᵀC₀)``, ``C₀ = XᵀX`` with its diagonal zeroed.

    Columns sum to one; the column of an item that co-occurs with no other item stays 0 (then the
    constant vector is not an exact null vector of ``(I − S)(I − S)ᵀ``). O(Σ_u n_u²) + O(n²).

    Returns
    -------
    ndarray, shape (n_items, n_items)
    """
    S = _item_gram(X, gram, dtype, 1, "co-occurrence weights", budget_bytes)
    np.fill_diagonal(S, 0.0)
    totals = S.sum(axis=0)
    np.divide(S, totals[None, :], out=S, where=totals[None, :] > 0)
    return S


def identity_weights(n_items: int, dtype=np.float64) -> sp.csc_matrix:
    """The null first step ``S = 0`` as an empty sparse (n_items, n_items) matrix.

    With it ``(I − S)(I − S)ᵀ = I`` and the anchored update is the shrinkage
    ``E = α F (I_d + α FᵀF)⁻¹ Fᵀ E₀`` of the input embeddings; the explicit eigen step is undefined
    (every orthonormal basis is optimal).
    """
    return sp.csc_matrix((n_items, n_items), dtype=dtype)
