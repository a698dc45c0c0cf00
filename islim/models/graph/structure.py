"""What the graph recommenders need from the user–item graph: its normalised adjacency and sparse
propagation (LightGCN), sampled training triples (both models), and UltraGCN's constraint weights.

The training matrix ``X`` is the ``(U, I)`` binary user–item matrix; the bipartite graph has
``U + I`` nodes (users first, then items) and adjacency ``A = [[0, X], [Xᵀ, 0]]``. Everything here
is sparse or per-node: no dense ``(U+I)²``, ``U × I`` or ``I × I`` array is formed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from islim.embeddings.gram_operator import torch_csr as torch_csr  # re-exported: the graph models' adjacency tensors
from islim.errors import DataFormatError
from islim.models.itemknn import binary_columns, map_item_slabs, top_k_mask

#: Dense working set of the item–item slabs of :func:`item_neighbours`, all threads together (bytes).
WORKSPACE_BYTES = 256 * 2**20
#: Peak bytes per cell of such a slab: the sparse co-occurrence product (value + index), its dense
#: float32 block, the scaled copy, and :func:`~islim.models.itemknn.top_k_mask`'s masks and ranks.
SLAB_CELL_BYTES = 24


def binary_matrix(X) -> sp.csr_matrix:
    """The non-zero pattern of ``X`` as a float32 CSR matrix of ones, refusing an empty one.

    Raises
    ------
    DataFormatError
        ``X`` is not a scipy sparse matrix, or has no interaction.
    """
    B = binary_columns(X).tocsr()
    if B.shape[0] == 0 or B.nnz == 0:
        raise DataFormatError(f"X {B.shape} has no interactions to train on")
    return B


# ------------------------------------------------------------------ propagation (LightGCN)


def normalized_adjacency(X: sp.csr_matrix) -> sp.csr_matrix:
    """The symmetrically normalised bipartite adjacency ``Â = D^{-1/2} A D^{-1/2}``.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix, shape (U, I)
        Binary training matrix.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (U + I, U + I), float32
        ``Â_{u, U+i} = Â_{U+i, u} = 1 / √(d_u d_i)`` for every interaction ``(u, i)`` (``d`` =
        node degrees), zero elsewhere; a node without edges has an empty row. ``2·nnz(X)`` entries.
    """
    user_degree = np.diff(X.indptr).astype(np.float64)
    item_degree = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    scale_user = np.divide(1.0, np.sqrt(user_degree), out=np.zeros_like(user_degree), where=user_degree > 0)
    scale_item = np.divide(1.0, np.sqrt(item_degree), out=np.zeros_like(item_degree), where=item_degree > 0)
    R = sp.csr_matrix(X, dtype=np.float64, copy=True)
    R.data = scale_user[np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))] * scale_item[R.indices]
    return sp.bmat([[None, R], [R.T, None]], format="csr", dtype=np.float32)


class _SymmetricProduct(torch.autograd.Function):
    """``Â E`` for a symmetric sparse ``Â``, whose backward is the same product ``Â g`` (no transpose)."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return adjacency @ embeddings

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.adjacency @ grad


