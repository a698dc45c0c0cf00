"""The torch recommenders as :class:`~islim.models.base.Recommender` estimators.

:class:`TorchRecommender` trains any :class:`~islim.models.deep.base.DeepRecommender` network
(its class attribute :attr:`TorchRecommender.network`) by mini-batch Adam with per-epoch
validation, early stopping, best-epoch restore and the ImplicitSLIM hook; :class:`MultVAEModel`,
:class:`RecVAEModel` and :class:`HVampModel` bind it to the three autoencoders.

Hyper-parameters are one flat set of keyword arguments: the network's constructor arguments, its
training settings and ``seed``, ``device`` and ``implicit_slim`` (see
:mod:`islim.models.deep.trainer`); :meth:`TorchRecommender.default_params` lists them with their
reference values.

Reproducibility: ``torch.manual_seed(seed)`` before building the network, a
``numpy.random.Generator`` seeded with ``seed`` for the user shuffles, and
``torch.use_deterministic_algorithms(True, warn_only=True)`` for the duration of ``fit``
(restored afterwards). Seeded runs on CPU are bit-identical; on CUDA, sparse backward kernels may
still use atomics (torch warns).

Interruptions: with ``checkpoint=path``, ``fit`` saves its complete state after every epoch
(:mod:`islim.models.deep.checkpoint`) and, when started again with the same parameters and
training data, resumes after the last saved epoch instead of epoch 0, with the same result as an
uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from islim.errors import DataFormatError, IslimError
from islim.models.base import DEFAULT_MONITOR, EpochHistory, Recommender, Validator, largest
from islim.models.deep.base import DeepRecommender, TrainState
from islim.models.deep.checkpoint import Checkpoint, run_fingerprint
from islim.models.deep.hooks import ImplicitSLIMConfig, ImplicitSLIMHook
from islim.models.deep.hvamp import HVamp
from islim.models.deep.multvae import MultVAE
from islim.models.deep.recvae import RecVAE
from islim.models.deep.trainer import (
    BestEpoch,
    EpochRunner,
    build_model,
    default_params,
    deterministic_algorithms,
    resolve_device,
    resolve_params,
    score_batch,
)
from islim.numerics import require_finite

log = logging.getLogger(__name__)


def _as_feedback(X) -> sp.csr_matrix:
    if not sp.issparse(X):
        raise DataFormatError(f"X must be a scipy.sparse (users, items) matrix, got {type(X).__name__}")
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.shape[0] == 0 or X.nnz == 0:
        raise DataFormatError(f"X {X.shape} has no interactions to train on")
    return X


def _check_item_columns(rows, n_items: int) -> None:
    """Refuse rows over another item vocabulary (e.g. a validation set of another split)."""
    if rows.shape[1] != n_items:
        raise DataFormatError(f"expected fold-in rows over {n_items} items, got {rows.shape[1]} columns")


class TorchRecommender(Recommender):
    """A recommender whose scores come from a torch network trained by mini-batch Adam.

    Parameters
    ----------
    **params
        Overrides of :meth:`default_params` (unknown keys raise
        :class:`~islim.errors.ConfigError`; the ``implicit_slim`` mapping merges key by key).

    Attributes
    ----------
    module_ : DeepRecommender
        The trained network, in eval mode on its training device, with the weights of the best
        epoch.
    params_ : dict
        The resolved parameters.
    resumed_from_epoch_ : int or None
        The last epoch restored from ``checkpoint``, or ``None``.
    history_, best_epoch_
        See :class:`~islim.models.base.Recommender`.
    """

    #: The network class this estimator trains.
    network: ClassVar[type[DeepRecommender]]

    def __init__(self, **params: Any):
        self.params = resolve_params(self.network, params)

    @classmethod
    def parameter_names(cls) -> list[str]:
        return list(default_params(cls.network))

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return default_params(cls.network)

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return dict(self.params)

    def set_params(self, **params: Any) -> TorchRecommender:
        self.params = resolve_params(self.network, {**self.params, **params})
        return self

    @classmethod
    def memory_bytes(cls, n_users, n_items, params, grid) -> int:
        """float32 on the CPU (a GPU holds the same there): the network's item-sized weights ``P``
        (:meth:`DeepRecommender.item_weight_count`) five times (weights, gradients, Adam's two
        moments, the kept best state), a training batch of ``b x I`` six times (input, dropout mask,
        logits, softmax and their gradients), and with ImplicitSLIM (an ``implicit_slim`` mode other
        than ``none``) eight ``I x H`` float32 work arrays. Settings and grid candidates of the
        wrong type raise :class:`~islim.errors.ConfigError` (as training would)."""
        resolve_params(cls.network, params)
        for key, candidates in grid.items():
            for candidate in candidates:
                resolve_params(cls.network, {**params, key: candidate})
        sizes = {key: largest(params, grid, key) for key in cls.network.MODEL_DEFAULTS if isinstance(params[key], int | float)}
        sizes.update({key: value for key, value in params.items() if key not in sizes})
        batch = min(largest(params, grid, "batch_size"), n_users)
        nbytes = 4 * (5 * cls.network.item_weight_count(n_items, sizes) + 6 * batch * n_items)
        if (params.get("implicit_slim") or {}).get("mode", "none") != "none":
            nbytes += 4 * 8 * n_items * sizes["hidden_dim"]
        return nbytes

    def fit(
        self,
        X: sp.spmatrix,
        validate: Validator | None = None,
        *,
        monitor: str = DEFAULT_MONITOR,
        checkpoint: str | None = None,
        progress: bool = False,
    ) -> TorchRecommender:
        """Train with per-epoch validation and keep the best epoch (see :class:`Recommender.fit`).

        ``X`` is never densified: each step copies one batch of rows (``O(nnz_batch)``).
        ``checkpoint`` names a file to save the training state to after every epoch and to resume
        from when it holds a checkpoint of this same run (network, resolved parameters, training
        data); any other checkpoint there is ignored with a warning and replaced. The caller
        deletes the file once the results are safe.

        Raises
        ------
        NumericalError
            The training loss or an ImplicitSLIM update is NaN or infinite; the message names the
            epoch (the checkpoint keeps the last good epoch).

        Notes
        -----
        Time per epoch: ``Σ_phases n_passes · ⌈U/batch_size⌉`` steps, each
        ``O(nnz_batch·h + b·I·d)``, plus validation, plus writing the checkpoint (about 4× the
        model's size). Memory: network, Adam moments and one ``b × I`` logit block.
        """
        started = time.perf_counter()
        params = self.params
        X = _as_feedback(X)
        device = resolve_device(params["device"])
        with deterministic_algorithms():
            torch.manual_seed(params["seed"])
            rng = np.random.default_rng(params["seed"])
            self.n_items_ = X.shape[1]
            self.module_ = build_model(self.network, X.shape[1], params).to(device)
            hook = ImplicitSLIMHook(ImplicitSLIMConfig.from_mapping(params["implicit_slim"]), X)
            runner = EpochRunner(self.module_, X, params, hook, device, progress)
            best = BestEpoch(params["patience"])
            state = TrainState()
            stateful = {"model": self.module_, "best": best, "hook": hook, **{f"optimizer{i}": o for i, o in enumerate(runner.optimizers)}}
            store = None
            if checkpoint is not None:
                store = Checkpoint(Path(checkpoint), run_fingerprint(self.network.__name__, params, [X]), stateful, rng, device)
            resumed = store.resume() if store else None
            history = EpochHistory.resuming(validate, monitor, resumed, started)
            if resumed:
                state.epoch, state.step = resumed["epoch"], resumed["step"]
                log.info("%s: resuming from %s after epoch %d", self.network.__name__, checkpoint, state.epoch)
            epochs = range(state.epoch + 1 if resumed else 0, 0 if resumed and resumed["finished"] else params["n_epochs"])
            for epoch in tqdm(epochs, desc=self.network.__name__, disable=not progress):
                state.epoch = epoch
                hook.on_epoch_start(self.module_, runner.optimizers, epoch)
                train_loss = runner.run(state, rng)
                require_finite(train_loss, f"the training loss at epoch {epoch}")
                score = history.record(self, epoch, train_loss)
                stop = score is not None and best.update(epoch, score, self.module_)
                if store is not None:
                    done = stop or epoch == params["n_epochs"] - 1
                    store.save({"epoch": epoch, "step": state.step, "rows": history.rows, "elapsed": history.elapsed(), "finished": done})
                if stop:
                    break
            best.restore(self.module_)
        self.module_.eval()
        self.history_ = history.rows
        self.best_epoch_ = best.epoch if validate is not None else int(history.rows[-1]["epoch"])
        self.params_ = params
        self.resumed_from_epoch_ = resumed["epoch"] if resumed else None
        return self

    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores ``(b, n_items)`` float32 of fold-in rows: the network in eval mode (posterior
        mean, no dropout) on its device. Memory ``O(b · n_items)``."""
        if getattr(self, "module_", None) is None:
            raise IslimError(f"{type(self).__name__} is not fitted yet; call fit(X_train) before scoring")
        _check_item_columns(rows, self.n_items_)
        return score_batch(self.module_, rows)


class MultVAEModel(TorchRecommender):
    """Mult-VAE (Liang et al., WWW 2018) with optional ImplicitSLIM; see :class:`~islim.models.deep.multvae.MultVAE`."""

    network = MultVAE


class RecVAEModel(TorchRecommender):
    """RecVAE (Shenbin et al., WSDM 2020) with optional ImplicitSLIM; see :class:`~islim.models.deep.recvae.RecVAE`."""

    network = RecVAE


class HVampModel(TorchRecommender):
    """H+Vamp(Gated) (Kim & Suh, RecSys 2019) with optional ImplicitSLIM; see :class:`~islim.models.deep.hvamp.HVamp`."""

    network = HVamp
