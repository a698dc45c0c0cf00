"""Reference arms without an item–item model: random and SVD item embeddings (spec §3.4, §7b)."""

from __future__ import annotations

import numpy as np

from islim.embeddings.gram_operator import SparseGram
from islim.errors import ConfigError
from islim.linalg import qr_orthonormal_basis


def random_embeddings(n_items: int, d: int, seed: int = 0, scale: float | None = None, dtype=np.float32) -> np.ndarray:
    """I.i.d. Gaussian item embeddings ``N(0, scale²)``; (n_items, d) in ``dtype``.

    The default ``scale = 1/√n_items`` gives columns of norm ≈ 1, the scale of the orthonormal
    eigenvector arms. Deterministic for a given ``seed`` (numpy ``default_rng``).
    """
    if n_items < 1 or d < 1:
        raise ConfigError(f"random_embeddings needs n_items >= 1 and d >= 1, got {n_items} and {d}")
    scale = 1.0 / np.sqrt(n_items) if scale is None else scale
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_items, d)) * scale).astype(dtype)


def svd_embeddings(X, d: int, seed: int = 0, n_power_iter: int = 4, oversampling: int = 10, dtype=np.float32) -> np.ndarray:
    """Top-d right singular vectors of ``X`` (PureSVD item factors, unscaled) by a randomised range finder.

    Works on the Gram operator ``XᵀX`` (whose eigenvectors are the right singular vectors):
    ``Q ← orth(XᵀX Q)`` for ``n_power_iter`` steps from a Gaussian ``(n_items, d + oversampling)``
    start, then Rayleigh–Ritz: the top-d eigenvectors of ``Qᵀ XᵀX Q`` mapped back by ``Q``. Each
    step is one blocked ``XᵀX`` product, so no ``(n_users, d)`` array is formed.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
    d : int
        Number of singular vectors, ``d < n_items``.
    seed : int
        Seed of the Gaussian start.
    n_power_iter : int
        Power iterations on ``XᵀX`` (each squares the singular-value ratios once more).
    oversampling : int
        Extra columns of the range finder.
    dtype : numpy dtype
        Compute and output dtype.

    Returns
    -------
    ndarray, shape (n_items, d)
        Orthonormal columns ordered by decreasing singular value (signs arbitrary).

    Notes
    -----
    Cost ``(n_power_iter + 1)·2·nnz·(d + oversampling)`` + ``O(I (d+p)²)``.
    """
    n_items = X.shape[1]
    if not 1 <= d < n_items:
        raise ConfigError(f"svd_embeddings needs 1 <= d < n_items={n_items}, got d={d}")
    width = min(n_items, d + oversampling)
    gram = SparseGram(X, dtype=dtype)
    Q = qr_orthonormal_basis(np.random.default_rng(seed).standard_normal((n_items, width)).astype(dtype))
    for _ in range(n_power_iter):
        Q = qr_orthonormal_basis(gram.matmul(Q))
    projected = Q.T @ gram.matmul(Q)
    eigval, eigvec = np.linalg.eigh((projected + projected.T).astype(np.float64) / 2)
    top = np.argsort(eigval)[::-1][:d]
    return (Q @ eigvec[:, top].astype(dtype)).astype(dtype, copy=False)
