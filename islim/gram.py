"""The dense item–item Gram matrix ``XᵀX`` of a sparse interaction matrix.

Computed as sparse × sparse products over column slabs, so the sparse intermediate never holds
more than one slab, written straight into a preallocated dense ``(n_items, n_items)`` array.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from islim.memory import dense_bytes, ensure_fits


def dense_gram(X: sp.spmatrix, dtype=np.float32, slab: int = 2048, budget_bytes: int | None = None) -> np.ndarray:
    """``XᵀX`` as a dense C-ordered ``(n_items, n_items)`` array of ``dtype``.

    Cost ``O(Σ_u n_u²)`` flops; memory one dense ``n_items²`` array plus one slab.
    """
    n_items = X.shape[1]
    itemsize = np.dtype(dtype).itemsize
    ensure_fits(dense_bytes((n_items, n_items), itemsize), f"dense Gram matrix ({n_items:,} x {n_items:,} {np.dtype(dtype).name})", budget_bytes)
    Xt = sp.csr_matrix(X.T, dtype=dtype)
    Xc = sp.csc_matrix(X, dtype=dtype)
    gram = np.empty((n_items, n_items), dtype=dtype)
    for start in range(0, n_items, slab):
        stop = min(start + slab, n_items)
        gram[:, start:stop] = (Xt @ Xc[:, start:stop]).toarray()
    return gram
