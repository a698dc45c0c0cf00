"""The workflow's steps as plain functions, shared by the Snakemake scripts and the CLI.

fetch → prepare (split) → EASE λ sweep → aggregate. Each step reads and writes files only at
the paths it is given and writes them atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from islim.errors import GRID_POINT_ERRORS, ConfigError, GridSearchError, IntegrityError
from islim.fileio import write_json

log = logging.getLogger(__name__)

#: Registry keys that determine the raw file (:func:`fetch`), by dataset kind: the sources of a
#: downloaded dataset, the file (or URL and digest) of a ``custom`` one, the generator settings of a
#: ``synthetic`` one (whose ``seed`` also seeds the split).
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
}
#: :data:`FETCH_KEYS` of the downloaded kinds (movielens-*, netflix, msd).
DOWNLOAD_KEYS = ("kind", "sources")

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


def local_file(entry: dict[str, Any]) -> str | None:
    """The local file a registry entry reads in place (``path`` of a ``custom`` dataset), else ``None``.

    The workflow makes it an input of the fetch step, with :func:`file_stamp` as a param, so that
    any edit of the file fetches it again: the manifest then records the new sha256, and the
    split and everything after it rerun when the content changed.
    """
    return entry["path"] if entry["kind"] == "custom" and "path" in entry else None


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


def fetch(name: str, entry: dict[str, Any], raw_dir: str | Path, mirror: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Obtain the raw file of dataset ``name`` in ``raw_dir`` and write ``raw_dir/manifest.json``.

    Real datasets are downloaded and verified (:mod:`islim.download`), ``synthetic`` ones generated,
    ``custom`` ones referenced in place (or downloaded from ``url`` and checked against ``sha256``).
    The manifest (written last) records the file, its size and sha256, so later steps and the
    report can cite exactly what was used.
    """
    raw_dir = Path(raw_dir)
    kind = entry["kind"]
    if kind == "synthetic":
        from islim.data.synthetic import write_synthetic

        path = write_synthetic(raw_dir / "interactions.parquet", entry)
    elif kind == "custom" and "path" in entry:
        path = Path(entry["path"]).resolve()
        if not path.is_file():
            raise ConfigError(f"dataset {name}: path {entry['path']} does not exist (resolved to {path})")
    else:
        from islim.download import fetch as download

        sources = entry["sources"] if kind != "custom" else [{"url": entry["url"], "sha256": entry["sha256"]}]
        path = download(name, sources, raw_dir, mirror=mirror, progress=progress)
    manifest = {
        "dataset": name,
        "kind": kind,
        "file": str(Path(path).resolve()),
        "size": Path(path).stat().st_size,
        "sha256": sha256_of(path),
    }
    write_json(raw_dir / "manifest.json", manifest)
    log.info("fetched %s: %s (%d bytes, sha256 %s)", name, manifest["file"], manifest["size"], manifest["sha256"])
    return manifest


def prepare(name: str, entry: dict[str, Any], manifest_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Read the raw file named by the manifest, split it per the protocol, and save the split.

    The file must still be the one the manifest describes (size and sha256), so that the split is
    always of the data the manifest, and hence the report's provenance, names.
    Returns the split statistics (also written to ``out_dir/stats.json``).
    """
    from islim.data.readers import read_interactions
    from islim.data.split import prepare as make_split
    from islim.data.split import save_split, split_stats

    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    path = Path(manifest["file"])
    if not path.is_file() or path.stat().st_size != manifest["size"] or sha256_of(path) != manifest["sha256"]:
        raise IntegrityError(
            f"{path} is missing or changed since it was fetched (its size or sha256 differs from {manifest_path}); "
            f"fetch it again (`islim fetch {name}`, or rerun the workflow, which refetches an edited custom file) before splitting"
        )
    frame = read_interactions(path, entry)
    log.info("%s: %d raw interactions from %s", name, len(frame), path)
    split = make_split(frame, entry, name)
    save_split(split, out_dir)
    stats = split_stats(split)
    log.info("%s split: %s", name, stats)
    return stats


def ease_sweep(
    name: str, split_dir: str | Path, lambda_grid: list[float], dtype: str = "float32", batch_size: int = 2000
) -> tuple[dict, pd.DataFrame]:
    """Fit EASE for each λ of the grid (one Gram matrix), pick λ on validation NDCG@100.

    Test metrics are computed for every λ but reported only for the selected one. A λ whose fit
    or evaluation fails numerically or over the memory budget (:data:`islim.errors.GRID_POINT_ERRORS`,
    e.g. a Cholesky factorisation that fails because λ is too small for a rank-deficient Gram
    matrix) is logged, recorded as failed with the reason, and skipped.

    Returns
    -------
    tuple
        The run record (``extra``: ``lambda_grid``, ``selected_by``, ``searched`` — each λ that
        ran, with its validation NDCG@100 —, ``failed`` — each λ that failed, with its ``reason``)
        and the sweep table: one row per λ and split with ``status`` ``ok``, plus one row per
        failed λ with ``status`` ``failed``, its ``reason`` and no split or metrics.

    Raises
    ------
    GridSearchError
        If every λ failed, naming each with its reason.
    """
    from islim.data.split import load_split
    from islim.evaluate import evaluate
    from islim.gram import dense_gram
    from islim.models.ease import EASE
    from islim.records import make_record

    start = time.perf_counter()
    split = load_split(split_dir)
    gram = dense_gram(split.train, dtype)
    rows, best, searched, failed = [], None, [], []
    for lam in lambda_grid:
        model = None
        try:
            model = EASE(lam=lam, dtype=dtype).fit(split.train, gram=gram)
            metrics = {
                "validation": evaluate(model.score_batch, split.validation_tr, split.validation_te, batch_size),
                "test": evaluate(model.score_batch, split.test_tr, split.test_te, batch_size),
            }
        except GRID_POINT_ERRORS as exc:
            log.warning("EASE lambda=%g failed and is skipped: %s", lam, exc)
            failed.append({"lambda": lam, "reason": str(exc)})
            rows.append({"lambda": lam, "split": None, "status": "failed", "reason": str(exc)})
            continue
        finally:
            del model  # the n_items² weights, before the next fit
        log.info("EASE lambda=%g: validation ndcg@100=%.4f", lam, metrics["validation"]["ndcg@100"])
        searched.append({"lambda": lam, "val_ndcg@100": metrics["validation"]["ndcg@100"]})
        rows += [{"lambda": lam, "split": s, "status": "ok", "reason": "", **m} for s, m in metrics.items()]
        if best is None or metrics["validation"]["ndcg@100"] > best[1]["validation"]["ndcg@100"]:
            best = (lam, metrics)
    if best is None:
        raise GridSearchError.every_point(f"EASE on {name}", failed)
    lam, metrics = best
    extra = {"lambda_grid": list(lambda_grid), "selected_by": "validation ndcg@100", "searched": searched, "failed": failed}
    record = make_record(name, "ease", {"lambda": lam, "dtype": dtype}, metrics, time.perf_counter() - start, extra=extra)
    return record, pd.DataFrame(rows)
