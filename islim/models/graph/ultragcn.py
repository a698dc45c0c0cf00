"""UltraGCN (Mao et al., CIKM 2021) ± ImplicitSLIM.

No message passing: the score of ``(u, i)`` is ``e_uᵀ e_i`` of the layer-0 tables, trained so that
they satisfy the limit of infinitely many graph convolutions as a weighted constraint. Per batch of
``b`` interactions ``(u, i)``, each with ``n`` items ``j ∈ N(u)`` drawn uniformly among those ``u``
has not interacted with,

    L = Σ_{(u,i)} [ (w1 + w2 β(u,i)) · softplus(−e_uᵀe_i)
                   + negative_weight · (1/n) Σ_{j∈N(u)} (w3 + w4 β(u,j)) · softplus(e_uᵀe_j) ]
        + lambda_ii · Σ_{(u,i)} Σ_{k∈S(i)} ω(i,k) · softplus(−e_uᵀe_k)
        + l2 · ½ ‖θ‖²,

with ``β(u,i) = (1/d_u) √((d_u+1)/(d_i+1))`` (:func:`~islim.models.graph.structure.ultragcn_beta`),
the item–item weights ``ω(i,k) = G_ik/(g_i − G_ii) · √(g_i/g_k)`` over each item's top-K
co-occurrence neighbours ``S(i)`` (``G = XᵀX``, ``g_i = Σ_k G_ik``;
:func:`~islim.models.graph.structure.item_neighbours`) and ``θ`` both whole tables. The first line
is the paper's ``L_O + λ L_C`` written as one weighted binary cross-entropy (``softplus(−x) =
−log σ(x)``, ``softplus(x) = −log σ(−x)``): the objective term has weights ``w1``/``w3`` and the
constraint term ``w2 β``/``w4 β`` (the authors' code, which these defaults follow for Gowalla).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import scipy.sparse as sp
import torch
import torch.nn.functional as F

from islim.models.graph.base import DEFAULT_IMPLICIT_SLIM, GraphNetwork, GraphRecommender, gather
from islim.models.graph.structure import item_neighbours, ultragcn_beta


def ultragcn_loss(
    positive_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    positive_weight: torch.Tensor,
    negative_weights: torch.Tensor,
    negative_weight: float,
    neighbour_scores: torch.Tensor,
    neighbour_weights: torch.Tensor,
    lambda_ii: float,
) -> torch.Tensor:
    """UltraGCN's batch objective without the L2 term (first two lines of the module docstring).

    Parameters
    ----------
    positive_scores : torch.Tensor, shape (b,)
        ``e_uᵀ e_i`` of the batch's interactions.
    negative_scores : torch.Tensor, shape (b, n)
        ``e_uᵀ e_j`` of each interaction's sampled negatives.
    positive_weight : torch.Tensor, shape (b,)
        ``w1 + w2 β(u, i)``.
    negative_weights : torch.Tensor, shape (b, n)
        ``w3 + w4 β(u, j)``.
    negative_weight : float
        Multiplier of the mean negative term.
    neighbour_scores : torch.Tensor, shape (b, K)
        ``e_uᵀ e_k`` of the positive item's neighbours ``k ∈ S(i)``.
    neighbour_weights : torch.Tensor, shape (b, K)
        ``ω(i, k)``.
    lambda_ii : float
        Weight of the item–item term.

    Returns
    -------
    torch.Tensor
        Scalar, summed over the batch.
    """
    objective = positive_weight * F.softplus(-positive_scores) + negative_weight * (negative_weights * F.softplus(negative_scores)).mean(
        dim=1
    )
    item_item = (neighbour_weights * F.softplus(-neighbour_scores)).sum(dim=1)
    return objective.sum() + lambda_ii * item_item.sum()


class UltraGCNNetwork(GraphNetwork):
    """UltraGCN's tables with its constraint weights (see the module docstring)."""

    reduction = "sum"

    def __init__(
        self, X: sp.csr_matrix, n_factors: int, init_std: float, n_neighbours: int, weights: dict[str, float], device: torch.device
    ):
        super().__init__(X.shape[0], X.shape[1], n_factors, init_std, device)
        self.weights = SimpleNamespace(**weights)  # w1…w4, negative_weight, lambda_ii, l2
        user_beta, item_beta = ultragcn_beta(X)
        self.user_beta = torch.as_tensor(user_beta, device=device)
        self.item_beta = torch.as_tensor(item_beta, device=device)
        neighbours, weights = item_neighbours(X, n_neighbours)
        self.neighbours = torch.as_tensor(neighbours, device=device)
        self.neighbour_weights = torch.as_tensor(weights, device=device)

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user, self.item

    def loss(self, users, positives, negatives) -> torch.Tensor:
        """The objective of the module docstring. Every score comes from one ``(b, I)`` block
        ``E_users E_itemsᵀ`` of the batch's users: at Gowalla's shape (1500 negatives of 41k items)
        one matrix product and its two backward products beat gathering, and scattering back, the
        ``b × n`` negative rows (:mod:`benchmarks.bench_graph_epoch`)."""
        w = self.weights
        scores = gather(self.user, users) @ self.item.T
        user_beta = self.user_beta[users]
        objective = ultragcn_loss(
            scores.gather(1, positives[:, None]).squeeze(1),
            scores.gather(1, negatives),
            w.w1 + w.w2 * user_beta * self.item_beta[positives],
            w.w3 + w.w4 * user_beta[:, None] * self.item_beta[negatives],
            w.negative_weight,
            scores.gather(1, self.neighbours[positives]),
            self.neighbour_weights[positives],
            w.lambda_ii,
        )
        return objective + w.l2 * 0.5 * (self.user.square().sum() + self.item.square().sum())


