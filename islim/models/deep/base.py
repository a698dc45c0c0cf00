"""The interface every deep recommender implements for :mod:`islim.models.deep.trainer`."""

from __future__ import annotations

import math
import numbers
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from islim.errors import ConfigError
from islim.models.deep.layers import Rows


@dataclass
class TrainState:
    """Where training is: ``epoch`` (0-based) and ``step`` (optimiser updates done so far, all phases)."""

    epoch: int = 0
    step: int = 0


@dataclass
class LossTerms:
    """One batch's objective: ``total`` (scalar to minimise, with grad) and its detached scalar parts
    averaged over users: ``nll`` (negative log-likelihood), ``kl`` (unweighted KL term) and
    ``kl_weight`` (β; for RecVAE the mean of the per-user weights γ·|u|). Tensors stay on the device
    so that no host synchronisation happens per batch."""

    total: torch.Tensor
    nll: torch.Tensor
    kl: torch.Tensor
    kl_weight: float | torch.Tensor


@dataclass
class Phase:
    """A part of one training epoch: ``n_passes`` passes over all training users updating only
    ``parameters`` (one Adam optimiser per phase) with input dropout ``dropout``; ``on_end`` runs after
    the last pass (RecVAE refreshes its prior there)."""

    name: str
    parameters: list[nn.Parameter]
    n_passes: int = 1
    dropout: float = 0.0
    on_end: Callable[[], None] | None = field(default=None, repr=False)


class DeepRecommender(nn.Module, ABC):
    """A variational autoencoder over user rows of the ``(n_users, n_items)`` feedback matrix.

    Subclasses declare ``MODEL_DEFAULTS`` (constructor keyword arguments besides ``n_items``) and
    ``TRAINING_DEFAULTS`` (``lr``, ``batch_size``, ``n_epochs``, ``patience``, ``normalize_grad``), both
    documented with their sources.
    """

    MODEL_DEFAULTS: ClassVar[dict[str, Any]] = {}
    TRAINING_DEFAULTS: ClassVar[dict[str, Any]] = {}

    @classmethod
    @abstractmethod
    def item_weight_count(cls, n_items: int, params: Mapping[str, Any]) -> int:
        """Number of item-sized weights (those growing with ``n_items``) for constructor
        arguments ``params`` (memory requests of the workflow)."""

    @abstractmethod
    def forward(self, x: Rows) -> torch.Tensor:
        """``(b, n_items)`` scores (decoder logits) of the posterior mean, no dropout, no sampling."""

    @abstractmethod
    def loss(self, x: Rows, state: TrainState, dropout: float) -> LossTerms:
        """The negative ELBO of the batch, averaged over its users. Samples the latent codes and
        applies input ``dropout`` only in training mode (in eval mode ``z = μ``)."""

    @abstractmethod
    def training_phases(self) -> list[Phase]:
        """The phases of one epoch, in order."""

    @abstractmethod
    def implicit_slim_targets(self) -> dict[str, nn.Parameter]:
        """Item-embedding weights that ImplicitSLIM may replace, each item-major ``(n_items, d)``:
        the first encoder layer(s) and the last decoder layer (spec §3.6)."""


def describe_type(kind: Any) -> str:
    """A type annotation in words: ``int`` → "an integer", ``float | None`` → "a finite number or null"."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return " or ".join(describe_type(arg) for arg in typing.get_args(kind))
    if typing.get_origin(kind) in (list, tuple, Sequence):
        return f"a list of {describe_type(typing.get_args(kind)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "null"}.get(kind, str(kind))


def has_type(value: Any, kind: Any) -> bool:
    """Whether ``value`` (as read from YAML) is of the annotated type ``kind``.

    ``int`` wants a whole number (not a boolean), ``float`` any finite number (not a boolean),
    ``bool`` a boolean, ``str`` a text; unions and ``Sequence[...]``/``list[...]`` of these.
    """
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        return any(has_type(value, arg) for arg in typing.get_args(kind))
    if origin in (list, tuple, Sequence):
        return isinstance(value, list | tuple) and all(has_type(item, typing.get_args(kind)[0]) for item in value)
    if kind is bool:
        return isinstance(value, bool | np.bool_)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_) and math.isfinite(value)
    if kind is type(None):
        return value is None
    return kind is Any or isinstance(value, kind)


def check_types(owner: str, kinds: Mapping[str, Any], values: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first of ``values`` that is not of its type in ``kinds``.

    Parameters
    ----------
    owner : str
        What the settings belong to, for the message (``"MultVAE"``, ``"implicit_slim"``).
    kinds : mapping
        Setting name → type annotation (see :func:`has_type`); names not listed are not checked.
    values, defaults : mapping
        The settings, and their defaults (shown as an example of the right type).
    """
    for name, value in values.items():
        if name in kinds and not has_type(value, kinds[name]):
            example = f", e.g. `{name}: {_yaml_scalar(defaults[name])}` (its default)" if name in defaults else ""
            quoted = " without quotes" if isinstance(value, str) else ""
            raise ConfigError(
                f"{owner} setting {name!r} must be {describe_type(kinds[name])}, got {value!r} ({type(value).__name__}); "
                f"write it{quoted} in the config's training.models settings (params, a variant or the grid){example}"
            )


def _yaml_scalar(value: Any) -> str:
    """``value`` as it is written in YAML (``None`` → ``null``, ``True`` → ``true``)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(list(value)) if isinstance(value, tuple) else str(value)


def check_positive(**values: float) -> None:
    """Raise :class:`ConfigError` naming the first argument that is not > 0."""
    for name, value in values.items():
        if value is None or not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value!r}")


def check_probability(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``0 <= value < 1`` (a dropout rate)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
