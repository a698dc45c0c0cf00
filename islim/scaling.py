"""Cost of EASE, SLIM-LLE and ImplicitSLIM against the number of items, measured on this machine.

:func:`measure_scaling` draws synthetic matrices with ML-20M's profile scaled down (about 7 users
and 500 interactions per item; ML-20M has 136,677 users, 20,108 items and 10.0M interactions
after preprocessing) at each item count, and times each method in a fresh forked process on the
given threads (:func:`measure_call`), so that the peak memory it reports belongs to that one call.
:func:`machine_description` records where and when (CPU, cores, memory, BLAS libraries from
threadpoolctl, versions, UTC date). The workflow's opt-in target ``snakemake scaling`` writes both
(``results/summary/scaling.csv`` and ``scaling.json``); ``benchmarks/bench_scaling.py`` is the
same measurement from the command line.

The methods' own modules (and torch) are imported when a measurement starts (:func:`import_methods`,
before any child forks), so that reading this module (the workflow's memory request,
:func:`scaling_mem_mb`) stays cheap and no measured call pays for an import.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import platform
import queue as queue_module
import resource
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from islim.config import load_schema
from islim.errors import ConfigError
from islim.fileio import write_csv, write_json
from islim.memory import dense_bytes, request_mb
from islim.threads import blas_description, limit_threads

#: Columns of the measurement table (one row per method x item count); ``d`` is empty for EASE.
SCALING_COLUMNS = ["method", "n_items", "d", "seconds", "peak_mb"]
#: Seconds between checks that a measured child is still alive.
POLL_SECONDS = 5


def fit_ease(X: sp.csr_matrix, d: int, lam: float) -> float:
    """EASE's dense ``I x I`` weights (``d`` unused: EASE has no embeddings); returns one weight."""
    from islim.models.ease import EASE

    return float(EASE(lam=lam).fit(X).weights_[0, 1])


def fit_slim_lle(X: sp.csr_matrix, d: int, lam: float) -> float:
    """The explicit SLIM-LLE embeddings (dense ``I x I`` weights and eigenproblem); returns one entry."""
    from islim.embeddings import slim_lle

    return float(slim_lle(X, lam, d)[0, 0])


def fit_implicit_slim(X: sp.csr_matrix, d: int, lam: float) -> float:
    """One ImplicitSLIM step from seeded random ``(I, d)`` embeddings; returns one entry."""
    from islim.embeddings import implicit_slim

    E0 = np.random.default_rng(0).standard_normal((X.shape[1], d)).astype(np.float32)
    return float(implicit_slim(E0, X, lam, 1.0)[0, 0])


#: The measured methods: ``fit(X, d, lam)``, and whether the method has an embedding size.
METHODS: dict[str, tuple[Callable[[sp.csr_matrix, int, float], float], bool]] = {
    "EASE": (fit_ease, False),
    "SLIM-LLE": (fit_slim_lle, True),
    "ImplicitSLIM": (fit_implicit_slim, True),
}


def import_methods() -> None:
    """Import the measured methods' modules and torch (when installed: ImplicitSLIM's CPU backend)
    in this process, so that no measured child pays for the imports in its time or memory."""
    import islim.embeddings  # noqa: F401
    import islim.models.ease  # noqa: F401

    try:
        import torch  # noqa: F401
    except ImportError:
        pass


def _child(results: Any, function: Callable, args: tuple, threads: int) -> None:
    limit_threads(threads)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put({"seconds": seconds, "peak_mb": peak / 1024, "extra_peak_mb": (peak - baseline) / 1024, "result": result})


def measure_call(function: Callable, *args: Any, threads: int = 2) -> dict[str, Any]:
    """Run ``function(*args)`` in a forked child limited to ``threads``; its wall time and memory.

    Parameters
    ----------
    function : callable
        Called once in the child; it should return something small (pickled back as ``result``).
    *args
        Its arguments (inherited by the fork, not copied through a pipe).
    threads : int
        BLAS/OpenMP/torch threads of the child.

    Returns
    -------
    dict
        ``seconds`` (wall), ``peak_mb`` (the child's peak resident set, MiB), ``extra_peak_mb``
        (its growth during the call: memory beyond what the child inherited) and ``result``.

    Raises
    ------
    RuntimeError
        If the child dies (out of memory, a crash) before reporting.
    """
    context = mp.get_context("fork")
    results = context.Queue()
    process = context.Process(target=_child, args=(results, function, args, threads))
    process.start()
    while True:
        try:
            outcome = results.get(timeout=POLL_SECONDS)
            break
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"the measured call {function.__name__} died with exit code {process.exitcode}") from None
    process.join()
    return outcome


def default_settings() -> dict[str, Any]:
    """The defaults of config ``report.scaling`` (islim/schemas/config.schema.yaml describes each)."""
    properties = load_schema()["properties"]["report"]["properties"]["scaling"]["properties"]
    return {name: spec["default"] for name, spec in properties.items()}


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """:func:`default_settings` updated with ``settings``; the item counts sorted and distinct.

    Raises
    ------
    ConfigError
        For an unknown setting, fewer than two distinct item counts (no slope can be fitted), or
        more interactions per item than the smallest matrix has user-item pairs.
    """
    defaults = default_settings()
    if unknown := sorted(set(settings) - set(defaults)):
        raise ConfigError(f"report.scaling: unknown settings {unknown}; known: {sorted(defaults)}")
    merged = {**defaults, **settings}
    items = sorted({int(n) for n in merged["items"]})
    if len(items) < 2 or items[0] < 2:
        raise ConfigError(
            f"report.scaling.items {merged['items']}: give two or more distinct item counts of at least 2 (a slope needs two sizes)"
        )
    if merged["interactions_per_item"] > merged["users_per_item"] * items[0]:
        raise ConfigError(
            f"report.scaling: {merged['interactions_per_item']} interactions per item exceed the "
            f"{merged['users_per_item']} x {items[0]} user-item pairs of the smallest matrix; lower interactions_per_item"
        )
    return {**merged, "items": items}


