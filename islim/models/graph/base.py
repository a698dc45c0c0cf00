"""What the graph recommenders share: layer-0 embedding tables, the mini-batch training loop with
per-epoch validation, early stopping, checkpoints and ImplicitSLIM, and scoring of known users.

A model is a :class:`GraphRecommender` subclass (hyper-parameters as constructor keywords) that
builds a :class:`GraphNetwork` — the user and item tables plus the model's fixed graph quantities,
its batch loss and its final embeddings. One epoch visits every training interaction once in a
random order, in batches of ``batch_size`` positives, each with the model's number of sampled
negatives (:func:`~islim.models.graph.structure.training_triples`), and takes one Adam step per
batch on the loss plus the ImplicitSLIM penalty (:mod:`islim.models.graph.implicit`).

Reproducibility (as the deep models, :mod:`islim.models.deep.estimator`): ``torch.manual_seed(seed)``
before the tables are drawn (on the CPU, so every device starts from the same tables), a
``numpy.random.Generator`` seeded with ``seed`` for the order of interactions and the negatives, and
deterministic torch algorithms during ``fit``. Seeded runs on the CPU are bit-identical.

Interruptions: with ``checkpoint=path`` the complete state is saved after every epoch and a run
with the same parameters, data and code resumes after the last saved epoch
(:mod:`islim.models.deep.checkpoint`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import time
import typing
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from islim.codehash import reachable_modules
from islim.errors import ConfigError, DataFormatError, IslimError
from islim.memory import dense_bytes, ensure_fits
from islim.models.base import DEFAULT_MONITOR, EpochHistory, Recommender, Validator, largest
from islim.models.deep.base import check_types
from islim.models.deep.checkpoint import Checkpoint, run_fingerprint
from islim.models.deep.trainer import BestEpoch, deterministic_algorithms, resolve_device
from islim.models.graph.implicit import EmbeddingTargets, GraphImplicitSLIM
from islim.models.graph.structure import NegativeSampler, binary_matrix, training_triples
from islim.numerics import require_finite

log = logging.getLogger(__name__)

#: The ``implicit_slim`` default of every graph model: no ImplicitSLIM (the ``baseline`` variant).
DEFAULT_IMPLICIT_SLIM: dict[str, Any] = GraphImplicitSLIM().as_dict()


@functools.cache
def code_digest(module_file: str) -> str:
    """sha256 of the islim sources a fit of the model defined in ``module_file`` executes (the
    module's import graph, :func:`islim.codehash.reachable_modules`), for checkpoint fingerprints: a
    change to any of them makes older checkpoints unusable."""
    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in reachable_modules(Path(module_file).resolve(), package):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``table[index]`` of a ``(n, d)`` table for an int64 index of any shape (result
    ``index.shape + (d,)``), by ``index_select``, whose backward was the fastest on the CPU."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[1])


def batch_l2(*rows: torch.Tensor) -> torch.Tensor:
    """``½ Σ ‖rows‖²_F / b``: the L2 penalty of a batch's embedding rows, ``b`` = rows of the first."""
    return sum(r.square().sum() for r in rows) / (2 * rows[0].shape[0])


class GraphNetwork(nn.Module, ABC):
    """Layer-0 user and item embeddings ``(U, d)`` and ``(I, d)``, drawn from ``N(0, init_std²)``.

    Subclasses keep their fixed graph quantities as plain tensor attributes (not parameters or
    buffers: the state of a network is its two tables).
    """

    #: How the batch loss is reduced over the batch's positives: ``"mean"`` or ``"sum"``.
    reduction: ClassVar[str] = "mean"

    def __init__(self, n_users: int, n_items: int, n_factors: int, init_std: float, device: torch.device):
        super().__init__()
        self.user = nn.Parameter(torch.empty(n_users, n_factors).normal_(std=init_std).to(device))
        self.item = nn.Parameter(torch.empty(n_items, n_factors).normal_(std=init_std).to(device))

    def tables(self) -> dict[str, nn.Parameter]:
        """The layer-0 tables by side (``"user"``, ``"item"``)."""
        return {"user": self.user, "item": self.item}

    @abstractmethod
    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """The batch objective (scalar with grad) for int64 ``users`` (b,), ``positives`` (b,) and
        ``negatives`` (b, n), reduced over the positives by :attr:`reduction`."""

    @abstractmethod
    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User ``(U, d)`` and item ``(I, d)`` embeddings whose dot products are the scores."""


class GraphRecommender(Recommender):
    """Base estimator of the graph recommenders; scores *known* users (``user_scoring = "known_users"``).

    Subclasses define ``__init__`` with their hyper-parameters (including the common ones read
    here: ``n_factors``, ``lr``, ``batch_size``, ``n_epochs``, ``patience``, ``init_std``, ``seed``,
    ``device``, ``implicit_slim``), call ``self._store_params(locals())`` and
    :meth:`_check_params`, and implement :meth:`_network` and :meth:`_n_negatives`.

    Attributes
    ----------
    network_ : GraphNetwork
        The trained tables (best epoch) on the training device.
    user_factors_, item_factors_ : torch.Tensor, shapes (U, d) and (I, d)
        Final embeddings of the fitted state (scores are their dot products).
    targets_ : EmbeddingTargets
        The ImplicitSLIM targets and when they were computed.
    resumed_from_epoch_ : int or None
        The last epoch restored from ``checkpoint``, or ``None``.
    history_, best_epoch_
        See :class:`~islim.models.base.Recommender`.
    """

    user_scoring = "known_users"

    # ------------------------------------------------------------ parameters
    def _store_params(self, arguments) -> None:
        super()._store_params(arguments)
        self.implicit_slim = dict(self.implicit_slim) if isinstance(self.implicit_slim, dict) else self.implicit_slim
        self._check_params()

    def _check_params(self) -> GraphImplicitSLIM:
        """Check every hyper-parameter's type (the constructor's annotations) and range; returns the
        resolved ImplicitSLIM settings. Raises :class:`~islim.errors.ConfigError` naming the first bad one."""
        name = type(self).__name__
        params = self.get_params()
        kinds = {key: kind for key, kind in typing.get_type_hints(type(self).__init__).items() if key not in ("implicit_slim", "return")}
        check_types(name, kinds, params, self.default_params())
        for key, value in params.items():
            if kinds.get(key) is float and not value > 0 and key in self._POSITIVE:
                raise ConfigError(f"{name}: {key} must be > 0, got {value!r}")
            if kinds.get(key) is float and value < 0:
                raise ConfigError(f"{name}: {key} must be >= 0, got {value!r}")
            least = 0 if key in self._MAY_BE_ZERO else 1
            if kinds.get(key) is int and value < least:
                raise ConfigError(f"{name}: {key} must be an integer >= {least}, got {value!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"{name}: patience must be null (no early stopping) or an integer >= 1, got {self.patience!r}")
        return GraphImplicitSLIM.from_mapping(self.implicit_slim)

    #: Float hyper-parameters that must be strictly positive (the others must be >= 0).
    _POSITIVE: ClassVar[tuple[str, ...]] = ("lr", "init_std")
    #: Integer hyper-parameters that may be 0 (the others must be >= 1).
    _MAY_BE_ZERO: ClassVar[tuple[str, ...]] = ("seed",)

    @classmethod
    def memory_bytes(cls, n_users, n_items, params, grid) -> int:
        """float32 bytes of the embedding tables ``(U + I) d`` six times (weights, gradients, Adam's
        two moments, the kept best state, the final embeddings), twice more with ImplicitSLIM
        (targets) plus its ``8 max(U, I) d`` work arrays, and the model's own working set
        (:meth:`_work_bytes`). Structures proportional to the number of interactions (the graph,
        the sampler's index: a few times the training data) are not counted. Wrong settings raise
        :class:`~islim.errors.ConfigError` (as training would)."""
        cls(**params)
        for key, candidates in grid.items():
            for candidate in candidates:
                cls(**{**params, key: candidate})
        sizes = {**cls.default_params(), **params}
        sizes.update({key: largest(sizes, grid, key) for key in grid if isinstance(sizes[key], int | float)})
        d = sizes["n_factors"]
        nbytes = 4 * 6 * (n_users + n_items) * d
        if GraphImplicitSLIM.from_mapping(sizes["implicit_slim"]).sides != "none":
            nbytes += 4 * (2 * (n_users + n_items) * d + 8 * max(n_users, n_items) * d)
        return nbytes + cls._work_bytes(n_users, n_items, sizes)

    @classmethod
    def _work_bytes(cls, n_users: int, n_items: int, params: dict[str, Any]) -> int:
        """Bytes of the model's working set beyond the tables, for resolved ``params``."""
        return 0

    # ------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _network(self, X: sp.csr_matrix, device: torch.device) -> GraphNetwork:
        """The untrained network for the binary training matrix ``X`` (tables drawn on the CPU)."""

    @abstractmethod
    def _n_negatives(self) -> int:
        """Sampled negatives per positive."""

    # ------------------------------------------------------------ training
    def fit(
        self,
        X: sp.spmatrix,
        validate: Validator | None = None,
        *,
        monitor: str = DEFAULT_MONITOR,
        checkpoint: str | None = None,
        progress: bool = False,
    ) -> GraphRecommender:
        """Train with per-epoch validation and keep the best epoch (see :class:`Recommender.fit`).

        ``validate`` scores the model's users through :meth:`score_batch` (with their training-row
        ids). Early stopping: ``patience`` epochs without a strict improvement of ``monitor``
        (``None``: all ``n_epochs`` run); the best epoch's tables are restored.

        Raises
        ------
        NumericalError
            The training loss or an ImplicitSLIM update is NaN or infinite (the message names the epoch).
        DataFormatError
            ``X`` is not sparse, is empty, or a user interacted with every item.
        """
        started = time.perf_counter()
        settings = self._check_params()
        X = binary_matrix(X)
        device = resolve_device(self.device)
        with deterministic_algorithms():
            torch.manual_seed(self.seed)
            rng = np.random.default_rng(self.seed)
            self.n_users_, self.n_items_ = X.shape
            sampler = NegativeSampler(X)
            network = self._network(X, device)
            targets = EmbeddingTargets(settings, X)
            targets.initialise(network.tables())
            optimizer = self._optimizer(network, device)
            best = BestEpoch(self.patience)
            stateful = {"model": network, "optimizer": optimizer, "best": best, "targets": targets}
            store = None
            if checkpoint is not None:
                fingerprint = run_fingerprint(f"{type(self).__name__}@{code_digest(inspect.getfile(type(self)))}", self.get_params(), [X])
                store = Checkpoint(Path(checkpoint), fingerprint, stateful, rng, device)
            resumed = store.resume() if store else None
            history = EpochHistory.resuming(validate, monitor, resumed, started)
            if resumed:
                log.info("%s: resuming from %s after epoch %d", type(self).__name__, checkpoint, resumed["epoch"])
            self.network_ = network
            epochs = range(resumed["epoch"] + 1 if resumed else 0, 0 if resumed and resumed["finished"] else self.n_epochs)
            for epoch in tqdm(epochs, desc=type(self).__name__, disable=not progress):
                targets.on_epoch_start(network.tables(), epoch)
                train_loss = self._train_epoch(network, optimizer, targets, X, sampler, rng, device, progress, epoch)
                require_finite(train_loss, f"the training loss at epoch {epoch}")
                self._set_factors(network)
                score = history.record(self, epoch, train_loss)
                stop = score is not None and best.update(epoch, score, network)
                if store is not None:
                    done = stop or epoch == self.n_epochs - 1
                    store.save({"epoch": epoch, "rows": history.rows, "elapsed": history.elapsed(), "finished": done})
                if stop:
                    break
            best.restore(network)
        self._set_factors(network)
        self.targets_ = targets
        self.history_ = history.rows
        self.best_epoch_ = best.epoch if validate is not None else int(history.rows[-1]["epoch"])
        self.resumed_from_epoch_ = resumed["epoch"] if resumed else None
        return self

    def _optimizer(self, network: GraphNetwork, device: torch.device) -> torch.optim.Adam:
        """Adam over both tables (the fused kernel on CPU and CUDA)."""
        return torch.optim.Adam(network.parameters(), lr=self.lr, fused=device.type in ("cpu", "cuda"))

    def _train_epoch(self, network, optimizer, targets, X, sampler, rng, device, progress, epoch) -> float:
        """One epoch of Adam steps; returns the mean objective (loss + penalty) per training interaction."""
        network.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        n_batches = -(-X.nnz // self.batch_size)
        per_positive = network.reduction == "sum"
        for users, positives, negatives in tqdm(
            training_triples(X, sampler, self.batch_size, self._n_negatives(), rng),
            total=n_batches,
            desc=f"epoch {epoch}",
            leave=False,
            disable=not progress,
        ):
            loss = self._step(network, optimizer, targets, users, positives, negatives, device)
            total += loss if per_positive else loss * len(users)
        return float(total) / X.nnz

    @staticmethod
    def _step(network, optimizer, targets, users, positives, negatives, device) -> torch.Tensor:
        """One Adam step on a batch of ``(users, positives, negatives)`` (numpy int64); returns the
        detached objective (loss + penalty, the penalty counted once per positive of a sum-reduced
        loss). No host synchronisation."""
        users, positives, negatives = (torch.as_tensor(a, device=device) for a in (users, positives, negatives))
        optimizer.zero_grad(set_to_none=True)
        loss = network.loss(users, positives, negatives)
        penalty = targets.penalty(network.tables())
        if penalty is not None:
            loss = loss + penalty * (len(users) if network.reduction == "sum" else 1)
        loss.backward()
        optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def _set_factors(self, network: GraphNetwork) -> None:
        network.eval()
        self.user_factors_, self.item_factors_ = (t.detach() for t in network.final_embeddings())

    # ------------------------------------------------------------ scoring
    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores ``(b, n_items)`` float32 of training users: dot products of their final embeddings
        with every item's (computed on the training device).

        Parameters
        ----------
        rows : scipy.sparse matrix, shape (b, n_items)
            The users' known interactions (only their item count is checked: exclusion is the
            evaluator's job).
        users : ndarray of int, shape (b,)
            The users' rows in the training matrix; required.
        """
        if getattr(self, "user_factors_", None) is None:
            raise IslimError(f"{type(self).__name__} is not fitted yet; call fit(X_train) before scoring")
        if rows.shape[1] != self.n_items_:
            raise DataFormatError(f"expected fold-in rows over {self.n_items_} items, got {rows.shape[1]} columns")
        if users is None:
            raise DataFormatError(
                f"{type(self).__name__} scores known users: pass users= (their training-row ids), e.g. "
                "holdout_validator(..., user_ids=...) under the per-user hold-out protocol"
            )
        users = np.ascontiguousarray(users)
        if users.shape != (rows.shape[0],) or not np.issubdtype(users.dtype, np.integer):
            raise DataFormatError(f"users must be {rows.shape[0]} integer training-row ids (one per row), got {users.dtype} {users.shape}")
        if len(users) and (users.min() < 0 or users.max() >= self.n_users_):
            raise DataFormatError(f"users must be training rows in [0, {self.n_users_}), got ids from {users.min()} to {users.max()}")
        ensure_fits(dense_bytes((len(users), self.n_items_), 4, 2), f"score batch ({len(users)} x {self.n_items_} float32)")
        index = torch.as_tensor(users, dtype=torch.int64, device=self.user_factors_.device)
        with torch.no_grad():
            scores = self.user_factors_[index] @ self.item_factors_.T
        return scores.float().cpu().numpy()
