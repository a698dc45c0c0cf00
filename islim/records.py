"""Run records: one JSON file per model run, per-user score tables, and their aggregation.

A record holds ``dataset``, ``model``, ``params`` (every hyper-parameter by its config name),
``metrics`` (``{"validation": {...}, "test": {...}}`` with the metrics of the dataset's protocol
(:func:`islim.evaluate.dataset_metric_settings`; by default ``recall@20``, ``recall@50``,
``ndcg@100``) and the ``_se`` of each per-user one (a set-level metric such as ``coverage@20`` has
none); a run averaged over several seeds adds ``<metric>_seed_sd``),
``n_users`` evaluated per split, ``wall_seconds``, ``peak_memory_mb``, ``flags`` (warnings about
the run, e.g. ``not_converged``, ``grid_edge:<param>``, ``below_popularity``; see
:mod:`islim.training`) and free-form ``extra`` details (e.g. the hyper-parameter sweep, ``seeds``).

A per-user table (``results/<dataset>/per_user/<run>.parquet``, :func:`per_user_table`) holds one
row per evaluated held-out user and split: ``split`` (``"validation"`` or ``"test"``), ``user``
(the user's original id from the raw data, as text, the same in every run on the split; see
``users.csv`` of the split) and one column per per-user metric; its means per split are the
record's per-user metrics.
"""

from __future__ import annotations

import json
import math
import numbers
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from islim.errors import DataFormatError, NumericalError
from islim.evaluate import summarize
from islim.fileio import write_csv, write_json
from islim.memory import peak_rss_bytes
from islim.metrics import metric_list, metric_names

REQUIRED_KEYS = ("dataset", "model", "params", "metrics", "n_users", "wall_seconds", "peak_memory_mb")

#: Fields that measure the run (time, memory) rather than result from its inputs and seeds: the
#: only ones that differ between two runs of the same job (in a record, its ``extra``, or a
#: training curve's columns).
TIMING_FIELDS = ("wall_seconds", "peak_memory_mb", "extraction_seconds", "extraction_peak_mb")


