"""Training runs of the downstream models, with and without ImplicitSLIM, selected on validation.

One run = a dataset × model × variant. The model's ``params`` and the variant's settings are
merged; each point of the small ``grid`` is trained with per-epoch validation (early stopping and
best-epoch restore inside the model), the point with the best validation NDCG@100 is kept, and
its test metrics, best epoch and training curve are reported.

Linear models (``mf``, ``plrec``: :mod:`islim.models.linear`) train by closed-form ALS steps;
deep models (``multvae``, ``recvae``, ``hvamp``: :mod:`islim.models.deep`) by Adam in torch.
The curve has one row per epoch: ``epoch``, ``wall_seconds`` (since training began),
``train_loss`` (NaN for ALS, which has no stochastic loss), ``val_ndcg@100``, ``val_recall@20``,
``val_recall@50``.

Deep models checkpoint every epoch when a ``checkpoint_dir`` is given, so a killed run resumes
where it stopped; non-finite losses, ImplicitSLIM updates or ALS factors stop a run with a
:class:`~islim.errors.NumericalError` naming the epoch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from islim.config import grid_points
from islim.data.split import Split
from islim.errors import ConfigError
from islim.evaluate import evaluate
from islim.numerics import require_finite
from islim.records import make_record

log = logging.getLogger(__name__)

LINEAR_MODELS = ("mf", "plrec")
DEEP_MODELS = ("multvae", "recvae", "hvamp")
CURVE_COLUMNS = ["epoch", "wall_seconds", "train_loss", "val_ndcg@100", "val_recall@20", "val_recall@50"]


def merge_settings(params: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the variant's settings on top; nested mappings (``implicit_slim``) merge key by key."""
    merged = dict(params)
    for key, value in variant.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, Mapping) else value
    return merged


def _train_linear(model: str, split: Split, settings: dict[str, Any], batch_size: int):
    """Fit an ALS model; returns ``(score_batch, curve, best_epoch)``."""
    from islim.models.linear import MODELS

    curve: list[dict[str, float]] = []
    start = time.perf_counter()

    def validate(fitted) -> float:
        epoch = len(curve) if fitted.n_epochs > 0 else len(curve) - fitted.n_init_steps
        for factors in ("item_factors_", "encoder_factors_"):
            if getattr(fitted, factors, None) is not None:
                require_finite(getattr(fitted, factors), f"{model}: {factors.rstrip('_').replace('_', ' ')} after ALS epoch {epoch}")
        metrics = evaluate(fitted.score_batch, split.validation_tr, split.validation_te, batch_size)
        curve.append({"epoch": len(curve), "wall_seconds": time.perf_counter() - start, "train_loss": np.nan, **{f"val_{k}": metrics[k] for k in ("ndcg@100", "recall@20", "recall@50")}})
        return metrics["ndcg@100"]

    try:
        fitted = MODELS[model](**settings).fit(split.train, validate=validate)
    except TypeError as exc:  # an unknown keyword in the config
        raise ConfigError(f"{model}: {exc}; check the model's params/variant/grid keys in the config") from exc
    for row, entry in zip(curve, fitted.history_):
        row["epoch"] = entry["epoch"]
    return fitted.score_batch, pd.DataFrame(curve, columns=CURVE_COLUMNS), fitted.best_epoch_


def _train_deep(model: str, split: Split, settings: dict[str, Any], progress: bool, checkpoint: Path | None):
    """Fit a torch model (resuming from ``checkpoint`` if it holds this run); returns ``(score_batch, curve, best_epoch)``."""
    from islim.models.deep.trainer import fit, score_batch

    fitted, curve = fit(model, split.train, (split.validation_tr, split.validation_te), settings, progress=progress, checkpoint=checkpoint)
    return (lambda batch: score_batch(fitted, batch)), curve[CURVE_COLUMNS], fitted.best_epoch_


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

    ``checkpoint_dir``: where deep models keep one checkpoint per grid point
    (``<model>-<variant>.<point>.ckpt.pt``, see :func:`checkpoint_paths`) while the run lasts; a
    rerun after a crash resumes from them, and they are deleted once every point is done.

    Returns the run record (``params`` = every setting of the kept point, ``extra`` = best epoch,
    grid and per-point validation scores) and the kept point's training curve.
    """
    if model not in LINEAR_MODELS + DEEP_MODELS:
        raise ConfigError(f"unknown model {model!r}; expected one of {LINEAR_MODELS + DEEP_MODELS}")
    start = time.perf_counter()
    best = None
    searched = []
    points = list(grid_points(grid))
    checkpoints = checkpoint_paths(checkpoint_dir, model, variant, len(points)) if checkpoint_dir is not None and model in DEEP_MODELS else [None] * len(points)
    for point, checkpoint in zip(points, checkpoints):
        settings = merge_settings(merge_settings(params, variant_settings), point)
        if model in LINEAR_MODELS:
            score, curve, best_epoch = _train_linear(model, split, settings, batch_size)
        else:
            score, curve, best_epoch = _train_deep(model, split, settings, progress, checkpoint)
        validation = float(curve["val_ndcg@100"].max()) if len(curve) else float("nan")
        searched.append({**point, "val_ndcg@100": validation})
        log.info("%s/%s %s: best validation ndcg@100 %.4f at epoch %s", model, variant, point, validation, best_epoch)
        if best is None or validation > best[0]:
            metrics = {
                "validation": evaluate(score, split.validation_tr, split.validation_te, batch_size),
                "test": evaluate(score, split.test_tr, split.test_te, batch_size),
            }
            best = (validation, settings, metrics, curve, best_epoch)
    for checkpoint in checkpoints:
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    _, settings, metrics, curve, best_epoch = best
    extra = {"variant": variant, "best_epoch": best_epoch, "epochs_run": int(len(curve)), "grid": dict(grid), "searched": searched}
    record = make_record(dataset, model, settings, metrics, time.perf_counter() - start, extra=extra)
    record["run"] = f"{model}|{variant}"
    return record, curve


def checkpoint_paths(checkpoint_dir: str | os.PathLike, model: str, variant: str, n_points: int) -> list[Path]:
    """One checkpoint file per grid point of a run: ``<dir>/<model>-<variant>.<i>.ckpt.pt``."""
    from islim.models.deep.checkpoint import SUFFIX

    return [Path(checkpoint_dir) / f"{model}-{variant}.{index}{SUFFIX}" for index in range(n_points)]
