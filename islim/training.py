"""Training runs of the downstream models, with and without ImplicitSLIM, selected on validation.

One run = a dataset × model × variant. A grid point's settings are the model's ``params``, then
the variant's settings, then the point of the model's ``grid`` (:func:`islim.config.point_settings`):
the grid belongs to the model, so every variant gets the same search over the settings they
share. A run is computed in two steps, each a workflow job (``train_point`` and ``train``):

1. :func:`train_point`: one grid point × seed. The model is fitted with per-epoch validation
   (early stopping and best-epoch restore inside the model, on the selection metric ``monitor``),
   then every validation and test user is scored under the split's protocol
   (:func:`islim.evaluate.evaluate_split_users`) with the dataset's metrics (``metrics``, from the
   config's ``metrics.<protocol>``: :func:`islim.evaluate.dataset_metric_settings`). A stochastic model
   (:attr:`islim.models.registry.ModelSpec.stochastic`: random initialisation or mini-batches)
   trains every point once per seed of the top-level ``seeds`` setting, each its own job, with
   ``seed`` set to that seed; a deterministic model trains it once.
2. :func:`select_run`: keeps the point whose validation ``monitor`` (the protocol's selection
   metric, by default ``ndcg@100``), averaged over its seeds, is best. Its per-user scores averaged
   over the seeds are the run's per-user table; their means and standard errors over users are the
   record's per-user metrics, a set-level metric (``coverage@K``) is the mean over the seeds of
   theirs, and the standard deviation over seeds of the seeds' values is ``<metric>_seed_sd``
   (with two seeds or more). Its curve is the mean over
   the seeds, epoch by epoch, of their training curves, over the epochs that every seed ran.

:func:`train_run` does both in one process. EASE's λ sweep (:mod:`islim.pipeline`) uses the same
two steps.

A curve has one row per validated epoch: ``epoch``, ``wall_seconds`` (since ``fit`` began, set-up
included), ``train_loss`` (NaN for models without a stochastic loss) and ``val_<metric>`` for every
metric evaluated (:func:`curve_columns`; :data:`CURVE_COLUMNS` with the default metrics), then any
further columns the model's history has.

Flags of a run record (:func:`run_flags`):

* ``not_converged``: the best epoch of a kept seed falls in the last ``patience`` epochs of its
  ``n_epochs`` cap (:func:`not_converged`), i.e. early stopping never ended the training;
* ``grid_edge:<param>``: the kept value of a numeric grid parameter with at least two distinct
  values is its smallest or largest (the optimum may lie outside the grid);
* ``below_popularity``: the test ``monitor`` metric is below the popularity ranking's on the same split.

Failures: models that train for long checkpoint every epoch when given a ``checkpoint`` path, so a
killed job resumes where it stopped. A point whose fit or evaluation fails numerically or over the
memory budget (:data:`islim.errors.GRID_POINT_ERRORS`) gives a result marked failed, with the
reason, instead of an error; the selection skips a point any of whose seeds failed (listing each in
``extra.failed``) and fails (:class:`~islim.errors.GridSearchError`) only when every point did.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from islim.config import point_settings, run_point_names, run_seeds
from islim.data.split import Split
from islim.errors import GRID_POINT_ERRORS, ConfigError, GridSearchError, NumericalError
from islim.evaluate import REPORTED_METRICS, evaluate_split_users, split_validator
from islim.fileio import write_csv, write_parquet
from islim.metrics import Metric
from islim.models.base import DEFAULT_MONITOR, Recommender
from islim.models.registry import model_spec
from islim.records import (
    PER_USER_KEYS,
    make_record,
    mean_over_seeds,
    per_user_table,
    read_record,
    seed_summaries,
    split_summaries,
    write_record,
)

log = logging.getLogger(__name__)


def curve_columns(metrics: Sequence[Metric] = REPORTED_METRICS) -> list[str]:
    """The columns a training curve starts with: ``epoch``, ``wall_seconds``, ``train_loss`` and
    ``val_<metric>`` for each of ``metrics``."""
    return ["epoch", "wall_seconds", "train_loss", *(f"val_{name}" for name, _, _ in metrics)]


#: The columns every training curve starts with, with the default metrics.
CURVE_COLUMNS = curve_columns()

#: File name suffix of per-grid-point checkpoints (``<model>-<variant>.<point>.ckpt.pt``).
CHECKPOINT_SUFFIX = ".ckpt.pt"

#: The held-out splits every point is scored on, in the order of the per-user tables.
HELDOUT_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class PointResult:
    """One grid point × seed of a run.

    Attributes
    ----------
    record : dict
        A run record (:func:`islim.records.make_record`) of this point alone, ``run`` set, with
        ``extra``: ``status`` (``"ok"`` or ``"failed"``), ``point`` (the grid values), ``seed``
        (``None`` for a deterministic model) and, when ok, ``best_epoch``, ``epochs_run`` and
        ``not_converged``; when failed, ``reason`` (and empty ``metrics``).
    curve : pandas.DataFrame
        The training curve (:data:`CURVE_COLUMNS`; no rows when failed).
    per_user : pandas.DataFrame
        Per-user scores of the validation and test users (:func:`islim.records.per_user_table`; no
        rows when failed).
    """

    record: dict[str, Any]
    curve: pd.DataFrame
    per_user: pd.DataFrame

    @property
    def ok(self) -> bool:
        """Whether the point trained and was evaluated."""
        return self.record["extra"]["status"] == "ok"


def fit_model(
    model: str,
    split: Split,
    settings: Mapping[str, Any],
    batch_size: int,
    progress: bool,
    checkpoint: Path | None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    monitor: str = DEFAULT_MONITOR,
) -> tuple[Recommender, pd.DataFrame]:
    """Build ``model`` from the registry with ``settings`` and fit it with per-epoch validation
    (:func:`fit_estimator`).

    Returns
    -------
    tuple
        ``(fitted model, curve DataFrame, see :func:`curve_frame`)``.
    """
    from islim.models.registry import build_model  # here: EASE's jobs (estimator_point) depend on no other model

    return fit_estimator(build_model(model, settings), model, split, batch_size, progress, checkpoint, metrics, monitor)


def fit_estimator(
    estimator: Recommender,
    model: str,
    split: Split,
    batch_size: int,
    progress: bool,
    checkpoint: Path | None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    monitor: str = DEFAULT_MONITOR,
    **fit_params: Any,
) -> tuple[Recommender, pd.DataFrame]:
    """Fit an unfitted ``estimator`` on the training users with per-epoch validation on ``metrics``
    (under the split's protocol, :func:`islim.evaluate.split_validator`), the best epoch chosen by
    ``monitor``.

    ``model`` names it in errors; ``fit_params`` go to its ``fit`` (e.g. EASE's precomputed ``gram``).

    Returns
    -------
    tuple
        ``(fitted model, curve DataFrame, see :func:`curve_frame`)``.

    Raises
    ------
    NumericalError
        Training broke down numerically; the message starts with the model's name.
    """
    validate = split_validator(split, metrics, batch_size)
    try:
        estimator.fit(split.train, validate, monitor=monitor, checkpoint=checkpoint, progress=progress, **fit_params)
    except NumericalError as exc:
        raise NumericalError(f"{model}: {exc}") from exc
    return estimator, curve_frame(estimator.history_, metrics)


def curve_frame(history: Sequence[Mapping[str, float]], metrics: Sequence[Metric] = REPORTED_METRICS) -> pd.DataFrame:
    """A model's ``history_`` as a curve: :func:`curve_columns` of ``metrics`` first (NaN where the
    history lacks one), then the history's other columns in their order."""
    frame = pd.DataFrame(list(history))
    columns = curve_columns(metrics)
    others = [column for column in frame.columns if column not in columns]
    return frame.reindex(columns=[*columns, *others])


def not_converged(params: Mapping[str, Any], best_epoch: int | None) -> bool:
    """Whether a fit stopped at its epoch cap before its early stopping could end it.

    The rule: with ``n_epochs >= 2``, the best epoch lies in the last ``max(1, patience)`` epochs of
    the cap, ``best_epoch >= n_epochs - max(1, patience)``. For the torch models (``patience``
    epochs without improvement stop training) this is exactly "early stopping did not fire"; a
    model without early stopping (``patience`` null or 0) is flagged when its last epoch is its
    best, i.e. it was still improving. A fit without epochs (EASE, popularity, ItemKNN: no
    ``n_epochs``) or with a cap of one epoch (PLRec's single item step) is never flagged.

    Parameters
    ----------
    params : mapping
        The fitted model's hyper-parameters (``get_params()``); ``n_epochs`` and ``patience`` are read.
    best_epoch : int or None
        The epoch the model kept.
    """
    n_epochs = params.get("n_epochs")
    if best_epoch is None or not isinstance(n_epochs, numbers.Integral) or n_epochs < 2:
        return False
    return best_epoch >= n_epochs - max(1, params.get("patience") or 0)


def _describe(label: str, point: Mapping[str, Any], seed: int | None) -> str:
    return f"{label} {dict(point)}" + ("" if seed is None else f" seed {seed}")


def train_point(
    dataset: str,
    split: Split,
    model: str,
    variant: str,
    settings: Mapping[str, Any],
    point: Mapping[str, Any],
    seed: int | None = None,
    batch_size: int = 2000,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    monitor: str = DEFAULT_MONITOR,
) -> PointResult:
    """Train one grid point × seed of a run (the ``train_point`` job) and score every validation
    and test user.

    Parameters
    ----------
    dataset : str
        Dataset name (in the record).
    split : Split
        The split.
    model, variant : str
        A registered model and the run's variant.
    settings : mapping
        Every setting of the point (:func:`islim.config.point_settings`, ``seed`` included for a
        seeded point).
    point : mapping
        The point's grid values (recorded; the selection groups seeds by them).
    seed : int or None
        The point's seed (recorded), ``None`` for a deterministic model.
    batch_size : int
        Held-out users scored at once.
    progress : bool
        Show progress bars.
    checkpoint : path, optional
        Where a model that checkpoints keeps its per-epoch state (resumed if present; the caller
        deletes it once the outputs are safe).
    metrics : sequence of Metric
        The metrics evaluated (per epoch on validation, then on validation and test users).
    monitor : str
        The validation metric that picks the best epoch.

    Returns
    -------
    PointResult
        Failed (``extra.status == "failed"`` with the ``reason``) when the fit or evaluation raised
        one of :data:`islim.errors.GRID_POINT_ERRORS`; any other error propagates.
    """
    path = None if checkpoint is None else Path(checkpoint)

    def fit():
        return fit_model(model, split, settings, batch_size, progress, path, metrics, monitor)

    return _point(dataset, split, model, variant, settings, point, seed, batch_size, metrics, monitor, fit)


def estimator_point(
    dataset: str,
    split: Split,
    estimator: Recommender,
    model: str,
    point: Mapping[str, Any],
    batch_size: int = 2000,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    monitor: str = DEFAULT_MONITOR,
    **fit_params: Any,
) -> PointResult:
    """:func:`train_point` for a deterministic model built by the caller (EASE's λ sweep), whose run
    is named by the model alone; ``fit_params`` go to its ``fit``. The record's ``params`` are the
    estimator's own (``get_params()``)."""

    def fit():
        return fit_estimator(estimator, model, split, batch_size, False, None, metrics, monitor, **fit_params)

    return _point(dataset, split, model, None, estimator.get_params(), point, None, batch_size, metrics, monitor, fit)


def _point(
    dataset: str,
    split: Split,
    model: str,
    variant: str | None,
    settings: Mapping[str, Any],
    point: Mapping[str, Any],
    seed: int | None,
    batch_size: int,
    metrics: Sequence[Metric],
    monitor: str,
    fit: Callable[[], tuple[Recommender, pd.DataFrame]],
) -> PointResult:
    """Run ``fit``, score the held-out users (:func:`islim.evaluate.evaluate_split_users`) and build
    the point's result (failed on :data:`islim.errors.GRID_POINT_ERRORS`). The record's metrics
    are the per-user table's means and standard errors plus the set-level metrics."""
    run = model if variant is None else f"{model}|{variant}"
    label = model if variant is None else f"{model}/{variant}"
    extra = {"status": "ok", "point": dict(point), "seed": seed} | ({} if variant is None else {"variant": variant})
    start = time.perf_counter()
    try:
        fitted, curve = fit()
        evaluated = {part: evaluate_split_users(fitted.score_batch, split, part, metrics, batch_size) for part in HELDOUT_SPLITS}
    except GRID_POINT_ERRORS as exc:
        log.warning("%s failed and is skipped: %s", _describe(label, point, seed), exc)
        extra.update(status="failed", reason=str(exc))
        record = make_record(dataset, model, dict(settings), {}, time.perf_counter() - start, extra=extra) | {"run": run}
        empty_per_user = pd.DataFrame(columns=[*PER_USER_KEYS, *(metric.name for metric in metrics if metric.per_user)])
        return PointResult(record, pd.DataFrame(columns=curve_columns(metrics)), empty_per_user)
    per_user = pd.concat(
        [per_user_table(part, evaluated[part].per_user, split.user_ids[part]) for part in HELDOUT_SPLITS], ignore_index=True
    )
    summaries = split_summaries(per_user)
    for part in HELDOUT_SPLITS:
        summaries[part].update(evaluated[part].set_level)
    extra.update(best_epoch=fitted.best_epoch_, epochs_run=len(curve), not_converged=not_converged(fitted.get_params(), fitted.best_epoch_))
    log.info(
        "%s: validation %s %.4f, best epoch %s",
        _describe(label, point, seed),
        monitor,
        summaries["validation"][monitor],
        fitted.best_epoch_,
    )
    record = make_record(dataset, model, dict(settings), summaries, time.perf_counter() - start, extra=extra) | {"run": run}
    return PointResult(record, curve, per_user)


def write_point(
    result: PointResult, record_path: str | os.PathLike, curve_path: str | os.PathLike | None, per_user_path: str | os.PathLike
) -> None:
    """Write a point's curve (CSV; skipped when ``curve_path`` is ``None``, as for EASE's points),
    per-user table (parquet) and record (JSON, last), each atomically."""
    if curve_path is not None:
        write_csv(curve_path, result.curve)
    write_parquet(per_user_path, result.per_user)
    write_record(record_path, result.record)


def read_point(record_path: str | os.PathLike, curve_path: str | os.PathLike | None, per_user_path: str | os.PathLike) -> PointResult:
    """Read what :func:`write_point` wrote (``curve_path`` ``None``: an empty curve, for EASE's points)."""
    curve = pd.read_csv(curve_path) if curve_path is not None else pd.DataFrame(columns=CURVE_COLUMNS)
    return PointResult(read_record(record_path), curve, pd.read_parquet(per_user_path))


def choose_point(
    results: Sequence[PointResult], what: str, monitor: str = DEFAULT_MONITOR
) -> tuple[list[PointResult], list[dict[str, Any]], list[dict[str, Any]]]:
    """The grid point with the best validation ``monitor`` averaged over its seeds.

    Parameters
    ----------
    results : sequence of PointResult
        Every point × seed of one run; seeds of a point share its ``extra.point``.
    what : str
        The search, as an error names it (e.g. ``"mf/baseline on ml-1m"``).
    monitor : str
        The validation metric (higher is better); ties keep the first point.

    Returns
    -------
    tuple
        ``(kept, searched, failed)``: the kept point's results (one per seed, in the given order);
        each point whose every seed trained, as ``{**point, "val_<monitor>": mean over seeds}``;
        each failed point × seed as ``{**point, "seed": seed (seeded points only), "reason": ...}``.
        A point with a failed seed is skipped as a whole.

    Raises
    ------
    GridSearchError
        No point trained with every seed; the message names each failure.
    """
    groups: dict[str, list[PointResult]] = {}
    for result in results:
        groups.setdefault(json.dumps(result.record["extra"]["point"], sort_keys=True), []).append(result)
    best, searched, failed = None, [], []
    for group in groups.values():
        point = group[0].record["extra"]["point"]
        broken = [result.record["extra"] for result in group if not result.ok]
        if broken:
            failed += [{**point, **({} if e["seed"] is None else {"seed": e["seed"]}), "reason": e["reason"]} for e in broken]
            continue
        score = float(np.mean([result.record["metrics"]["validation"][monitor] for result in group]))
        searched.append({**point, f"val_{monitor}": score})
        if best is None or score > best[0]:
            best = (score, group)
    if best is None:
        raise GridSearchError.every_point(what, failed)
    return best[1], searched, failed


def seed_average(kept: Sequence[PointResult]) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Per-user scores of a point averaged over its seeds, and the metrics they give.

    Returns
    -------
    tuple
        ``(per_user, metrics)``: :func:`islim.records.mean_over_seeds` of the seeds' tables, and per
        split the mean, standard error over users and ``n_users`` of each per-user metric
        (:func:`islim.records.split_summaries`), the mean over the seeds of each set-level metric
        (no per-user column), plus ``<metric>_seed_sd`` with two seeds or more
        (:func:`islim.records.seed_spread`).
    """
    per_user = mean_over_seeds([result.per_user for result in kept])
    return per_user, seed_summaries(per_user, [result.record["metrics"] for result in kept])


def mean_curve(curves: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The epoch-by-epoch mean of the seeds' curves over the epochs every seed ran (each row the
    mean of the same seeds), with the first curve's columns."""
    common = set.intersection(*(set(curve["epoch"]) for curve in curves))
    stacked = pd.concat([curve[curve["epoch"].isin(common)] for curve in curves], ignore_index=True)
    mean = stacked.groupby("epoch", sort=True).mean(numeric_only=True).reset_index()
    return mean.reindex(columns=curves[0].columns)


def grid_edge_flags(grid: Mapping[str, list], point: Mapping[str, Any]) -> list[str]:
    """``grid_edge:<param>`` for each numeric grid parameter with at least two distinct values whose
    kept value is the smallest or the largest (booleans and text are not numeric)."""
    flags = []
    for name in sorted(grid):
        values = list(grid[name])
        numeric = all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in values)
        if numeric and len(set(values)) >= 2 and point[name] in (min(values), max(values)):
            flags.append(f"grid_edge:{name}")
    return flags


