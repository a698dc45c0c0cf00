"""One function per grid cell of the ablation: named arms → item embeddings (spec §7).

An arm is a point of three axes:

* ``neighbourhood`` — ``"all"`` (every other item; dense ``S``) or ``"knn"`` (``k`` co-occurring
  items; sparse ``S``);
* ``first_step`` — ``"ease"`` (ridge regression, zero diagonal; ``sum_to_one`` adds the LLE
  constraint = SLIM-LLE), ``"lle"`` (Roweis–Saul local Gram), ``"cooccurrence"`` (normalised
  co-occurrence) or ``"identity"`` (``S = 0``, null control);
* ``second_step`` — ``"explicit"`` (bottom eigenvectors of ``(I − S)(I − S)ᵀ``), ``"implicit"`` (one
  anchored update of the input embeddings) or ``"implicit_iterated"`` (anchored updates with
  orthonormalisation until the subspace stops moving).

The cell ``(all, ease, implicit[_iterated])`` is the paper's ImplicitSLIM: the Woodbury closed form
with the EASE surrogate ``I − S̃ = ΠΔ`` (:func:`implicit_slim`); ``surrogate=False`` runs the anchored
update of the exact EASE weights instead (isolating the diagonal approximation), and
``sum_to_one=True`` that of the SLIM-LLE weights. ``(all, ease, explicit)`` with ``sum_to_one=True`` (the default) is the paper's
SLIM-LLE. ``(identity, explicit)`` is undefined (every orthonormal basis is optimal) and rejected.

Reference arms without an item–item model are :func:`reference_embeddings` (``"random"``, ``"svd"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from islim.embeddings.anchored import anchored_update, iterate_anchored_update
from islim.embeddings.explicit import lle_embeddings
from islim.embeddings.gram_operator import as_csr, squared_column_norms
from islim.embeddings.implicit import implicit_slim, iterate_implicit_slim
from islim.embeddings.knn import knn_weights
from islim.embeddings.reference import random_embeddings, svd_embeddings
from islim.embeddings.weights import cooccurrence_weights, ease_weights, identity_weights, lle_weights
from islim.errors import ConfigError


@dataclass(frozen=True)
class Arm:
    """One value of an ablation axis.

    Parameters
    ----------
    axis : {"neighbourhood", "first_step", "second_step", "reference"}
        The axis (``reference`` arms stand alone: embeddings without an item–item model).
    name : str
        Config and file name of the arm.
    params : tuple of str
        The entries of :data:`DEFAULT_PARAMS` the arm reads (its searchable hyper-parameters).
    build : callable, optional
        ``first_step``: ``build(X, p, sum_to_one, budget_bytes) -> S`` dense ``(n_items, n_items)``
        weights of the global neighbourhood; ``second_step``: ``build(S, E0, p, mask,
        budget_bytes) -> E``; ``reference``: ``build(X, d, seed) -> E``; ``None`` for
        neighbourhoods.
    knn : bool
        ``first_step`` only: the rule also has a k-NN (local) version in :mod:`islim.embeddings.knn`.
    dense_copies : float
        Peak number of dense float64 ``I x I`` arrays the step holds with the ``all``
        neighbourhood (memory requests, :mod:`islim.resources`); a first step with 0 builds a
        sparse ``S``, on which the second steps work with sparse operators.
    spd_inverse : bool
        The step inverts a dense SPD matrix (two more ``I x I`` buffers on the MKL path above
        :data:`islim.memory.MKL_PATH_BYTES`).
    colour : int or None
        ``reference`` arms: index into the figures' palette (:data:`islim.plotting.style.PALETTE`),
        distinct from every model's and paper cell's; ``None`` for axis values (not drawn alone).
    marker : str
        Matplotlib marker of a ``reference`` arm in figures.
    stochastic : bool
        ``reference`` arms: the embeddings depend on the seed beyond numerical noise, so the
        workflow runs the arm once per config ``seeds`` and averages.
    """

    axis: str
    name: str
    params: tuple[str, ...] = ()
    build: Callable[..., Any] | None = field(default=None, repr=False)
    knn: bool = False
    dense_copies: float = 0.0
    spd_inverse: bool = False
    colour: int | None = None
    marker: str = "o"
    stochastic: bool = False


def _dtype(p: Mapping[str, Any]) -> np.dtype:
    return np.dtype(p["dtype"])


def _popularity_mask(X, threshold: float) -> np.ndarray:
    return squared_column_norms(as_csr(X, np.float32)) >= threshold


#: Every arm, per axis in display order (figures and tables list arms in this order).
ARMS: tuple[Arm, ...] = (
    Arm("neighbourhood", "all"),
    Arm("neighbourhood", "knn", ("k",)),
    Arm(
        "first_step",
        "ease",
        ("lam",),
        lambda X, p, sum_to_one, budget: ease_weights(X, p["lam"], sum_to_one=sum_to_one, dtype=_dtype(p), budget_bytes=budget),
        knn=True,
        dense_copies=1,
        spd_inverse=True,
    ),
    Arm(
        "first_step",
        "lle",
        ("reg",),
        lambda X, p, sum_to_one, budget: lle_weights(X, p["reg"], dtype=_dtype(p), budget_bytes=budget),
        knn=True,
        dense_copies=5,
    ),
    Arm(
        "first_step",
        "cooccurrence",
        (),
        lambda X, p, sum_to_one, budget: cooccurrence_weights(X, dtype=_dtype(p), budget_bytes=budget),
        knn=True,
        dense_copies=1,
    ),
    Arm("first_step", "identity", (), lambda X, p, sum_to_one, budget: identity_weights(X.shape[1], _dtype(p)), knn=True),
    # S, A = I - S, L = A Aᵀ and LAPACK's copy
    Arm("second_step", "explicit", (), lambda S, E0, p, mask, budget: lle_embeddings(S, E0.shape[1], budget_bytes=budget), dense_copies=4),
    Arm(
        "second_step",
        "implicit",
        ("alpha", "threshold"),
        lambda S, E0, p, mask, budget: anchored_update(
            S, E0, p["alpha"], mask, tol=p["cg_tol"], maxiter=p["cg_maxiter"], budget_bytes=budget
        ),
        dense_copies=3,  # S and the dense system, twice
    ),
    Arm(
        "second_step",
        "implicit_iterated",
        ("alpha", "threshold", "n_iter"),
        lambda S, E0, p, mask, budget: (
            iterate_anchored_update(
                S, E0, p["alpha"], p["n_iter"], p["tol"], mask, cg_tol=p["cg_tol"], cg_maxiter=p["cg_maxiter"], budget_bytes=budget
            ).embeddings
        ),
        dense_copies=3,
    ),
    Arm("reference", "random", (), lambda X, d, seed: random_embeddings(X.shape[1], d, seed), colour=13, marker="x", stochastic=True),
    Arm("reference", "svd", (), lambda X, d, seed: svd_embeddings(X, d, seed), colour=12, marker="v"),
)


@dataclass(frozen=True)
class PaperCell:
    """A cell of the grid that is a method of the paper, singled out in figures (own colour,
    marker and label; the ablation grid outlines the one marked ``reference``).

    Parameters
    ----------
    label : str
        Legend label.
    neighbourhood, first_step, second_step : str
        The cell's arms.
    colour : int
        Index into the figures' palette (:data:`islim.plotting.style.PALETTE`), distinct from
        every model's and reference arm's.
    marker : str
        Matplotlib marker.
    reference : bool
        The cell other cells are tested against (the paper's ImplicitSLIM).
    """

    label: str
    neighbourhood: str
    first_step: str
    second_step: str
    colour: int
    marker: str
    reference: bool = False

    @property
    def axes(self) -> dict[str, str]:
        """``{"neighbourhood": …, "first_step": …, "second_step": …}``."""
        return {"neighbourhood": self.neighbourhood, "first_step": self.first_step, "second_step": self.second_step}

    @property
    def run_name(self) -> str:
        """The cell's name in run records and ``ablations.csv`` (:func:`cell_name`)."""
        return cell_name(self.neighbourhood, self.first_step, self.second_step)


#: The paper's methods in the grid: ImplicitSLIM (EASE, implicit anchored step) and SLIM-LLE (EASE
#: with the sum-to-one constraint, explicit eigenvectors).
PAPER_CELLS: tuple[PaperCell, ...] = (
    PaperCell("SLIM-LLE", "all", "ease", "explicit", colour=2, marker="s"),
    PaperCell("ImplicitSLIM", "all", "ease", "implicit", colour=10, marker="o", reference=True),
)


def cell_name(neighbourhood: str, first_step: str, second_step: str) -> str:
    """Name of a grid cell in run records and tables: ``"ablation:<neighbourhood>/<first>/<second>"``."""
    return f"ablation:{neighbourhood}/{first_step}/{second_step}"


def reference_name(reference: str) -> str:
    """Name of a reference arm in run records and tables: ``"reference:<name>"``."""
    return f"reference:{reference}"


class ArmStyle(NamedTuple):
    """How figures draw a reference arm or paper cell: legend label, palette index, marker."""

    label: str
    colour: int
    marker: str


#: Figure styles by run name (:func:`reference_name`, :func:`cell_name`): every reference arm and
#: paper cell; other cells are drawn as context.
STYLED_ARMS: dict[str, ArmStyle] = {
    **{reference_name(a.name): ArmStyle(a.name, a.colour, a.marker) for a in ARMS if a.axis == "reference"},
    **{cell.run_name: ArmStyle(cell.label, cell.colour, cell.marker) for cell in PAPER_CELLS},
}

#: Combinations that are undefined, with the reason (recorded as skipped cells).
UNDEFINED = {
    (
        "identity",
        "explicit",
    ): "first_step='identity' with second_step='explicit' is undefined: (I - S)(I - S)' = I has no preferred eigenvectors; use an implicit second step",
}


def arms_of(axis: str) -> tuple[str, ...]:
    """Names of the arms of ``axis``, in display order."""
    return tuple(arm.name for arm in ARMS if arm.axis == axis)


def stochastic_arms(axis: str) -> tuple[str, ...]:
    """Names of the arms of ``axis`` marked ``stochastic`` (run once per seed), in display order."""
    return tuple(arm.name for arm in ARMS if arm.axis == axis and arm.stochastic)


def arm(axis: str, name: str) -> Arm:
    """The registry entry of arm ``name`` of ``axis``; unknown arms raise :class:`ConfigError`."""
    for entry in ARMS:
        if entry.axis == axis and entry.name == name:
            return entry
    raise ConfigError(f"unknown {axis} {name!r}; expected one of {arms_of(axis)}")


def check_arm_params(axis: str, name: str, grids: Mapping[str, Any] | None) -> None:
    """Raise :class:`ConfigError` if the config's grids for arm ``name`` of ``axis`` set a
    parameter the arm does not read (its :attr:`Arm.params`); an unknown arm raises too."""
    allowed = arm(axis, name).params
    unknown = sorted(set(grids or {}) - set(allowed))
    if unknown:
        raise ConfigError(f"ablations.{axis}.{name} sets {unknown}, which that arm does not read; allowed: {list(allowed)}")


NEIGHBOURHOODS = arms_of("neighbourhood")
FIRST_STEPS = arms_of("first_step")
SECOND_STEPS = arms_of("second_step")
REFERENCE_ARMS = arms_of("reference")
AXES = ("neighbourhood", "first_step", "second_step")

#: Every parameter an arm may read, with its default. ``sum_to_one=None`` means "True for the
#: explicit step (SLIM-LLE), False for the implicit ones (ImplicitSLIM drops the constraint)".
DEFAULT_PARAMS: dict[str, Any] = {
    "lam": 500.0,  # λ of the ridge regressions ("ease")
    "alpha": 1.0,  # anchor weight (implicit steps)
    "threshold": 0.0,  # popularity threshold τ of the anchor
    "k": 100,  # neighbours per item ("knn")
    "reg": 1e-3,  # Roweis–Saul trace-regulariser factor ("lle")
    "sum_to_one": None,
    "surrogate": True,  # (all, ease, implicit*) without sum_to_one: ImplicitSLIM's ΠΔ surrogate
    "n_iter": 100,  # implicit_iterated: maximum updates
    "tol": 1e-4,  # implicit_iterated: principal-angle tolerance (degrees; float32 floors near 1e-5)
    "cg_tol": 1e-10,  # sparse anchored update: CG relative residual
    "cg_maxiter": None,
    "dtype": "float64",  # dense first/explicit steps
}


def validate_arm(neighbourhood: str, first_step: str, second_step: str) -> None:
    """Raise :class:`ConfigError` for an unknown axis value or an undefined combination."""
    for axis, value in zip(AXES, (neighbourhood, first_step, second_step)):
        arm(axis, value)
    if (first_step, second_step) in UNDEFINED:
        raise ConfigError(UNDEFINED[(first_step, second_step)])


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_PARAMS)
    unknown = sorted(set(params or {}) - set(DEFAULT_PARAMS))
    if unknown:
        raise ConfigError(f"unknown arm parameters {unknown}; allowed: {sorted(DEFAULT_PARAMS)}")
    merged.update(params or {})
    return merged


