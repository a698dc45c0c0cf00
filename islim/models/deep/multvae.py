"""Mult-VAE (Liang, Krishnan, Hoffman, Jebara, "Variational Autoencoders for Collaborative
Filtering", WWW 2018; reference code ``dawenl/vae_cf``).

Model, for a user row ``x ∈ {0,1}^I``:

* encoder: ``x̃ = dropout(x / ‖x‖₂)``, ``h = tanh(x̃ W₁ + b₁)`` (``I → 600``), ``[μ, log σ²] = h W₂ + b₂``
  (``600 → 2·200``);
* ``z = μ + ε ⊙ σ`` in training, ``z = μ`` at evaluation;
* decoder: ``logits = tanh(z W₃ + b₃) W₄ + b₄`` (``200 → 600 → I``);
* loss per user: ``−Σ_j x_j log softmax(logits)_j + β · KL(q(z|x) ‖ N(0, I))`` averaged over the batch
  (+ ``weight_decay · Σ ‖W_k‖²`` over the four weight matrices, the code's ``lam``, 0 for Mult-VAE),
  with ``β = min(anneal_cap, step / total_anneal_steps)`` where ``step`` counts optimiser updates
  before the current one.

Initialisation as in the reference: Glorot-uniform weights, biases from a normal with std 0.001
truncated at two standard deviations. Cost per batch of ``b`` users: ``O(nnz·h)`` for the sparse
input layer, ``O(b·I·h)`` for the output layer (the dominant term), same again for the backward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from islim.errors import ConfigError
from islim.models.deep.base import DeepRecommender, LossTerms, Phase, TrainState, check_positive, check_probability
from islim.models.deep.layers import ItemInputLinear, ItemOutputLinear, Rows, kl_to_standard_normal, reparameterize


class MultVAE(DeepRecommender):
    """Mult-VAE with one hidden layer on each side (``I → hidden → latent → hidden → I``)."""

    #: Architecture and objective of the paper/notebook: ``p_dims = [200, 600, I]``, keep-prob 0.5,
    #: ``anneal_cap = 0.2``, ``total_anneal_steps = 200000``, ``lam = 0.0`` for the VAE.
    MODEL_DEFAULTS = {
        "hidden_dim": 600,
        "latent_dim": 200,
        "dropout": 0.5,
        "anneal_cap": 0.2,
        "total_anneal_steps": 200_000,
        "weight_decay": 0.0,
    }
    #: Notebook: Adam lr 1e-3, batch 500, 200 epochs, best validation NDCG@100 kept (no early stop).
    TRAINING_DEFAULTS = {"lr": 1e-3, "batch_size": 500, "n_epochs": 200, "patience": None, "normalize_grad": False}

    @classmethod
    def item_weight_count(cls, n_items, params) -> int:
        """The first encoder and the last decoder layer: ``2 I H``."""
        return 2 * n_items * params["hidden_dim"]

    def __init__(
        self,
        n_items: int,
        hidden_dim: int = 600,
        latent_dim: int = 200,
        dropout: float = 0.5,
        anneal_cap: float = 0.2,
        total_anneal_steps: int = 200_000,
        weight_decay: float = 0.0,
    ):
        super().__init__()
        check_positive(n_items=n_items, hidden_dim=hidden_dim, latent_dim=latent_dim)
        check_probability("dropout", dropout)
        if anneal_cap < 0 or total_anneal_steps < 0 or weight_decay < 0:
            raise ConfigError(
                f"anneal_cap, total_anneal_steps and weight_decay must be >= 0, got "
                f"{anneal_cap!r}, {total_anneal_steps!r}, {weight_decay!r}"
            )
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.anneal_cap = anneal_cap
        self.total_anneal_steps = total_anneal_steps
        self.weight_decay = weight_decay
        self.encoder_input = ItemInputLinear(n_items, hidden_dim)
        self.encoder_output = nn.Linear(hidden_dim, 2 * latent_dim)
        self.decoder_hidden = nn.Linear(latent_dim, hidden_dim)
        self.decoder_output = ItemOutputLinear(hidden_dim, n_items)
        self._init_like_reference()

    def _weight_matrices(self) -> list[nn.Parameter]:
        layers = (self.encoder_input, self.encoder_output, self.decoder_hidden, self.decoder_output)
        return [layer.weight for layer in layers]

    def _init_like_reference(self) -> None:
        for layer in (self.encoder_input, self.encoder_output, self.decoder_hidden, self.decoder_output):
            nn.init.xavier_uniform_(layer.weight)  # symmetric in fan-in/fan-out: layout does not matter
            nn.init.trunc_normal_(layer.bias, std=1e-3, a=-2e-3, b=2e-3)

    def encode(self, x: Rows) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)``, each ``(b, latent_dim)``, of already normalised (and dropped-out) rows."""
        out = self.encoder_output(torch.tanh(self.encoder_input(x)))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(b, n_items)`` logits."""
        return self.decoder_output(torch.tanh(self.decoder_hidden(z)))

    def forward(self, x: Rows) -> torch.Tensor:
        mu, _ = self.encode(x.l2_normalized())
        return self.decode(mu)

    def beta(self, step: int) -> float:
        """KL weight after ``step`` updates: ``min(anneal_cap, step / total_anneal_steps)``."""
        if self.total_anneal_steps == 0:
            return self.anneal_cap
        return min(self.anneal_cap, step / self.total_anneal_steps)

    def loss(self, x: Rows, state: TrainState, dropout: float) -> LossTerms:
        mu, logvar = self.encode(x.l2_normalized().dropout(dropout, self.training))
        hidden = torch.tanh(self.decoder_hidden(reparameterize(mu, logvar, sample=self.training)))
        nll = -self.decoder_output.multinomial_log_likelihood(hidden, x).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        beta = self.beta(state.step)
        total = nll + beta * kl
        if self.weight_decay > 0:
            total = total + self.weight_decay * sum(w.square().sum() for w in self._weight_matrices())
        return LossTerms(total, nll.detach(), kl.detach(), beta)

    def training_phases(self) -> list[Phase]:
        return [Phase("all", list(self.parameters()), n_passes=1, dropout=self.dropout)]

    def implicit_slim_targets(self) -> dict[str, nn.Parameter]:
        return {"encoder_input.weight": self.encoder_input.weight, "decoder_output.weight": self.decoder_output.weight}
