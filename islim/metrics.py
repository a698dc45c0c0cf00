"""Ranking metrics: a registry of metric families, each at any cut-off ``K`` (``"recall@20"``).

For a user with target set T, a ranking of the candidate items (every item but the excluded
ones: the fold-in items, or the user's training items) and the top-K list ``ω(1..K)``:

==============  ===========================================================================
family          value
==============  ===========================================================================
``recall``      ``|top-K ∩ T| / min(K, |T|)`` (Liang et al., WWW 2018: the strong-
                generalisation protocol), or ``|top-K ∩ T| / |T|`` (the LightGCN code: the
                per-user hold-out protocol); see :data:`RECALL_DEFINITIONS`
``ndcg``        ``DCG@K / IDCG@K`` with ``DCG@K = Σ_{r=1..K} 1[ω(r) ∈ T] / log2(r + 1)`` and
                ``IDCG@K = Σ_{r=1..min(K, |T|)} 1 / log2(r + 1)`` (both protocols)
``hitrate``     1 if ``top-K ∩ T`` is not empty, else 0
``mrr``         ``1 / r`` for the rank ``r`` of the first target in the top K, 0 if none
``precision``   ``|top-K ∩ T| / K``
``arp``         average recommended popularity: the mean training popularity (number of
                training interactions, :func:`train_popularity`) of the top-K items
``coverage``    item coverage, a *set-level* metric: the fraction of all items that appear in
                the top K of at least one evaluated user
==============  ===========================================================================

Every family but ``coverage`` has one value per user; ``coverage`` has one value for the whole
set of evaluated users (so it has no per-user values and no standard error). A per-user value
is NaN for a user without targets. Rankings break ties by the lower item index, so results do
not depend on the sort algorithm. When fewer than ``K`` items are candidates, the top K holds
only the candidates (excluded items never count as hits, for ``arp`` or for ``coverage``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from islim.errors import ConfigError

#: A metric name: a family and a cut-off, e.g. ``recall@20``.
METRIC_NAME = re.compile(r"^([a-z]+)@([1-9][0-9]*)$")


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first; ties go to the lower index.

    Uses torch's multi-threaded partial selection (``topk``, O(I) per row, zero-copy on the
    numpy array) and an exact stable sort only for the rare rows whose k-th score is tied with
    scores outside the top k.

    Parameters
    ----------
    scores : ndarray of float, shape (n_users, n_items)
        ``-inf`` marks excluded items.
    k : int
        Number of items to return, ``1 <= k <= n_items``.

    Returns
    -------
    ndarray of int64, shape (n_users, k)
        Item indices.
    """
    n_users, n_items = scores.shape
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be between 1 and the number of items ({n_items}), got {k}")
    if k == n_items:
        return np.argsort(-scores, axis=1, kind="stable")
    import torch  # deferred: the metrics module itself stays importable without loading torch

    values, indices = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1, sorted=False)
    part, part_scores = indices.numpy(), values.numpy()
    kth_value = part_scores.min(axis=1)
    # Ties at the boundary: more items reach the k-th value than there are places.
    n_at_least = (scores >= kth_value[:, None]).sum(axis=1)
    # Order the top-k set by (score descending, index ascending).
    order = np.lexsort((part, -part_scores), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    for row in np.flatnonzero(n_at_least > k):
        top[row] = np.argsort(-scores[row], kind="stable")[:k]
    return top


def train_popularity(train: sp.spmatrix) -> np.ndarray:
    """Training popularity of every item: its number of training interactions (column sums).

    Parameters
    ----------
    train : scipy.sparse matrix, shape (n_users, n_items)
        Binary training interactions.

    Returns
    -------
    ndarray of float64, shape (n_items,)
    """
    return np.asarray(train.sum(axis=0), dtype=np.float64).ravel()


@dataclass(frozen=True)
class Ranked:
    """The top-K lists of a batch of users and what the metrics need to know about them.

    Attributes
    ----------
    top : ndarray of int64, shape (n_users, k_max)
        Item indices, best first (:func:`top_k_items`).
    hits : ndarray of bool, shape (n_users, k_max)
        Whether the item at each rank is a candidate in the user's target set.
    valid : ndarray of bool, shape (n_users, k_max)
        Whether the item at each rank is a candidate (not excluded).
    n_target : ndarray of int64, shape (n_users,)
        Size of each user's target set.
    popularity : ndarray of float, shape (n_items,) or None
        Training popularity of each item (:func:`train_popularity`); needed by ``arp`` only.
    """

    top: np.ndarray
    hits: np.ndarray
    valid: np.ndarray
    n_target: np.ndarray
    popularity: np.ndarray | None = None

    @classmethod
    def of(cls, top: np.ndarray, target: sp.spmatrix, valid: np.ndarray | None = None, popularity: np.ndarray | None = None) -> Ranked:
        """Build from top-K lists and the ``(n_users, n_items)`` target matrix (non-zeros = targets).

        ``valid`` defaults to every rank being a candidate.
        """
        target = sp.csr_matrix(target)
        valid = np.ones(top.shape, dtype=bool) if valid is None else valid
        rows = np.arange(top.shape[0])[:, None]
        hits = np.asarray(target[rows, top].todense() > 0) & valid
        return cls(top, hits, valid, np.diff(target.indptr).astype(np.int64), popularity)


def _per_target(values: np.ndarray, n_target: np.ndarray) -> np.ndarray:
    """``values`` as float64 with NaN for users without targets."""
    return np.where(n_target > 0, values, np.nan)


def _recall_liang(ranked: Ranked, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_target(ranked.hits[:, :k].sum(axis=1) / np.minimum(k, ranked.n_target), ranked.n_target)


def _recall_lightgcn(ranked: Ranked, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_target(ranked.hits[:, :k].sum(axis=1) / ranked.n_target, ranked.n_target)


def _ndcg(ranked: Ranked, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (ranked.hits[:, :k] * discounts).sum(axis=1)
    ideal_cumulative = np.concatenate(([0.0], np.cumsum(discounts)))
    idcg = ideal_cumulative[np.minimum(k, ranked.n_target)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_target(dcg / idcg, ranked.n_target)


def _hitrate(ranked: Ranked, k: int) -> np.ndarray:
    return _per_target(ranked.hits[:, :k].any(axis=1).astype(np.float64), ranked.n_target)


def _mrr(ranked: Ranked, k: int) -> np.ndarray:
    hits = ranked.hits[:, :k]
    first = hits.argmax(axis=1)
    return _per_target(np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0), ranked.n_target)


def _precision(ranked: Ranked, k: int) -> np.ndarray:
    return _per_target(ranked.hits[:, :k].sum(axis=1) / k, ranked.n_target)


def _arp(ranked: Ranked, k: int) -> np.ndarray:
    if ranked.popularity is None:
        raise ValueError("arp (average recommended popularity) needs the training item popularity; pass popularity=train_popularity(train)")
    valid = ranked.valid[:, :k]
    total = (ranked.popularity[ranked.top[:, :k]] * valid).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _per_target(total / valid.sum(axis=1), ranked.n_target)


def _covered_items(ranked: Ranked, k: int) -> np.ndarray:
    """Distinct candidate items in the top K of the users of the batch (coverage's per-batch part)."""
    return np.unique(ranked.top[:, :k][ranked.valid[:, :k]])


@dataclass(frozen=True)
class Family:
    """One metric family of the registry.

    Attributes
    ----------
    name : str
        The name before ``@`` (``recall``).
    title : str
        Display name in tables and figures (``Recall``).
    compute : callable
        ``compute(ranked, k)``: per-user values, shape ``(n_users,)`` (NaN without targets), or for
        a set-level family the distinct items the batch contributes (coverage).
    per_user : bool
        One value per user (``False``: one value for the set of evaluated users).
    higher_is_better : bool
        Whether a larger value is a better ranking (the selection metric must be such a metric).
    """

    name: str
    title: str
    compute: Callable[[Ranked, int], np.ndarray]
    per_user: bool = True
    higher_is_better: bool = True


#: The recall definitions: Liang et al. (``min(K, |T|)``) and the LightGCN code (``|T|``).
RECALL_DEFINITIONS = {
    "liang2018": Family("recall", "Recall", _recall_liang),
    "lightgcn": Family("recall", "Recall", _recall_lightgcn),
}

#: Every metric family by name (``recall`` with Liang et al.'s definition).
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        RECALL_DEFINITIONS["liang2018"],
        Family("ndcg", "NDCG", _ndcg),
        Family("hitrate", "HitRate", _hitrate),
        Family("mrr", "MRR", _mrr),
        Family("precision", "Precision", _precision),
        Family("coverage", "Coverage", _covered_items, per_user=False),
        Family("arp", "ARP", _arp, higher_is_better=False),
    )
}


class Metric(NamedTuple):
    """One metric: a family at a cut-off.

    A named triple ``(name, family, k)``, so ``for name, _, _ in metrics`` lists the names.
    """

    name: str
    family: Family
    k: int

    @property
    def per_user(self) -> bool:
        """Whether the metric has one value per user (see :attr:`Family.per_user`)."""
        return self.family.per_user

    @property
    def title(self) -> str:
        """Display name, e.g. ``Recall@20``."""
        return f"{self.family.title}@{self.k}"

    def __call__(self, ranked: Ranked, k: int | None = None) -> np.ndarray:
        """The family's values on ``ranked`` at this cut-off (or at ``k``, when the catalogue is smaller)."""
        return self.family.compute(ranked, self.k if k is None else k)


def parse_metric(name: str, recall: str = "liang2018") -> Metric:
    """The metric ``name`` (``family@K``), with the recall definition ``recall``.

    Raises
    ------
    ConfigError
        A malformed name, an unknown family or recall definition.
    """
    match = METRIC_NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise ConfigError(f"metric {name!r} is not of the form family@K (e.g. recall@20, K a positive integer); families: {list(FAMILIES)}")
    if recall not in RECALL_DEFINITIONS:
        raise ConfigError(f"unknown recall definition {recall!r}; known: {list(RECALL_DEFINITIONS)}")
    family_name, k = match.group(1), int(match.group(2))
    if family_name not in FAMILIES:
        raise ConfigError(f"metric {name!r}: unknown family {family_name!r}; known families: {list(FAMILIES)}")
    family = RECALL_DEFINITIONS[recall] if family_name == "recall" else FAMILIES[family_name]
    return Metric(name, family, k)


def metric_names(keys: Iterable[str]) -> list[str]:
    """The metric names (``family@K``) among ``keys``, in their order: e.g. of an
    :func:`islim.evaluate.evaluate` result, leaving out ``n_users`` and the ``_se`` keys."""
    return [key for key in keys if METRIC_NAME.match(key)]


def metric_list(names: Iterable[str] = (), cutoffs: Sequence[int] = (), recall: str = "liang2018") -> tuple[Metric, ...]:
    """The metrics ``names``, then every family at each of ``cutoffs``, without repeats, in that order.

    Parameters
    ----------
    names : iterable of str
        Metric names, e.g. ``["recall@20", "ndcg@100"]``.
    cutoffs : sequence of int
        Cut-offs at which every family of :data:`FAMILIES` is added.
    recall : str
        The recall definition (a key of :data:`RECALL_DEFINITIONS`).

    Returns
    -------
    tuple of Metric
    """
    wanted = list(names) + [f"{family}@{k}" for k in cutoffs for family in FAMILIES]
    return tuple(parse_metric(name, recall) for name in dict.fromkeys(wanted))