def uses_closed_form(neighbourhood: str, first_step: str, second_step: str, params: Mapping[str, Any] | None = None) -> bool:
    """Whether the arm runs ImplicitSLIM's closed form (sparse products and ``I x d`` arrays only):
    ``(all, ease, implicit[_iterated])`` without ``sum_to_one`` and with the ``surrogate``."""
    p = _params(params)
    implicit = second_step != "explicit"
    sum_to_one = (not implicit) if p["sum_to_one"] is None else bool(p["sum_to_one"])
    return neighbourhood == "all" and first_step == "ease" and implicit and not sum_to_one and p["surrogate"]


def first_step_weights(X, neighbourhood: str, first_step: str, p: Mapping[str, Any], sum_to_one: bool, budget_bytes: int | None = None):
    """The weights ``S`` of a first step: dense (n_items, n_items) for ``"all"``, sparse CSC for ``"knn"``."""
    entry = arm("first_step", first_step)
    if neighbourhood == "knn":
        if not entry.knn:
            raise ConfigError(f"first_step {first_step!r} has no k-NN version; use neighbourhood 'all'")
        return knn_weights(
            X, p["k"], first_step, lam=p["lam"], reg=p["reg"], sum_to_one=sum_to_one, dtype=_dtype(p), budget_bytes=budget_bytes
        )
    return entry.build(X, p, sum_to_one, budget_bytes)


