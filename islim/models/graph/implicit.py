"""ImplicitSLIM for the layer-0 embeddings of the graph recommenders (issue 15, the paper's Table 2).

Item embeddings come from :func:`~islim.embeddings.implicit.implicit_slim` on ``X`` and user
embeddings from :func:`~islim.embeddings.implicit.implicit_slim_users` (the same closed form on
``Xᵀ``). With ``sides`` ≠ ``"none"`` they are used twice, for each side ``s`` it names:

* **initialisation**: before the first epoch the random layer-0 table ``E_s`` is replaced by
  ``T_s = ImplicitSLIM(E_s)``;
* **regularisation**: every batch's loss gets ``reg_weight · Σ_s ‖E_s − stopgrad(T_s)‖²_F / n_s``
  (``n_s`` rows of the table: the mean squared distance of a row to its target), where the targets
  ``T_s`` are the initial embeddings until they are recomputed from the current tables at the start
  of every epoch ``e > 0`` with ``e % step == 0`` (as MF's regulariser, whose first target is its
  ImplicitSLIM initialisation). The penalty is added once per batch to a mean-reduced loss
  (LightGCN) and once per interaction to a sum-reduced one (UltraGCN), so ``reg_weight`` weighs it
  against the loss of one interaction in both.

ImplicitSLIM's output depends on the scale of its input (scaling ``E`` by ``s`` acts like
``α → α s²``, spec §2.4), and the tables' scale is the model's initialisation (LightGCN's
N(0, 0.1²), UltraGCN's N(0, 10⁻⁸) entries) and then grows in training. So every table is divided
by its root-mean-square entry before ImplicitSLIM (unit-variance input, the scale MF's reference α
values assume, :mod:`islim.models.linear`), which gives α one meaning for every model and epoch,
and every output is rescaled to the Frobenius norm of the table, so the embeddings keep their
model's scale. ImplicitSLIM runs in float64 here: a trained table whose rows share a dominant
direction makes ``FᵀΩF`` span many orders of magnitude, and its float32 product lost positive
definiteness (UltraGCN's user table on ml-100k after 5 epochs).

Variants: ``sides="both"`` (``implicit_slim``), ``sides="items"`` (``implicit_slim_items``: the
user-side contribution measured on its own by comparison), ``sides="none"`` (``baseline``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import scipy.sparse as sp
import torch

from islim.errors import ConfigError
from islim.models.deep.hooks import ImplicitSLIMSettings
from islim.numerics import require_finite

SIDES = ("none", "both", "items")


@dataclass(frozen=True)
class GraphImplicitSLIM(ImplicitSLIMSettings):
    """The ``implicit_slim`` mapping of a graph recommender.

    Attributes
    ----------
    sides : str
        ``"none"``, ``"both"`` (users and items) or ``"items"``.
    step : int
        Targets are recomputed every ``step`` epochs (≥ 1).
    lam : float
        λ > 0 of the item–item (and user–user) ridge regression.
    alpha : float
        α > 0, weight of the anchor term.
    threshold : float
        τ ≥ 0: items (users) of training popularity (degree) below it do not anchor the solution.
    reg_weight : float
        Strength of the regulariser (≥ 0; 0 = initialisation only). No published value (the paper
        gives no schedule or strength for GCNs); the default 0.01 was neutral to slightly helpful
        on a synthetic per-user split, 0.1 hurt there.
    """

    sides: str = "none"
    step: int = 10
    lam: float = 100.0
    alpha: float = 1.0
    threshold: float = 0.0
    reg_weight: float = 0.01

    SWITCH = ("sides", SIDES)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GraphImplicitSLIM:
        """Build from a (possibly partial) mapping over the defaults; anything but a mapping or
        ``None``, and unknown keys, raise :class:`ConfigError`."""
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(
                f"setting 'implicit_slim' must be a mapping of ImplicitSLIM settings, got {values!r}; "
                f"write e.g. `implicit_slim: {{sides: both, step: 10}}` (keys: {sorted(cls.__dataclass_fields__)})"
            )
        return super().from_mapping(values)

    def side_names(self) -> tuple[str, ...]:
        """The embedding tables ImplicitSLIM acts on: ``("user", "item")``, ``("item",)`` or ``()``."""
        return {"none": (), "both": ("user", "item"), "items": ("item",)}[self.sides]


class EmbeddingTargets:
    """ImplicitSLIM initialisation and regularisation of a model's layer-0 tables.

    Parameters
    ----------
    config : GraphImplicitSLIM
        What to do.
    X : scipy.sparse.csr_matrix, shape (U, I)
        Binary training matrix.

    Attributes
    ----------
    targets_ : dict of str to torch.Tensor
        ``"user"``/``"item"`` → the detached target table.
    computed_epochs_ : list of int
        Epochs at whose start targets were recomputed (``-1``: the initialisation).
    """

    def __init__(self, config: GraphImplicitSLIM, X: sp.csr_matrix):
        self.config = config
        self.X = X
        self.targets_: dict[str, torch.Tensor] = {}
        self.computed_epochs_: list[int] = []

    def _implicit_slim(self, side: str, table: torch.Tensor, epoch: int) -> torch.Tensor:
        from islim.embeddings.implicit import implicit_slim, implicit_slim_users

        config = self.config
        function = implicit_slim_users if side == "user" else implicit_slim
        unit = (table.detach() / table.detach().square().mean().sqrt()).double()
        out = function(unit, self.X, lam=config.lam, alpha=config.alpha, threshold=config.threshold)
        out = torch.as_tensor(out).to(device=table.device, dtype=table.dtype)
        norm = out.norm()
        when = "the initialisation" if epoch < 0 else f"the start of epoch {epoch}"
        require_finite(out, f"the ImplicitSLIM {side} embeddings at {when}", "raise implicit_slim.lam")
        if not norm > 0:
            raise ConfigError(
                f"ImplicitSLIM returned all-zero {side} embeddings at {when}: implicit_slim.threshold={config.threshold} "
                f"is above every {side}'s training {'degree' if side == 'user' else 'popularity'}; lower it"
            )
        return out * (table.detach().norm() / norm)

    @torch.no_grad()
    def initialise(self, tables: Mapping[str, torch.nn.Parameter]) -> None:
        """Replace the named layer-0 tables by their ImplicitSLIM embeddings; they become the targets."""
        for side in self.config.side_names():
            self.targets_[side] = self._implicit_slim(side, tables[side], -1)
            tables[side].copy_(self.targets_[side])
        if self.targets_:
            self.computed_epochs_.append(-1)

    @torch.no_grad()
    def on_epoch_start(self, tables: Mapping[str, torch.nn.Parameter], epoch: int) -> None:
        """Recompute the targets from the current tables at the start of epochs ``e > 0``, ``e % step == 0``."""
        if self.targets_ and self.config.reg_weight > 0 and epoch > 0 and epoch % self.config.step == 0:
            self.targets_ = {side: self._implicit_slim(side, tables[side], epoch) for side in self.targets_}
            self.computed_epochs_.append(epoch)

    def penalty(self, tables: Mapping[str, torch.nn.Parameter]) -> torch.Tensor | None:
        """``reg_weight · Σ_s ‖E_s − T_s‖²_F / n_s``, or ``None`` without targets or weight."""
        if not self.targets_ or self.config.reg_weight == 0:
            return None
        return self.config.reg_weight * sum(
            (tables[side] - target).square().sum() / target.shape[0] for side, target in self.targets_.items()
        )

    def state_dict(self) -> dict[str, Any]:
        """What carries over between epochs (for a checkpoint)."""
        return {"targets": dict(self.targets_), "computed_epochs": list(self.computed_epochs_)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.targets_ = dict(state["targets"])
        self.computed_epochs_ = list(state["computed_epochs"])
