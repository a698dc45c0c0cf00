"""The one interface every islim recommender implements.

A recommender is a small class in the scikit-learn style: hyper-parameters are keyword
arguments of the constructor (with defaults), :meth:`Recommender.fit` learns from the
``(n_users, n_items)`` training matrix, fitted state lives in attributes ending in ``_``, and
:meth:`Recommender.score_batch` scores a batch of users.

Two ways of scoring users are supported, declared by :attr:`Recommender.user_scoring`:

* ``"fold_in"`` — a user is scored from its interaction row alone (strong generalisation: the
  evaluated users were never seen in training; EASE, MF, PLRec, the autoencoders);
* ``"known_users"`` — a user is scored by its row index in the training matrix (the per-user
  hold-out protocol: graph models keep one embedding per training user); ``score_batch`` then
  receives the users' indices as well as their rows.

Training with validation: ``fit(X, validate=...)`` calls ``validate(model)`` after every epoch
(``validate`` returns a mapping of metric names to values, e.g. ``{"ndcg@100": 0.41, ...}``),
records one :data:`history_ <Recommender.history_>` row per call, stops early by the model's
own rule on ``monitor`` and restores the best epoch. :class:`EpochHistory` keeps those rows in
the same format for every model.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from islim.errors import ConfigError

#: ``validate(model) -> {metric: value}``: validation metrics of the model in its current state.
Validator = Callable[["Recommender"], Mapping[str, float]]

#: How a model scores users: from their rows (``"fold_in"``) or by training-user index (``"known_users"``).
USER_SCORING = ("fold_in", "known_users")

#: The metric that selects the best epoch unless ``fit(monitor=...)`` says otherwise.
DEFAULT_MONITOR = "ndcg@100"


class Recommender(ABC):
    """Base class of every recommender.

    Subclasses set the class attribute :attr:`user_scoring` and implement :meth:`fit` and
    :meth:`score_batch`; hyper-parameters are constructor keyword arguments stored under the same
    names, so :meth:`get_params`, :meth:`set_params` and :meth:`default_params` work unchanged.

    Attributes
    ----------
    history_ : list of dict
        After :meth:`fit` with ``validate``: one row per validated epoch with ``epoch`` (int;
        negative for initialisation steps), ``wall_seconds`` (seconds since ``fit`` began,
        set-up such as an initial SVD or ImplicitSLIM included, at the end of the epoch's
        validation), ``train_loss`` (NaN for models without a
        stochastic loss) and ``val_<metric>`` for every metric ``validate`` returned.
    best_epoch_ : int or None
        The epoch whose state the model holds after :meth:`fit` (the best one on ``monitor``;
        the last one without ``validate``).
    """

    #: ``"fold_in"`` or ``"known_users"`` (see the module docstring).
    user_scoring: ClassVar[str] = "fold_in"

    # ------------------------------------------------------------ parameters
    @classmethod
    def parameter_names(cls) -> list[str]:
        """Names of the hyper-parameters: the constructor's keyword arguments."""
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Every hyper-parameter with its default (a fresh deep copy)."""
        signature = inspect.signature(cls.__init__)
        return {
            name: copy.deepcopy(parameter.default)
            for name, parameter in signature.parameters.items()
            if name != "self" and parameter.default is not inspect.Parameter.empty
        }

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The hyper-parameters of this model by name (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self.parameter_names()}

    def set_params(self, **params: Any) -> Recommender:
        """Set hyper-parameters by name; an unknown name raises :class:`~islim.errors.ConfigError`."""
        unknown = sorted(set(params) - set(self.parameter_names()))
        if unknown:
            raise ConfigError(f"unknown parameters {unknown} for {type(self).__name__}; allowed: {self.parameter_names()}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _store_params(self, arguments: Mapping[str, Any]) -> None:
        """Store the constructor's arguments (its ``locals()``) as attributes, scikit-learn style."""
        for name in self.parameter_names():
            setattr(self, name, arguments[name])

    # --------------------------------------------------------------- memory
    @classmethod
    def memory_bytes(cls, n_users: int, n_items: int, params: Mapping[str, Any], grid: Mapping[str, list]) -> int:
        """Upper estimate of the bytes one fit holds besides the training data and one evaluation
        block, for the workflow's memory requests (:mod:`islim.resources`).

        Parameters
        ----------
        n_users, n_items : int
            Training users and items.
        params : mapping
            The run's settings over :meth:`default_params`.
        grid : mapping
            The run's grid (``{name: [values]}``); the largest candidate of a size counts
            (:func:`largest`).

        Returns
        -------
        int
            Bytes; the base class counts nothing (a model whose state is small).
        """
        return 0

    # ------------------------------------------------------------- training
    @abstractmethod
    def fit(
        self,
        X: sp.spmatrix,
        validate: Validator | None = None,
        *,
        monitor: str = DEFAULT_MONITOR,
        checkpoint: str | None = None,
        progress: bool = False,
    ) -> Recommender:
        """Learn from the training users' feedback.

        Parameters
        ----------
        X : scipy.sparse matrix, shape (n_users, n_items)
            Binary training feedback (training users only under strong generalisation).
        validate : callable, optional
            ``validate(model) -> {metric: value}`` called after every epoch; enables early
            stopping on ``monitor`` and restoring the best epoch, and fills :attr:`history_`.
        monitor : str
            The key of ``validate``'s result that selects the best epoch (higher is better).
        checkpoint : path, optional
            Where a model that trains for long saves its state after every epoch and resumes
            from; models that train in seconds ignore it.
        progress : bool
            Show progress bars.

        Returns
        -------
        Recommender
            ``self``.
        """

    # -------------------------------------------------------------- scoring
    @abstractmethod
    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item for a batch of users.

        Parameters
        ----------
        rows : scipy.sparse CSR matrix, shape (b, n_items)
            The users' known interactions (fold-in rows of held-out users, or training rows).
        users : ndarray of int, shape (b,), optional
            The users' row indices in the training matrix; required by ``"known_users"`` models,
            ignored by ``"fold_in"`` ones.

        Returns
        -------
        ndarray, shape (b, n_items), float32
            Scores; already-seen items are *not* masked (the evaluator does that).
        """


class OneStepRecommender(Recommender):
    """A recommender fitted in one step (a closed form or one pass over the data): its only epoch
    is 0, validated once when ``fit`` is given ``validate``.

    Subclasses implement :meth:`_fit_step`; ``fit``'s extra keyword arguments are passed to it
    (e.g. EASE's precomputed ``gram``). ``checkpoint`` and ``progress`` are ignored.
    """

    def fit(
        self,
        X: sp.spmatrix,
        validate: Validator | None = None,
        *,
        monitor: str = DEFAULT_MONITOR,
        checkpoint: str | None = None,
        progress: bool = False,
        **fit_params: Any,
    ) -> OneStepRecommender:
        """Fit in one step (see :meth:`_fit_step`), then validate once; ``history_`` has at most
        one row (epoch 0) and ``best_epoch_`` is 0."""
        history = EpochHistory(validate, monitor)
        self._fit_step(X, **fit_params)
        if validate is not None:
            history.record(self, 0)
        self.history_, self.best_epoch_ = history.rows, 0
        return self

    @abstractmethod
    def _fit_step(self, X: sp.spmatrix, **fit_params: Any) -> None:
        """Learn the fitted attributes from the ``(n_users, n_items)`` training matrix ``X``."""


def largest(params: Mapping[str, Any], grid: Mapping[str, list], key: str) -> Any:
    """The setting ``key`` of ``params``, or the largest candidate if ``grid`` searches it."""
    return max([params[key], *grid.get(key, [])])


class EpochHistory:
    """The :attr:`Recommender.history_` rows of one ``fit``, timed from the start of ``fit``.

    The clock counts everything a variant does before its first epoch (input conversion, network
    construction, an initial SVD or ImplicitSLIM extraction), so that curves of different variants
    compare total cost: create the history first thing in ``fit``, or pass ``started``.

    Parameters
    ----------
    validate : callable, optional
        The ``validate`` argument of ``fit``; without it :meth:`record` only returns ``None``.
    monitor : str
        The metric of ``validate``'s result that :meth:`record` returns.
    rows : list of dict, optional
        Rows of earlier epochs (a resumed run); ``elapsed`` seconds are added to the clock.
    elapsed : float
        Seconds spent in earlier sessions of a resumed run.
    started : float, optional
        ``time.perf_counter()`` when ``fit`` began (default: now), for a history created after
        some set-up.
    """

    def __init__(
        self,
        validate: Validator | None,
        monitor: str = DEFAULT_MONITOR,
        rows: list[dict[str, float]] | None = None,
        elapsed: float = 0.0,
        started: float | None = None,
    ):
        self.validate = validate
        self.monitor = monitor
        self.rows: list[dict[str, float]] = list(rows or [])
        self._start = (time.perf_counter() if started is None else started) - elapsed

    @classmethod
    def resuming(
        cls, validate: Validator | None, monitor: str, resumed: Mapping[str, Any] | None, started: float | None = None
    ) -> EpochHistory:
        """The history of a ``fit`` that may continue a checkpoint: ``resumed`` is the progress the
        checkpoint saved (its ``rows`` and ``elapsed`` seconds are carried on), or ``None`` for a
        fresh start."""
        if not resumed:
            return cls(validate, monitor, started=started)
        return cls(validate, monitor, resumed["rows"], resumed["elapsed"], started=started)

    def elapsed(self) -> float:
        """Seconds since training began (including the time of resumed sessions)."""
        return time.perf_counter() - self._start

    def record(self, model: Recommender, epoch: int, train_loss: float = math.nan) -> float | None:
        """Validate ``model`` after ``epoch``, append the row and return the ``monitor`` value.

        Without ``validate`` a row with the loss alone is appended and ``None`` returned.
        """
        metrics = dict(self.validate(model)) if self.validate is not None else {}
        if self.validate is not None and self.monitor not in metrics:
            raise ConfigError(f"monitor {self.monitor!r} is not among the validation metrics {sorted(metrics)}")
        row = {"epoch": epoch, "wall_seconds": self.elapsed(), "train_loss": float(train_loss)}
        row.update({f"val_{name}": float(value) for name, value in metrics.items()})
        self.rows.append(row)
        return metrics[self.monitor] if self.validate is not None else None
