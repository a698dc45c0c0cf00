"""The ablation grid: one cell = (neighbourhood, first step, second step, d) → scored run records.

A cell's embeddings become the item factors of a linear model and are scored the paper's way
(spec §7, issue "ablation axes"):

* ``mf`` — no training: held-out users are folded in by ridge regression on the item embeddings,
  ``p = (r_p I + EᵀE)⁻¹ Eᵀ x``, scores ``p Eᵀ``;
* ``plrec`` — the embeddings are PLRec's encoder ``W``: ``P = R Diag(ω) W`` with training
  popularity weights, and the decoder ``Q`` is the ridge item step on the training users.

Every hyper-parameter the arm reads (λ, α, τ, k, …) and every scorer weight is chosen from a
small grid on the dataset's selection metric on validation (``select`` of its metric settings,
:func:`islim.evaluate.dataset_metric_settings`; NDCG@100 by default); the settings' metrics
(:func:`islim.evaluate.settings_metrics`) are reported for that choice on validation and test,
and the per-user scores of that choice (validation and test users; set-level metrics such as
``coverage@K`` are in the records only) are kept for paired tests (:class:`CellResult`, written
to ``results/<dataset>/per_user/<cell>.parquet``). A stochastic reference arm (``random``) runs
once per seed and :func:`seed_mean` averages the runs. Extraction time and peak memory
(numpy/scipy allocations traced by ``tracemalloc``) are recorded for the selected
hyper-parameters. A grid point that fails numerically or over the memory budget is recorded in the
records' ``extra.failed`` with the reason and skipped. A cell that cannot run (an
undefined combination, or every grid point failing: dense work over the memory budget, embeddings
with NaN or infinite entries) yields records with ``status: skipped`` and the reason.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from islim.config import grid_points
from islim.data.split import Split
from islim.embeddings import arm_embeddings, reference_embeddings, validate_arm
from islim.embeddings.registry import AXES, arms_of, cell_name, check_arm_params, reference_name
from islim.errors import GRID_POINT_ERRORS, ConfigError, DataFormatError, GridSearchError, MemoryBudgetError, NumericalError
from islim.evaluate import PROTOCOL_DEFAULTS, evaluate_split_users, settings_metrics
from islim.fileio import write_csv, write_parquet
from islim.metrics import Metric, metric_names
from islim.models.ridge import item_statistics, plrec_encoder, plrec_item_weights, solve_item_step, user_ridge_encoder
from islim.numerics import require_finite
from islim.records import make_record, mean_over_seeds, per_user_table, read_records, seed_summaries, write_records

log = logging.getLogger(__name__)

SCORERS = ("mf", "plrec")
#: The columns of a cell's per-user table before its metric columns: the scorer, then those of
#: :func:`islim.records.per_user_table` (the split, ``validation`` or ``test``, and the user's
#: original id as text, as in every run's per-user table).
PER_USER_KEYS = ("scorer", "split", "user")


class CellResult(NamedTuple):
    """What one cell or reference arm yields.

    Attributes
    ----------
    records : list of dict
        One run record per scorer (``extra.status`` ``ok`` or ``skipped``).
    per_user : pandas.DataFrame
        The per-user scores of every ``ok`` scorer's selected grid point: columns
        :data:`PER_USER_KEYS` and one per reported per-user metric, one row per scorer × split ×
        evaluated user.
    """

    records: list[dict[str, Any]]
    per_user: pd.DataFrame


def cell_table(frames: Sequence[pd.DataFrame], names: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-scorer per-user tables; when there are none, an empty table with the columns
    :data:`PER_USER_KEYS` and ``names`` (the per-user metrics, :func:`per_user_names`)."""
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=float if column in names else str) for column in [*PER_USER_KEYS, *names]})
    return pd.concat(frames, ignore_index=True)


def per_user_names(metrics: Sequence[Metric]) -> list[str]:
    """The names of the per-user metrics among ``metrics`` (the metric columns of a per-user table;
    set-level metrics such as ``coverage@K`` have none)."""
    return [metric.name for metric in metrics if metric.per_user]


def _metric_settings(metric_settings: Mapping[str, Any] | None) -> tuple[tuple[Metric, ...], str]:
    """The metrics and the selection metric of ``metric_settings``
    (:func:`islim.evaluate.dataset_metric_settings`; ``None``: the strong protocol's defaults)."""
    settings = metric_settings or PROTOCOL_DEFAULTS["strong"]
    return settings_metrics(settings), settings["select"]