class UltraGCN(GraphRecommender):
    """UltraGCN with optional ImplicitSLIM initialisation and regularisation of its tables.

    Defaults are the authors' Gowalla configuration (d = 64, Adam lr 1e-4, batch 512, 1500
    negatives of weight 300, w1 = w3 = 1e-6, w2 = w4 = 1, L2 γ = 1e-4, item–item λ = 5e-4 over 10
    neighbours, N(0, 10⁻⁸) initial tables); ``n_epochs`` is a budget.

    Parameters
    ----------
    n_factors : int
        Embedding size ``d``.
    lr : float
        Adam learning rate.
    batch_size : int
        Training interactions per Adam step.
    n_negatives : int
        Negatives sampled per interaction.
    negative_weight : float
        Multiplier of the mean negative term.
    w1, w2, w3, w4 : float
        Weights of the objective (``w1``, ``w3``) and constraint (``w2 β``, ``w4 β``) terms of the
        positives and negatives.
    l2 : float
        γ, weight of ``½ ‖θ‖²`` over both tables (every batch).
    lambda_ii : float
        λ, weight of the item–item constraint.
    n_neighbours : int
        ``K``, neighbours per item in that constraint.
    n_epochs, patience, init_std, seed, device, implicit_slim
        As :class:`~islim.models.graph.lightgcn.LightGCN`.
    """

    def __init__(
        self,
        n_factors: int = 64,
        lr: float = 1e-4,
        batch_size: int = 512,
        n_negatives: int = 1500,
        negative_weight: float = 300.0,
        w1: float = 1e-6,
        w2: float = 1.0,
        w3: float = 1e-6,
        w4: float = 1.0,
        l2: float = 1e-4,
        lambda_ii: float = 5e-4,
        n_neighbours: int = 10,
        n_epochs: int = 100,
        patience: int | None = None,
        init_std: float = 1e-4,
        seed: int = 1337,
        device: str = "auto",
        implicit_slim: dict[str, Any] = DEFAULT_IMPLICIT_SLIM,
    ):
        self._store_params(locals())

    @classmethod
    def _work_bytes(cls, n_users, n_items, params) -> int:
        """A batch's score block and its gradient, ``2 b I`` float32, its sampled negatives
        and their weights ``3 b n`` values of 8 bytes, and the item–item neighbour table ``12 I K``
        (int64 index, float32 weight)."""
        b, n = params["batch_size"], params["n_negatives"]
        return 4 * 2 * b * n_items + 8 * 3 * b * n + 12 * n_items * params["n_neighbours"]

    def _network(self, X, device) -> UltraGCNNetwork:
        weights = {key: getattr(self, key) for key in ("w1", "w2", "w3", "w4", "negative_weight", "lambda_ii", "l2")}
        return UltraGCNNetwork(X, self.n_factors, self.init_std, self.n_neighbours, weights, device)

    def _n_negatives(self) -> int:
        return self.n_negatives
