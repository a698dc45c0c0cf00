"""Training epoch of LightGCN and UltraGCN at Gowalla's shape: islim against a straightforward torch
implementation of the same models written here.

The seeded synthetic matrix of Gowalla's shape (:func:`islim.data.synthetic.generate`, 29,858
users × 40,981 items, 1,027,370 interactions) is trained with the reference settings of each model
(the class defaults: LightGCN d = 64, K = 3, batch 2048, one negative; UltraGCN d = 64, batch 512,
1500 negatives, 10 item–item neighbours).

* **islim**: the library's own step (:meth:`islim.models.graph.base.GraphRecommender._step`) on
  batches from :func:`~islim.models.graph.structure.training_triples` (vectorised rejection
  sampling), with the network the estimator builds (CSR adjacency with a transpose-free backward;
  ``index_select`` gathers).
* **straightforward**: the same objective written the obvious way, dense-free but naive —
  LightGCN rebuilds the normalised COO adjacency from the edge list for every batch and propagates
  it with ``torch.sparse.mm`` (autograd's own backward), and draws each negative in a Python loop
  over a per-user ``set``; UltraGCN draws each interaction's negatives with ``numpy.choice`` over a
  per-user probability vector that zeroes its items (the authors' ``sampling_sift_pos`` path) and
  gathers with fancy indexing. Both compute β and the neighbour table with islim's functions
  (set-up, not part of an epoch).

Timing: ``--rounds`` rounds, each timing ``--steps`` steps of every implementation in turn
(interleaved, so both run under the same load on a shared machine); a step includes drawing its
batch. The epoch time is the median step time × the batches of an epoch (502 for LightGCN, 2,007
for UltraGCN); ``ratio`` = straightforward / islim. The load average (``os.getloadavg``, as
``uptime``) is recorded before and after every round. Peak memory: each implementation's set-up
and two steps run in a fresh interpreter, which reports the growth of its peak resident set over
the loaded matrix (on CUDA: of ``torch.cuda.max_memory_allocated``).
The ImplicitSLIM initialisation of both tables (user and item side) is timed once as well.

Usage::

    python -m benchmarks.bench_graph_epoch --threads 2 [--steps 3] [--rounds 3] [--device cpu] [--models lightgcn ultragcn]

Results go to ``--out`` (default ``benchmarks/out/graph_epoch.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from benchmarks.measure import synthetic_matrix
from islim.fileio import write_json
from islim.models.graph.base import batch_l2
from islim.models.graph.implicit import EmbeddingTargets, GraphImplicitSLIM
from islim.models.graph.lightgcn import LightGCN
from islim.models.graph.structure import NegativeSampler, binary_matrix, item_neighbours, training_triples, ultragcn_beta
from islim.models.graph.ultragcn import UltraGCN
from islim.threads import limit_threads

GOWALLA = (29_858, 40_981, 1_027_370)
DEFAULT_OUT = Path("benchmarks/out/graph_epoch.json")
MODELS = {"lightgcn": LightGCN, "ultragcn": UltraGCN}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ islim


class IslimRunner:
    """The library's network, optimiser and batch stream for one model."""

    def __init__(self, name: str, X: sp.csr_matrix, device: torch.device, seed: int = 0):
        torch.manual_seed(seed)
        self.model = MODELS[name](device=str(device), seed=seed)
        self.device = device
        self.network = self.model._network(X, device)
        self.optimizer = self.model._optimizer(self.network, device)
        self.targets = EmbeddingTargets(GraphImplicitSLIM(), X)
        sampler = NegativeSampler(X)
        self.batches = training_triples(X, sampler, self.model.batch_size, self.model._n_negatives(), np.random.default_rng(seed))

    def step(self) -> float:
        users, positives, negatives = next(self.batches)
        loss = self.model._step(self.network, self.optimizer, self.targets, users, positives, negatives, self.device)
        return float(loss.detach())


# ------------------------------------------------------------------ straightforward


