"""Epoch time of Mult-VAE and RecVAE at ML-20M shape on CPU (or any torch device).

The seeded synthetic matrix of ML-20M's shape (:func:`islim.data.synthetic.generate`, 136,677 users
× 20,108 items, 10 M interactions) is trained for a timed
number of optimiser steps per phase with the library's own training step, and the epoch time is
extrapolated: ``Σ_phases n_passes · ⌈U / batch_size⌉ · (mean step time of that phase)``. Validation
scoring of 10,000 fold-in users is extrapolated from one 2,000-user batch. Wall-clock times are
reported with the process CPU time (all threads) and the load average, since other processes on a
shared machine inflate wall-clock times.

Usage::

    python -m benchmarks.bench_deep_epoch --threads 2 --steps 20 [--models multvae recvae] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import scipy.sparse as sp
import torch

from benchmarks.measure import SHAPES, synthetic_matrix
from islim.models.deep.base import TrainState
from islim.models.deep.hooks import ImplicitSLIMConfig, ImplicitSLIMHook
from islim.models.deep.trainer import EpochRunner, build_model, resolve_params, score_batch, trainable_only
from islim.models.registry import model_class

VALIDATION_USERS, EVAL_BATCH = 10_000, 2_000


def time_model(name: str, X: sp.csr_matrix, n_steps: int, device: torch.device) -> dict:
    """Mean seconds per optimiser step in each phase (after one warm-up step) and the extrapolations.

    ``name`` is a registered deep model (``multvae``, ``recvae``, ``hvamp``); its estimator's
    network is timed with the reference parameters.
    """
    network = model_class(name).network
    params = resolve_params(network, {"device": str(device)})
    torch.manual_seed(0)
    model = build_model(network, X.shape[1], params).to(device)
    runner = EpochRunner(model, X, params, ImplicitSLIMHook(ImplicitSLIMConfig(), X), device, progress=False)
    rng = np.random.default_rng(0)
    state = TrainState()
    n_batches = -(-X.shape[0] // params["batch_size"])
    phases = {}
    for phase, optimizer in zip(runner.phases, runner.optimizers):
        batches = runner.batches(rng)
        with trainable_only(model, phase.parameters):
            runner.step(phase, optimizer, next(batches), state)  # warm-up
            _synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(n_steps):
                runner.step(phase, optimizer, next(batches), state)
            _synchronize(device)
        seconds = (time.perf_counter() - start) / n_steps
        phases[phase.name] = {
            "seconds_per_step": seconds,
            "cpu_seconds_per_step": (time.process_time() - cpu_start) / n_steps,
            "n_passes": phase.n_passes,
            "seconds_per_pass": seconds * n_batches,
        }
    fold_in = X[:EVAL_BATCH]
    score_batch(model, fold_in)
    start = time.perf_counter()
    score_batch(model, fold_in)
    eval_seconds = (time.perf_counter() - start) * VALIDATION_USERS / EVAL_BATCH
    train_seconds = sum(p["seconds_per_pass"] * p["n_passes"] for p in phases.values())
    train_cpu_seconds = sum(p["cpu_seconds_per_step"] * n_batches * p["n_passes"] for p in phases.values())
    return {
        "model": name,
        "batch_size": params["batch_size"],
        "batches_per_pass": n_batches,
        "timed_steps_per_phase": n_steps,
        "phases": phases,
        "epoch_train_seconds": train_seconds,
        "epoch_train_cpu_seconds": train_cpu_seconds,
        "validation_seconds_10k_users": eval_seconds,
        "epoch_seconds": train_seconds + eval_seconds,
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per phase")
    parser.add_argument("--models", nargs="+", default=["multvae", "recvae"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    X = synthetic_matrix(*SHAPES["ml-20m"])
    print(f"synthetic matrix {X.shape}, nnz {X.nnz:,} built in {time.perf_counter() - start:.1f} s")
    results = {
        "shape": list(X.shape),
        "nnz": int(X.nnz),
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_average_before": os.getloadavg(),
        "models": [time_model(name, X, args.steps, torch.device(args.device)) for name in args.models],
    }
    for entry in results["models"]:
        phases = ", ".join(f"{n}: {p['seconds_per_step']:.3f} s/step × {p['n_passes']}" for n, p in entry["phases"].items())
        print(
            f"{entry['model']}: {entry['epoch_train_seconds']:.0f} s training "
            f"({entry['epoch_train_cpu_seconds']:.0f} CPU s) + "
            f"{entry['validation_seconds_10k_users']:.0f} s validation per epoch ({phases}; "
            f"{entry['batches_per_pass']} batches of {entry['batch_size']} per pass)"
        )
    results["load_average_after"] = os.getloadavg()
    print(f"load average before/after: {results['load_average_before']} / {results['load_average_after']}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
