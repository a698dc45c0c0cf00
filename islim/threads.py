"""Compute-thread control: BLAS/OpenMP pools and torch follow the job's thread budget.

Snakemake exports ``OMP_NUM_THREADS`` etc. for ``script:`` jobs, but BLAS pools that were already
started (or torch's intra-op pool) must be limited explicitly; :func:`limit_threads` does both.

It also makes idle OpenMP threads sleep instead of spin (:func:`wait_passively`). torch runs every
operation on a tensor of more than 32,768 elements as an OpenMP parallel region, a training step
has hundreds of them, and by default each thread spins at the end of a region until the others
arrive; when other processes share the cores (CI, a laptop, a shared cluster node), the spinning
thread holds a core that the thread it waits for needs. Measured on 2 shared cores at load 14–17,
RecVAE's encoder step at ML-20M shape: 0.84 s with sleeping threads, 5.7–6.6 s spinning (0.27 s
against 1.5 s of CPU); Mult-VAE's step 2.7 s against 4.7 s. An idle machine pays a thread wake-up
per region instead (microseconds).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_info, threadpool_limits

T = TypeVar("T")

_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(n_threads: int) -> None:
    """Cap BLAS/OpenMP pools and torch (if imported or importable) at ``n_threads`` for this
    process, and let OpenMP threads wait passively (:func:`wait_passively`)."""
    n_threads = max(1, int(n_threads))
    wait_passively()
    for var in _ENV_VARS:
        os.environ[var] = str(n_threads)
    threadpool_limits(limits=n_threads)
    if "torch" in sys.modules:
        set_torch_threads(n_threads)


def wait_passively() -> None:
    """Make idle OpenMP threads sleep rather than spin (``OMP_WAIT_POLICY=PASSIVE``) unless the
    environment chose a policy already. The OpenMP runtime reads it once, when it is loaded (with
    torch): call this before importing torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def compute_threads() -> int:
    """Threads this process may use for its own parallel loops.

    ``OMP_NUM_THREADS`` when set (Snakemake sets it to the rule's ``threads``, and
    :func:`limit_threads` to its argument), else the CPUs this process may run on.
    """
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_map(task: Callable[[int], T], starts: Sequence[int], n_threads: int | None = None) -> list[T]:
    """``[task(s) for s in starts]`` on ``n_threads`` threads (default :func:`compute_threads`), in the
    calling thread when that is one. For tasks that release the GIL (numpy, scipy and torch kernels)."""
    n_threads = max(1, min(len(starts), n_threads or compute_threads()))
    if n_threads == 1:
        return [task(start) for start in starts]
    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(task, starts))


def set_torch_threads(n_threads: int) -> None:
    """Set torch's intra-op threads (and inter-op threads if torch has not started its pool)."""
    import torch

    torch.set_num_threads(n_threads)
    try:
        torch.set_num_interop_threads(n_threads)
    except RuntimeError:  # already set or parallel work already started
        pass


def blas_description() -> list[dict[str, str]]:
    """Which BLAS libraries are loaded, their kernel (``architecture``) and thread counts."""
    return [
        {key: str(info.get(key)) for key in ("internal_api", "version", "architecture", "num_threads", "filepath")}
        for info in threadpool_info()
    ]
