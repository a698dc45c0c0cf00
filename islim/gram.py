"""The dense item–item Gram matrix ``XᵀX`` of a sparse interaction matrix.

Computed as sparse × sparse products over column slabs, each written straight into a
preallocated dense ``(n_items, n_items)`` array; slabs run on a thread pool (scipy's sparse
products release the GIL), so the Gram matrix uses every core the job was given.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from islim.memory import dense_bytes, ensure_fits
from islim.threads import compute_threads


def dense_gram(
    X: sp.spmatrix, dtype=np.float32, slab: int = 1024, n_threads: int | None = None, budget_bytes: int | None = None
) -> np.ndarray:
    """``XᵀX`` as a dense C-ordered ``(n_items, n_items)`` array of ``dtype``.

    Parameters
    ----------
    X : scipy sparse matrix, shape (n_users, n_items)
        Sparse interaction matrix.
    dtype : dtype, default float32
        Output dtype (float32 or float64).
    slab : int, default 1024
        Items (columns) per task; extra memory is one sparse ``n_items × slab`` product per thread.
    n_threads : int or None
        Worker threads (default :func:`islim.threads.compute_threads`).
    budget_bytes : int or None
        Memory budget for the dense result (default: available memory).

    Returns
    -------
    ndarray, shape (n_items, n_items)
        ``XᵀX``, C-ordered, of ``dtype``.

    Notes
    -----
    Cost ``O(Σ_u n_u²)`` flops.
    """
    n_items = X.shape[1]
    ensure_fits(
        dense_bytes((n_items, n_items), np.dtype(dtype).itemsize),
        f"dense Gram matrix ({n_items:,} x {n_items:,} {np.dtype(dtype).name})",
        budget_bytes,
    )
    Xt = sp.csr_matrix(X.T, dtype=dtype)
    Xc = sp.csc_matrix(X, dtype=dtype)
    gram = np.empty((n_items, n_items), dtype=dtype)

    def fill(start: int) -> None:
        stop = min(start + slab, n_items)
        gram[:, start:stop] = (Xt @ Xc[:, start:stop]).toarray()

    with ThreadPoolExecutor(max(1, n_threads or compute_threads())) as pool:
        list(pool.map(fill, range(0, n_items, slab)))
    return gram
