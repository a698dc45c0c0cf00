"""Memory budget checks made *before* large allocations.

The budget is, in order of precedence: the ``budget_bytes`` argument, the
``ISLIM_MEMORY_BUDGET_GB`` environment variable (GiB, float), or the memory the
kernel reports as available (``MemAvailable`` in ``/proc/meminfo``).
"""

from __future__ import annotations

import math
import os
import resource
import sys

from islim.errors import MemoryBudgetError

GIB = 1024**3
BUDGET_ENV = "ISLIM_MEMORY_BUDGET_GB"


def available_bytes() -> int:
    """Memory the OS can hand out now, in bytes (``MemAvailable``; falls back to physical RAM)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget(budget_bytes: int | None = None) -> int:
    """The memory budget in bytes (argument, then environment variable, then available memory)."""
    if budget_bytes is not None:
        return int(budget_bytes)
    from_env = os.environ.get(BUDGET_ENV)
    if from_env:
        try:
            gib = float(from_env)
        except ValueError as exc:
            raise MemoryBudgetError(f"{BUDGET_ENV}={from_env!r} is not a number of GiB; set it to e.g. 8 or unset it") from exc
        if not (math.isfinite(gib) and gib > 0):
            raise MemoryBudgetError(
                f"{BUDGET_ENV}={from_env!r} is not a positive, finite number of GiB (config memory_budget_gb sets it in "
                f"workflow jobs); set it to e.g. 8, or unset it (memory_budget_gb: null) to use the memory the OS reports available"
            )
        return int(gib * GIB)
    return available_bytes()


def ensure_fits(nbytes: float, what: str, budget_bytes: int | None = None) -> None:
    """Raise :class:`MemoryBudgetError` if ``nbytes`` would not fit in the memory budget.

    ``what`` names the allocation in the message, e.g. ``"EASE Gram matrix (20108 x 20108 float32, x3)"``.
    """
    budget = memory_budget(budget_bytes)
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} needs an estimated {nbytes / GIB:.2f} GiB but the memory budget is "
            f"{budget / GIB:.2f} GiB. Use a smaller dataset or embedding size, float32 instead of "
            f"float64, a machine with more memory, or raise {BUDGET_ENV} if the estimate is too cautious."
        )


def dense_bytes(shape: tuple[int, ...], dtype_itemsize: int, copies: int = 1) -> int:
    """Bytes taken by ``copies`` dense arrays of ``shape`` with the given item size."""
    n = 1
    for size in shape:
        n *= int(size)
    return n * int(dtype_itemsize) * int(copies)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# --- Memory requests of the workflow's jobs ------------------------------------------------------
#
# The estimators below size a job's ``mem_mb`` from the split statistics (``stats.json`` of
# :func:`islim.data.split.split_stats`: ``items``, ``users`` per part, ``interactions`` per matrix)
# and the job's settings, before the job runs. They are deliberately simple upper estimates of the
# peak resident memory, as a sum of named terms in bytes (I = items, U = training users):
#
# * ``OVERHEAD_MB``: the interpreter with numpy, scipy, pandas and torch imported;
# * the split: the five CSR matrices (float32 data + int32 indices: 8 bytes a non-zero, int64 indptr)
#   plus two more copies of the training matrix (its transpose and a backend copy for products);
# * evaluation: a block of ``min(batch, held-out users)`` dense float32 score rows, three times
#   (scores, the dense fold-in rows, top-k workspace);
# * per job kind, its dense ``I x I`` arrays, ``I x d`` embeddings and model weights (see each).
#
# The result is in MiB (rounded up) times ``attempt``, so a retried job asks for more.

#: Resident memory of the interpreter with numpy, scipy, pandas and torch imported (MiB).
OVERHEAD_MB = 600
#: Dense arrays above this size (bytes) take the MKL path of :mod:`islim.linalg`: two more ``n²`` buffers.
MKL_PATH_BYTES = 4 * GIB


def request_mb(nbytes: float, attempt: int) -> int:
    """``OVERHEAD_MB`` plus ``nbytes`` in MiB (rounded up), times ``attempt``."""
    return int((OVERHEAD_MB + -(-int(nbytes) // 2**20)) * max(1, int(attempt)))


def split_bytes(stats: dict) -> int:
    """The loaded split: the five CSR matrices once, plus two more copies of the training matrix."""
    users, nnz = stats["users"], stats["interactions"]
    parts = ("train", "validation_tr", "validation_te", "test_tr", "test_te")
    rows = users["train"] + 2 * users["validation"] + 2 * users["test"]
    once = 8 * sum(nnz[part] for part in parts) + 8 * (rows + len(parts))
    return once + 2 * (8 * nnz["train"] + 8 * (users["train"] + 1))


def eval_bytes(stats: dict, batch_size: int) -> int:
    """A block of ``min(batch_size, held-out users)`` dense float32 score rows, three times."""
    rows = min(int(batch_size), max(stats["users"]["validation"], stats["users"]["test"]))
    return 3 * 4 * rows * stats["items"]


def ease_mem_mb(stats: dict, dtype: str = "float32", batch_size: int = 2000, attempt: int = 1) -> int:
    """One λ of EASE's sweep (the ``ease_point`` job, :func:`islim.pipeline.ease_point`): two dense
    ``I x I`` arrays of ``dtype`` (the Gram matrix, inverted in place into ``B``, and a second copy:
    the Gram matrix that :func:`islim.pipeline.ease_sweep` shares across λ in one process, a margin
    for a job), two more when one exceeds 4 GiB (the MKL path: one fit at MSD shape peaked at
    19.6 GiB, above 3 copies), the split and an evaluation block.

    Parameters
    ----------
    stats : dict
        The split's ``stats.json`` (:func:`islim.data.split.split_stats`).
    dtype : str
        ``"float32"`` or ``"float64"`` (config ``ease.dtype``).
    batch_size : int
        Held-out users scored at once (config ``eval_batch_size``).
    attempt : int
        Snakemake's attempt number; the request is multiplied by it.

    Returns
    -------
    int
        MiB to request.
    """
    itemsize = 8 if dtype == "float64" else 4
    copies = 2 + (2 if itemsize * stats["items"] ** 2 > MKL_PATH_BYTES else 0)
    dense = copies * itemsize * stats["items"] ** 2
    return request_mb(dense + split_bytes(stats) + eval_bytes(stats, batch_size), attempt)
