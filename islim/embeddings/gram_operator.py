"""The item Gram matrix ``XᵀX`` as an operator on dense item-major matrices, never formed.

``XᵀX V = Xᵀ (X V)`` is evaluated over blocks of users: for a block ``X_b`` (rows of ``X``) the
``(b, k)`` product ``Y_b = X_b V`` is immediately folded back as ``X_bᵀ Y_b``, so the ``(n_users, k)``
intermediate never exists. Peak extra memory is ``n_workers × (n_items + block_size) × k`` values.

Two backends share the interface (``n_items``, ``diag``, ``matmul``):

* :class:`SparseGram` — scipy CSR, blocks spread over a thread pool (scipy's sparse × dense kernels
  release the GIL, so the blocks of different workers run in parallel);
* :class:`TorchSparseGram` — torch sparse CSR tensors on any device (cuSPARSE on CUDA).

:func:`gram_operator` builds the backend matching a set of embeddings and caches the torch
conversion of a training matrix per device, so repeated calls from a training loop convert once.
"""

from __future__ import annotations

import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from islim.errors import DataFormatError

#: Users per block of the fused ``X_bᵀ (X_b V)`` product.
DEFAULT_BLOCK_SIZE = 16384


def compute_dtype(dtype) -> np.dtype:
    """float64 if ``dtype`` is float64, else float32 (float16/bfloat16/integers are computed in float32)."""
    name = str(dtype).removeprefix("torch.") if type(dtype).__module__.startswith("torch") else np.dtype(dtype).name
    return np.dtype(np.float64) if name == "float64" else np.dtype(np.float32)


def as_csr(X, dtype) -> sp.csr_matrix:
    """``X`` as a canonical CSR matrix of ``dtype`` (no copy when it already is one)."""
    if not sp.issparse(X) or X.ndim != 2:
        raise DataFormatError(f"expected a 2-D scipy sparse (n_users, n_items) matrix, got {type(X).__name__}; convert with scipy.sparse.csr_matrix")
    X = sp.csr_matrix(X, dtype=dtype)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def squared_column_norms(X: sp.csr_matrix) -> np.ndarray:
    """``diag(XᵀX)`` as (n_items,) float64: item popularity ``c`` for binary ``X``. O(nnz)."""
    return np.bincount(X.indices, weights=np.asarray(X.data, dtype=np.float64) ** 2, minlength=X.shape[1])


