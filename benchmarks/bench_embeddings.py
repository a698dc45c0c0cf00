"""Benchmark of the embedding extractors (run by hand; results go to stdout and a JSON file).

``implicit_slim`` on the cached ML-20M-shaped synthetic matrix (136,677 users × 20,108 items, 10 M
ones; ``benchmarks/measure.py``) for several d, side by side with a plain scipy evaluation of the same
formula in the official code's order (``A @ X.T @ X``, float32): wall time, CPU time, peak extra RSS
(sampled from ``/proc/self/statm`` in a fresh process, so BLAS buffers count), the wall-time ratio,
the one-off operator conversion time and the relative deviation of both from a float64 evaluation.
Cost against the number of items is measured by ``bench_scaling.py``.

Usage::

    python -m benchmarks.bench_embeddings [--shape ml-20m] [--dims 64 128 256 512] [--repeats 3] [--out benchmarks/out/embeddings.json]

The machine may be shared: the load average is printed with every measurement, and the timing of
each configuration alternates plain and islim runs so that both see the same background load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_info

from benchmarks.measure import SHAPES, synthetic_matrix
from islim.embeddings import gram_operator, implicit_slim


def plain_implicit_slim(E0: np.ndarray, X: sp.csr_matrix, lam: float, alpha: float, threshold: float) -> np.ndarray:
    """The official code's evaluation (spec §3.2) in float32 (not float16), d×I layout, no blocking."""
    W = E0.T
    popularity = np.asarray(X.sum(axis=0)).ravel()
    inv2 = (1.0 / (popularity + lam) ** 2).astype(np.float32)
    A = W.copy()
    A[:, popularity < threshold] = 0
    M = (lam * A + A @ X.T @ X) * inv2
    N = lam * M + M @ X.T @ X
    T = N @ A.T
    Z = N - T @ np.linalg.solve(np.eye(T.shape[0], dtype=np.float32) / alpha + T, N)
    return (alpha * W @ A.T @ Z).T


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_extra_rss(fn) -> int:
    """Peak RSS increase (bytes) while ``fn()`` runs, sampled every 2 ms by a background thread.

    Only meaningful in a fresh process (freed heap memory stays resident and would be reused).
    """
    baseline = _rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return peak[0] - baseline


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def load_average() -> float:
    return os.getloadavg()[0]


def _candidates(X: sp.csr_matrix, d: int, lam: float, alpha: float, threshold: float):
    """(islim, plain) zero-argument callables on seeded embeddings; the islim operator is built here."""
    E0 = np.random.default_rng(d).standard_normal((X.shape[1], d)).astype(np.float32)
    gram = gram_operator(X, like=E0)
    return (lambda: implicit_slim(E0, gram, lam, alpha, threshold)), (lambda: plain_implicit_slim(E0, X, lam, alpha, threshold))


def memory_child(matrix_path: str, d: int, which: str, lam: float, alpha: float, threshold: float) -> None:
    """Entry point of the fresh process that measures one peak (prints the bytes)."""
    X = sp.load_npz(matrix_path).tocsr()
    ours, plain = _candidates(X, d, lam, alpha, threshold)
    print(peak_extra_rss(ours if which == "islim" else plain))


def peak_in_fresh_process(matrix_path: Path, d: int, which: str, lam: float, alpha: float, threshold: float) -> int:
    args = [sys.executable, __file__, "--memory-child", str(matrix_path), str(d), which, str(lam), str(alpha), str(threshold)]
    # A fixed mmap threshold makes glibc return every freed buffer ≥ 64 KiB to the OS, so freed
    # memory of the set-up phase is not silently reused (and not missed by the RSS sampler).
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return int(done.stdout.strip().splitlines()[-1])