def propagate(adjacency: torch.Tensor, embeddings: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN's final embeddings: the mean of the layers ``E⁽ᵏ⁾ = Âᵏ E⁽⁰⁾``, ``k = 0 … K``.

    Parameters
    ----------
    adjacency : torch sparse CSR tensor, shape (N, N)
        The symmetric ``Â`` of :func:`normalized_adjacency` on the embeddings' device.
    embeddings : torch.Tensor, shape (N, d)
        Layer 0 (users then items); gradients flow back to it.
    n_layers : int
        ``K ≥ 0``.

    Returns
    -------
    torch.Tensor, shape (N, d)
        ``(1/(K+1)) Σ_k E⁽ᵏ⁾``. Cost ``K`` sparse products of ``nnz(Â)·d`` multiply-adds (and as
        many in the backward pass); memory ``K + 1`` layers.
    """
    layer = embeddings
    total = embeddings
    for _ in range(n_layers):
        layer = _SymmetricProduct.apply(adjacency, layer)
        total = total + layer
    return total / (n_layers + 1)


# ------------------------------------------------------------------ sampled training triples


class NegativeSampler:
    """Items a user has not interacted with, drawn uniformly (vectorised rejection sampling).

    Parameters
    ----------
    X : scipy.sparse.csr_matrix, shape (U, I)
        Binary training matrix with sorted indices (from :func:`binary_matrix`).

    Raises
    ------
    DataFormatError
        Some user has interacted with every item (it has no negative to draw).
    """

    def __init__(self, X: sp.csr_matrix):
        self.n_items = X.shape[1]
        degree = np.diff(X.indptr)
        full = np.flatnonzero(degree >= self.n_items)
        if len(full):
            raise DataFormatError(
                f"{len(full)} users (e.g. row {full[0]}) interacted with all {self.n_items} items: no negative item can be "
                "sampled for them; drop such users from the training matrix"
            )
        self._keys = np.repeat(np.arange(X.shape[0], dtype=np.int64), degree) * self.n_items + X.indices
        self._keys.sort()

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each ``(users[k], items[k])`` is a training interaction (same shapes, bool)."""
        keys = users.astype(np.int64) * self.n_items + items
        position = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[position] == keys

    def sample(self, users: np.ndarray, n_negatives: int, rng: np.random.Generator) -> np.ndarray:
        """``(len(users), n_negatives)`` int64 items, each uniform over the row's user's non-items.

        Draws are redrawn until none is a training item of its user; the number of rounds is
        geometric in the user's density. Deterministic for a given ``rng`` state.
        """
        rows = np.repeat(np.asarray(users, dtype=np.int64)[:, None], n_negatives, axis=1)
        items = rng.integers(0, self.n_items, size=rows.shape)
        redraw = self.is_positive(rows, items)
        while redraw.any():
            items[redraw] = rng.integers(0, self.n_items, size=int(redraw.sum()))
            redraw[redraw] = self.is_positive(rows[redraw], items[redraw])
        return items


def training_triples(
    X: sp.csr_matrix, sampler: NegativeSampler, batch_size: int, n_negatives: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch of ``(users, positives, negatives)`` batches: every training interaction once, in
    a random order, each with ``n_negatives`` sampled items.

    Returns
    -------
    iterator of (ndarray (b,), ndarray (b,), ndarray (b, n_negatives)), int64
        ``b = batch_size`` except for the last batch.
    """
    users = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    order = rng.permutation(X.nnz)
    for start in range(0, X.nnz, batch_size):
        batch = order[start : start + batch_size]
        yield users[batch], X.indices[batch].astype(np.int64), sampler.sample(users[batch], n_negatives, rng)


# ------------------------------------------------------------------ UltraGCN constraint weights


def ultragcn_beta(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """UltraGCN's user–item constraint weights ``β(u, i) = (1/d_u) √((d_u + 1)/(d_i + 1))``, in
    factored form ``β(u, i) = a_u · b_i`` with ``a_u = √(d_u + 1)/d_u`` and ``b_i = 1/√(d_i + 1)``.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix, shape (U, I)
        Binary training matrix (``d_u``, ``d_i``: user and item degrees).

    Returns
    -------
    (ndarray (U,), ndarray (I,)), float32
        ``a`` and ``b``; a user without interactions has ``a_u = 0`` (it never appears in a loss).
    """
    user_degree = np.diff(X.indptr).astype(np.float64)
    item_degree = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    a = np.divide(np.sqrt(user_degree + 1.0), user_degree, out=np.zeros_like(user_degree), where=user_degree > 0)
    return a.astype(np.float32), (1.0 / np.sqrt(item_degree + 1.0)).astype(np.float32)


def item_neighbours(
    X: sp.csr_matrix, k: int, n_threads: int | None = None, budget_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """UltraGCN's item–item constraint: each item's top-``k`` neighbours on the co-occurrence graph
    and their weights (Mao et al. 2021, Sec. 3.3).

    With the co-occurrence matrix ``G = XᵀX`` and ``g_i = Σ_k G_ik``,

        ω(i, j) = G_ij / (g_i − G_ii) · √(g_i / g_j),

    and the neighbours ``S(i)`` of item ``i`` are the ``k`` items ``j ≠ i`` of largest
    ``ω(i, j) > 0`` (ties at the ``k``-th value to the lowest indices). The item–item loss of
    :func:`~islim.models.graph.ultragcn.ultragcn_loss` is ``−Σ_{(u,i)} Σ_{j∈S(i)} ω(i, j) log
    σ(e_uᵀ e_j)``. (The authors' code ranks ``G_ij √(g_i+1)/g_i /√(g_j+1)`` with the diagonal
    kept instead; this follows the paper.)

    Parameters
    ----------
    X : scipy.sparse.csr_matrix, shape (U, I)
        Binary training matrix.
    k : int
        Neighbours per item, ``≥ 1``.
    n_threads : int, optional
        Worker threads (default :func:`islim.threads.compute_threads`).
    budget_bytes : int, optional
        Memory budget for the dense slabs (default: available memory).

    Returns
    -------
    neighbours : ndarray of int64, shape (I, k)
        ``S(i)`` by decreasing weight (ties by index); rows with fewer than ``k`` co-occurring
        items are padded with ``i`` itself.
    weights : ndarray of float32, shape (I, k)
        ``ω(i, j)`` of those neighbours, 0 for the padding.

    Notes
    -----
    ``G`` is never held whole: slabs of rows ``X[:, slab]ᵀ X`` are densified one at a time (at
    most :data:`WORKSPACE_BYTES` over all threads), ``O(Σ_u d_u²)`` for the products and
    ``O(I²)`` for the selection.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise DataFormatError(f"the item–item neighbour count must be an integer >= 1, got {k!r}")
    Xc = X.tocsc()
    Xt = Xc.T  # (I, U) CSR view
    n_items = X.shape[1]
    g = np.asarray(Xt @ np.diff(X.indptr).astype(np.float64)).ravel()  # g_i = Σ_u X_ui d_u
    popularity = np.diff(Xc.indptr).astype(np.float64)  # G_ii
    root_g = np.sqrt(g)
    column_scale = np.divide(1.0, root_g, out=np.zeros_like(g), where=g > 0).astype(np.float32)
    row_scale = np.divide(root_g, g - popularity, out=np.zeros_like(g), where=g - popularity > 0)
    neighbours = np.repeat(np.arange(n_items, dtype=np.int64)[:, None], k, axis=1)
    weights = np.zeros((n_items, k), dtype=np.float32)

    def slab(start: int, stop: int) -> None:
        scores = (Xt[start:stop] @ Xc).toarray()  # (w, I): G_ij for the slab's items i
        scores *= column_scale  # G_ij / √g_j; the row factor √g_i / (g_i − G_ii) does not change the ranking
        local = np.arange(stop - start)
        scores[local, start + local] = 0.0  # an item is not its own neighbour
        keep = top_k_mask(scores, k)
        for row in range(stop - start):
            columns = np.flatnonzero(keep[row])
            ranked = columns[np.argsort(-scores[row, columns], kind="stable")]
            neighbours[start + row, : len(ranked)] = ranked
            weights[start + row, : len(ranked)] = scores[row, ranked] * row_scale[start + row]

    map_item_slabs(
        slab, n_items, WORKSPACE_BYTES, SLAB_CELL_BYTES, "UltraGCN item-item slabs", n_threads=n_threads, budget_bytes=budget_bytes
    )
    return neighbours, weights
