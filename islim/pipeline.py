"""The workflow's steps as plain functions, shared by the Snakemake scripts and the CLI.

fetch → prepare (split) → EASE λ sweep (one λ per job, then the selection) → aggregate. Each
step reads and writes files only at the paths it is given and writes them atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from islim.errors import ConfigError, IntegrityError
from islim.fileio import write_json

if TYPE_CHECKING:  # the EASE steps import their modules when they run (see islim.codehash)
    import numpy as np
    import pandas as pd

    from islim.data.split import Split
    from islim.training import PointResult

log = logging.getLogger(__name__)

#: Registry keys that determine the raw file (:func:`fetch`), by dataset kind: the sources of a
#: downloaded dataset, the file (or URL and digest) of a ``custom`` one, the generator settings of a
#: ``synthetic`` one (whose ``seed`` also seeds the split), the two files of a ``lightgcn`` one.
FETCH_KEYS = {
    "synthetic": (
        "kind",
        "n_users",
        "n_items",
        "n_interactions",
        "rank",
        "popularity_exponent",
        "activity_sigma",
        "taste_strength",
        "seed",
    ),
    "custom": ("kind", "path", "url", "sha256"),
    "lightgcn": ("kind", "train", "test"),
}
#: :data:`FETCH_KEYS` of the downloaded kinds (movielens-*, netflix, msd).
DOWNLOAD_KEYS = ("kind", "sources")
#: The files of a ``lightgcn`` dataset, each a local ``path`` or a download source.
LIGHTGCN_FILES = ("train", "test")

#: Registry keys that determine the split of a fetched raw file (:func:`prepare`): how the file is
#: read and checked (:func:`islim.data.readers.read_interactions`: ``kind``, the format options of
#: a ``custom`` file, ``expected_raw``), then filtered and split (:func:`islim.data.split.prepare`).
SPLIT_KEYS = (
    "kind",
    "format",
    "user_col",
    "item_col",
    "rating_col",
    "header",
    "delimiter",
    "user_ids",
    "leading_count",
    "expected_raw",
    "threshold",
    "min_item_users",
    "min_user_interactions",
    "heldout_users",
    "seed",
    "target_fraction",
    "min_heldout_interactions",
    "min_evaluable_users",
    "expected",
    "protocol",
    "test_fraction",
    "validation_fraction",
)


def fetch_parameters(entry: dict[str, Any]) -> dict[str, Any]:
    """The part of a registry entry that determines the raw file (:data:`FETCH_KEYS`).

    The workflow passes only this to the fetch step, so that changing anything else (the split,
    ``ease`` or ``training`` settings, the ``description``) does not fetch the data again.
    """
    keys = FETCH_KEYS.get(entry["kind"], DOWNLOAD_KEYS)
    return {key: entry[key] for key in keys if key in entry}


def split_parameters(entry: dict[str, Any]) -> dict[str, Any]:
    """The part of a registry entry that determines the split of the fetched file (:data:`SPLIT_KEYS`).

    The workflow passes only this to the split step: changing a dataset's ``ease`` or ``training``
    settings, its ``description`` or where its file comes from does not split it again (a different
    file reaches the split through the manifest, whose content is the split's input).
    """
    return {key: entry[key] for key in SPLIT_KEYS if key in entry}


def local_files(entry: dict[str, Any]) -> list[str]:
    """The local files a registry entry reads in place: the ``path`` of a ``custom`` dataset, the
    ``path`` of the ``train`` and ``test`` files of a ``lightgcn`` one (none for other kinds).

    The workflow makes them inputs of the fetch step, with their :func:`file_stamp` as a param, so
    that any edit of a file fetches it again: the manifest then records the new sha256, and the
    split and everything after it rerun when the content changed.
    """
    if entry["kind"] == "custom":
        return [entry["path"]] if "path" in entry else []
    if entry["kind"] == "lightgcn":
        return [entry[role]["path"] for role in LIGHTGCN_FILES if "path" in entry[role]]
    return []


def file_stamp(path: str | Path | None) -> dict[str, int] | None:
    """Size and modification time (ns) of ``path``; ``None`` when there is no such file.

    A param of the fetch step: Snakemake reruns a job whose input is *newer* than its output, and
    this reruns it also when a file is replaced by an older copy (``cp -p``, ``rsync -t``).
    """
    if path is None or not Path(path).is_file():
        return None
    status = Path(path).stat()
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns}


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 digest of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _obtain(name: str, spec: dict[str, Any], sources: list[dict[str, Any]], raw_dir: Path, mirror: str | None, progress: bool) -> Path:
    """The file ``spec["path"]`` read in place (it must exist), else the verified download of ``sources``."""
    if "path" in spec:
        path = Path(spec["path"]).resolve()
        if not path.is_file():
            raise ConfigError(f"dataset {name}: path {spec['path']} does not exist (resolved to {path})")
        return path
    from islim.download import fetch as download

    return download(name, sources, raw_dir, mirror=mirror, progress=progress)


def _file_record(path: Path) -> dict[str, Any]:
    """What a manifest records of one raw file: its absolute path, size and sha256."""
    return {"file": str(Path(path).resolve()), "size": Path(path).stat().st_size, "sha256": sha256_of(path)}


def manifest_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The raw files a manifest records, by role: ``{"interactions": {file, size, sha256}}`` for a
    one-file dataset, ``{"train": …, "test": …}`` for a ``lightgcn`` one."""
    if "files" in manifest:
        return manifest["files"]
    return {"interactions": {key: manifest[key] for key in ("file", "size", "sha256")}}


def fetch(name: str, entry: dict[str, Any], raw_dir: str | Path, mirror: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Obtain the raw file(s) of dataset ``name`` in ``raw_dir`` and write ``raw_dir/manifest.json``.

    Real datasets are downloaded and verified (:mod:`islim.download`), ``synthetic`` ones generated,
    ``custom`` ones referenced in place (or downloaded from ``url`` and checked against ``sha256``),
    the ``train`` and ``test`` files of a ``lightgcn`` one each referenced in place (``path``) or
    downloaded from its source (a file without ``sha256`` is pinned on first use; a ``data_mirror``
    is searched by the source's file name). The manifest (written last) records each file, its size
    and sha256 (``file``, ``size``, ``sha256``; for ``lightgcn``: ``files``, the same per file, see
    :func:`manifest_files`), so later steps and the report can cite exactly what was used.
    """
    raw_dir = Path(raw_dir)
    kind = entry["kind"]
    manifest: dict[str, Any] = {"dataset": name, "kind": kind}
    if kind == "lightgcn":
        manifest["files"] = {
            role: _file_record(_obtain(name, entry[role], [entry[role]], raw_dir, mirror, progress)) for role in LIGHTGCN_FILES
        }
    elif kind == "synthetic":
        from islim.data.synthetic import write_synthetic

        manifest |= _file_record(write_synthetic(raw_dir / "interactions.parquet", entry))
    else:
        sources = entry["sources"] if kind != "custom" else [{"url": entry.get("url"), "sha256": entry.get("sha256")}]
        manifest |= _file_record(_obtain(name, entry if kind == "custom" else {}, sources, raw_dir, mirror, progress))
    write_json(raw_dir / "manifest.json", manifest)
    for role, record in manifest_files(manifest).items():
        log.info("fetched %s %s: %s (%d bytes, sha256 %s)", name, role, record["file"], record["size"], record["sha256"])
    return manifest


def prepare(name: str, entry: dict[str, Any], manifest_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Read the raw file named by the manifest, split it per the protocol, and save the split.

    The file must still be the one the manifest describes (size and sha256), so that the split is
    always of the data the manifest, and hence the report's provenance, names.
    Returns the split statistics (also written to ``out_dir/stats.json``).
    """
    from islim.config import protocol_of
    from islim.data.peruser import prepare_per_user, prepare_published
    from islim.data.readers import read_interactions
    from islim.data.split import prepare as make_split
    from islim.data.split import save_split, split_stats

    files = manifest_files(json.loads(Path(manifest_path).read_text(encoding="utf-8")))
    for record in files.values():
        path = Path(record["file"])
        if not path.is_file() or path.stat().st_size != record["size"] or sha256_of(path) != record["sha256"]:
            raise IntegrityError(
                f"{path} is missing or changed since it was fetched (its size or sha256 differs from {manifest_path}); "
                f"fetch it again (`islim fetch {name}`, or rerun the workflow, which refetches an edited custom file) before splitting"
            )
    if entry["kind"] == "lightgcn":
        split = prepare_published(files["train"]["file"], files["test"]["file"], entry, name)
    else:
        path = Path(files["interactions"]["file"])
        frame = read_interactions(path, entry)
        log.info("%s: %d raw interactions from %s", name, len(frame), path)
        split = (prepare_per_user if protocol_of(entry) == "weak" else make_split)(frame, entry, name)
    save_split(split, out_dir)
    stats = split_stats(split)
    log.info("%s split: %s", name, stats)
    return stats


def ease_point(
    name: str,
    split: Split,
    lam: float,
    dtype: str = "float32",
    batch_size: int = 2000,
    gram: np.ndarray | None = None,
    metric_settings: Mapping[str, Any] | None = None,
) -> PointResult:
    """One λ of EASE's sweep (the ``ease_point`` job): fit, then score every validation and test user.

    Parameters
    ----------
    name : str
        The dataset.
    split : islim.data.split.Split
        Its split.
    lam : float
        The ridge weight λ.
    dtype : str
        Dtype of the dense ``n_items²`` arrays.
    batch_size : int
        Held-out users scored at once.
    gram : ndarray, optional
        The precomputed dense Gram matrix ``XᵀX`` of the training users (shared across a sweep
        in one process; not modified).
    metric_settings : mapping, optional
        The dataset's metric settings (:func:`islim.evaluate.dataset_metric_settings`: the metrics
        reported); ``None``: the strong protocol's defaults.

    Returns
    -------
    PointResult
        As :func:`islim.training.estimator_point`: point ``{"lambda": lam}``, params EASE's;
        failed (with the reason) when the fit or evaluation fails numerically or over the memory
        budget, e.g. a Cholesky factorisation that fails because λ is too small for a
        rank-deficient Gram matrix.
    """
    from islim.evaluate import PROTOCOL_DEFAULTS, settings_metrics
    from islim.models.ease import EASE
    from islim.training import estimator_point

    settings = metric_settings or PROTOCOL_DEFAULTS["strong"]
    fit_params = {} if gram is None else {"gram": gram}
    estimator = EASE(lam=lam, dtype=dtype)
    return estimator_point(
        name, split, estimator, "ease", {"lambda": lam}, batch_size, settings_metrics(settings), settings["select"], **fit_params
    )


def select_ease(
    name: str, lambda_grid: list[float], results: list[PointResult], popularity: dict[str, Any] | None = None, monitor: str | None = None
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Select EASE's λ on validation ``monitor`` (the ``ease`` job) and report it on test.

    Parameters
    ----------
    name : str
        The dataset.
    lambda_grid : list of float
        The λ values swept (for the record and the ``grid_edge:lambda`` flag).
    results : list of PointResult
        :func:`ease_point` of each λ.
    popularity : dict, optional
        The popularity run's record on the same split, for the ``below_popularity`` flag.
    monitor : str, optional
        The selection metric (the dataset protocol's ``select``; default ``ndcg@100``).

    Returns
    -------
    tuple
        The run record (``params``: ``lambda``, ``dtype``; ``extra``: ``lambda_grid``,
        ``selected_by``, ``searched`` — each λ that ran, with its validation ``monitor`` —, ``failed``
        — each λ that failed, with its ``reason``; ``flags`` as for training runs, see
        :func:`islim.training.run_flags`), the sweep table (one row per λ and split with
        ``status`` ``ok`` and the metrics, plus one row per failed λ with ``status`` ``failed``,
        its ``reason`` and no split or metrics) and the kept λ's per-user table.

    Raises
    ------
    GridSearchError
        If every λ failed, naming each with its reason.
    """
    import pandas as pd

    from islim.models.base import DEFAULT_MONITOR
    from islim.records import make_record
    from islim.training import choose_point, run_flags, search_cost, seed_average

    monitor = monitor or DEFAULT_MONITOR
    (kept,), searched, failed = choose_point(results, f"EASE on {name}", monitor)
    per_user, metrics = seed_average([kept])
    lam = kept.record["extra"]["point"]["lambda"]
    extra = {"lambda_grid": list(lambda_grid), "selected_by": f"validation {monitor}", "searched": searched, "failed": failed}
    flags = run_flags({"lambda": list(lambda_grid)}, {"lambda": lam}, metrics, popularity, unconverged=False, monitor=monitor)
    seconds, peak = search_cost(results)
    params = {"lambda": lam, "dtype": kept.record["params"]["dtype"]}
    record = make_record(name, "ease", params, metrics, seconds, extra=extra, flags=flags, peak_memory_mb=peak)
    rows = []
    for result in results:
        lam, extra = result.record["extra"]["point"]["lambda"], result.record["extra"]
        if not result.ok:
            rows.append({"lambda": lam, "split": None, "status": "failed", "reason": extra["reason"]})
            continue
        for split, values in result.record["metrics"].items():
            rows.append({"lambda": lam, "split": split, "status": "ok", "reason": "", **values, "n_users": result.record["n_users"][split]})
    return record, pd.DataFrame(rows), per_user


def ease_sweep(
    name: str,
    split_dir: str | Path,
    lambda_grid: list[float],
    dtype: str = "float32",
    batch_size: int = 2000,
    metric_settings: Mapping[str, Any] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """EASE's λ sweep in one process: :func:`ease_point` for each λ (sharing one Gram matrix),
    then :func:`select_ease` (``metric_settings``: see :func:`ease_point`).

    Returns
    -------
    tuple
        The run record and the sweep table of :func:`select_ease` (its per-user table is left out).

    Raises
    ------
    GridSearchError
        If every λ failed, naming each with its reason.
    """
    from islim.data.split import load_split
    from islim.evaluate import PROTOCOL_DEFAULTS
    from islim.gram import dense_gram

    settings = metric_settings or PROTOCOL_DEFAULTS["strong"]
    split = load_split(split_dir)
    gram = dense_gram(split.train, dtype)
    results = [ease_point(name, split, lam, dtype, batch_size, gram, settings) for lam in lambda_grid]
    record, sweep, _ = select_ease(name, lambda_grid, results, monitor=settings["select"])
    return record, sweep