def bench_implicit_slim(
    X: sp.csr_matrix, dims: list[int], repeats: int, lam: float, alpha: float, threshold: float, matrix_path: Path
) -> list[dict]:
    rows = []
    for d in dims:
        E0 = np.random.default_rng(d).standard_normal((X.shape[1], d)).astype(np.float32)
        conversion_s = timed(lambda E0=E0: gram_operator(X.copy(), like=E0))[0]
        ours, plain = _candidates(X, d, lam, alpha, threshold)
        reference = implicit_slim(E0.astype(np.float64), X, lam, alpha, threshold)
        scale = np.abs(reference).max()
        error_ours = float(np.abs(ours() - reference).max() / scale)
        error_plain = float(np.abs(plain() - reference).max() / scale)
        del reference
        times = {"islim": [], "plain": []}
        loads = []
        for _ in range(repeats):
            times["plain"].append(timed(plain))
            times["islim"].append(timed(ours))
            loads.append(load_average())
        row = {
            "d": d,
            "islim_wall_min_s": min(w for w, _ in times["islim"]),
            "plain_wall_min_s": min(w for w, _ in times["plain"]),
            "islim_wall_median_s": float(np.median([w for w, _ in times["islim"]])),
            "plain_wall_median_s": float(np.median([w for w, _ in times["plain"]])),
            "islim_cpu_min_s": min(c for _, c in times["islim"]),
            "plain_cpu_min_s": min(c for _, c in times["plain"]),
            "islim_operator_conversion_s": conversion_s,
            "islim_peak_extra_mib": peak_in_fresh_process(matrix_path, d, "islim", lam, alpha, threshold) / 2**20,
            "plain_peak_extra_mib": peak_in_fresh_process(matrix_path, d, "plain", lam, alpha, threshold) / 2**20,
            "islim_rel_error_vs_float64": error_ours,
            "plain_rel_error_vs_float64": error_plain,
            "load_average": float(np.mean(loads)),
        }
        row["wall_ratio_min"] = row["islim_wall_min_s"] / row["plain_wall_min_s"]
        rows.append(row)
        print(
            f"d={d:4d}  islim {row['islim_wall_min_s']:6.2f}s (median {row['islim_wall_median_s']:6.2f}, cpu {row['islim_cpu_min_s']:6.2f}, "
            f"+{row['islim_peak_extra_mib']:7.0f} MiB, err {error_ours:.1e})  plain {row['plain_wall_min_s']:6.2f}s "
            f"(median {row['plain_wall_median_s']:6.2f}, cpu {row['plain_cpu_min_s']:6.2f}, +{row['plain_peak_extra_mib']:7.0f} MiB, err {error_plain:.1e})  "
            f"ratio {row['wall_ratio_min']:.2f}  (one-off operator conversion {conversion_s:.2f}s)  load {row['load_average']:.1f}",
            flush=True,
        )
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        path, d, which, lam, alpha, threshold = sys.argv[2:8]
        memory_child(path, int(d), which, float(lam), float(alpha), float(threshold))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-20m")
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lam", type=float, default=500.0)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/embeddings.json"))
    args = parser.parse_args()

    blas = [
        {k: str(v) for k, v in info.items() if k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
        for info in threadpool_info()
    ]
    print("platform:", platform.platform(), "| CPUs usable:", len(os.sched_getaffinity(0)))
    print("BLAS/OpenMP:", blas, "| torch threads:", torch.get_num_threads(), "| torch MKL:", torch.backends.mkl.is_available())
    start = time.perf_counter()
    X = synthetic_matrix(*SHAPES[args.shape])
    print(f"synthetic {args.shape}-shaped matrix {X.shape}, nnz={X.nnz:,} in {time.perf_counter() - start:.1f}s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        matrix_path = Path(tmp) / "X.npz"
        sp.save_npz(matrix_path, X, compressed=False)
        results = {
            "blas": blas,
            "torch_threads": torch.get_num_threads(),
            "matrix": {"shape": list(X.shape), "nnz": int(X.nnz)},
            "implicit_slim": bench_implicit_slim(X, args.dims, args.repeats, args.lam, args.alpha, args.threshold, matrix_path),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print("written", args.out)


if __name__ == "__main__":
    main()
