"""Run records: one JSON file per model run, and their aggregation into a tidy metrics table.

A record holds ``dataset``, ``model``, ``params`` (every hyper-parameter by its config name),
``metrics`` (``{"validation": {...}, "test": {...}}`` with ``recall@20``, ``recall@50``,
``ndcg@100`` and their ``_se``), ``n_users`` evaluated per split, ``wall_seconds``,
``peak_memory_mb`` and free-form ``extra`` details (e.g. the hyper-parameter sweep).
"""

from __future__ import annotations

import json
import math
import numbers
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from islim.errors import DataFormatError, NumericalError
from islim.evaluate import REPORTED_METRICS
from islim.fileio import write_csv, write_json
from islim.memory import peak_rss_bytes

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
    dataset: str, model: str, params: dict, metrics: dict[str, dict], wall_seconds: float, extra: dict | None = None
) -> dict[str, Any]:
    """Build a run record; ``metrics`` maps split name to :func:`islim.evaluate.evaluate` output.

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
    return _json_safe(
        {
            "dataset": dataset,
            "model": model,
            "params": params,
            "metrics": per_split,
            "n_users": {split: values["n_users"] for split, values in metrics.items()},
            "wall_seconds": round(float(wall_seconds), 3),
            "peak_memory_mb": round(peak_rss_bytes() / 2**20, 1),
            "python": platform.python_version(),
            "extra": extra or {},
        }
    )


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
    """One row per run × split × metric: dataset, model, run, split, metric, value, se, n_users, params (JSON)."""
    rows = []
    for record in records:
        run = record.get("run", record["model"])
        for split, values in record["metrics"].items():
            for name, _, _ in REPORTED_METRICS:
                rows.append(
                    {
                        "dataset": record["dataset"],
                        "model": record["model"],
                        "run": run,
                        "split": split,
                        "metric": name,
                        "value": values.get(name),
                        "se": values.get(f"{name}_se"),
                        "n_users": record["n_users"][split],
                        "wall_seconds": record["wall_seconds"],
                        "peak_memory_mb": record["peak_memory_mb"],
                        "params": json.dumps(record["params"], sort_keys=True),
                    }
                )
    columns = ["dataset", "model", "run", "split", "metric", "value", "se", "n_users", "wall_seconds", "peak_memory_mb", "params"]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "run", "split", "metric"], kind="stable")


def aggregate(record_paths: list[str | Path], output: str | Path) -> pd.DataFrame:
    """Read every record and write the tidy ``metrics.csv`` atomically."""
    table = tidy_metrics([record for path in sorted(map(str, record_paths)) for record in read_records(path)])
    write_csv(output, table)
    return table
