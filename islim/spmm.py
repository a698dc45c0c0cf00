"""Sparse × dense products split over threads.

scipy's CSR × dense kernel is single-threaded and memory-bound (every non-zero streams one dense
row), but it releases the GIL, so row blocks of the sparse operand run in parallel on a thread
pool; this is how EASE scores a batch of fold-in users with every core the job was given.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from islim.memory import dense_bytes, ensure_fits
from islim.threads import compute_threads


def sparse_dense_product(X: sp.spmatrix, dense: np.ndarray, n_threads: int | None = None, block: int = 256) -> np.ndarray:
    """``X @ dense`` as a C-ordered ``(n_rows, dense.shape[1])`` array of ``dense``'s dtype.

    Parameters
    ----------
    X : scipy sparse matrix, shape (n_rows, n)
        Converted to CSR of ``dense``'s dtype.
    dense : ndarray, shape (n, m)
    n_threads : int or None
        Worker threads (default :func:`islim.threads.compute_threads`).
    block : int, default 256
        Rows of ``X`` per task.

    Returns
    -------
    ndarray, shape (n_rows, m)
        ``X @ dense``, C-ordered, of ``dense``'s dtype.
    """
    X = sp.csr_matrix(X, dtype=dense.dtype)
    shape = (X.shape[0], dense.shape[1])
    ensure_fits(
        dense_bytes(shape, dense.dtype.itemsize),
        f"sparse x dense product ({shape[0]:,} x {shape[1]:,} {dense.dtype.name}); use smaller batches",
    )
    out = np.empty((X.shape[0], dense.shape[1]), dtype=dense.dtype)

    def fill(start: int) -> None:
        out[start : start + block] = X[start : start + block] @ dense

    with ThreadPoolExecutor(max(1, n_threads or compute_threads())) as pool:
        list(pool.map(fill, range(0, X.shape[0], block)))
    return out