def _json_safe(value: Any) -> Any:
    """Numpy scalars to Python numbers, NaN to None (JSON has no NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def make_record(
    dataset: str,
    model: str,
    params: dict,
    metrics: dict[str, dict],
    wall_seconds: float,
    extra: dict | None = None,
    flags: Sequence[str] = (),
    peak_memory_mb: float | None = None,
) -> dict[str, Any]:
    """Build a run record; ``metrics`` maps split name to :func:`islim.evaluate.evaluate` output.

    ``flags`` are the run's warnings (see the module docstring); ``peak_memory_mb`` defaults to
    this process's peak resident memory (pass the runs' own peak when the record gathers runs made
    by other processes).

    Raises
    ------
    NumericalError
        A metric or standard error is NaN or infinite (a record never holds one): no user, or for a
        standard error a single user, was evaluated in that split.
    """
    per_split = {split: {k: v for k, v in values.items() if k != "n_users"} for split, values in metrics.items()}
    for split, values in per_split.items():
        undefined = [name for name, value in values.items() if isinstance(value, numbers.Real) and not math.isfinite(value)]
        if undefined:
            raise NumericalError(
                f"run record of {model!r} on dataset {dataset!r}: {split} {', '.join(undefined)} "
                f"{'is not a finite number' if len(undefined) == 1 else 'are not finite numbers'} ({metrics[split]['n_users']} evaluated user(s)); "
                "a record holds finite metrics only, and a mean needs at least 1 evaluated user, a standard error at least 2. "
                f"Check evaluated_users in data/processed/{dataset}/stats.json, raise heldout_users or lower "
                "min_heldout_interactions in the dataset's registry entry, and split again"
            )
    peak = peak_rss_bytes() / 2**20 if peak_memory_mb is None else peak_memory_mb
    return _json_safe(
        {
            "dataset": dataset,
            "model": model,
            "params": params,
            "metrics": per_split,
            "n_users": {split: values["n_users"] for split, values in metrics.items()},
            "wall_seconds": round(float(wall_seconds), 3),
            "peak_memory_mb": round(float(peak), 1),
            "python": platform.python_version(),
            "flags": list(flags),
            "extra": extra or {},
        }
    )


#: The columns of a per-user table before its metric columns.
PER_USER_KEYS = ("split", "user")


def per_user_table(split: str, scores: Mapping[str, np.ndarray], user_ids: np.ndarray) -> pd.DataFrame:
    """The per-user table of one held-out split.

    Parameters
    ----------
    split : str
        ``"validation"`` or ``"test"``.
    scores : mapping
        :func:`islim.evaluate.per_user_metrics` of the split: ``"user"`` (row indices of the
        evaluated users in the split's fold-in matrix) and one 1-D array per per-user metric
        (other keys are left out).
    user_ids : ndarray, shape (n_rows,)
        The original id of each row of the split's matrices (:attr:`islim.data.split.Split.user_ids`).

    Returns
    -------
    pandas.DataFrame
        One row per evaluated user: ``split``, ``user`` (the original id as text) and the metrics
        ``scores`` holds, as float64, in its order.
    """
    rows = np.asarray(scores["user"], dtype=np.int64)
    table = pd.DataFrame({"split": split, "user": np.asarray(user_ids)[rows].astype(str)})
    for name in metric_names(scores):
        table[name] = np.asarray(scores[name], dtype=np.float64)
    return table


def mean_over_seeds(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-user scores averaged over the runs of several seeds (the same users in each).

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        :func:`per_user_table` output of each seed (splits concatenated), at least one.

    Returns
    -------
    pandas.DataFrame
        The same columns, one row per (split, user), each metric the mean over the tables, rows in
        the first table's order.

    Raises
    ------
    DataFormatError
        The tables do not hold the same (split, user) rows.
    """
    if not tables:
        raise DataFormatError("no per-user table to average over seeds")
    first = tables[0]
    keys = first.set_index(list(PER_USER_KEYS)).index
    for position, table in enumerate(tables[1:], start=2):
        other = table.set_index(list(PER_USER_KEYS)).index
        if len(other) != len(keys) or not other.sort_values().equals(keys.sort_values()):
            raise DataFormatError(
                f"per-user table {position} scores other users than table 1 ({len(other)} vs {len(keys)} rows); "
                "seeds of one run must be evaluated on the same split"
            )
    stacked = pd.concat([table.set_index(list(PER_USER_KEYS)) for table in tables])
    mean = stacked.groupby(level=list(PER_USER_KEYS), sort=False).mean()
    return mean.loc[keys].reset_index()


def split_summaries(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean, standard error and ``n_users`` of each metric per split of a per-user table
    (:func:`islim.evaluate.summarize`; every metric column of the table, in its order), in the order
    the splits first appear."""
    summaries = {}
    metrics = metric_list(metric_names(table.columns))
    for split, rows in table.groupby("split", sort=False):
        scores = {metric.name: rows[metric.name].to_numpy() for metric in metrics}
        summaries[split] = summarize({"user": rows["user"].to_numpy(), **scores}, metrics)
    return summaries


def seed_spread(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """``<metric>_seed_sd`` per split: the standard deviation (``ddof=1``) over seeds of each seed's
    mean metric.

    Parameters
    ----------
    runs : sequence of mapping
        The ``metrics`` of each seed's record (``{split: {metric: mean, ...}}``), at least two.

    Returns
    -------
    dict
        ``{split: {"<metric>_seed_sd": float}}`` for every metric the first run reports.
    """
    if len(runs) < 2:
        raise DataFormatError(f"a standard deviation over seeds needs at least 2 runs, got {len(runs)}")
    spread: dict[str, dict[str, float]] = {}
    for split in runs[0]:
        names = metric_names(runs[0][split])
        spread[split] = {f"{name}_seed_sd": float(np.std([run[split][name] for run in runs], ddof=1)) for name in names}
    return spread


def seed_summaries(averaged: pd.DataFrame, runs: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """The metrics of a run averaged over its seeds.

    Parameters
    ----------
    averaged : pandas.DataFrame
        The seeds' per-user tables averaged (:func:`mean_over_seeds`).
    runs : sequence of mapping
        The ``metrics`` of each seed's record (``{split: {metric: mean, ...}}``), at least one.

    Returns
    -------
    dict
        Per split: :func:`split_summaries` of ``averaged`` (mean, standard error over users and
        ``n_users`` of each per-user metric), the mean over the seeds of each set-level metric (no
        per-user column, e.g. ``coverage@K``), and with two seeds or more :func:`seed_spread`.
    """
    metrics = split_summaries(averaged)
    for split, values in metrics.items():
        set_level = [name for name in metric_names(runs[0][split]) if name not in values]
        values.update({name: float(np.mean([run[split][name] for run in runs])) for name in set_level})
    if len(runs) > 1:
        for split, spread in seed_spread(runs).items():
            metrics[split].update(spread)
    return metrics


def without_timing(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` without :data:`TIMING_FIELDS`, at any depth (for comparing runs)."""
    if isinstance(record, dict):
        return {key: without_timing(value) for key, value in record.items() if key not in TIMING_FIELDS}
    if isinstance(record, list):
        return [without_timing(value) for value in record]
    return record


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """Write a record atomically after checking it has every required key."""
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise DataFormatError(f"run record for {path} lacks {missing}")
    write_json(path, record)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read the records of one file: a single record, or ``{"records": [...]}`` (one grid cell).

    Fails clearly on a malformed file or a record lacking a required key.
    """
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc}); delete it and rerun the job that wrote it") from exc
    records = content["records"] if isinstance(content, dict) and "records" in content else [content]
    for record in records:
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise DataFormatError(f"{path}: run record lacks {missing}")
    return records


def read_record(path: str | Path) -> dict[str, Any]:
    """Read a file holding exactly one record."""
    records = read_records(path)
    if len(records) != 1:
        raise DataFormatError(f"{path}: expected one run record, found {len(records)}")
    return records[0]


def write_records(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write several records (e.g. one per scorer of a grid cell) as ``{"records": [...]}`` atomically."""
    for record in records:
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise DataFormatError(f"run record for {path} lacks {missing}")
    write_json(path, {"records": records})


def tidy_metrics(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run × split × metric.

    Columns: dataset, model, run, split, metric, value, se, ``seed_sd`` (standard deviation over
    seeds of the seeds' means; empty for a run of one seed), ``n_seeds`` (1 for a deterministic
    run), n_users, wall_seconds, peak_memory_mb, ``flags`` (the record's flags joined by ``;``,
    empty when none) and params (JSON).
    """
    rows = []
    for record in records:
        run = record.get("run", record["model"])
        flags = ";".join(record.get("flags", []))
        n_seeds = len(record.get("extra", {}).get("seeds") or [None])
        for split, values in record["metrics"].items():
            for name in metric_names(values):
                rows.append(
                    {
                        "dataset": record["dataset"],
                        "model": record["model"],
                        "run": run,
                        "split": split,
                        "metric": name,
                        "value": values.get(name),
                        "se": values.get(f"{name}_se"),
                        "seed_sd": values.get(f"{name}_seed_sd"),
                        "n_seeds": n_seeds,
                        "n_users": record["n_users"][split],
                        "wall_seconds": record["wall_seconds"],
                        "peak_memory_mb": record["peak_memory_mb"],
                        "flags": flags,
                        "params": json.dumps(record["params"], sort_keys=True),
                    }
                )
    columns = [
        "dataset",
        "model",
        "run",
        "split",
        "metric",
        "value",
        "se",
        "seed_sd",
        "n_seeds",
        "n_users",
        "wall_seconds",
        "peak_memory_mb",
        "flags",
        "params",
    ]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "run", "split", "metric"], kind="stable")


def aggregate(record_paths: list[str | Path], output: str | Path) -> pd.DataFrame:
    """Read every record and write the tidy ``metrics.csv`` atomically."""
    table = tidy_metrics([record for path in sorted(map(str, record_paths)) for record in read_records(path)])
    write_csv(output, table)
    return table