class NaiveLightGCN:
    """LightGCN written the obvious way (see the module docstring); same objective and settings."""

    def __init__(self, X: sp.csr_matrix, device: torch.device, seed: int = 0):
        settings = LightGCN()
        self.n_users, self.n_items = X.shape
        self.batch_size, self.n_layers, self.l2 = settings.batch_size, settings.n_layers, settings.l2
        torch.manual_seed(seed)
        self.user = torch.nn.Parameter(torch.empty(self.n_users, settings.n_factors).normal_(std=settings.init_std).to(device))
        self.item = torch.nn.Parameter(torch.empty(self.n_items, settings.n_factors).normal_(std=settings.init_std).to(device))
        self.optimizer = torch.optim.Adam([self.user, self.item], lr=settings.lr)
        rows, columns = X.nonzero()
        self.edge_users = torch.as_tensor(rows, dtype=torch.int64, device=device)
        self.edge_items = torch.as_tensor(columns, dtype=torch.int64, device=device)
        self.items_of = [set(X.indices[X.indptr[u] : X.indptr[u + 1]].tolist()) for u in range(self.n_users)]
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(rows))
        self.position = 0
        self.rows, self.columns = rows, columns
        self.device = device

    def adjacency(self) -> torch.Tensor:
        n = self.n_users + self.n_items
        user_degree = torch.bincount(self.edge_users, minlength=self.n_users).float()
        item_degree = torch.bincount(self.edge_items, minlength=self.n_items).float()
        weight = (user_degree[self.edge_users] * item_degree[self.edge_items]).rsqrt()
        index = torch.stack(
            [torch.cat([self.edge_users, self.edge_items + self.n_users]), torch.cat([self.edge_items + self.n_users, self.edge_users])]
        )
        return torch.sparse_coo_tensor(index, torch.cat([weight, weight]), (n, n), check_invariants=False).coalesce()

    def step(self) -> float:
        edges = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        users, positives = self.rows[edges], self.columns[edges]
        negatives = []
        for u in users.tolist():
            while True:
                j = int(self.rng.integers(self.n_items))
                if j not in self.items_of[u]:
                    break
            negatives.append(j)
        users, positives, negatives = (torch.as_tensor(a, dtype=torch.int64, device=self.device) for a in (users, positives, negatives))
        A = self.adjacency()
        layers = [torch.cat([self.user, self.item])]
        for _ in range(self.n_layers):
            layers.append(torch.sparse.mm(A, layers[-1]))
        final = torch.stack(layers).mean(dim=0)
        u, p, n = final[users], final[self.n_users + positives], final[self.n_users + negatives]
        loss = F.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
        loss = loss + self.l2 * batch_l2(self.user[users], self.item[positives], self.item[negatives])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class NaiveUltraGCN:
    """UltraGCN written as the authors' code (see the module docstring); same objective and settings."""

    def __init__(self, X: sp.csr_matrix, device: torch.device, seed: int = 0):
        s = UltraGCN()
        self.s, self.n_items, self.device = s, X.shape[1], device
        torch.manual_seed(seed)
        self.user = torch.nn.Parameter(torch.empty(X.shape[0], s.n_factors).normal_(std=s.init_std).to(device))
        self.item = torch.nn.Parameter(torch.empty(X.shape[1], s.n_factors).normal_(std=s.init_std).to(device))
        self.optimizer = torch.optim.Adam([self.user, self.item], lr=s.lr)
        # the same set-up functions as islim (computed once, not part of an epoch)
        self.user_beta, self.item_beta = (torch.as_tensor(a, device=device) for a in ultragcn_beta(X))
        self.neighbours, self.neighbour_weights = (torch.as_tensor(a, device=device) for a in item_neighbours(X, s.n_neighbours))
        self.rows, self.columns = X.nonzero()
        self.items_of = [X.indices[X.indptr[u] : X.indptr[u + 1]] for u in range(X.shape[0])]
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.rows))
        self.position = 0

    def step(self) -> float:
        s = self.s
        edges = self.order[self.position : self.position + s.batch_size]
        self.position += s.batch_size
        users, positives = self.rows[edges], self.columns[edges]
        negatives = []
        for u in users.tolist():
            probabilities = np.ones(self.n_items)
            probabilities[self.items_of[u]] = 0
            probabilities /= probabilities.sum()
            negatives.append(self.rng.choice(self.n_items, size=s.n_negatives, p=probabilities))
        users, positives, negatives = (
            torch.as_tensor(np.asarray(a), dtype=torch.int64, device=self.device) for a in (users, positives, negatives)
        )
        u, p, n = self.user[users], self.item[positives], self.item[negatives]
        positive_scores = (u * p).sum(-1)
        negative_scores = (u.unsqueeze(1) * n).sum(-1)
        positive_weight = s.w1 + s.w2 * self.user_beta[users] * self.item_beta[positives]
        negative_weight = s.w3 + s.w4 * self.user_beta[users].unsqueeze(1) * self.item_beta[negatives]
        positive_loss = F.binary_cross_entropy_with_logits(
            positive_scores, torch.ones_like(positive_scores), weight=positive_weight, reduction="none"
        )
        negative_loss = F.binary_cross_entropy_with_logits(
            negative_scores, torch.zeros_like(negative_scores), weight=negative_weight, reduction="none"
        ).mean(dim=-1)
        loss = (positive_loss + s.negative_weight * negative_loss).sum()
        neighbour_scores = (u.unsqueeze(1) * self.item[self.neighbours[positives]]).sum(-1)
        loss = loss - s.lambda_ii * (self.neighbour_weights[positives] * neighbour_scores.sigmoid().log()).sum()
        loss = loss + s.l2 * 0.5 * (self.user.square().sum() + self.item.square().sum())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def build(name: str, implementation: str, X: sp.csr_matrix, device: torch.device):
    """The runner of ``implementation`` (``"islim"`` or ``"naive"``) of model ``name``."""
    if implementation == "islim":
        return IslimRunner(name, X, device)
    return NaiveLightGCN(X, device) if name == "lightgcn" else NaiveUltraGCN(X, device)


