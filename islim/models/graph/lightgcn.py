"""LightGCN (He et al., SIGIR 2020) ± ImplicitSLIM.

Layer-0 embeddings ``E⁽⁰⁾`` (users then items, ``(U + I) × d``) are propagated over the
symmetrically normalised user–item graph, ``E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾`` with ``Â = D^{-1/2} A D^{-1/2}``, and the
final embeddings are the layer mean ``(1/(K+1)) Σ_{k=0..K} E⁽ᵏ⁾``; the score of ``(u, i)`` is
``e_uᵀ e_i``. Training minimises, per batch of ``b`` interactions ``(u, i)`` each with one item
``j`` drawn uniformly among those ``u`` has not interacted with,

    L = (1/b) Σ softplus(e_uᵀ e_j − e_uᵀ e_i) + l2 · (1/2b) Σ (‖e⁽⁰⁾_u‖² + ‖e⁽⁰⁾_i‖² + ‖e⁽⁰⁾_j‖²)

(BPR, ``−log σ(x) = softplus(−x)``; L2 on the batch's layer-0 rows, as the authors' PyTorch code).
The propagation is recomputed for every batch (sparse, :func:`~islim.models.graph.structure.propagate`).
"""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp
import torch
import torch.nn.functional as F

from islim.models.graph.base import DEFAULT_IMPLICIT_SLIM, GraphNetwork, GraphRecommender, batch_l2, gather
from islim.models.graph.structure import normalized_adjacency, propagate, torch_csr


def bpr_loss(user: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean BPR loss ``(1/b) Σ_k −log σ(u_k·p_k − u_k·n_k)`` of ``(b, d)`` user, positive and negative rows."""
    return F.softplus((user * negative).sum(dim=1) - (user * positive).sum(dim=1)).mean()


class LightGCNNetwork(GraphNetwork):
    """LightGCN's tables and normalised adjacency (see the module docstring)."""

    reduction = "mean"

    def __init__(self, X: sp.csr_matrix, n_factors: int, n_layers: int, l2: float, init_std: float, device: torch.device):
        super().__init__(X.shape[0], X.shape[1], n_factors, init_std, device)
        self.n_layers, self.l2 = n_layers, l2
        self.adjacency = torch_csr(normalized_adjacency(X), device)

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = propagate(self.adjacency, torch.cat([self.user, self.item]), self.n_layers)
        return final[: self.user.shape[0]], final[self.user.shape[0] :]

    def loss(self, users, positives, negatives) -> torch.Tensor:
        users_final, items_final = self.final_embeddings()
        negatives = negatives[:, 0]
        ranking = bpr_loss(gather(users_final, users), gather(items_final, positives), gather(items_final, negatives))
        return ranking + self.l2 * batch_l2(gather(self.user, users), gather(self.item, positives), gather(self.item, negatives))


class LightGCN(GraphRecommender):
    """LightGCN with optional ImplicitSLIM initialisation and regularisation of its layer-0 tables.

    Defaults are the authors' reference setting (d = 64, K = 3, Adam lr 1e-3, L2 1e-4, batch 2048,
    N(0, 0.1²) initial embeddings, 1000 epochs).

    Parameters
    ----------
    n_factors : int
        Embedding size ``d``.
    n_layers : int
        Propagation layers ``K`` (0 = matrix factorisation trained by BPR).
    lr : float
        Adam learning rate.
    l2 : float
        Weight of the L2 penalty on the batch's layer-0 rows.
    batch_size : int
        Training interactions per Adam step.
    n_epochs : int
        Epochs (each visits every training interaction once).
    patience : int or None
        Early stopping after this many epochs without a strict improvement on validation (``None``: never).
    init_std : float
        Standard deviation of the initial Gaussian tables.
    seed : int
        Seed of the tables, the order of interactions and the negatives.
    device : str
        ``"auto"`` (CUDA when available, else the CPU) or a torch device.
    implicit_slim : dict
        :class:`~islim.models.graph.implicit.GraphImplicitSLIM` settings (a partial mapping is
        laid over the defaults); ``sides: none`` is plain LightGCN.
    """

    def __init__(
        self,
        n_factors: int = 64,
        n_layers: int = 3,
        lr: float = 1e-3,
        l2: float = 1e-4,
        batch_size: int = 2048,
        n_epochs: int = 1000,
        patience: int | None = None,
        init_std: float = 0.1,
        seed: int = 1337,
        device: str = "auto",
        implicit_slim: dict[str, Any] = DEFAULT_IMPLICIT_SLIM,
    ):
        self._store_params(locals())

    _MAY_BE_ZERO = ("seed", "n_layers")

    @classmethod
    def _work_bytes(cls, n_users, n_items, params) -> int:
        """The ``K + 1`` propagated layers, their sum and their gradients: ``2 (K + 2) (U + I) d`` float32."""
        return 4 * 2 * (params["n_layers"] + 2) * (n_users + n_items) * params["n_factors"]

    def _network(self, X, device) -> LightGCNNetwork:
        return LightGCNNetwork(X, self.n_factors, self.n_layers, self.l2, self.init_std, device)

    def _n_negatives(self) -> int:
        return 1
