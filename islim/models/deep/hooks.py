"""ImplicitSLIM inside deep-model training (spec §3.6, §4).

Two modes, chosen by the ``implicit_slim`` configuration mapping:

* ``replace`` (the paper's way, ``ilya-shenbin/RecVAE`` ``run.py``): at the **start** of every epoch
  with ``epoch % step == step − 1`` (step 10 → epochs 9, 19, …), every item-embedding weight returned
  by the model's ``implicit_slim_targets()`` — the first encoder layer and the last decoder layer,
  both item-major ``(n_items, d)`` — is overwritten in place by
  ``implicit_slim(W, X_train, lam, alpha, threshold)``. Biases, all other weights, the optimiser
  moments and RecVAE's frozen prior encoder are left as they are; ``reset_optimizer_state=True``
  instead drops the Adam state of the replaced weights (re-initialised at their next update).
* ``regularize``: the loss of every batch gets ``reg_weight · Σ_W ‖W − stopgrad(T_W)‖²_F`` where the
  targets ``T_W = implicit_slim(W, …)`` are recomputed at the start of every epoch with
  ``epoch % step == 0`` (so a target exists from the first epoch on, as the MF regulariser of the
  official code, which recomputes it before every item step). ``reg_weight`` has no published value.

``implicit_slim`` (:mod:`islim.embeddings`) is imported when first needed. Each call costs
``O(d·nnz(X) + d²·I + d³)`` (spec §2.5); X is the training-user matrix only.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import scipy.sparse as sp
import torch

from islim.errors import ConfigError
from islim.models.deep.base import DeepRecommender, check_types
from islim.numerics import require_finite

MODES = ("none", "replace", "regularize")


class ImplicitSLIMSettings:
    """Validation, construction from a mapping and ``as_dict`` of an ``implicit_slim`` dataclass:
    what :class:`ImplicitSLIMConfig` (deep models) and
    :class:`~islim.models.graph.implicit.GraphImplicitSLIM` (graph models) share.

    A subclass is a frozen dataclass with the fields ``step``, ``lam``, ``alpha``, ``threshold``
    and ``reg_weight`` (and any of its own), and names its switch field and that field's allowed
    values in ``SWITCH`` (e.g. ``("mode", MODES)``). On construction every field is checked against
    its annotation, then the switch, then ``step ≥ 1``, then ``lam > 0, alpha > 0, threshold ≥ 0,
    reg_weight ≥ 0``; the first failure raises :class:`ConfigError`.
    """

    SWITCH: ClassVar[tuple[str, tuple[str, ...]]]

    def __post_init__(self):
        defaults = {item.name: item.default for item in fields(self)}
        check_types("implicit_slim", typing.get_type_hints(type(self)), self.as_dict(), defaults)
        name, allowed = self.SWITCH
        if getattr(self, name) not in allowed:
            raise ConfigError(f"implicit_slim.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.step < 1:
            raise ConfigError(f"implicit_slim.step must be an integer >= 1, got {self.step!r}")
        if not (self.lam > 0 and self.alpha > 0 and self.threshold >= 0 and self.reg_weight >= 0):
            raise ConfigError(
                f"implicit_slim needs lam > 0, alpha > 0, threshold >= 0, reg_weight >= 0; got lam={self.lam!r}, "
                f"alpha={self.alpha!r}, threshold={self.threshold!r}, reg_weight={self.reg_weight!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None):
        """Build from a (possibly partial) mapping over the defaults; unknown keys raise :class:`ConfigError`."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown implicit_slim keys {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The settings by field name, in field order."""
        return asdict(self)


