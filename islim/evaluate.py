"""Batched evaluation of a recommender on held-out users (fold-in → target), and the metric lists.

Memory is bounded by ``batch_size × n_items`` scores at a time, so 50 k users × 41 k items
never materialise at once.

Which metrics are computed is a tuple of :class:`~islim.metrics.Metric` (``metrics=``), by default
:data:`REPORTED_METRICS`, the paper's three. The workflow takes them from the config's
``metrics`` section, per evaluation protocol (:func:`protocol_metrics`,
:func:`selection_metric`; defaults in :data:`PROTOCOL_DEFAULTS`).

Per-user metrics (all but ``coverage``) are reported as the mean over the evaluated users (those
with a non-empty target set) with its standard error (``<name>_se``); a set-level metric
(``coverage@K``) is one value for the set of evaluated users: it has no per-user values (it is
absent from :func:`per_user_metrics`, hence from per-user tables and paired comparisons) and no
``_se`` key in :func:`evaluate`'s result (an empty ``se`` in ``metrics.csv``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from islim.config import protocol_of
from islim.errors import ConfigError, DataFormatError
from islim.metrics import Metric, Ranked, metric_list, top_k_items, train_popularity
from islim.numerics import require_finite

if TYPE_CHECKING:
    from islim.data.split import Split

#: Metric settings of each evaluation protocol when the config does not say otherwise (the schema's
#: defaults of ``metrics.<protocol>``): ``names``, ``cutoffs`` (every family at each), ``select``
#: (the validation metric that picks hyper-parameters and epochs) and the ``recall`` definition.
#: ``strong``: the paper's Recall@20, Recall@50, NDCG@100 (Liang et al. 2018); ``weak`` (the
#: per-user hold-out protocol): Recall@20, NDCG@20 as the LightGCN code computes them.
PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "strong": {"names": ["recall@20", "recall@50", "ndcg@100"], "cutoffs": [], "select": "ndcg@100", "recall": "liang2018"},
    "weak": {"names": ["recall@20", "ndcg@20"], "cutoffs": [], "select": "ndcg@20", "recall": "lightgcn"},
}

#: The metrics reported by default: those of the strong-generalisation protocol.
REPORTED_METRICS: tuple[Metric, ...] = metric_list(PROTOCOL_DEFAULTS["strong"]["names"])

ScoreFunction = Callable[[sp.csr_matrix], np.ndarray]


def metric_settings(config: Mapping[str, Any], protocol: str) -> dict[str, Any]:
    """The ``metrics.<protocol>`` section of ``config`` over :data:`PROTOCOL_DEFAULTS`.

    Raises
    ------
    ConfigError
        An unknown protocol.
    """
    if protocol not in PROTOCOL_DEFAULTS:
        raise ConfigError(f"unknown evaluation protocol {protocol!r}; known: {list(PROTOCOL_DEFAULTS)}")
    return {**PROTOCOL_DEFAULTS[protocol], **(config.get("metrics") or {}).get(protocol, {})}


def protocol_metrics(config: Mapping[str, Any], protocol: str) -> tuple[Metric, ...]:
    """The metrics evaluated under ``protocol``: ``names``, every family at each of ``cutoffs``, and
    the selection metric (added last when not already listed), with the protocol's recall definition.

    Parameters
    ----------
    config : mapping
        The configuration (its ``metrics`` section; defaults from :data:`PROTOCOL_DEFAULTS`).
    protocol : str
        ``"strong"`` or ``"weak"``.

    Returns
    -------
    tuple of Metric
    """
    return settings_metrics(metric_settings(config, protocol))


def settings_metrics(settings: Mapping[str, Any]) -> tuple[Metric, ...]:
    """The metrics of one protocol's settings (:func:`metric_settings`: ``names``, ``cutoffs``,
    ``select``, ``recall``); the selection metric is added last when not already listed."""
    return metric_list([*settings["names"], settings["select"]], settings["cutoffs"], settings["recall"])


def selection_metric(config: Mapping[str, Any], protocol: str) -> str:
    """Name of the validation metric that selects hyper-parameters and epochs under ``protocol``."""
    return metric_settings(config, protocol)["select"]


def dataset_metric_settings(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """:func:`metric_settings` of the protocol of dataset ``name`` (:func:`islim.config.protocol_of`):
    what the workflow passes to every job that evaluates on the dataset."""
    return metric_settings(config, protocol_of(config["datasets"][name]))


def _to_numpy(scores) -> np.ndarray:
    """Accept numpy arrays, numpy matrices and torch tensors (on any device)."""
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    return np.asarray(scores)


class UserMetrics(NamedTuple):
    """The metrics of a set of evaluated users, as :func:`evaluate_users` returns them.

    Attributes
    ----------
    per_user : dict of str to ndarray
        ``"user"`` (row indices of the evaluated users) and one 1-D array per per-user metric
        (:func:`per_user_metrics`).
    set_level : dict of str to float
        One value per set-level metric (``coverage@K``) for the whole set of evaluated users.
    """

    per_user: dict[str, np.ndarray]
    set_level: dict[str, float]

    def summary(self, metrics: Sequence[Metric] = REPORTED_METRICS) -> dict[str, float]:
        """:func:`summarize` of the per-user metrics, then the set-level ones (:func:`evaluate`'s result)."""
        return summarize(self.per_user, metrics) | self.set_level


def evaluate_users(
    score_batch: ScoreFunction,
    fold_in: sp.spmatrix,
    target: sp.spmatrix,
    batch_size: int = 2000,
    user_ids: np.ndarray | None = None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    popularity: np.ndarray | None = None,
) -> UserMetrics:
    """Per-user values of the per-user metrics and the values of the set-level ones, in one pass.

    See :func:`per_user_metrics` for the arguments.
    """
    if fold_in.shape != target.shape:
        raise ValueError(f"fold-in {fold_in.shape} and target {target.shape} must have the same shape")
    if user_ids is not None and len(user_ids) != fold_in.shape[0]:
        raise ValueError(f"user_ids has {len(user_ids)} entries for {fold_in.shape[0]} fold-in rows")
    if popularity is not None and len(popularity) != fold_in.shape[1]:
        raise ValueError(f"popularity has {len(popularity)} entries for {fold_in.shape[1]} items")
    fold_in = sp.csr_matrix(fold_in)
    target = sp.csr_matrix(target)
    n_items = fold_in.shape[1]
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    k_max = min(max(metric.k for metric in metrics), n_items)
    out: dict[str, list[np.ndarray]] = {metric.name: [] for metric in metrics if metric.per_user}
    covered = {metric.name: np.zeros(n_items, dtype=bool) for metric in metrics if not metric.per_user}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        x = fold_in[batch]
        raw = score_batch(x) if user_ids is None else score_batch(x, np.asarray(user_ids)[batch])
        scores = np.array(_to_numpy(raw), dtype=np.float32, copy=True)
        if scores.shape != x.shape:
            raise ValueError(f"score function returned shape {scores.shape}, expected {x.shape}")
        require_finite(
            scores, f"scores of users {batch[0]}..{batch[-1]}", "the model's weights or embeddings are not finite; check its training log"
        )
        scores[x.nonzero()] = -np.inf
        top = top_k_items(scores, k_max)
        valid = np.take_along_axis(scores, top, axis=1) > -np.inf
        ranked = Ranked.of(top, target[batch], valid, popularity)
        for metric in metrics:
            values = metric(ranked, min(metric.k, k_max))
            if metric.per_user:
                out[metric.name].append(values)
            else:
                covered[metric.name][values] = True
    per_user = {name: np.concatenate(values) if values else np.empty(0) for name, values in out.items()}
    per_user["user"] = users
    set_level = {name: float(mask.mean()) if len(users) else float("nan") for name, mask in covered.items()}
    return UserMetrics(per_user, set_level)


def per_user_metrics(
    score_batch: ScoreFunction,
    fold_in: sp.csr_matrix,
    target: sp.csr_matrix,
    batch_size: int = 2000,
    user_ids: np.ndarray | None = None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    popularity: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-user metrics of every evaluated user (those with a non-empty target set).

    Parameters
    ----------
    score_batch : ScoreFunction
        Maps a ``(b, n_items)`` CSR batch of fold-in rows to ``(b, n_items)`` scores (numpy array
        or torch tensor). Fold-in items are excluded here, not by the model.
    fold_in : scipy.sparse.csr_matrix, shape (n_users, n_items)
        CSR fold-in interactions of the held-out users (under the per-user hold-out protocol:
        the users' training interactions, excluded from their rankings).
    target : scipy.sparse.csr_matrix, shape (n_users, n_items)
        CSR target interactions, same shape.
    batch_size : int, default 2000
        Users scored at once.
    user_ids : ndarray of int, shape (n_users,), optional
        The training-matrix row of each row of ``fold_in``, for models that score *known* users
        (``Recommender.user_scoring == "known_users"``, the per-user hold-out protocol): then
        ``score_batch(rows, user_ids[batch])`` is called. ``None`` (strong generalisation: the
        users are not in the training matrix) calls ``score_batch(rows)``.
    metrics : sequence of Metric, default :data:`REPORTED_METRICS`
        The metrics; set-level ones (``coverage``) have no per-user values and are left out here
        (:func:`evaluate` reports them).
    popularity : ndarray of float, shape (n_items,), optional
        Training popularity of each item (:func:`islim.metrics.train_popularity`), needed by ``arp``.

    Returns
    -------
    dict of str to ndarray
        ``{"user": indices of evaluated users, "<metric>": ...}`` for every per-user metric,
        each a 1-D array over the evaluated users.
    """
    return evaluate_users(score_batch, fold_in, target, batch_size, user_ids, metrics, popularity).per_user


def summarize(per_user: dict[str, np.ndarray], metrics: Sequence[Metric] = REPORTED_METRICS) -> dict[str, float]:
    """Mean and standard error (``std(ddof=1) / sqrt(n)``) of each per-user metric, plus ``n_users``.

    Set-level metrics of ``metrics`` are skipped (they have no per-user values).
    """
    summary: dict[str, float] = {"n_users": int(len(per_user["user"]))}
    for metric in metrics:
        if not metric.per_user:
            continue
        values = per_user[metric.name]
        n = len(values)
        summary[metric.name] = float(values.mean()) if n else float("nan")
        summary[f"{metric.name}_se"] = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return summary


def evaluate(
    score_batch: ScoreFunction,
    fold_in: sp.csr_matrix,
    target: sp.csr_matrix,
    batch_size: int = 2000,
    user_ids: np.ndarray | None = None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    popularity: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean ± standard error of each metric over the evaluated users.

    See :func:`per_user_metrics` for the arguments. Returns ``n_users`` and, for each per-user
    metric, ``<name>`` and ``<name>_se`` (by default ``recall@20``, ``recall@20_se``, ``recall@50``,
    ``recall@50_se``, ``ndcg@100``, ``ndcg@100_se``); for each set-level metric ``<name>`` only.
    """
    return evaluate_users(score_batch, fold_in, target, batch_size, user_ids, metrics, popularity).summary(metrics)


def _held_out(split: Split, group: str) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray | None, np.ndarray]:
    """What scoring the ``group`` users of ``split`` under its protocol needs:
    :meth:`~islim.data.split.Split.held_out`'s ``(fold_in, target, user_ids)`` and the training
    popularity of the items, shape ``(n_items,)``."""
    return (*split.held_out(group), train_popularity(split.train))


def evaluate_split_users(
    score_batch: ScoreFunction, split: Split, group: str, metrics: Sequence[Metric] = REPORTED_METRICS, batch_size: int = 2000
) -> UserMetrics:
    """:func:`evaluate_users` on the ``"validation"`` or ``"test"`` users of ``split``, under its protocol.

    Passes what the protocol needs: the fold-in rows (excluded from the rankings), the targets, the
    users' training rows for models that score known users (:meth:`~islim.data.split.Split.held_out`:
    per-user hold-out only) and the training popularity of the items (for ``arp``).
    """
    fold_in, target, user_ids, popularity = _held_out(split, group)
    return evaluate_users(score_batch, fold_in, target, batch_size, user_ids, metrics, popularity)


def evaluate_split(
    score_batch: ScoreFunction, split: Split, group: str, metrics: Sequence[Metric] = REPORTED_METRICS, batch_size: int = 2000
) -> dict[str, float]:
    """:func:`evaluate` on the ``"validation"`` or ``"test"`` users of ``split`` (see :func:`evaluate_split_users`)."""
    return evaluate_split_users(score_batch, split, group, metrics, batch_size).summary(metrics)


def split_validator(
    split: Split, metrics: Sequence[Metric] = REPORTED_METRICS, batch_size: int = 2000
) -> Callable[[object], dict[str, float]]:
    """:func:`holdout_validator` of the validation users of ``split``, under its protocol (see :func:`evaluate_split_users`)."""
    fold_in, target, user_ids, popularity = _held_out(split, "validation")
    return holdout_validator(fold_in, target, batch_size, user_ids, metrics, popularity)


def holdout_validator(
    fold_in: sp.spmatrix,
    target: sp.spmatrix,
    batch_size: int = 2000,
    user_ids: np.ndarray | None = None,
    metrics: Sequence[Metric] = REPORTED_METRICS,
    popularity: np.ndarray | None = None,
) -> Callable[[object], dict[str, float]]:
    """A ``validate`` callback for ``Recommender.fit``: the mean metrics of held-out users.

    Parameters
    ----------
    fold_in, target : scipy.sparse matrix, shape (n_users, n_items)
        Fold-in and target interactions of the validation users (same shape).
    batch_size : int
        Users scored at once.
    user_ids : ndarray of int, optional
        Training-matrix rows of the validation users, for models that score known users (see
        :func:`per_user_metrics`).
    metrics : sequence of Metric, default :data:`REPORTED_METRICS`
        The metrics returned.
    popularity : ndarray of float, shape (n_items,), optional
        Training item popularity, needed by ``arp``.

    Returns
    -------
    callable
        ``validate(model) -> {"recall@20": …, "recall@50": …, "ndcg@100": …}`` (means over the
        evaluated users, one key per metric), scoring with ``model.score_batch``.

    Raises
    ------
    DataFormatError
        The shapes differ or the target holds no interaction (no user could be evaluated).
    """
    fold_in, target = sp.csr_matrix(fold_in, dtype=np.float32), sp.csr_matrix(target, dtype=np.float32)
    if fold_in.shape != target.shape:
        raise DataFormatError(f"validation fold-in {fold_in.shape} and target {target.shape} must have the same shape")
    if target.nnz == 0:
        raise DataFormatError("the validation target matrix is empty: no user can be evaluated")

    def validate(model) -> dict[str, float]:
        summary = evaluate(model.score_batch, fold_in, target, batch_size, user_ids, metrics, popularity)
        return {metric.name: summary[metric.name] for metric in metrics}

    return validate
