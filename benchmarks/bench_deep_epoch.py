"""Training epoch of the deep models at ML-20M shape against the floor of their dense products.

The seeded synthetic matrix of ML-20M's shape (:func:`islim.data.synthetic.generate`, 136,677 users
× 20,108 items, 10 M interactions) is trained with the library's own training step
(:class:`islim.models.deep.trainer.EpochRunner`) and the reference parameters of each model.

* **Dense products.** One step of every phase runs under
  :class:`benchmarks.gemm_floor.DenseProducts`, which records each dense matrix product (forward and
  backward; the sparse input layers are not dense products). The epoch's FLOP count is
  ``Σ_phases n_passes · ⌈U / batch_size⌉ · (FLOPs of one step)``.
* **Timing.** ``--rounds`` rounds, each: the square float32 GEMM rate
  (:func:`~benchmarks.gemm_floor.square_gemm_rate`, the faster of torch's and numpy's BLAS: the
  models run their products in torch, and H+Vamp's pseudo-input gradient in numpy), the
  recorded products replayed alone (:func:`~benchmarks.gemm_floor.time_products`), then
  ``--steps`` timed training steps of every phase. Interleaving puts the floor and the steps under
  the same load on a shared machine; medians over rounds and steps are reported. The epoch time is
  extrapolated from the steps, so the run covers ``rounds · steps`` of the 274 batches per phase
  (all of the same shape, 500 users; H+Vamp: 684 of 200). Each phase's ``on_end`` runs after its
  steps, untimed, as in an epoch (RecVAE's decoder steps then see a freshly refreshed prior).
* **Floor.** ``floor_seconds_per_epoch`` = epoch FLOPs ÷ the square GEMM rate;
  ``products_floor_seconds_per_epoch`` = the replayed products' own time, extrapolated the same way
  (what these shapes cost on this BLAS; a GEMM with a small inner dimension runs below the square
  rate). ``ratio`` and ``ratio_to_products`` are the epoch time over each. On a shared VM the
  square rate swings between rounds (100–197 GFLOP/s on the development machine) and noise only
  ever slows a GEMM down, so ``ratio_to_best_rate`` also divides by the floor at the best round's
  rate (``best_square_gemm_gflops``): the conservative reading. ``ratio_at_torch_rate`` divides by
  the floor at torch's own square rate (``torch_square_gemm_gflops``; MKL, which on the development
  machine's AMD CPU reaches about 0.8 of numpy's OpenBLAS).
* **CPU time.** The same with process CPU time (all threads) instead of wall-clock time:
  ``cpu_seconds_per_epoch``, ``ratio_cpu`` (over FLOPs ÷ the square GEMM's rate per CPU second)
  and ``ratio_to_products_cpu``. With ``--threads 1`` these hardly move with other processes'
  load; with more threads they count time threads spend waiting for each other.

Validation (scoring 10,000 fold-in users) is extrapolated from one 2,000-user batch and reported
apart; it is not part of the floor. Results go to ``--out`` (default
``benchmarks/out/deep_epoch.json``) as ``{"<model>": {"seconds_per_epoch": …,
"floor_seconds_per_epoch": …, …}}``.

Usage::

    python -m benchmarks.bench_deep_epoch --threads 2 [--steps 4] [--rounds 3] [--models multvae recvae hvamp]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from benchmarks.gemm_floor import DenseProducts, square_gemm_rate, time_products
from benchmarks.measure import SHAPES, synthetic_matrix
from islim.fileio import write_json
from islim.models.deep.allocation import reuse_freed_memory
from islim.models.deep.base import TrainState
from islim.models.deep.hooks import ImplicitSLIMConfig, ImplicitSLIMHook
from islim.models.deep.trainer import EpochRunner, build_model, resolve_params, score_batch, trainable_only
from islim.models.registry import model_class
from islim.threads import blas_description, limit_threads

VALIDATION_USERS, EVAL_BATCH = 10_000, 2_000
DEFAULT_OUT = Path("benchmarks/out/deep_epoch.json")


def time_model(name: str, X: sp.csr_matrix, n_steps: int, n_rounds: int) -> dict:
    """Epoch time, FLOPs and floors of the registered deep model ``name`` on CPU (see the module docstring)."""
    network = model_class(name).network
    params = resolve_params(network, {"device": "cpu"})
    torch.manual_seed(0)
    model = build_model(network, X.shape[1], params)
    runner = EpochRunner(model, X, params, ImplicitSLIMHook(ImplicitSLIMConfig(), X), torch.device("cpu"), progress=False)
    rng = np.random.default_rng(0)
    state = TrainState()
    n_batches = -(-X.shape[0] // params["batch_size"])
    phases = list(zip(runner.phases, runner.optimizers))
    batches = {phase.name: runner.batches(rng) for phase, _ in phases}
    with reuse_freed_memory():  # as EpochRunner.run
        products = {}
        for phase, optimizer in phases:  # also the warm-up step of each phase
            with trainable_only(model, phase.parameters), DenseProducts() as recorder:
                runner.step(phase, optimizer, next(batches[phase.name]), state)
            products[phase.name] = recorder
            _end_phase(phase)
        square_rates = {"wall": [], "cpu": []}
        torch_rates = []
        replay, steps = ({p.name: {"wall": [], "cpu": []} for p, _ in phases} for _ in range(2))
        for _ in range(n_rounds):
            torch_rate, numpy_rate = square_gemm_rate(), square_gemm_rate(library="numpy")
            torch_rates.append(torch_rate[0])
            for clock, by_torch, by_numpy in zip(("wall", "cpu"), torch_rate, numpy_rate):
                square_rates[clock].append(max(by_torch, by_numpy))
            for phase, optimizer in phases:
                wall, cpu = time_products(products[phase.name].counts)
                replay[phase.name]["wall"].append(wall)
                replay[phase.name]["cpu"].append(cpu)
                with trainable_only(model, phase.parameters):
                    for _ in range(n_steps):
                        start, cpu_start = time.perf_counter(), time.process_time()
                        runner.step(phase, optimizer, next(batches[phase.name]), state)
                        steps[phase.name]["wall"].append(time.perf_counter() - start)
                        steps[phase.name]["cpu"].append(time.process_time() - cpu_start)
                _end_phase(phase)
    per_epoch = {p.name: p.n_passes * n_batches for p, _ in phases}

    def epoch_seconds(times: dict, clock: str) -> float:
        return sum(per_epoch[name] * statistics.median(t[clock]) for name, t in times.items())

    seconds, products_floor = epoch_seconds(steps, "wall"), epoch_seconds(replay, "wall")
    flops = sum(per_epoch[n] * recorder.flops for n, recorder in products.items())
    square_rate, square_cpu_rate = (statistics.median(square_rates[clock]) for clock in ("wall", "cpu"))
    return {
        "seconds_per_epoch": seconds,
        "floor_seconds_per_epoch": flops / square_rate,
        "ratio": seconds / (flops / square_rate),
        "products_floor_seconds_per_epoch": products_floor,
        "ratio_to_products": seconds / products_floor,
        "epoch_tflop": flops / 1e12,
        "square_gemm_gflops": square_rate / 1e9,
        "torch_square_gemm_gflops": statistics.median(torch_rates) / 1e9,
        "ratio_at_torch_rate": seconds / (flops / statistics.median(torch_rates)),
        "best_square_gemm_gflops": max(square_rates["wall"]) / 1e9,
        "ratio_to_best_rate": seconds / (flops / max(square_rates["wall"])),
        "products_gemm_gflops": flops / products_floor / 1e9,
        "cpu_seconds_per_epoch": epoch_seconds(steps, "cpu"),
        "ratio_to_products_cpu": epoch_seconds(steps, "cpu") / epoch_seconds(replay, "cpu"),
        "ratio_cpu": epoch_seconds(steps, "cpu") / (flops / square_cpu_rate),
        "batch_size": params["batch_size"],
        "batches_per_pass": n_batches,
        "timed_steps_per_phase": n_rounds * n_steps,
        "phases": {
            p.name: {
                "n_passes": p.n_passes,
                "seconds_per_step": statistics.median(steps[p.name]["wall"]),
                "step_seconds": steps[p.name]["wall"],
                "step_cpu_seconds": steps[p.name]["cpu"],
                "products_seconds_per_step": statistics.median(replay[p.name]["wall"]),
                "gflop_per_step": products[p.name].flops / 1e9,
            }
            for p, _ in phases
        },
        "validation_seconds_10k_users": _validation_seconds(model, X),
    }


def _end_phase(phase) -> None:
    """What :meth:`EpochRunner.run` does after a phase's passes (RecVAE refreshes its prior, so its
    decoder steps run as in training), untimed."""
    if phase.on_end is not None:
        phase.on_end()


def _validation_seconds(model, X: sp.csr_matrix) -> float:
    """Seconds to score 10,000 fold-in users, extrapolated from one timed 2,000-user batch."""
    fold_in = X[:EVAL_BATCH]
    score_batch(model, fold_in)
    start = time.perf_counter()
    score_batch(model, fold_in)
    return (time.perf_counter() - start) * VALIDATION_USERS / EVAL_BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="timed optimiser steps per phase and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (GEMM rate, replayed products, steps)")
    parser.add_argument("--models", nargs="+", default=["multvae", "recvae", "hvamp"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default %(default)s)")
    args = parser.parse_args()
    limit_threads(args.threads)
    X = synthetic_matrix(*SHAPES["ml-20m"])
    machine = {
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "blas": blas_description(),
    }
    print(f"synthetic matrix {X.shape}, nnz {X.nnz:,}; torch {torch.__version__}, {args.threads} threads")
    print(
        f"{'model':8s} {'s/epoch':>9s} {'floor s':>9s} {'ratio':>6s} {'(CPU)':>6s} {'@best':>6s} {'@torch':>6s} | "
        f"{'products s':>10s} {'ratio':>6s} {'(CPU)':>6s} | "
        f"{'TFLOP':>6s} {'GEMM GF/s':>9s} {'load':>5s}"
    )
    results = {}
    for name in args.models:
        load_before = os.getloadavg()[0]
        entry = time_model(name, X, args.steps, args.rounds)
        entry.update(machine, load_average=[load_before, os.getloadavg()[0]])
        results[name] = entry
        print(
            f"{name:8s} {entry['seconds_per_epoch']:9.1f} {entry['floor_seconds_per_epoch']:9.1f} {entry['ratio']:6.2f} {entry['ratio_cpu']:6.2f} "
            f"{entry['ratio_to_best_rate']:6.2f} {entry['ratio_at_torch_rate']:6.2f} | "
            f"{entry['products_floor_seconds_per_epoch']:10.1f} {entry['ratio_to_products']:6.2f} {entry['ratio_to_products_cpu']:6.2f} | "
            f"{entry['epoch_tflop']:6.2f} {entry['square_gemm_gflops']:9.0f} {load_before:5.1f}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
