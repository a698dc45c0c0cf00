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
#: Architecture defaults of the deep models (``MODEL_DEFAULTS`` / ``TRAINING_DEFAULTS`` of
#: :mod:`islim.models.deep`, repeated here so that sizing a job does not import torch; a test
#: checks that they agree). ``n_factors`` is the default of the linear models (MF, PLRec).
MODEL_SIZES = {
    "mf": {"n_factors": 256},
    "plrec": {"n_factors": 256},
    "multvae": {"hidden_dim": 600, "latent_dim": 200, "batch_size": 500},
    "recvae": {"hidden_dim": 600, "latent_dim": 200, "batch_size": 500},
    "hvamp": {"hidden_dim": 600, "z1_dim": 200, "z2_dim": 200, "n_components": 1000, "gated": True, "batch_size": 200},
}
#: Default ``k`` of the k-NN neighbourhood (:data:`islim.embeddings.registry.DEFAULT_PARAMS`).
KNN_K = 100


def _to_mb(nbytes: float, attempt: int) -> int:
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
    """EASE λ sweep (:func:`islim.pipeline.ease_sweep`): two dense ``I x I`` arrays of ``dtype`` (the
    shared Gram matrix and each λ's ``B``, inverted in place), two more when one exceeds 4 GiB (the
    MKL path: one fit at MSD shape peaked at 19.6 GiB = 3 copies), the split and an evaluation block.

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
    return _to_mb(dense + split_bytes(stats) + eval_bytes(stats, batch_size), attempt)


def _dense_copies(arm: dict, n_items: int, k: int) -> float:
    """Peak number of dense float64 ``I x I`` arrays of an ablation arm (see :func:`ablation_mem_mb`)."""
    neighbourhood, first, second = arm["neighbourhood"], arm["first_step"], arm["second_step"]
    implicit = second != "explicit"
    if neighbourhood == "knn":  # float32 co-occurrence (half a float64 copy); S is sparse
        densified = not implicit and min(n_items * k * k, n_items**2) > 0.1 * n_items**2
        return max(0.5, 2.0 if densified else 0.0)  # explicit: L densified, plus LAPACK's copy
    if first == "ease" and implicit:
        return 0.0  # ImplicitSLIM's closed form: sparse products and I x d arrays only
    mkl = 2 if 8 * n_items**2 > MKL_PATH_BYTES else 0
    build = {"ease": 1 + mkl, "lle": 5, "cooccurrence": 1, "identity": 0}[first]
    if first == "identity":
        return 0.0  # S = 0 is sparse; the implicit step then works on sparse operators
    second_step = 1 + (3 if not implicit else 2)  # S + (A, L, LAPACK copy) or S + the dense system (x2)
    return float(max(build, second_step))


def ablation_mem_mb(stats: dict, arm: dict, d: int, grids: dict | None = None, batch_size: int = 2000, attempt: int = 1) -> int:
    """One ablation cell (``arm`` = ``{"neighbourhood", "first_step", "second_step"}``) or reference
    arm (``arm`` = ``{"reference": "random" | "svd"}``) at embedding size ``d``.

    Dense float64 ``I x I`` arrays, peak count ``c`` (``8 c I²`` bytes):

    * ``all`` neighbourhood, first step ``ease`` with an implicit second step: ``c = 0``
      (ImplicitSLIM's closed form works on the sparse matrix and ``I x d`` arrays);
    * otherwise ``all``: the first step builds ``S`` (``ease`` 1 copy, 3 on the MKL path above 4 GiB;
      ``lle`` 5; ``cooccurrence`` 1; ``identity`` none: ``S = 0`` is sparse and ``c = 0``), then the
      explicit step holds ``S``, ``A = I - S``, ``L = A Aᵀ`` and LAPACK's copy (4) and the implicit
      steps ``S`` and the dense system twice (3): ``c = max(first step, second step)``;
    * ``knn``: a float32 co-occurrence matrix (``c = 0.5``); the explicit step densifies ``L`` when
      ``min(I k², I²) > 0.1 I²`` (``c = 2`` with LAPACK's copy), plus sparse ``S`` and ``L``
      (``12 (I k + min(I k², I²))`` bytes), ``k`` the largest of the cell's grid (default 100);
    * reference ``svd``: a randomized SVD, ``3 (U + I)(d + 10)`` float64 values; ``random``: none.

    Plus ``I x d`` float64 embeddings and the scorers' item statistics (``8 I d`` values), user factors
    (``2 U d``), the split and an evaluation block.

    Parameters
    ----------
    stats : dict
        The split's ``stats.json``.
    arm : dict
        The cell's arm, or ``{"reference": name}``.
    d : int
        Embedding size.
    grids : dict, optional
        The cell's grids (:func:`islim.config.ablation_cell_grids`); only ``k`` of ``knn`` is read.
    batch_size, attempt : int
        As for :func:`ease_mem_mb`.

    Returns
    -------
    int
        MiB to request.
    """
    n_items, n_users = stats["items"], stats["users"]["train"]
    extra = 8 * (8 * n_items * d + 2 * n_users * d)
    if "reference" in arm:
        if arm["reference"] == "svd":
            extra += 8 * 3 * (n_users + n_items) * (d + 10)
    else:
        knn = ((grids or {}).get("neighbourhood", {}) or {}).get("knn") or {}
        k = max(knn.get("k") or [KNN_K])
        extra += 8 * _dense_copies(arm, n_items, k) * n_items**2
        if arm["neighbourhood"] == "knn":
            extra += 12 * (n_items * k + (min(n_items * k * k, n_items**2) if arm["second_step"] == "explicit" else 0))
    return _to_mb(extra + split_bytes(stats) + eval_bytes(stats, batch_size), attempt)


def _resolved(model: str, settings: dict) -> tuple[dict, dict]:
    """The variant's settings over the model's ``params`` (one level deep) and the grid; sizes not
    set take :data:`MODEL_SIZES`."""
    params, grid = dict(settings.get("params", {})), settings.get("grid", {})
    for variant in settings.get("variants", {}).values():
        for key, value in (variant or {}).items():
            params[key] = {**params[key], **value} if isinstance(value, dict) and isinstance(params.get(key), dict) else value
    return {**MODEL_SIZES.get(model, {}), **params}, grid


def _largest(values: dict, grid: dict, key: str) -> float:
    """The setting ``key``, or the largest candidate of the grid if it searches it."""
    candidates = [values[key], *grid.get(key, [])]
    return max(candidates)


def train_mem_mb(stats: dict, model: str, settings: dict, batch_size: int = 2000, attempt: int = 1) -> int:
    """One training run of ``model`` with ``settings`` (``{"params", "grid", "variants"}`` as
    :func:`islim.config.training_variant` gives; grid candidates count with their largest value).

    * Linear models (``mf``, ``plrec``) with ``f = n_factors``: ``6 I f`` float64 values of item
      embeddings and statistics and ``3 U f`` of user factors; ``init = "slim_lle"`` adds SLIM-LLE's
      three dense float64 ``I x I`` arrays (ImplicitSLIM's init and regulariser stay sparse).
    * Deep models, float32, on the CPU (a GPU holds the same there): the item-sized weights
      ``P`` (Mult-VAE ``2 I H``; RecVAE ``I (2H + L)`` with the prior's encoder copy; H+Vamp
      ``I (2 g H + H + K)``, ``g = 2`` gated, ``K`` pseudo-inputs) five times (weights, gradients,
      Adam's two moments, the kept best state), a training batch of ``b x I`` six times (input,
      dropout mask, logits, softmax and their gradients), and with ImplicitSLIM (an
      ``implicit_slim`` mode other than ``none``) eight ``I x H`` float32 work arrays.

    Plus the split and an evaluation block of ``batch_size`` rows.

    Parameters
    ----------
    stats : dict
        The split's ``stats.json``.
    model : str
        ``mf``, ``plrec``, ``multvae``, ``recvae`` or ``hvamp``.
    settings : dict
        The run's ``{"params", "grid", "variants"}``; sizes it does not set take :data:`MODEL_SIZES`.
    batch_size, attempt : int
        As for :func:`ease_mem_mb`.

    Returns
    -------
    int
        MiB to request.

    Raises
    ------
    ValueError
        For a model without an estimate.
    """
    n_items, n_users = stats["items"], stats["users"]["train"]
    values, grid = _resolved(model, settings)
    if model in ("mf", "plrec"):
        f = _largest(values, grid, "n_factors")
        extra = 8 * (6 * n_items * f + 3 * n_users * f)
        if "slim_lle" in [values.get("init"), *grid.get("init", [])]:
            extra += 3 * 8 * n_items**2
    elif model in ("multvae", "recvae", "hvamp"):
        H = _largest(values, grid, "hidden_dim")
        if model == "multvae":
            weights = 2 * n_items * H
        elif model == "recvae":
            weights = n_items * (2 * H + _largest(values, grid, "latent_dim"))
        else:
            gates = 2 if values.get("gated", True) else 1
            weights = n_items * (2 * gates * H + H + _largest(values, grid, "n_components"))
        batch = min(_largest(values, grid, "batch_size"), n_users)
        extra = 4 * (5 * weights + 6 * batch * n_items)
        if (values.get("implicit_slim") or {}).get("mode", "none") != "none":
            extra += 4 * 8 * n_items * H
    else:
        raise ValueError(f"no memory estimate for model {model!r}")
    return _to_mb(extra + split_bytes(stats) + eval_bytes(stats, batch_size), attempt)
