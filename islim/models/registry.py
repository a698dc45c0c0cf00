"""The model registry: every recommender islim knows, in one place.

Each :class:`ModelSpec` names a :class:`~islim.models.base.Recommender` class and says how the
workflow and the report treat it: its display name, its colour and marker in figures, whether it
can use a GPU, which evaluation protocols it supports and which workflow rule trains it.
Everything else is derived from :data:`MODELS`: the wildcard constraints and the GPU resource of
the rules, the model names the config schema accepts (checked by a test), display names
(:mod:`islim.names`) and figure styles. Default hyper-parameters come from the class itself
(:func:`default_params`), never repeated here.

Importing this module is cheap (no numpy, no torch): the classes are imported on first use, so the
Snakefile can read the registry while it builds the DAG.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from islim.errors import ConfigError

if TYPE_CHECKING:
    from islim.models.base import Recommender

#: Evaluation protocols: ``strong`` = held-out users scored from fold-in rows (Liang et al., 2018);
#: ``weak`` = per-user hold-out, every user's held-out items scored from its training state (He et al., 2020).
PROTOCOLS = ("strong", "weak")
#: The protocols of a model that scores a user from its fold-in rows alone (EASE, MF, popularity,
#: ItemKNN): under ``weak`` the fold-in rows are the user's own known interactions
#: (:meth:`islim.data.split.Split.held_out`), so the same scoring serves both.
FOLD_IN_PROTOCOLS = PROTOCOLS


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Parameters
    ----------
    name : str
        Config and file name (``results/<dataset>/runs/<name>-<variant>.json``).
    display_name : str
        Name in tables and figures.
    estimator : str
        ``"module:Class"`` of the :class:`~islim.models.base.Recommender` subclass.
    colour : int
        Index into the figures' colour-blind palette (:data:`islim.plotting.style.PALETTE`).
    marker : str
        Matplotlib marker of the model in figures.
    gpu : bool
        The model trains on a GPU when it gets one (the ``train`` rule asks SLURM for one).
    protocols : tuple of str
        Evaluation protocols the model supports (see :data:`PROTOCOLS`).
    rule : str
        The workflow rule that trains it: ``"train"`` (model × variant runs, grid searched on
        validation) or ``"ease"`` (EASE's own λ sweep).
    stochastic : bool
        Its result depends on a random seed (random initial embeddings or weights, shuffled
        mini-batches): every grid point trains once per seed of the config's ``seeds`` and the
        results are averaged (:mod:`islim.training`). PLRec is stochastic because its ImplicitSLIM
        variant starts from Gaussian embeddings (its SVD start only fixes a randomised range
        finder's start).
    """

    name: str
    display_name: str
    estimator: str
    colour: int
    marker: str
    gpu: bool = False
    protocols: tuple[str, ...] = ("strong",)
    rule: str = "train"
    stochastic: bool = False


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("ease", "EASE", "islim.models.ease:EASE", colour=9, marker="s", protocols=FOLD_IN_PROTOCOLS, rule="ease"),
        ModelSpec(
            "mf", "MF", "islim.models.linear:MatrixFactorization", colour=7, marker="o", protocols=FOLD_IN_PROTOCOLS, stochastic=True
        ),
        ModelSpec("plrec", "PLRec", "islim.models.linear:PLRec", colour=11, marker="^", stochastic=True),
        ModelSpec("multvae", "Mult-VAE", "islim.models.deep.estimator:MultVAEModel", colour=0, marker="v", gpu=True, stochastic=True),
        ModelSpec("recvae", "RecVAE", "islim.models.deep.estimator:RecVAEModel", colour=1, marker="D", gpu=True, stochastic=True),
        ModelSpec("hvamp", "H+Vamp(Gated)", "islim.models.deep.estimator:HVampModel", colour=6, marker="P", gpu=True, stochastic=True),
        ModelSpec("popularity", "Popularity", "islim.models.popularity:Popularity", colour=3, marker="X", protocols=FOLD_IN_PROTOCOLS),
        ModelSpec("itemknn", "ItemKNN", "islim.models.itemknn:ItemKNN", colour=4, marker="*", protocols=FOLD_IN_PROTOCOLS),
        ModelSpec(
            "lightgcn",
            "LightGCN",
            "islim.models.graph.lightgcn:LightGCN",
            colour=8,
            marker="h",
            gpu=True,
            protocols=("weak",),
            stochastic=True,
        ),
        ModelSpec(
            "ultragcn",
            "UltraGCN",
            "islim.models.graph.ultragcn:UltraGCN",
            colour=5,
            marker="p",
            gpu=True,
            protocols=("weak",),
            stochastic=True,
        ),
    )
}

#: Models with published numbers but no islim implementation (shown by their display name).
PUBLISHED_ONLY: dict[str, str] = {"multdae": "Mult-DAE"}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; an unknown name raises :class:`ConfigError` listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered models: {sorted(MODELS)}") from None


def trained_by(rule: str) -> list[str]:
    """Names of the models the workflow rule ``rule`` trains, in registry order."""
    return [name for name, spec in MODELS.items() if spec.rule == rule]


def model_class(name: str) -> type[Recommender]:
    """The estimator class of model ``name`` (imported on first use).

    Only the functions that load classes (this one, :func:`default_params`, :func:`build_model`)
    import the model modules; a module that reads names, styles or flags from :data:`MODELS`
    depends on none of them (:mod:`islim.codehash` attributes the ``"module:Class"`` strings to
    this function, the one calling ``import_module``).
    """
    module, _, attribute = model_spec(name).estimator.partition(":")
    return getattr(importlib.import_module(module), attribute)


def default_params(name: str) -> dict[str, Any]:
    """Every hyper-parameter of model ``name`` with its default, from the class."""
    return model_class(name).default_params()


def build_model(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    """An unfitted model ``name`` with ``params`` over the defaults; unknown keys raise :class:`ConfigError`."""
    cls = model_class(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(cls.parameter_names()))
    if unknown:
        raise ConfigError(f"unknown parameters {unknown} for model {name!r}; allowed: {sorted(cls.parameter_names())}")
    return cls(**params)


def uses_gpu(name: str) -> bool:
    """Whether model ``name`` trains on a GPU when one is available (SLURM routing)."""
    return model_spec(name).gpu
