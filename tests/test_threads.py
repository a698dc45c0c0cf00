"""A job's compute stays on the threads Snakemake gave it (``threads:`` → BLAS, torch, thread pools).

Each kernel runs in a fresh interpreter inside :func:`islim.jobs.job` with a fake ``snakemake``
object; the child reads every thread's CPU time from ``/proc/self/task`` before and after the
kernel and reports how many threads did real work (≥ 30 ms of CPU and ≥ 25 % of the busiest
thread's, so a short set-up step before a pool starts does not count). This counts threads, not
seconds, so background load cannot change the answer. Kernels that start a thread pool are one
call each (every call starts new pool threads, which would otherwise be counted one after another).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.workflow_helpers import REPO

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time, types
    import numpy as np, scipy.sparse as sp
    from islim.jobs import job

    def cpu_ticks():
        ticks = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # the thread ended meanwhile
                continue
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    def busy_threads(kernel):
        # Pool threads may end with the kernel (and vanish from /proc), so a monitor samples every
        # 10 ms and keeps each thread's last reading; the monitor itself is not counted.
        start = cpu_ticks()
        seen = dict(start)
        stop = threading.Event()
        monitor_id = []

        def monitor():
            monitor_id.append(str(threading.get_native_id()))
            while not stop.is_set():
                seen.update(cpu_ticks())
                time.sleep(0.01)

        watcher = threading.Thread(target=monitor)
        watcher.start()
        kernel()
        stop.set()
        watcher.join()
        seen.update(cpu_ticks())
        used = [t - start.get(tid, 0) for tid, t in seen.items() if tid not in monitor_id]
        threshold = max(0.03 * os.sysconf("SC_CLK_TCK"), 0.25 * max(used))
        return sum(1 for t in used if t >= threshold)

    threads, log = int(sys.argv[1]), sys.argv[2]
    fake = types.SimpleNamespace(log=[log], threads=threads, config={}, resources={}, rule="thread_check", wildcards={})
    rng = np.random.default_rng(0)
    X = sp.random(8000, 2048, density=0.05, random_state=0, format="csr", dtype=np.float32)
    X.data[:] = 1.0
    with job(fake):
        import torch
        from islim.embeddings import implicit_slim
        from islim.gram import dense_gram
        from islim.linalg import ease_from_gram
        from islim.spmm import sparse_dense_product
        from islim.models.deep import SparseRows
        from islim.models.ridge import item_statistics, user_ridge_encoder
        A = rng.standard_normal((2048, 2048), dtype=np.float32)
        Q = rng.standard_normal((2048, 64), dtype=np.float32)
        W = torch.randn(2048, 256, requires_grad=True)
        T = torch.randn(2048, 2048)
        E0 = rng.standard_normal((2048, 64), dtype=np.float32)
        gram = dense_gram(X)
        X4 = sp.vstack([X] * 4).tocsr()
        counts = {
            "gram": busy_threads(lambda: dense_gram(X4, slab=256)),
            "blas_gemm": busy_threads(lambda: [A @ A for _ in range(4)]),
            "ease_inverse": busy_threads(lambda: [ease_from_gram(gram, 10.0) for _ in range(3)]),
            "ease_scores": busy_threads(lambda: sparse_dense_product(X, A)),
            "implicit_slim": busy_threads(lambda: [implicit_slim(E0, X, 10.0, 1.0) for _ in range(20)]),
            "torch_matmul": busy_threads(lambda: [T @ T for _ in range(4)]),
            "mf_item_step": busy_threads(lambda: item_statistics(X4, user_ridge_encoder(Q, 1.0), 64, batch_size=X4.shape[0])),
            "deep_sparse_input": busy_threads(lambda: SparseRows.from_csr(X4).matmul(W).sum().backward()),
        }
    print(json.dumps(counts))
    """
)


def busy_thread_counts(threads: int, tmp_path) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)  # as in a bare shell: only the job's `threads` may limit the pools
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), str(tmp_path / "job.log")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr + (tmp_path / "job.log").read_text()
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_threads_one_keeps_every_kernel_on_one_thread(tmp_path):
    counts = busy_thread_counts(1, tmp_path)
    assert counts == {kernel: 1 for kernel in counts}, counts


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not os.path.isdir("/proc/self/task"), reason="needs 2 CPUs and Linux /proc")
def test_threads_two_uses_both_cores(tmp_path):
    """The control: the same probe sees two busy threads when the job is given two."""
    counts = busy_thread_counts(2, tmp_path)
    assert all(count >= 2 for kernel, count in counts.items() if kernel != "implicit_slim"), counts


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_a_job_lets_openmp_threads_sleep_unless_the_environment_chose(preset, expected):
    """limit_threads (every job, the CLI) sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP,
    and keeps a policy the user set."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os; from islim.threads import limit_threads; limit_threads(1); print(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