# ------------------------------------------------------------------ measurements


def time_steps(runner, n_steps: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(n_steps):
        synchronize(device)
        start = time.perf_counter()
        runner.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def status_mb(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``: resident now, ``VmHWM``: its peak), MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 2**10


def memory_run(name: str, implementation: str, X: sp.csr_matrix, device: torch.device) -> dict:
    """Set-up + two steps of one implementation in this process: its peak memory growth, MiB."""
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        time_steps(build(name, implementation, X, device), 2, device)
        return {"peak_mb": (torch.cuda.max_memory_allocated(device) - before) / 2**20, "kind": "CUDA max_memory_allocated growth"}
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # reset the peak resident set (VmHWM) to the current one
    before = status_mb("VmRSS")
    time_steps(build(name, implementation, X, device), 2, device)
    return {"peak_mb": status_mb("VmHWM") - before, "kind": "peak resident set growth (VmHWM) of a fresh process"}


def peak_memory(name: str, implementation: str, args: argparse.Namespace) -> dict:
    """:func:`memory_run` in a fresh interpreter (a fork of a process whose torch thread pool has
    started can deadlock), so the peak belongs to that implementation alone."""
    command = [sys.executable, "-m", "benchmarks.bench_graph_epoch", "--memory", name, implementation]
    command += ["--threads", str(args.threads), "--device", args.device, "--shape", *map(str, args.shape)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def implicit_slim_seconds(name: str, X: sp.csr_matrix, device: torch.device) -> float:
    """One ImplicitSLIM initialisation of both tables (user side on Xᵀ, item side on X)."""
    runner = IslimRunner(name, X, device)
    start = time.perf_counter()
    EmbeddingTargets(GraphImplicitSLIM(sides="both"), X).initialise(runner.network.tables())
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--shape", type=int, nargs=3, default=GOWALLA, metavar=("USERS", "ITEMS", "INTERACTIONS"), help="a smaller matrix for a quick check"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--memory", nargs=2, metavar=("MODEL", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    limit_threads(args.threads)
    device = torch.device(args.device)
    X = binary_matrix(synthetic_matrix(*args.shape))
    if args.memory:  # the child of peak_memory
        print(json.dumps(memory_run(*args.memory, X, device)))
        return
    print(f"matrix {X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} interactions; {args.threads} threads; device {device}")
    results: dict = {"machine": platform.machine(), "threads": args.threads, "device": str(device), "shape": list(X.shape), "nnz": X.nnz}
    for name in args.models:
        start = time.perf_counter()
        islim_runner = build(name, "islim", X, device)
        setup = {"islim": time.perf_counter() - start}
        start = time.perf_counter()
        naive_runner = build(name, "naive", X, device)
        setup["naive"] = time.perf_counter() - start
        runners = {"islim": islim_runner, "naive": naive_runner}
        times: dict[str, list[float]] = {"islim": [], "naive": []}
        loads = []
        for round_ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            order = ("islim", "naive") if round_ % 2 == 0 else ("naive", "islim")
            for implementation in order:
                times[implementation] += time_steps(runners[implementation], args.steps, device)
            loads.append(os.getloadavg()[0])
        del runners, islim_runner, naive_runner
        batches = -(-X.nnz // MODELS[name]().batch_size)
        entry = {"batches_per_epoch": batches, "load_average_1min": loads, "setup_seconds": setup}
        for implementation in ("islim", "naive"):
            median = statistics.median(times[implementation])
            entry[implementation] = {
                "step_seconds": times[implementation],
                "seconds_per_epoch": median * batches,
                **peak_memory(name, implementation, args),
            }
        entry["ratio"] = entry["naive"]["seconds_per_epoch"] / entry["islim"]["seconds_per_epoch"]
        entry["implicit_slim_init_seconds"] = implicit_slim_seconds(name, X, device)
        results[name] = entry
        print(
            f"{name}: islim {entry['islim']['seconds_per_epoch']:.0f} s/epoch ({entry['islim']['peak_mb']:.0f} MiB), "
            f"straightforward {entry['naive']['seconds_per_epoch']:.0f} s/epoch ({entry['naive']['peak_mb']:.0f} MiB), "
            f"ratio {entry['ratio']:.2f}; set-up {setup['islim']:.1f} s; ImplicitSLIM init {entry['implicit_slim_init_seconds']:.1f} s; "
            f"load {min(loads):.1f}-{max(loads):.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