def _scorer_table(scorer: str, split: Split, users: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """One scorer's per-user table (:func:`islim.records.per_user_table` of each split in
    ``users``, :attr:`islim.evaluate.UserMetrics.per_user` by split name) with its ``scorer``."""
    table = pd.concat([per_user_table(name, values, split.user_ids[name]) for name, values in users.items()], ignore_index=True)
    table.insert(0, "scorer", scorer)
    return table


def arm_grid(arm: Mapping[str, str], axis_grids: Mapping[str, Mapping[str, Mapping[str, list]]]) -> dict[str, list]:
    """The hyper-parameter grid of an arm: the union of its three axis values' grids.

    ``axis_grids[axis][value]`` maps parameter names to candidate lists, e.g.
    ``axis_grids["first_step"]["ease"] == {"lam": [100, 500]}``.
    """
    grid: dict[str, list] = {}
    for axis in AXES:
        value = arm[axis]
        given = axis_grids.get(axis, {}).get(value) or {}
        check_arm_params(axis, value, given)
        grid.update({name: list(values) for name, values in given.items()})
    return grid


def scorer_functions(name: str, E: np.ndarray, train, params: Mapping[str, float]):
    """A ``score_batch`` function for fold-in rows, given item embeddings ``E`` (``(n_items, d)``)."""
    if name == "mf":
        encode = user_ridge_encoder(E, params["r_p"])
        return lambda batch: encode(batch) @ E.T
    if name == "plrec":
        encode = plrec_encoder(E, plrec_item_weights(train, params["power"]))
        Q = solve_item_step(item_statistics(train, encode, E.shape[1]), params["r_q"], dtype=E.dtype)
        return lambda batch: encode(batch) @ Q.T
    raise ConfigError(f"unknown scorer {name!r}; expected one of {SCORERS}")


def _measured(extract) -> tuple[np.ndarray, float, float]:
    """Run ``extract()``; return its result, wall seconds and traced peak memory (MiB)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        embeddings = extract()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return np.asarray(embeddings, dtype=np.float32), seconds, peak


def run_cell(
    dataset: str,
    split: Split,
    model_name: str,
    extract,
    arm_params: Mapping[str, list],
    scorer_grids: Mapping[str, Mapping[str, list]],
    batch_size: int = 2000,
    metric_settings: Mapping[str, Any] | None = None,
) -> CellResult:
    """Search one cell's grid and return one run record per scorer.

    Parameters
    ----------
    dataset : str
        Dataset name for the records.
    split : Split
        The strong-generalisation split.
    model_name : str
        The arm's name in the records, e.g. ``"ablation:all/ease/implicit"``.
    extract : callable
        ``extract(params) -> (n_items, d)`` embeddings for one point of ``arm_params``.
    arm_params : mapping of str to list
        The arm's hyper-parameter grid (:func:`arm_grid`).
    scorer_grids : mapping
        ``{scorer: {param: [values]}}``.
    batch_size : int, default 2000
        Users per evaluation batch.
    metric_settings : mapping, optional
        The dataset's metric settings (:func:`islim.evaluate.dataset_metric_settings`): the
        metrics evaluated (:func:`islim.evaluate.settings_metrics`) and ``select``, the validation
        metric (higher is better) that picks each scorer's grid point. ``None``: the strong
        protocol's defaults (Recall@20, Recall@50, NDCG@100; selection on NDCG@100).

    Returns
    -------
    CellResult
        One run record per scorer (metrics per split: mean and standard error of each per-user
        metric, and each set-level metric); ``extra.failed`` lists the grid points (arm and
        scorer parameters) that failed, each with its ``reason``. A scorer none of whose points ran gets
        a ``skipped`` record saying why (and no per-user rows).

    Raises
    ------
    GridSearchError
        If every point failed (for every scorer), naming each with its reason.

    Notes
    -----
    A point fails — is logged, recorded and skipped, while the search goes on — when extracting
    its embeddings or scoring them fails numerically or over the memory budget
    (:data:`islim.errors.GRID_POINT_ERRORS`); an arm point that fails fails for every scorer.
    """
    metrics, monitor = _metric_settings(metric_settings)
    best: dict[str, tuple] = {}
    arm_failed: list[dict[str, Any]] = []
    scorer_failed: dict[str, list[dict[str, Any]]] = {scorer: [] for scorer in scorer_grids}
    for params in grid_points(arm_params):
        try:
            embeddings, seconds, peak = _measured(functools.partial(extract, params))
            require_finite(
                embeddings, f"{model_name}: the embeddings for {params}", "this arm is numerically unstable with these parameters"
            )
        except GRID_POINT_ERRORS as exc:
            log.warning("%s %s failed and is skipped: %s", model_name, params, exc)
            arm_failed.append({**params, "reason": str(exc)})
            continue
        for scorer, grid in scorer_grids.items():
            for scorer_params in grid_points(grid):
                try:
                    score = scorer_functions(scorer, embeddings, split.train, scorer_params)
                    validation_users = evaluate_split_users(score, split, "validation", metrics, batch_size)
                    validation = validation_users.summary(metrics)
                    test_users = None
                    if scorer not in best or validation[monitor] > best[scorer][0][monitor]:
                        test_users = evaluate_split_users(score, split, "test", metrics, batch_size)
                except GRID_POINT_ERRORS as exc:
                    log.warning("%s %s %s %s failed and is skipped: %s", model_name, params, scorer, scorer_params, exc)
                    scorer_failed[scorer].append({**params, **scorer_params, "reason": str(exc)})
                    continue
                log.info("%s %s %s %s: validation %s=%.4f", model_name, params, scorer, scorer_params, monitor, validation[monitor])
                if test_users is not None:
                    users = {"validation": validation_users.per_user, "test": test_users.per_user}
                    best[scorer] = (validation, test_users.summary(metrics), params, scorer_params, seconds, peak, users)
    if not best:
        every = arm_failed + [{"scorer": scorer, **entry} for scorer, entries in scorer_failed.items() for entry in entries]
        raise GridSearchError.every_point(model_name, every)
    records, frames = [], []
    for scorer in scorer_grids:
        failed = arm_failed + scorer_failed[scorer]
        if scorer not in best:
            reason = str(GridSearchError.every_point(f"{model_name} scored by {scorer}", failed))
            records += [
                make_record(
                    dataset, model_name, {}, {}, 0.0, extra={"status": "skipped", "scorer": scorer, "reason": reason, "failed": failed}
                )
            ]
            continue
        validation, test, params, scorer_params, seconds, peak, users = best[scorer]
        frames.append(_scorer_table(scorer, split, users))
        extra = {
            "status": "ok",
            "scorer": scorer,
            "extraction_seconds": round(seconds, 4),
            "extraction_peak_mb": round(peak, 2),
            "grid": {"arm": dict(arm_params), "scorer": dict(scorer_grids[scorer])},
            "failed": failed,
        }
        records.append(
            make_record(dataset, model_name, {**params, **scorer_params}, {"validation": validation, "test": test}, seconds, extra=extra)
        )
    return CellResult(records, cell_table(frames, per_user_names(metrics)))


def skipped_records(dataset: str, model_name: str, scorers, reason: str) -> list[dict[str, Any]]:
    """Records saying a cell did not run, and why (so it is never silently missing)."""
    return [
        make_record(dataset, model_name, {}, {}, 0.0, extra={"status": "skipped", "scorer": scorer, "reason": reason}) for scorer in scorers
    ]


def ablation_cell(
    dataset: str,
    split: Split,
    arm: Mapping[str, str],
    d: int,
    axis_grids: Mapping[str, Any],
    scorer_grids: Mapping[str, Mapping[str, list]],
    seed: int = 0,
    batch_size: int = 2000,
    budget_bytes: int | None = None,
    metric_settings: Mapping[str, Any] | None = None,
) -> CellResult:
    """Records and per-user scores of the grid cell ``arm`` (neighbourhood, first_step,
    second_step) at dimension ``d`` (:func:`run_cell`; ``metric_settings``: the metrics evaluated
    and the selection metric, see there).

    ``arm = {"reference": "random" | "svd"}`` runs that reference arm instead (``axis_grids`` unused).
    """
    if "reference" in arm:
        return reference_cell(dataset, split, arm["reference"], d, scorer_grids, seed, batch_size, metric_settings)
    name = cell_name(arm["neighbourhood"], arm["first_step"], arm["second_step"])
    start = time.perf_counter()
    try:
        validate_arm(arm["neighbourhood"], arm["first_step"], arm["second_step"])
        grid = arm_grid(arm, axis_grids)
        n_items = split.n_items
        if "k" in grid:  # at most every other item: k = n_items - 1 is the "all" neighbourhood
            grid["k"] = sorted({min(int(k), n_items - 1) for k in grid["k"]})

        def extract(params):
            return arm_embeddings(
                split.train, d, arm["neighbourhood"], arm["first_step"], arm["second_step"], params, seed=seed, budget_bytes=budget_bytes
            )

        result = run_cell(dataset, split, name, extract, grid, scorer_grids, batch_size, metric_settings)
    except (MemoryBudgetError, ConfigError, NumericalError, GridSearchError) as exc:
        log.warning("%s d=%d skipped: %s", name, d, exc)
        names = per_user_names(_metric_settings(metric_settings)[0])
        result = CellResult(skipped_records(dataset, name, scorer_grids, str(exc)), cell_table([], names))
    return CellResult(_label(result.records, d, dict(arm), time.perf_counter() - start), result.per_user)


def _label(records: list[dict[str, Any]], d: int, arm: dict[str, str], wall_seconds: float) -> list[dict[str, Any]]:
    """Add the dimension, the arm's axes, a unique run name and the cell's total wall time."""
    for record in records:
        record["params"]["d"] = d
        record["extra"].update(arm)
        record["run"] = f"{record['model']}|d={d}|{record['extra']['scorer']}"
        record["wall_seconds"] = round(wall_seconds, 3)
    return records


def reference_cell(
    dataset: str,
    split: Split,
    reference: str,
    d: int,
    scorer_grids,
    seed: int = 0,
    batch_size: int = 2000,
    metric_settings: Mapping[str, Any] | None = None,
) -> CellResult:
    """Records and per-user scores of a reference arm (``random`` or ``svd`` embeddings) at
    dimension ``d`` (:func:`run_cell`; ``metric_settings``: the metrics evaluated and the selection
    metric, see there)."""
    start = time.perf_counter()
    result = run_cell(
        dataset,
        split,
        reference_name(reference),
        lambda params: reference_embeddings(reference, split.train, d, seed),
        {},
        scorer_grids,
        batch_size,
        metric_settings,
    )
    arm = {"neighbourhood": "-", "first_step": reference, "second_step": "-"}
    return CellResult(_label(result.records, d, arm, time.perf_counter() - start), result.per_user)


def seed_mean(results: Sequence[CellResult], seeds: Sequence[int]) -> CellResult:
    """The seed average of one cell run once per seed (a stochastic reference arm).

    Per scorer, each user's scores are averaged over the seeds whose run is ``ok``
    (:func:`islim.records.mean_over_seeds`); the record's metrics are the mean and standard error
    over users of these averages (the mean equals the mean of the seeds' means,
    :func:`islim.records.split_summaries`), the mean over the seeds of each set-level metric (no
    per-user column, e.g. ``coverage@K``), plus ``<metric>_seed_sd``, the standard deviation over
    the seeds of their means (:func:`islim.records.seed_spread`, from two seeds), and
    ``extra.seeds`` lists the seeds averaged. Parameters chosen alike by every seed are kept,
    others list the seeds' choices.

    Parameters
    ----------
    results : sequence of CellResult
        One per seed, in the order of ``seeds``, all of the same cell and dimension.
    seeds : sequence of int
        The seed of each result.

    Returns
    -------
    CellResult
        One record per scorer (``skipped``, with every seed's reason, when no seed ran) and the
        seed-averaged per-user scores.

    Raises
    ------
    DataFormatError
        ``results`` and ``seeds`` differ in length, or the seeds' runs do not describe the
        same cell (run names differ, or a scorer's users differ between seeds).
    """
    if len(results) != len(seeds) or not results:
        raise DataFormatError(f"seed_mean needs one result per seed, got {len(results)} results for seeds {list(seeds)}")
    runs = [[record["run"] for record in result.records] for result in results]
    if any(names != runs[0] for names in runs):
        raise DataFormatError(f"the seeds' runs describe different cells: {runs}")
    records, frames = [], []
    for position, first in enumerate(results[0].records):
        by_seed = [(seed, result.records[position], result.per_user) for seed, result in zip(seeds, results)]
        ok = [(seed, record, table) for seed, record, table in by_seed if record["extra"]["status"] == "ok"]
        if not ok:
            reasons = "; ".join(f"seed {seed}: {record['extra']['reason']}" for seed, record, _ in by_seed)
            skipped = make_record(
                first["dataset"], first["model"], dict(first["params"]), {}, 0.0, extra={**first["extra"], "reason": reasons}
            )
            records.append({**skipped, "run": first["run"]})
            continue
        record, table = _seed_average(first["extra"]["scorer"], ok)
        records.append(record)
        frames.append(table)
    names = [column for column in results[0].per_user.columns if column not in PER_USER_KEYS]
    return CellResult(records, cell_table(frames, names))


def _seed_average(scorer: str, ok: list[tuple[int, dict[str, Any], pd.DataFrame]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The seed-averaged record and per-user rows of one scorer from its ``(seed, record, per-user
    table)`` runs that are ``ok`` (see :func:`seed_mean`)."""
    tables = [table[table["scorer"] == scorer].drop(columns="scorer") for _, _, table in ok]
    try:
        averaged = mean_over_seeds(tables)
    except DataFormatError as exc:
        raise DataFormatError(f"scorer {scorer}: {exc}") from None
    records = [record for _, record, _ in ok]
    metrics = seed_summaries(averaged, [r["metrics"] for r in records])
    params = {}
    for name in records[0]["params"]:
        values = [r["params"].get(name) for r in records]
        params[name] = values[0] if all(value == values[0] for value in values) else values
    first = records[0]
    extra = {
        **first["extra"],
        "seeds": [seed for seed, _, _ in ok],
        "extraction_seconds": round(float(np.mean([r["extra"]["extraction_seconds"] for r in records])), 4),
        "extraction_peak_mb": round(float(max(r["extra"]["extraction_peak_mb"] for r in records)), 2),
        "failed": [{**entry, "seed": seed} for seed, r, _ in ok for entry in r["extra"].get("failed", [])],
    }
    record = make_record(first["dataset"], first["model"], params, metrics, sum(r["wall_seconds"] for r in records), extra=extra)
    averaged.insert(0, "scorer", scorer)
    return {**record, "run": first["run"]}, averaged


def ablation_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell × scorer × split × metric; skipped cells get one row with the reason."""
    rows = []
    for record in records:
        extra = record["extra"]
        base = {
            "dataset": record["dataset"],
            "arm": record["model"],
            "neighbourhood": extra.get("neighbourhood"),
            "first_step": extra.get("first_step"),
            "second_step": extra.get("second_step"),
            "d": record["params"]["d"],
            "scorer": extra["scorer"],
            "status": extra["status"],
            "reason": extra.get("reason", ""),
            "extraction_seconds": extra.get("extraction_seconds"),
            "extraction_peak_mb": extra.get("extraction_peak_mb"),
            "params": {k: v for k, v in record["params"].items() if k != "d"},
            "n_seeds": len(extra.get("seeds") or [None]),
        }
        if extra["status"] != "ok":
            rows.append({**base, "split": None, "metric": None, "value": None, "se": None, "seed_sd": None})
            continue
        for split, values in record["metrics"].items():
            for metric in metric_names(values):
                row = {"split": split, "metric": metric, "value": values[metric], "se": values.get(f"{metric}_se")}
                rows.append({**base, **row, "seed_sd": values.get(f"{metric}_seed_sd")})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["params"] = table["params"].map(lambda p: ";".join(f"{k}={v}" for k, v in sorted(p.items())))
        table = table.iloc[_registry_order(table)].reset_index(drop=True)
    return table


def _registry_order(table: pd.DataFrame) -> np.ndarray:
    """Row positions of ``table`` with the arms in the arms registry's order (stable; reference arms
    after the grid cells), so that readers of the table (the report's figures) can keep the
    table's order without knowing the registry."""
    ranks = []
    for axis in AXES:
        rank = {name: position for position, name in enumerate(arms_of(axis))}
        ranks.append(table[axis].map(lambda name, rank=rank: rank.get(name, len(rank))).to_numpy())
    return np.lexsort(ranks[::-1])


def write_ablation_table(record_paths: list[str], output: str) -> pd.DataFrame:
    """Read every cell's records and write the tidy ``ablations.csv`` atomically."""
    table = ablation_table([record for path in sorted(record_paths) for record in read_records(path)])
    write_csv(output, table)
    return table


def write_cell(result: CellResult, records_path: str | os.PathLike, per_user_path: str | os.PathLike) -> None:
    """Write a cell's records (JSON) and per-user scores (parquet), each atomically."""
    write_records(records_path, result.records)
    write_parquet(per_user_path, result.per_user)


def read_cell(records_path: str | os.PathLike, per_user_path: str | os.PathLike) -> CellResult:
    """Read what :func:`write_cell` wrote."""
    return CellResult(read_records(records_path), pd.read_parquet(per_user_path))