@dataclass(frozen=True)
class ImplicitSLIMConfig(ImplicitSLIMSettings):
    """The ``implicit_slim`` configuration mapping.

    Attributes
    ----------
    mode : str
        ``"none"``, ``"replace"`` or ``"regularize"``.
    step : int
        Period in epochs (≥ 1).
    lam : float
        λ > 0 of the item–item ridge regression (RecVAE on ML-20M: 500).
    alpha : float
        α > 0, weight of the anchor term (RecVAE on ML-20M: 1).
    threshold : float
        Items with training popularity below it do not anchor the solution (ML-20M: 1000).
    reg_weight : float
        Strength of the ``regularize`` penalty (≥ 0).
    reset_optimizer_state : bool
        Drop the Adam moments of replaced weights (``replace`` only).
    """

    mode: str = "none"
    step: int = 10
    lam: float = 500.0
    alpha: float = 1.0
    threshold: float = 0.0
    reg_weight: float = 1.0
    reset_optimizer_state: bool = False

    SWITCH = ("mode", MODES)


class ImplicitSLIMHook:
    """Applies an :class:`ImplicitSLIMConfig` to a model during training.

    Parameters
    ----------
    config : ImplicitSLIMConfig
        What to do and when.
    X_train : scipy.sparse.csr_matrix, shape (n_users, n_items)
        CSR training matrix (training users only).

    Attributes
    ----------
    applied_epochs_ : list of int
        Epochs at whose start ImplicitSLIM was computed.
    targets_ : dict of str to torch.Tensor
        ``regularize`` mode: name → detached target tensor (same shape as the weight).
    """

    def __init__(self, config: ImplicitSLIMConfig, X_train: sp.csr_matrix):
        self.config = config
        self.X_train = X_train
        self.applied_epochs_: list[int] = []
        self.targets_: dict[str, torch.Tensor] = {}

    def is_due(self, epoch: int) -> bool:
        """Whether ImplicitSLIM runs at the start of ``epoch`` (0-based)."""
        step = self.config.step
        if self.config.mode == "replace":
            return epoch % step == step - 1
        if self.config.mode == "regularize":
            return epoch % step == 0
        return False

    def _implicit_slim(self, name: str, weight: torch.Tensor, epoch: int) -> torch.Tensor:
        from islim.embeddings import implicit_slim

        config = self.config
        out = implicit_slim(weight.detach().clone(), self.X_train, lam=config.lam, alpha=config.alpha, threshold=config.threshold)
        out = torch.as_tensor(out).to(device=weight.device, dtype=weight.dtype)
        if out.shape != weight.shape:
            raise ConfigError(f"implicit_slim returned shape {tuple(out.shape)} for a weight of shape {tuple(weight.shape)}")
        require_finite(
            out,
            f"the ImplicitSLIM embeddings of {name} at the start of epoch {epoch}",
            "raise implicit_slim.lam or lower the learning rate",
        )
        return out

    @torch.no_grad()
    def on_epoch_start(self, model: DeepRecommender, optimizers: list[torch.optim.Optimizer], epoch: int) -> bool:
        """Replace the weights or refresh the targets if due; returns whether anything was computed.

        Raises :class:`~islim.errors.NumericalError` naming the weight and the epoch if an update is
        not finite (no weight is changed then).
        """
        if not self.is_due(epoch):
            return False
        targets = model.implicit_slim_targets()
        updates = {name: self._implicit_slim(name, weight, epoch) for name, weight in targets.items()}
        if self.config.mode == "replace":
            for name, weight in targets.items():
                weight.copy_(updates[name])
                if self.config.reset_optimizer_state:
                    for optimizer in optimizers:
                        optimizer.state.pop(weight, None)
        else:
            self.targets_ = updates
        self.applied_epochs_.append(epoch)
        return True

    def state_dict(self) -> dict[str, Any]:
        """What the hook carries between epochs (for a checkpoint)."""
        return {"applied_epochs": list(self.applied_epochs_), "targets": dict(self.targets_)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.applied_epochs_ = list(state["applied_epochs"])
        self.targets_ = dict(state["targets"])

    def penalty(self, model: DeepRecommender) -> torch.Tensor | None:
        """``reg_weight · Σ ‖W − T_W‖²_F`` in ``regularize`` mode once targets exist, else ``None``."""
        if self.config.mode != "regularize" or not self.targets_:
            return None
        weights = model.implicit_slim_targets()
        return self.config.reg_weight * sum((weights[name] - target).square().sum() for name, target in self.targets_.items())
