"""RecVAE (Shenbin, Alekseev, Tutubalina, Malykh, Nikolenko, WSDM 2020; reference code
``ilya-shenbin/RecVAE``).

Differences from Mult-VAE, all as in the reference code:

* encoder: five dense layers of width ``hidden_dim`` with swish activations, LayerNorm (``eps=0.1``)
  and dense residual connections, ``h_k = LN_k(swish(fc_k(h_{k−1}) + Σ_{j<k} h_j))``, then linear maps
  to ``μ`` and ``log σ²``; input ``dropout(x / ‖x‖₂)``;
* decoder: a single linear map ``latent → I`` (multinomial likelihood on its logits);
* composite prior, per latent dimension: ``p(z) = 3/20 N(0, 1) + 3/4 q_old(z | x) + 1/10 N(0, e^{10})``
  where ``q_old`` is a frozen copy of the encoder refreshed after each block of encoder passes
  (independently initialised before the first refresh, as in the code);
* KL term estimated with the sampled ``z``: ``log q(z|x) − log p(z)`` summed over dimensions, weighted
  per user by ``β_u = γ·|u|`` (``|u|`` = number of the user's training items), or by a constant
  ``beta`` if ``gamma`` is null;
* alternating training: each epoch makes ``n_enc_epochs`` passes updating only the encoder (input
  dropout 0.5), refreshes ``q_old``, then ``n_dec_epochs`` passes updating only the decoder (no
  dropout); separate Adam optimisers.

In the decoder passes ``q_old`` holds the live encoder's weights and both read the same rows (no
dropout), so the prior reuses the live encoder's ``(μ, log σ²)`` instead of running the copy again
(the same values bit for bit; :meth:`CompositePrior.holds` checks the weights are untouched since the
refresh by their in-place version counters). This saves a sparse input product and the residual
layers in every decoder step (the KL term is still computed: it is part of the reported loss).

Cost per batch: ``O(nnz·h)`` for the sparse input layer, ``O(b·h²)`` for the residual layers (twice:
the prior's encoder copy), ``O(b·I·latent)`` for the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from islim.errors import ConfigError
from islim.models.deep.base import DeepRecommender, LossTerms, Phase, TrainState, check_positive, check_probability
from islim.models.deep.layers import ItemInputLinear, ItemOutputLinear, Rows, log_normal, reparameterize, swish

#: Dense layers in the encoder (fixed by the architecture).
N_ENCODER_LAYERS = 5


class RecVAEEncoder(nn.Module):
    """The residual swish/LayerNorm encoder; ``forward`` takes normalised (and dropped-out) rows and
    returns ``(μ, log σ²)``, each ``(b, latent_dim)``."""

    def __init__(self, n_items: int, hidden_dim: int, latent_dim: int, ln_eps: float):
        super().__init__()
        self.fc1 = ItemInputLinear(n_items, hidden_dim)
        self.hidden = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(N_ENCODER_LAYERS - 1))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim, eps=ln_eps) for _ in range(N_ENCODER_LAYERS))
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: Rows) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norms[0](swish(self.fc1(x)))
        running_sum = h
        for fc, norm in zip(self.hidden, self.norms[1:]):
            h = norm(swish(fc(h) + running_sum))
            running_sum = running_sum + h
        return self.fc_mu(h), self.fc_logvar(h)


def _versions(module: nn.Module) -> tuple[int, ...]:
    """The in-place version counters of ``module``'s parameters (each in-place change bumps one)."""
    return tuple(p._version for p in module.parameters())


