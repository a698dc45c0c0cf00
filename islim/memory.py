"""Memory budget checks made *before* large allocations.

The budget is, in order of precedence: the ``budget_bytes`` argument, the
``ISLIM_MEMORY_BUDGET_GB`` environment variable (GiB, float), or the memory the
kernel reports as available (``MemAvailable`` in ``/proc/meminfo``).
"""

from __future__ import annotations

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
            return int(float(from_env) * GIB)
        except ValueError as exc:
            raise MemoryBudgetError(
                f"{BUDGET_ENV}={from_env!r} is not a number of GiB; set it to e.g. 8 or unset it"
            ) from exc
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