def synthetic_scaling_matrix(n_items: int, users_per_item: int, interactions_per_item: int) -> sp.csr_matrix:
    """islim's synthetic generator at ``users_per_item · I`` users and ``interactions_per_item · I``
    ones (seeded by ``I``), binary CSR float32 of shape ``(users_per_item · I, I)``."""
    from islim.data.synthetic import generate

    return generate(users_per_item * n_items, n_items, interactions_per_item * n_items, seed=n_items)


def measure_scaling(settings: dict[str, Any], threads: int, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Time and peak memory of every method of :data:`METHODS` at every item count.

    Parameters
    ----------
    settings : dict
        Config ``report.scaling`` (defaults: :func:`default_settings`): ``items`` (item counts I),
        ``explicit_max_items`` (SLIM-LLE, a dense I x I eigenproblem, runs up to this I),
        ``d`` (embedding size), ``lam`` (λ of all three), ``users_per_item`` and
        ``interactions_per_item`` (the matrices' profile).
    threads : int
        Threads of each measured call.
    log : callable, optional
        Called with one line per measurement.

    Returns
    -------
    pandas.DataFrame
        :data:`SCALING_COLUMNS`: ``seconds`` of wall time and ``peak_mb``, the growth of the
        measuring process's peak resident set (MiB) during the call.
    """
    settings = check_settings(settings)
    import_methods()
    rows = []
    for n_items in settings["items"]:
        X = synthetic_scaling_matrix(n_items, settings["users_per_item"], settings["interactions_per_item"])
        for method, (fit, has_d) in METHODS.items():
            if method == "SLIM-LLE" and n_items > settings["explicit_max_items"]:
                continue
            outcome = measure_call(fit, X, settings["d"], settings["lam"], threads=threads)
            d = settings["d"] if has_d else np.nan
            rows.append({"method": method, "n_items": n_items, "d": d, "seconds": outcome["seconds"], "peak_mb": outcome["extra_peak_mb"]})
            if log:
                log(f"I = {n_items:,} ({X.nnz:,} ones): {method} {outcome['seconds']:.2f} s, {outcome['extra_peak_mb']:.0f} MiB")
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_description(threads: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Where, when and how a scaling measurement ran (written beside its CSV as JSON).

    Parameters
    ----------
    threads : int
        Threads of each measured call.
    settings : dict
        The measurement's settings (:func:`check_settings`).

    Returns
    -------
    dict
        ``date`` (UTC, ISO 8601), ``cpu`` (model name), ``logical_cores``, ``usable_cores`` (this
        process's CPU affinity), ``memory_gib``, ``platform``, ``python``, ``packages`` (numpy,
        scipy, torch versions), ``blas`` (threadpoolctl: library, version, kernel, threads, file),
        ``threads`` and ``settings``.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(memory / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _package_version(name) for name in ("islim", "numpy", "scipy", "torch")},
        "blas": blas_description(),
        "threads": threads,
        "settings": settings,
    }


def scaling_mem_mb(settings: dict[str, Any], attempt: int = 1) -> int:
    """Memory (MiB) to request for :func:`measure_scaling`: the larger of EASE's dense arrays at the
    largest I (float32, up to three copies) and SLIM-LLE's at ``explicit_max_items`` (float64,
    weights, Gram and eigenproblem: six copies), plus the sparse matrix twice (parent and child).

    Parameters
    ----------
    settings : dict
        Config ``report.scaling``.
    attempt : int
        Snakemake's attempt number; the request is multiplied by it.
    """
    settings = check_settings(settings)
    largest = settings["items"][-1]
    explicit = min(largest, settings["explicit_max_items"])
    dense = max(dense_bytes((largest, largest), 4, 3), dense_bytes((explicit, explicit), 8, 6))
    sparse = 2 * 8 * settings["interactions_per_item"] * largest
    return request_mb(dense + sparse, attempt)


def write_scaling(
    settings: dict[str, Any],
    threads: int,
    csv_path: str | os.PathLike,
    machine_path: str | os.PathLike,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Measure (:func:`measure_scaling`) and write the table to ``csv_path`` and
    :func:`machine_description` to ``machine_path`` (JSON), both atomically; returns the table.

    Parameters
    ----------
    settings : dict
        Config ``report.scaling``.
    threads : int
        Threads of each measured call.
    csv_path, machine_path : path-like
        Where the measurements (:data:`SCALING_COLUMNS`) and the machine description go.
    log : callable, optional
        Called with one line per measurement.
    """
    settings = check_settings(settings)
    machine = machine_description(threads, settings)
    table = measure_scaling(settings, threads, log=log)
    write_json(machine_path, machine)
    write_csv(csv_path, table)
    return table
