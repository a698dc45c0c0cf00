"""H+Vamp(Gated) (Kim & Suh, "Enhancing VAEs for collaborative filtering: flexible priors & gating
mechanisms", RecSys 2019; reference code ``psywaves/EVCF``, ``models/HVamp.py``, itself adapted from
Tomczak & Welling's VampPrior code).

Generative model with two stochastic layers: ``z₂ ~ VampPrior``, ``z₁ ~ p(z₁|z₂)``, ``x ~ p(x|z₁,z₂)``;
inference ``q(z₂|x) q(z₁|x,z₂)``. Networks (``H = hidden_dim``, ``L = n_layers``; every layer is a
:class:`~islim.models.deep.layers.Dense`: gated ``σ(x W_g) ⊙ (x W)`` if ``gated`` else ``tanh``):

* ``q(z₂|x)``: ``x̃ = dropout(x/‖x‖₂)`` → ``I→H`` → (L−1)× ``H→H`` → ``μ`` (linear), ``log σ²`` (linear +
  hardtanh to ``[logvar_min, logvar_max]``);
* ``q(z₁|x,z₂)``: ``[I→H on x̃ with its own dropout mask, z₂→H]`` → concatenation → ``2H→H`` →
  (L−2)× ``H→H`` → ``μ``, ``log σ²``;
* ``p(z₁|z₂)``: ``z₂→H`` → (L−1)× ``H→H`` → ``μ``, ``log σ²``;
* ``p(x|z₁,z₂)``: ``[z₁→H, z₂→H]`` → ``2H→H`` → (L−2)× ``H→H`` → linear ``H→I`` logits;
* VampPrior: ``p(z₂) = (1/K) Σ_k q(z₂ | u_k)`` with ``K = n_components`` pseudo-inputs
  ``u_k = hardtanh₀¹(P_k)``, ``P ∈ R^{K×I}`` learnt, initialised ``N(pseudo_mean, pseudo_std²)``.

Loss per user: ``−log p(x|z₁,z₂) + β·[log q(z₁|·) + log q(z₂|x) − log p(z₁|z₂) − log p(z₂)]`` with
single-sample estimates, ``β = min(max_beta, max_beta·(epoch+1)/warmup_epochs)`` (linear warm-up per
epoch). Weights He-normal (``N(0, 2/fan_in)``), biases PyTorch's default.

Design choices, all configurable or documented:

* ``likelihood``: ``"multinomial"`` (default, as Mult-VAE and RecVAE) or ``"bernoulli"`` (the reference
  README's Netflix command passes ``--input_type binary``; the paper builds on Mult-VAE).
* Pseudo-inputs go through ``q(z₂|·)`` without L2 normalisation but with the input dropout in training,
  exactly as the reference code does (its dropout is a layer of the ``q(z₂|·)`` network). On the CPU
  their clamp and dropout mask are computed in threaded chunks with numpy's PCG64 streams
  (:mod:`~islim.models.deep.clamped_dropout`; torch's serial generator made them a quarter of the
  training step).
* The ``β`` warm-up of the reference restarts early-stopping patience during warm-up; here patience
  simply counts epochs without improvement.
* ImplicitSLIM targets: the value branches ``W`` of the two input layers (``q(z₂|x)`` and ``q(z₁|x,·)``)
  and the output layer — the item-embedding matrices of the encoder and decoder as in RecVAE (spec §4
  says only "presumably as RecVAE"). ``implicit_slim_gates=True`` adds the gate weights ``W_g``.
* Defaults follow the reference ``experiment.py`` and README: ``H = 600``, ``z₁ = z₂ = 200``, ``L = 2``,
  ``K = 1000``, pseudo-inputs ``N(0.05, 0.01²)``, β ≤ 0.3 over 100 warm-up epochs, Adam lr 5e-4 with
  per-tensor gradient normalisation (``AdamNormGrad``), batch 200, ≤ 400 epochs, patience 50.

Cost per batch: the sparse input layers ``O(nnz·H)``; the prior pushes all ``K`` dense pseudo-inputs
through ``q(z₂|·)``: ``O(K·I·H)`` (two maps if gated) — on ML-20M with K = 1000 this is the dominant
term (≈ 2.4e10 flops forward); ``O(b·K)`` memory for the mixture.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from islim.errors import ConfigError
from islim.models.deep.base import DeepRecommender, LossTerms, Phase, TrainState, check_positive, check_probability
from islim.models.deep.clamped_dropout import clamped_dropout
from islim.models.deep.layers import (
    LIKELIHOODS,
    Dense,
    DenseRows,
    ItemInputLinear,
    ItemOutputLinear,
    Rows,
    log_likelihood,
    log_normal,
    log_normal_pairs,
    reparameterize,
)


class GaussianHead(nn.Module):
    """``(μ, log σ²)`` of a diagonal Gaussian from a hidden vector: linear mean, hardtanh-clipped log-variance."""

    def __init__(self, hidden_dim: int, latent_dim: int, logvar_min: float, logvar_max: float):
        super().__init__()
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)
        self.logvar_min, self.logvar_max = logvar_min, logvar_max

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(h), F.hardtanh(self.logvar(h), self.logvar_min, self.logvar_max)


class HVamp(DeepRecommender):
    """Hierarchical VAE with a VampPrior and (optionally) gated layers."""

    MODEL_DEFAULTS = {
        "hidden_dim": 600,
        "z1_dim": 200,
        "z2_dim": 200,
        "n_layers": 2,
        "gated": True,
        "n_components": 1000,
        "pseudo_mean": 0.05,
        "pseudo_std": 0.01,
        "likelihood": "multinomial",
        "max_beta": 0.3,
        "warmup_epochs": 100,
        "dropout": 0.5,
        "logvar_min": -12.0,
        "logvar_max": 4.0,
        "implicit_slim_gates": False,
    }
    TRAINING_DEFAULTS = {"lr": 5e-4, "batch_size": 200, "n_epochs": 400, "patience": 50, "normalize_grad": True}

    @classmethod
    def item_weight_count(cls, n_items, params) -> int:
        """Gated (×2) first layers of the two encoders, the decoder's output layer and ``K``
        pseudo-inputs: ``I (2 g H + H + K)``, ``g = 2`` when gated."""
        gates = 2 if params["gated"] else 1
        return n_items * (2 * gates * params["hidden_dim"] + params["hidden_dim"] + params["n_components"])

    def __init__(
        self,
        n_items: int,
        hidden_dim: int = 600,
        z1_dim: int = 200,
        z2_dim: int = 200,
        n_layers: int = 2,
        gated: bool = True,
        n_components: int = 1000,
        pseudo_mean: float = 0.05,
        pseudo_std: float = 0.01,
        likelihood: str = "multinomial",
        max_beta: float = 0.3,
        warmup_epochs: int = 100,
        dropout: float = 0.5,
        logvar_min: float = -12.0,
        logvar_max: float = 4.0,
        implicit_slim_gates: bool = False,
    ):
        super().__init__()
        check_positive(n_items=n_items, hidden_dim=hidden_dim, z1_dim=z1_dim, z2_dim=z2_dim, n_layers=n_layers, n_components=n_components)
        check_probability("dropout", dropout)
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if max_beta < 0 or warmup_epochs < 0 or pseudo_std < 0 or not logvar_min < logvar_max:
            raise ConfigError(
                f"need max_beta >= 0, warmup_epochs >= 0, pseudo_std >= 0 and logvar_min < logvar_max; got "
                f"{max_beta!r}, {warmup_epochs!r}, {pseudo_std!r}, [{logvar_min!r}, {logvar_max!r}]"
            )
        self.gated, self.likelihood, self.dropout = gated, likelihood, dropout
        self.max_beta, self.warmup_epochs = max_beta, warmup_epochs
        self.implicit_slim_gates = implicit_slim_gates
        H = hidden_dim

        def dense(n_in: int, items_in: bool = False) -> Dense:
            return Dense(n_in, H, gated=gated, activation=nn.Tanh(), items_in=items_in)

        def stack(first_in: int, n_more: int) -> nn.Sequential:
            return nn.Sequential(dense(first_in), *(dense(H) for _ in range(n_more)))

        extra = max(n_layers - 2, 0)
        self.q_z2_input = dense(n_items, items_in=True)
        self.q_z2_layers = nn.Sequential(*(dense(H) for _ in range(n_layers - 1)))
        self.q_z2_head = GaussianHead(H, z2_dim, logvar_min, logvar_max)
        self.q_z1_input = dense(n_items, items_in=True)
        self.q_z1_from_z2 = dense(z2_dim)
        self.q_z1_joint = stack(2 * H, extra)
        self.q_z1_head = GaussianHead(H, z1_dim, logvar_min, logvar_max)
        self.p_z1_layers = stack(z2_dim, n_layers - 1)
        self.p_z1_head = GaussianHead(H, z1_dim, logvar_min, logvar_max)
        self.p_x_from_z1 = dense(z1_dim)
        self.p_x_from_z2 = dense(z2_dim)
        self.p_x_joint = stack(2 * H, extra)
        self.p_x_output = ItemOutputLinear(H, n_items)
        self._he_init()
        self.pseudo_inputs = nn.Parameter(torch.randn(n_components, n_items) * pseudo_std + pseudo_mean)

    def _he_init(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / module.in_features))
            elif isinstance(module, ItemInputLinear):
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / module.weight.shape[0]))

    def q_z2(self, x: Rows) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)`` of ``q(z₂|x)`` for prepared (normalised, dropped-out) rows."""
        return self.q_z2_head(self.q_z2_layers(self.q_z2_input(x)))

    def q_z1(self, x: Rows, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)`` of ``q(z₁|x, z₂)``."""
        h = torch.cat((self.q_z1_input(x), self.q_z1_from_z2(z2)), dim=1)
        return self.q_z1_head(self.q_z1_joint(h))

    def p_z1(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)`` of ``p(z₁|z₂)``."""
        return self.p_z1_head(self.p_z1_layers(z2))

    def p_x(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``(b, n_items)`` decoder logits."""
        return self.p_x_output(self.p_x_hidden(z1, z2))

    def p_x_hidden(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``(b, hidden_dim)`` input of the decoder's output layer."""
        return self.p_x_joint(torch.cat((self.p_x_from_z1(z1), self.p_x_from_z2(z2)), dim=1))

    def log_p_x(self, z1: torch.Tensor, z2: torch.Tensor, x: Rows) -> torch.Tensor:
        """``log p(x|z₁,z₂)`` per user, ``(b,)``, under the configured likelihood."""
        if self.likelihood == "multinomial":
            return self.p_x_output.multinomial_log_likelihood(self.p_x_hidden(z1, z2), x)
        return log_likelihood(self.p_x(z1, z2), x, self.likelihood)

    def log_p_z2(self, z2: torch.Tensor, dropout: float) -> torch.Tensor:
        """VampPrior ``log (1/K) Σ_k q(z₂ | u_k)`` per user, ``(b,)``; O(K·I·H + b·K·z₂), the mixture
        by two ``(b × z₂)(z₂ × K)`` products (:func:`~islim.models.deep.layers.log_normal_pairs`)."""
        pseudo = DenseRows(clamped_dropout(self.pseudo_inputs, dropout, self.training))
        means, logvars = self.q_z2(pseudo)
        per_component = log_normal_pairs(z2, means, logvars)
        return torch.logsumexp(per_component, dim=1) - math.log(self.pseudo_inputs.shape[0])

    def beta(self, epoch: int) -> float:
        """``min(max_beta, max_beta·(epoch+1)/warmup_epochs)`` (``max_beta`` if no warm-up)."""
        if self.warmup_epochs == 0:
            return self.max_beta
        return min(self.max_beta, self.max_beta * (epoch + 1) / self.warmup_epochs)

    def forward(self, x: Rows) -> torch.Tensor:
        x_normalized = x.l2_normalized()
        z2, _ = self.q_z2(x_normalized)
        z1, _ = self.q_z1(x_normalized, z2)
        return self.p_x(z1, z2)

    def loss(self, x: Rows, state: TrainState, dropout: float) -> LossTerms:
        x_normalized = x.l2_normalized()
        z2_mu, z2_logvar = self.q_z2(x_normalized.dropout(dropout, self.training))
        z2 = reparameterize(z2_mu, z2_logvar, sample=self.training)
        z1_mu, z1_logvar = self.q_z1(x_normalized.dropout(dropout, self.training), z2)
        z1 = reparameterize(z1_mu, z1_logvar, sample=self.training)
        prior_mu, prior_logvar = self.p_z1(z2)
        nll = -self.log_p_x(z1, z2, x)
        kl = (
            log_normal(z1, z1_mu, z1_logvar).sum(dim=-1)
            + log_normal(z2, z2_mu, z2_logvar).sum(dim=-1)
            - log_normal(z1, prior_mu, prior_logvar).sum(dim=-1)
            - self.log_p_z2(z2, dropout)
        )
        beta = self.beta(state.epoch)
        return LossTerms((nll + beta * kl).mean(), nll.mean().detach(), kl.mean().detach(), beta)

    def training_phases(self) -> list[Phase]:
        return [Phase("all", list(self.parameters()), n_passes=1, dropout=self.dropout)]

    def implicit_slim_targets(self) -> dict[str, nn.Parameter]:
        branches = ("h", "g") if self.gated and self.implicit_slim_gates else ("h",)
        targets = {
            f"{layer}.{branch}.weight": getattr(getattr(self, layer), branch).weight
            for layer in ("q_z2_input", "q_z1_input")
            for branch in branches
        }
        targets["p_x_output.weight"] = self.p_x_output.weight
        return targets