def arm_embeddings(
    X,
    d: int,
    neighbourhood: str,
    first_step: str,
    second_step: str,
    params: Mapping[str, Any] | None = None,
    initial: np.ndarray | None = None,
    seed: int = 0,
    budget_bytes: int | None = None,
) -> np.ndarray:
    """Item embeddings of one ablation arm.

    Parameters
    ----------
    X : scipy sparse, shape (n_users, n_items)
        Training matrix (training users only).
    d : int
        Embedding dimension.
    neighbourhood, first_step, second_step : str
        The arm (see the module docstring).
    params : mapping, optional
        Overrides of :data:`DEFAULT_PARAMS`; unknown keys raise :class:`ConfigError`.
    initial : ndarray, shape (n_items, d), optional
        Input embeddings ``E₀`` of the implicit steps (default: :func:`random_embeddings` with ``seed``).
    seed : int
        Seed of the default ``E₀``.
    budget_bytes : int, optional
        Memory budget; arms whose dense arrays do not fit raise :class:`MemoryBudgetError` (with
        the estimate) before allocating.

    Returns
    -------
    ndarray, shape (n_items, d)
    """
    validate_arm(neighbourhood, first_step, second_step)
    p = _params(params)
    n_items = X.shape[1]
    implicit = second_step != "explicit"
    sum_to_one = (not implicit) if p["sum_to_one"] is None else bool(p["sum_to_one"])
    E0 = random_embeddings(n_items, d, seed) if initial is None else np.asarray(initial)
    if E0.shape != (n_items, d):
        raise ConfigError(f"initial embeddings have shape {E0.shape}, expected ({n_items}, {d})")
    if uses_closed_form(neighbourhood, first_step, second_step, p):
        if second_step == "implicit":
            return implicit_slim(E0, X, p["lam"], p["alpha"], p["threshold"])
        return iterate_implicit_slim(E0, X, p["lam"], p["alpha"], p["n_iter"], p["tol"], p["threshold"]).embeddings
    S = first_step_weights(X, neighbourhood, first_step, p, sum_to_one, budget_bytes)
    mask = _popularity_mask(X, p["threshold"]) if implicit else None
    return arm("second_step", second_step).build(S, E0, p, mask, budget_bytes)


def reference_embeddings(name: str, X, d: int, seed: int = 0) -> np.ndarray:
    """Reference arms (``(n_items, d)`` embeddings without an item–item model): see :data:`ARMS`."""
    return arm("reference", name).build(X, d, seed)
