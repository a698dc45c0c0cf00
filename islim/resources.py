"""Memory requests of the workflow's training and ablation jobs, from the registries.

The generic terms (interpreter overhead, the loaded split, an evaluation block, the rounding to
MiB times the attempt) are in :mod:`islim.memory`; what a model or an arm adds comes from where
it is defined: :meth:`Recommender.memory_bytes <islim.models.base.Recommender.memory_bytes>` of the
model's class and the ``dense_copies`` / ``spd_inverse`` fields of the arms registry
(:mod:`islim.embeddings.registry`). Sizing a training job imports the model's class (for the
torch models: torch, once per Snakemake process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from islim.config import merge_settings
from islim.embeddings.registry import DEFAULT_PARAMS, arm, uses_closed_form
from islim.memory import MKL_PATH_BYTES, eval_bytes, request_mb, split_bytes
from islim.models.registry import default_params, model_class


def run_settings(defaults: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    """``(params, grid)`` of a training run: the variant's settings over ``params`` over the model's
    defaults (mappings such as ``implicit_slim`` merge one level deep), and the grid."""
    params = dict(defaults)
    for layer in [settings.get("params") or {}, *(settings.get("variants") or {}).values()]:
        params = merge_settings(params, layer or {})
    return params, dict(settings.get("grid") or {})


def train_mem_mb(stats: dict, model: str, settings: Mapping[str, Any], batch_size: int = 2000, attempt: int = 1) -> int:
    """One training run of ``model``: its class's :meth:`memory_bytes` plus the split and an
    evaluation block of ``batch_size`` rows, in MiB, times ``attempt``.

    Parameters
    ----------
    stats : dict
        The split's ``stats.json`` (:func:`islim.data.split.split_stats`).
    model : str
        A model of the registry.
    settings : mapping
        The run's ``{"params", "grid", "variants"}`` (:func:`islim.config.training_variant`).
    batch_size, attempt : int
        Held-out users scored at once; Snakemake's attempt number.

    Returns
    -------
    int
        MiB to request.
    """
    params, grid = run_settings(default_params(model), settings)
    extra = model_class(model).memory_bytes(stats["users"]["train"], stats["items"], params, grid)
    return request_mb(extra + split_bytes(stats) + eval_bytes(stats, batch_size), attempt)


def dense_copies(cell: Mapping[str, str], n_items: int, k: int) -> float:
    """Peak number of dense float64 ``I x I`` arrays of an ablation cell.

    * ``all`` with ImplicitSLIM's closed form: none (sparse products and ``I x d`` arrays);
    * ``all`` otherwise: the larger of the first step's ``dense_copies`` (two more for an SPD
      inverse on the MKL path) and the second step's; none when the first step's ``S`` is sparse;
    * ``knn``: a float32 co-occurrence matrix (half a copy); the explicit step densifies ``L`` when
      ``min(I k², I²) > 0.1 I²`` (two copies with LAPACK's).
    """
    first, second = arm("first_step", cell["first_step"]), arm("second_step", cell["second_step"])
    if cell["neighbourhood"] == "knn":
        densified = second.name == "explicit" and min(n_items * k * k, n_items**2) > 0.1 * n_items**2
        return 2.0 if densified else 0.5
    if uses_closed_form(cell["neighbourhood"], first.name, second.name) or first.dense_copies == 0:
        return 0.0
    mkl = 2 if first.spd_inverse and 8 * n_items**2 > MKL_PATH_BYTES else 0
    return float(max(first.dense_copies + mkl, second.dense_copies))


def ablation_mem_mb(
    stats: dict, cell: Mapping[str, str], d: int, grids: Mapping | None = None, batch_size: int = 2000, attempt: int = 1
) -> int:
    """One ablation cell (``cell`` = ``{"neighbourhood", "first_step", "second_step"}``) or
    reference arm (``{"reference": name}``) at embedding size ``d``, in MiB, times ``attempt``.

    :func:`dense_copies` dense float64 ``I x I`` arrays; for ``knn`` the sparse ``S`` and ``L``
    (``12 (I k + min(I k², I²))`` bytes for the explicit step, ``12 I k`` otherwise; ``k`` the
    largest of the cell's grid); for the ``svd`` reference a randomized SVD (``3 (U + I)(d + 10)``
    float64 values). Plus ``I x d`` float64 embeddings and the scorers' item statistics
    (``8 I d`` values), user factors (``2 U d``), the split and an evaluation block.
    """
    n_items, n_users = stats["items"], stats["users"]["train"]
    extra = 8 * (8 * n_items * d + 2 * n_users * d)
    if "reference" in cell:
        if cell["reference"] == "svd":
            extra += 8 * 3 * (n_users + n_items) * (d + 10)
    else:
        knn = ((grids or {}).get("neighbourhood", {}) or {}).get("knn") or {}
        k = max(knn.get("k") or [DEFAULT_PARAMS["k"]])
        extra += 8 * dense_copies(cell, n_items, k) * n_items**2
        if cell["neighbourhood"] == "knn":
            extra += 12 * (n_items * k + (min(n_items * k * k, n_items**2) if cell["second_step"] == "explicit" else 0))
    return request_mb(extra + split_bytes(stats) + eval_bytes(stats, batch_size), attempt)