class CompositePrior(nn.Module):
    """Per-dimension mixture ``w₁ N(0,1) + w₂ q_old(z|x) + w₃ N(0, e^{uniform_logvar})``.

    ``encoder_old`` never receives gradients; :meth:`refresh` copies the live encoder's weights into it.
    """

    def __init__(self, n_items: int, hidden_dim: int, latent_dim: int, ln_eps: float, mixture_weights, uniform_logvar: float):
        super().__init__()
        self.encoder_old = RecVAEEncoder(n_items, hidden_dim, latent_dim, ln_eps)
        self.encoder_old.requires_grad_(False)
        self.log_weights = [math.log(w) for w in mixture_weights]
        self.uniform_logvar = float(uniform_logvar)
        #: ``(encoder, its versions, the copy's versions)`` at the last :meth:`refresh`.
        self._refreshed_from: tuple[RecVAEEncoder, tuple[int, ...], tuple[int, ...]] | None = None

    def refresh(self, encoder: RecVAEEncoder) -> None:
        """Copy ``encoder``'s parameters into the frozen copy."""
        self.encoder_old.load_state_dict(encoder.state_dict())
        self._refreshed_from = (encoder, _versions(encoder), _versions(self.encoder_old))

    def holds(self, encoder: RecVAEEncoder) -> bool:
        """Whether the frozen copy still equals ``encoder``: it was refreshed from it and neither has
        been changed in place since (optimiser steps, ``copy_``, ``load_state_dict`` all count)."""
        if self._refreshed_from is None:
            return False
        source, versions, own_versions = self._refreshed_from
        return source is encoder and _versions(encoder) == versions and _versions(self.encoder_old) == own_versions

    def log_prob(self, x_normalized: Rows, z: torch.Tensor, posterior: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``log p(z)`` per user and dimension, ``(b, latent_dim)``; differentiable in ``z`` only.

        ``posterior``: ``q_old``'s ``(μ, log σ²)`` on ``x_normalized`` when the caller has them (the
        live encoder's output while :meth:`holds` it); computed by the frozen copy otherwise.
        """
        if posterior is not None:
            post_mu, post_logvar = (t.detach() for t in posterior)
        else:
            with torch.no_grad():
                post_mu, post_logvar = self.encoder_old(x_normalized)
        zero = torch.zeros((), device=z.device, dtype=z.dtype)
        components = torch.stack(
            (
                log_normal(z, zero, zero),
                log_normal(z, post_mu, post_logvar),
                log_normal(z, zero, zero + self.uniform_logvar),
            ),
            dim=-1,
        )
        log_weights = torch.tensor(self.log_weights, dtype=z.dtype, device=z.device)
        return torch.logsumexp(components + log_weights, dim=-1)


class RecVAE(DeepRecommender):
    """RecVAE; the ImplicitSLIM targets are ``encoder.fc1.weight`` and ``decoder.weight`` (spec §3.6)."""

    #: Reference ``run.py`` defaults and the README's ML-20M command for plain RecVAE
    #: (γ = 0.005; paper: Netflix 0.0035, MSD 0.01).
    MODEL_DEFAULTS = {
        "hidden_dim": 600,
        "latent_dim": 200,
        "gamma": 0.005,
        "beta": None,
        "dropout": 0.5,
        "n_enc_epochs": 3,
        "n_dec_epochs": 1,
        "mixture_weights": [3 / 20, 3 / 4, 1 / 10],
        "uniform_logvar": 10.0,
        "ln_eps": 0.1,
    }
    #: Adam lr 5e-4, batch 500, 50 epochs (100 for MSD), best validation NDCG@100 kept, no early stop.
    TRAINING_DEFAULTS = {"lr": 5e-4, "batch_size": 500, "n_epochs": 50, "patience": None, "normalize_grad": False}

    @classmethod
    def item_weight_count(cls, n_items, params) -> int:
        """The encoder's first layer, its copy in the prior, and the ``L x I`` decoder: ``I (2H + L)``."""
        return n_items * (2 * params["hidden_dim"] + params["latent_dim"])

    def __init__(
        self,
        n_items: int,
        hidden_dim: int = 600,
        latent_dim: int = 200,
        gamma: float | None = 0.005,
        beta: float | None = None,
        dropout: float = 0.5,
        n_enc_epochs: int = 3,
        n_dec_epochs: int = 1,
        mixture_weights: Sequence[float] = (3 / 20, 3 / 4, 1 / 10),
        uniform_logvar: float = 10.0,
        ln_eps: float = 0.1,
    ):
        super().__init__()
        check_positive(n_items=n_items, hidden_dim=hidden_dim, latent_dim=latent_dim, ln_eps=ln_eps)
        check_probability("dropout", dropout)
        if (gamma is None) == (beta is None):
            raise ConfigError(
                f"RecVAE needs exactly one KL weight: gamma (β_u = γ·|u|) or a constant beta; got "
                f"gamma={gamma!r}, beta={beta!r} (set the other one to null)"
            )
        check_positive(**({"gamma": gamma} if gamma is not None else {"beta": beta}))
        if n_enc_epochs < 1 or n_dec_epochs < 1:
            raise ConfigError(f"n_enc_epochs and n_dec_epochs must be >= 1, got {n_enc_epochs!r}, {n_dec_epochs!r}")
        if len(mixture_weights) != 3 or min(mixture_weights) <= 0 or not math.isclose(sum(mixture_weights), 1.0):
            raise ConfigError(f"mixture_weights must be 3 positive numbers summing to 1, got {list(mixture_weights)!r}")
        self.gamma, self.beta = gamma, beta
        self.dropout = dropout
        self.n_enc_epochs, self.n_dec_epochs = n_enc_epochs, n_dec_epochs
        self.encoder = RecVAEEncoder(n_items, hidden_dim, latent_dim, ln_eps)
        self.prior = CompositePrior(n_items, hidden_dim, latent_dim, ln_eps, mixture_weights, uniform_logvar)
        self.decoder = ItemOutputLinear(latent_dim, n_items)

    def forward(self, x: Rows) -> torch.Tensor:
        mu, _ = self.encoder(x.l2_normalized())
        return self.decoder(mu)

    def kl_weights(self, x: Rows) -> torch.Tensor | float:
        """Per-user KL weights ``γ·|u|`` (``(b,)``), or the constant ``beta``."""
        return self.gamma * x.row_sums() if self.gamma is not None else self.beta

    def loss(self, x: Rows, state: TrainState, dropout: float) -> LossTerms:
        x_normalized = x.l2_normalized()
        x_in = x_normalized.dropout(dropout, self.training)
        mu, logvar = self.encoder(x_in)
        z = reparameterize(mu, logvar, sample=self.training)
        nll = -self.decoder.multinomial_log_likelihood(z, x)
        same_posterior = x_in is x_normalized and self.prior.holds(self.encoder)
        log_prior = self.prior.log_prob(x_normalized, z, (mu, logvar) if same_posterior else None)
        kl = (log_normal(z, mu, logvar) - log_prior).sum(dim=-1)
        weights = self.kl_weights(x)
        total = (nll + weights * kl).mean()
        mean_weight = weights.mean().detach() if torch.is_tensor(weights) else weights
        return LossTerms(total, nll.mean().detach(), kl.mean().detach(), mean_weight)

    def update_prior(self) -> None:
        """Refresh the prior's frozen encoder from the live encoder (after each block of encoder passes)."""
        self.prior.refresh(self.encoder)

    def training_phases(self) -> list[Phase]:
        return [
            Phase("encoder", list(self.encoder.parameters()), self.n_enc_epochs, self.dropout, on_end=self.update_prior),
            Phase("decoder", list(self.decoder.parameters()), self.n_dec_epochs, 0.0),
        ]

    def implicit_slim_targets(self) -> dict[str, nn.Parameter]:
        return {"encoder.fc1.weight": self.encoder.fc1.weight, "decoder.weight": self.decoder.weight}


#: The ML-20M RecVAE + ImplicitSLIM command of the reference README (spec §3.6): 100 epochs, latent 400,
#: γ = 0.004, ImplicitSLIM every 10 epochs with λ = 500, α = 1, threshold 1000 (other values default).
ML20M_IMPLICIT_SLIM_PARAMS = {
    "latent_dim": 400,
    "gamma": 0.004,
    "n_epochs": 100,
    "implicit_slim": {"mode": "replace", "step": 10, "lam": 500.0, "alpha": 1.0, "threshold": 1000.0},
}