def run_flags(
    grid: Mapping[str, list],
    point: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, float]],
    popularity: Mapping[str, Any] | None,
    unconverged: bool,
    monitor: str = DEFAULT_MONITOR,
) -> list[str]:
    """The flags of a selected run (see the module docstring).

    Parameters
    ----------
    grid, point : mapping
        The run's grid and the kept point.
    metrics : mapping
        The run's metrics per split.
    popularity : mapping or None
        The popularity run's record on the same split (``None``: not configured).
    unconverged : bool
        Whether a kept seed's fit was :func:`not_converged`.
    monitor : str
        The metric compared with popularity's, on test.
    """
    flags = ["not_converged"] if unconverged else []
    flags += grid_edge_flags(grid, point)
    if popularity is not None and metrics["test"][monitor] < popularity["metrics"]["test"][monitor]:
        flags.append("below_popularity")
    return flags


def search_cost(results: Sequence[PointResult]) -> tuple[float, float]:
    """``(seconds, peak MiB)`` of a search: the summed wall time and the largest peak of its points."""
    return sum(r.record["wall_seconds"] for r in results), max(r.record["peak_memory_mb"] for r in results)


def select_run(
    dataset: str,
    model: str,
    variant: str,
    grid: Mapping[str, list],
    results: Sequence[PointResult],
    popularity: Mapping[str, Any] | None = None,
    monitor: str = DEFAULT_MONITOR,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Select a run's grid point on validation ``monitor`` and build its record, curve and per-user table.

    Parameters
    ----------
    dataset, model, variant : str
        The run.
    grid : mapping
        The model's grid (for the ``grid_edge`` flags and the record).
    results : sequence of PointResult
        Every point × seed of the run (:func:`train_point`).
    popularity : mapping, optional
        The popularity run's record on the same split, for the ``below_popularity`` flag.
    monitor : str
        The selection metric (the dataset protocol's ``select``).

    Returns
    -------
    tuple
        ``(record, curve, per_user)``. The record's ``params`` are the kept point's settings
        (``seed`` left out for a seeded run), ``metrics`` come from the seed-averaged per-user
        scores (:func:`seed_average`), ``wall_seconds`` is the time of the whole search and
        ``peak_memory_mb`` its largest peak, ``flags`` as in :func:`run_flags`; ``extra`` holds
        ``variant``, ``best_epoch`` and ``epochs_run`` (the largest over the seeds), ``per_seed``
        (each kept seed's ``seed``, ``best_epoch``, ``epochs_run``, ``wall_seconds``), ``grid``,
        ``searched``, ``failed`` (see :func:`choose_point`), ``selected_by`` and, for a seeded
        run, ``seeds``. The curve is :func:`mean_curve` of the kept seeds.

    Raises
    ------
    GridSearchError
        Every point failed.
    """
    kept, searched, failed = choose_point(results, f"{model}/{variant} on {dataset}", monitor)
    per_user, metrics = seed_average(kept)
    extras = [result.record["extra"] for result in kept]
    seeds = [e["seed"] for e in extras]
    settings = {key: value for key, value in kept[0].record["params"].items() if not (key == "seed" and seeds[0] is not None)}
    extra = {
        "variant": variant,
        "best_epoch": max(e["best_epoch"] for e in extras),
        "epochs_run": max(e["epochs_run"] for e in extras),
        "per_seed": [
            {"seed": e["seed"], "best_epoch": e["best_epoch"], "epochs_run": e["epochs_run"], "wall_seconds": r.record["wall_seconds"]}
            for e, r in zip(extras, kept)
        ],
        "grid": dict(grid),
        "searched": searched,
        "failed": failed,
        "selected_by": f"validation {monitor}" + (", mean over seeds" if seeds[0] is not None else ""),
    }
    if seeds[0] is not None:
        extra["seeds"] = seeds
    flags = run_flags(grid, extras[0]["point"], metrics, popularity, any(e["not_converged"] for e in extras), monitor)
    seconds, peak = search_cost(results)
    record = make_record(dataset, model, settings, metrics, seconds, extra=extra, flags=flags, peak_memory_mb=peak)
    record["run"] = f"{model}|{variant}"
    return record, mean_curve([result.curve for result in kept]), per_user


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
    seeds: Sequence[int] | None = None,
    popularity: Mapping[str, Any] | None = None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    monitor: str = DEFAULT_MONITOR,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train ``model`` in ``variant`` on every grid point (× seed) in this process and select one:
    :func:`train_point` for each, then :func:`select_run`.

    ``seeds``: the seeds of a stochastic model (each point trains once per seed); ``None``, or a
    deterministic model, trains each point once with the settings' own seed. ``checkpoint_dir``:
    where models that checkpoint keep one file per point × seed (:func:`checkpoint_path`) while the
    run lasts; a rerun after a crash resumes from them, and they are deleted once the run is
    selected. ``popularity``, ``monitor``: see :func:`select_run`; ``metrics``: see :func:`train_point`.

    Returns
    -------
    tuple
        ``(record, curve)`` of :func:`select_run` (its per-user table is left out).

    Raises
    ------
    ConfigError
        ``model`` is not trained by training runs (EASE has its own sweep), or a setting is unknown.
    GridSearchError
        If every grid point failed, naming each with its reason.
    """
    spec = model_spec(model)
    if spec.rule != "train":
        raise ConfigError(f"model {model!r} is trained by the {spec.rule!r} rule, not by training runs")
    run = {"params": params, "grid": grid, "variants": {variant: variant_settings}}
    names = run_point_names(grid, run_seeds(seeds, spec.stochastic) if seeds is not None else [None])
    checkpoints = [None if checkpoint_dir is None else checkpoint_path(checkpoint_dir, model, variant, name) for name in names]
    results = []
    for name, checkpoint in zip(names, checkpoints):
        job = point_settings(run, variant, name)
        results.append(
            train_point(
                dataset,
                split,
                model,
                variant,
                job["settings"],
                job["point"],
                job["seed"],
                batch_size,
                progress,
                checkpoint,
                metrics,
                monitor,
            )
        )
    record, curve, _ = select_run(dataset, model, variant, grid, results, popularity, monitor)
    for checkpoint in checkpoints:
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    return record, curve


def checkpoint_path(checkpoint_dir: str | os.PathLike, model: str, variant: str, point: str) -> Path:
    """The checkpoint file of one grid point × seed of a run: ``<dir>/<model>-<variant>.<point>.ckpt.pt``
    (``point`` a :func:`islim.config.point_name`)."""
    return Path(checkpoint_dir) / f"{model}-{variant}.{point}{CHECKPOINT_SUFFIX}"
