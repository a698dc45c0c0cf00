"""Training runs of the downstream models, with and without ImplicitSLIM, selected on validation.

One run = a dataset × model × variant. The model's ``params`` and the variant's settings are
merged; each point of the small ``grid`` is trained with per-epoch validation (early stopping and
best-epoch restore inside the model), the point with the best validation NDCG@100 is kept, and
its test metrics, best epoch and training curve are reported.

Every model goes through the same path: the registry (:mod:`islim.models.registry`) builds it,
:meth:`~islim.models.base.Recommender.fit` trains it with a validation callback, and its
``history_`` is the curve: one row per epoch, ``epoch``, ``wall_seconds`` (since training began),
``train_loss`` (NaN for models without a stochastic loss), ``val_ndcg@100``, ``val_recall@20``,
``val_recall@50``.

Models that train for long checkpoint every epoch when a ``checkpoint_dir`` is given, so a killed
run resumes where it stopped; non-finite losses, ImplicitSLIM updates or factors stop a grid point
with a :class:`~islim.errors.NumericalError` naming the model and the epoch: the point is recorded
as failed and skipped, and the run fails (:class:`~islim.errors.GridSearchError`) only when every
point does.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from islim.config import grid_points, merge_settings
from islim.data.split import Split
from islim.errors import GRID_POINT_ERRORS, ConfigError, GridSearchError, NumericalError
from islim.evaluate import evaluate, holdout_validator
from islim.models.registry import build_model, model_spec
from islim.records import make_record

log = logging.getLogger(__name__)

CURVE_COLUMNS = ["epoch", "wall_seconds", "train_loss", "val_ndcg@100", "val_recall@20", "val_recall@50"]

#: File name suffix of per-grid-point checkpoints (``<model>-<variant>.<point>.ckpt.pt``).
CHECKPOINT_SUFFIX = ".ckpt.pt"


def fit_model(model: str, split: Split, settings: Mapping[str, Any], batch_size: int, progress: bool, checkpoint: Path | None):
    """Build ``model`` from the registry with ``settings`` and fit it with per-epoch validation.

    Returns
    -------
    tuple
        ``(fitted model, curve DataFrame with CURVE_COLUMNS)``.
    """
    estimator = build_model(model, settings)
    validate = holdout_validator(split.validation_tr, split.validation_te, batch_size)
    try:
        estimator.fit(split.train, validate, checkpoint=checkpoint, progress=progress)
    except NumericalError as exc:
        raise NumericalError(f"{model}: {exc}") from exc
    return estimator, pd.DataFrame(estimator.history_, columns=CURVE_COLUMNS)


def train_run(
    dataset: str,
    split: Split,
    model: str,
    variant: str,
    params: Mapping[str, Any],
    variant_settings: Mapping[str, Any],
    grid: Mapping[str, list],
    batch_size: int = 2000,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train ``model`` in ``variant`` on every grid point, keep the best on validation NDCG@100.

    ``checkpoint_dir``: where models that checkpoint keep one file per grid point
    (``<model>-<variant>.<point>.ckpt.pt``, see :func:`checkpoint_paths`) while the run lasts; a
    rerun after a crash resumes from them, and they are deleted once every point is done.

    A point whose training or evaluation fails numerically or over the memory budget
    (:data:`islim.errors.GRID_POINT_ERRORS`: a NaN loss, a matrix that is not positive definite, …)
    is logged, recorded in ``extra.failed`` with the reason, and skipped.

    Returns the run record (``params`` = every setting of the kept point, ``extra`` = best epoch,
    grid, ``searched`` — each point that trained, with its validation score — and ``failed`` — each
    point that failed, with its ``reason``) and the kept point's training curve.

    Raises
    ------
    GridSearchError
        If every grid point failed, naming each with its reason.
    """
    spec = model_spec(model)
    if spec.rule != "train":
        raise ConfigError(f"model {model!r} is trained by the {spec.rule!r} rule, not by training runs")
    start = time.perf_counter()
    best, searched, failed = None, [], []
    points = list(grid_points(grid))
    checkpoints = checkpoint_paths(checkpoint_dir, model, variant, len(points)) if checkpoint_dir is not None else [None] * len(points)
    for point, checkpoint in zip(points, checkpoints):
        settings = merge_settings(merge_settings(params, variant_settings), point)
        try:
            fitted, curve = fit_model(model, split, settings, batch_size, progress, checkpoint)
            validation = float(curve["val_ndcg@100"].max()) if len(curve) else float("nan")
            metrics = None
            if best is None or validation > best[0]:
                metrics = {
                    "validation": evaluate(fitted.score_batch, split.validation_tr, split.validation_te, batch_size),
                    "test": evaluate(fitted.score_batch, split.test_tr, split.test_te, batch_size),
                }
        except GRID_POINT_ERRORS as exc:
            log.warning("%s/%s %s failed and is skipped: %s", model, variant, point, exc)
            failed.append({**point, "reason": str(exc)})
            continue
        searched.append({**point, "val_ndcg@100": validation})
        log.info("%s/%s %s: best validation ndcg@100 %.4f at epoch %s", model, variant, point, validation, fitted.best_epoch_)
        if metrics is not None:
            best = (validation, settings, metrics, curve, fitted.best_epoch_)
    if best is None:
        raise GridSearchError.every_point(f"{model}/{variant} on {dataset}", failed)
    for checkpoint in checkpoints:
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    _, settings, metrics, curve, best_epoch = best
    extra = {
        "variant": variant,
        "best_epoch": best_epoch,
        "epochs_run": int(len(curve)),
        "grid": dict(grid),
        "searched": searched,
        "failed": failed,
    }
    record = make_record(dataset, model, settings, metrics, time.perf_counter() - start, extra=extra)
    record["run"] = f"{model}|{variant}"
    return record, curve


def checkpoint_paths(checkpoint_dir: str | os.PathLike, model: str, variant: str, n_points: int) -> list[Path]:
    """One checkpoint file per grid point of a run: ``<dir>/<model>-<variant>.<i>.ckpt.pt``."""
    return [Path(checkpoint_dir) / f"{model}-{variant}.{index}{CHECKPOINT_SUFFIX}" for index in range(n_points)]