def _row_block(X: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` of CSR ``X`` as a CSR matrix sharing ``X``'s data and indices (no copy)."""
    lo, hi = X.indptr[start], X.indptr[stop]
    return sp.csr_matrix((X.data[lo:hi], X.indices[lo:hi], X.indptr[start : stop + 1] - lo), shape=(stop - start, X.shape[1]), copy=False)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class SparseGram:
    """``XᵀX`` on numpy arrays, by user blocks over a thread pool.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
        Training matrix; converted once to canonical CSR of ``dtype`` (no copy if it already is).
    dtype : numpy dtype, default float32
        Compute dtype of the products (float32 or float64).
    block_size : int
        Users per block; extra memory per worker is ``(n_items + block_size) × k`` values.
    n_workers : int, optional
        Threads sharing the blocks (default: the CPUs this process may use). Each worker holds
        its own ``(n_items, k)`` accumulator; 1 runs everything in the calling thread.

    Attributes
    ----------
    diag : ndarray, shape (n_items,)
        ``diag(XᵀX)``, squared column norms (= item popularity for binary ``X``), in ``dtype``.
    """

    def __init__(self, X, dtype=np.float32, block_size: int = DEFAULT_BLOCK_SIZE, n_workers: int | None = None):
        self.dtype = compute_dtype(dtype)
        self.X = as_csr(X, self.dtype)
        self.n_users, self.n_items = self.X.shape
        if block_size < 1:
            raise DataFormatError(f"block_size must be a positive number of users, got {block_size}")
        self.block_size = int(block_size)
        self.n_workers = max(1, int(n_workers or _default_workers()))
        self.diag = squared_column_norms(self.X).astype(self.dtype)
        starts = range(0, self.n_users, self.block_size)
        self._blocks = [_row_block(self.X, s, min(s + self.block_size, self.n_users)) for s in starts]

    def _fold(self, V: np.ndarray, worker: int) -> np.ndarray | None:
        """``Σ_b X_bᵀ (X_b V)`` over the blocks assigned to ``worker`` (every ``n_workers``-th)."""
        total = None
        for block in self._blocks[worker :: self.n_workers]:
            part = block.T @ (block @ V)
            if total is None:
                total = part
            else:
                total += part
        return total

    def matmul(self, V: np.ndarray) -> np.ndarray:
        """``XᵀX V`` for ``V`` of shape (n_items, k); returns (n_items, k) in ``self.dtype``.

        Cost ``2·nnz(X)·k`` multiply-adds, spread over the workers.
        """
        V = np.ascontiguousarray(V, dtype=self.dtype)
        if V.ndim != 2 or V.shape[0] != self.n_items:
            raise DataFormatError(f"expected an (n_items={self.n_items}, k) array, got shape {V.shape}")
        n_workers = min(self.n_workers, len(self._blocks))
        if n_workers <= 1:
            parts = [self._fold(V, 0)]
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                parts = list(pool.map(lambda w: self._fold(V, w), range(n_workers)))
        parts = [p for p in parts if p is not None]
        if not parts:
            return np.zeros_like(V)
        total = parts[0]
        for part in parts[1:]:
            total += part
        return total


class TorchSparseGram:
    """``XᵀX`` on torch tensors of one device (CPU or CUDA), by user blocks.

    Each block is stored twice, as ``X_b`` and ``X_bᵀ`` in sparse CSR form (int32 indices), so both
    products are row-gather kernels; memory on the device is about twice that of ``X``.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
    device : torch device or str
    dtype : torch.float32 or torch.float64
    block_size : int
        Users per block; extra device memory ``(n_items + block_size) × k`` values.
    """

    def __init__(self, X, device="cpu", dtype=None, block_size: int = DEFAULT_BLOCK_SIZE):
        import torch

        self.torch_dtype = dtype or torch.float32
        np_dtype = compute_dtype(self.torch_dtype)
        X = as_csr(X, np_dtype)
        self.device = torch.device(device)
        self.n_users, self.n_items = X.shape
        if block_size < 1:
            raise DataFormatError(f"block_size must be a positive number of users, got {block_size}")
        self.diag = torch.as_tensor(squared_column_norms(X), dtype=self.torch_dtype, device=self.device)
        self._blocks = []
        for start in range(0, self.n_users, block_size):
            block = _row_block(X, start, min(start + block_size, self.n_users))
            self._blocks.append((self._to_torch(block), self._to_torch(block.T.tocsr())))

    def _to_torch(self, M: sp.csr_matrix):
        import torch

        with warnings.catch_warnings():  # "sparse CSR support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                torch.as_tensor(M.indptr.astype(np.int32)),
                torch.as_tensor(M.indices.astype(np.int32)),
                torch.as_tensor(M.data),
                size=M.shape,
                dtype=self.torch_dtype,
                device=self.device,
                check_invariants=False,
            )

    def matmul(self, V):
        """``XᵀX V`` for a tensor ``V`` of shape (n_items, k) on ``device``; (n_items, k) tensor."""
        import torch

        V = V.to(self.torch_dtype).contiguous()
        if V.ndim != 2 or V.shape[0] != self.n_items:
            raise DataFormatError(f"expected an (n_items={self.n_items}, k) tensor, got shape {tuple(V.shape)}")
        total = torch.zeros_like(V)
        for block, block_t in self._blocks:
            total.addmm_(block_t, block @ V)
        return total


_TORCH_CACHE: dict[tuple[int, str, str, int], tuple[weakref.ref, int, TorchSparseGram]] = {}


def _cached_torch_gram(X, device, dtype, block_size: int) -> TorchSparseGram:
    """The torch operator of ``X`` on ``device``, converted once per (matrix object, device, dtype)."""
    key = (id(X), str(device), str(dtype), block_size)
    hit = _TORCH_CACHE.get(key)
    if hit is not None and hit[0]() is X and hit[1] == X.nnz:
        return hit[2]
    gram = TorchSparseGram(X, device=device, dtype=dtype, block_size=block_size)
    _TORCH_CACHE[key] = (weakref.ref(X, lambda _ref, key=key: _TORCH_CACHE.pop(key, None)), X.nnz, gram)
    return gram


def gram_operator(X, like=None, block_size: int | None = None, n_workers: int | None = None):
    """The Gram operator of ``X`` matching the embeddings ``like``.

    Parameters
    ----------
    X : scipy sparse (n_users, n_items), or an existing :class:`SparseGram` / :class:`TorchSparseGram`
        An existing operator is returned unchanged.
    like : ndarray or torch.Tensor, optional
        Embeddings the operator will be applied to: numpy → :class:`SparseGram` in their compute
        dtype; a torch tensor → :class:`TorchSparseGram` on its device (cached per matrix object,
        so do not modify ``X`` in place between calls).
    block_size, n_workers : int, optional
        See the operator classes.
    """
    if isinstance(X, (SparseGram, TorchSparseGram)):
        return X
    block_size = block_size or DEFAULT_BLOCK_SIZE
    if like is not None and type(like).__module__.startswith("torch"):
        import torch

        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return _cached_torch_gram(X, like.device, dtype, block_size)
    dtype = compute_dtype(like.dtype) if like is not None else np.float32
    return SparseGram(X, dtype=dtype, block_size=block_size, n_workers=n_workers)
