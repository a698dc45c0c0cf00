"""Ranking metrics and batched evaluation against a brute-force per-user loop and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from islim.errors import ConfigError, NumericalError
from islim.evaluate import (
    PROTOCOL_DEFAULTS,
    REPORTED_METRICS,
    evaluate,
    holdout_validator,
    per_user_metrics,
    protocol_metrics,
    selection_metric,
    summarize,
)
from islim.metrics import FAMILIES, Ranked, metric_list, parse_metric, top_k_items, train_popularity

METRIC_CUTOFFS = {"recall@20": 20, "recall@50": 50, "ndcg@100": 100}
#: Every family at two cut-offs, one above the catalogue of the small problems below.
ALL_METRICS = [f"{family}@{k}" for k in (7, 20, 300) for family in FAMILIES]


# --- an independent reference: full sort of every user's candidates, one user at a time --------


def brute_ranking(scores_row, excluded=()) -> list[int]:
    """All items but ``excluded``, by score descending then index ascending."""
    excluded = set(excluded)
    candidates = [i for i in range(len(scores_row)) if i not in excluded]
    return sorted(candidates, key=lambda i: (-float(scores_row[i]), i))


def brute_recall(ranking, targets, k) -> float:
    if not targets:
        return math.nan
    return sum(1 for i in ranking[:k] if i in targets) / min(k, len(targets))


def brute_ndcg(ranking, targets, k) -> float:
    if not targets:
        return math.nan
    dcg = sum(1.0 / math.log2(rank + 2) for rank, i in enumerate(ranking[:k]) if i in targets)
    idcg = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(targets))))
    return dcg / idcg


def brute_metric(family: str, ranking, targets, k, popularity=None, recall: str = "liang2018") -> float:
    """One user's value of ``family@k`` from its full ranking (a list of candidate items)."""
    if not targets:
        return math.nan
    top = ranking[:k]
    hits = [i in targets for i in top]
    if family == "recall":
        return sum(hits) / (min(k, len(targets)) if recall == "liang2018" else len(targets))
    if family == "ndcg":
        return brute_ndcg(ranking, targets, k)
    if family == "hitrate":
        return 1.0 if any(hits) else 0.0
    if family == "mrr":
        return next((1.0 / (rank + 1) for rank, hit in enumerate(hits) if hit), 0.0)
    if family == "precision":
        return sum(hits) / k
    if family == "arp":
        return sum(popularity[i] for i in top) / len(top)
    raise AssertionError(family)


def brute_per_user(scores, fold_in, target, names=tuple(METRIC_CUTOFFS), popularity=None, recall="liang2018") -> dict[str, list[float]]:
    """Per-user metrics ``names`` of the users with a non-empty target, by a plain Python loop.

    A cut-off above the number of items is the number of items (as :func:`evaluate` caps it).
    """
    n_items = scores.shape[1]
    out = {name: [] for name in names}
    for u in range(scores.shape[0]):
        targets = set(target[u].indices.tolist())
        if not targets:
            continue
        ranking = brute_ranking(scores[u], fold_in[u].indices.tolist())
        for name in names:
            family, k = name.split("@")
            out[name].append(brute_metric(family, ranking, targets, min(int(k), n_items), popularity, recall))
    return out


def brute_coverage(scores, fold_in, target, k) -> float:
    """Fraction of items in the top ``k`` of at least one user with a non-empty target."""
    seen = set()
    for u in range(scores.shape[0]):
        if target[u].nnz:
            seen.update(brute_ranking(scores[u], fold_in[u].indices.tolist())[: min(k, scores.shape[1])])
    return len(seen) / scores.shape[1]


# --- random problems with many ties ----------------------------------------------------------


def random_problem(n_users: int, n_items: int, seed: int):
    """Disjoint binary fold-in/target matrices (some empty targets) and an integer-valued item–item model."""
    rng = np.random.default_rng(seed)
    fold_in = (rng.random((n_users, n_items)) < 0.08).astype(np.float32)
    target = ((rng.random((n_users, n_items)) < 0.15) & (fold_in == 0)).astype(np.float32)
    target[rng.random(n_users) < 0.15] = 0.0  # users without targets: not evaluated
    target[0] = 0.0
    weights = rng.integers(0, 3, size=(n_items, n_items)).astype(np.float32)
    bias = rng.integers(0, 2, size=n_items).astype(np.float32)
    return sp.csr_matrix(fold_in), sp.csr_matrix(target), weights, bias


def item_item_scorer(weights, bias, as_torch: bool = False):
    """Scores ``x W + b``: integer-valued, so ties are frequent."""

    def score_batch(x: sp.csr_matrix):
        scores = np.asarray(x @ weights) + bias
        return torch.from_numpy(scores) if as_torch else scores

    return score_batch


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 17, 40])
def test_top_k_items_equals_full_sort_with_ties_to_the_lower_index(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(30, 40)).astype(np.float32)
    scores[3] = 1.0  # a row that is one big tie
    scores[5, rng.random(40) < 0.3] = -np.inf
    expected = np.array([brute_ranking(row)[:k] for row in scores])
    np.testing.assert_array_equal(top_k_items(scores, k), expected)


def test_top_k_items_rejects_out_of_range_k():
    with pytest.raises(ValueError, match="k must be between 1"):
        top_k_items(np.zeros((2, 5)), 6)
    with pytest.raises(ValueError, match="k must be between 1"):
        top_k_items(np.zeros((2, 5)), 0)


@pytest.mark.parametrize("k", [3, 10, 25])
def test_per_user_recall_and_ndcg_equal_the_brute_force_loop(k):
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 5, size=(40, 60)).astype(np.float64)
    target = (rng.random((40, 60)) < 0.1).astype(np.float32)
    target[0] = 0.0
    target = sp.csr_matrix(target)
    top = top_k_items(scores, k)
    rankings = [brute_ranking(row) for row in scores]
    targets = [set(target[u].indices.tolist()) for u in range(40)]
    expected_recall = [brute_recall(r, t, k) for r, t in zip(rankings, targets)]
    expected_ndcg = [brute_ndcg(r, t, k) for r, t in zip(rankings, targets)]
    np.testing.assert_allclose(parse_metric(f"recall@{k}")(Ranked.of(top, target)), expected_recall, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(parse_metric(f"ndcg@{k}")(Ranked.of(top, target)), expected_ndcg, rtol=1e-12, equal_nan=True)


def test_hand_worked_recall_and_ndcg_at_3():
    """Ties go to the lower index; Recall divides by min(K, |T|); IDCG runs over min(K, |T|) ranks."""
    scores = np.array(
        [
            [0.5, 0.9, 0.9, 0.1, 0.7, 0.9],  # ranking 1, 2, 5, 4, 0, 3
            [0.5, 0.9, 0.9, 0.1, 0.7, 0.9],
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # ranking 0, 1, 2, 3, 4, 5
            [0.5, 0.9, 0.9, 0.1, 0.7, 0.9],
        ]
    )
    target = sp.csr_matrix(
        np.array(
            [
                [0, 0, 1, 0, 1, 0],  # |T| = 2 < K: one hit at rank 2
                [0, 0, 0, 0, 0, 0],  # no targets: NaN
                [1, 0, 0, 0, 0, 0],  # the only target at rank 1
                [0, 1, 1, 1, 1, 0],  # |T| = 4 > K: hits at ranks 1 and 2
            ],
            dtype=np.float32,
        )
    )
    top = top_k_items(scores, 3)
    np.testing.assert_array_equal(top, [[1, 2, 5], [1, 2, 5], [0, 1, 2], [1, 2, 5]])
    d2, d3 = 1 / math.log2(3), 1 / math.log2(4)
    np.testing.assert_allclose(parse_metric("recall@3")(Ranked.of(top, target)), [1 / 2, np.nan, 1.0, 2 / 3], equal_nan=True)
    expected_ndcg = [d2 / (1 + d2), np.nan, 1.0, (1 + d2) / (1 + d2 + d3)]
    np.testing.assert_allclose(parse_metric("ndcg@3")(Ranked.of(top, target)), expected_ndcg, equal_nan=True)
    # Recall over |T| (LightGCN), hit rate, reciprocal rank of the first hit, hits / K.
    ranked = Ranked.of(top, target)
    np.testing.assert_allclose(parse_metric("recall@3", recall="lightgcn")(ranked), [1 / 2, np.nan, 1.0, 2 / 4], equal_nan=True)
    np.testing.assert_allclose(parse_metric("hitrate@3")(ranked), [1.0, np.nan, 1.0, 1.0], equal_nan=True)
    np.testing.assert_allclose(parse_metric("mrr@3")(ranked), [1 / 2, np.nan, 1.0, 1.0], equal_nan=True)
    np.testing.assert_allclose(parse_metric("precision@3")(ranked), [1 / 3, np.nan, 1 / 3, 2 / 3], equal_nan=True)
    np.testing.assert_allclose(parse_metric("mrr@1")(ranked), [0.0, np.nan, 1.0, 1.0], equal_nan=True)


def test_hand_worked_evaluate_excludes_fold_in_and_empty_targets():
    """Three users over 6 items; scores ``x W`` pick row 1 or row 0 of ``W``.

    User 0: fold-in {1}, scores (0.5, 0.9, 0.9, 0.1, 0.7, 0.9), target {2, 4} → ranking 2, 5, 4, 0, 3:
    DCG = 1 + 1/log2(4), IDCG = 1 + 1/log2(3). User 1: no target, not evaluated. User 2: fold-in {0},
    equal scores, target {5} → ranking 1, 2, 3, 4, 5: NDCG = 1/log2(6). With 6 items every cut-off is
    6, so both recalls are 1.
    """
    weights = np.array([[1.0] * 6, [0.5, 0.9, 0.9, 0.1, 0.7, 0.9]] + [[0.0] * 6] * 4)
    fold_in = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32))
    result = evaluate(lambda x: x @ weights, fold_in, target)
    ndcg = np.array([(1 + 0.5) / (1 + 1 / math.log2(3)), 1 / math.log2(6)])
    assert result["n_users"] == 2
    assert result["recall@20"] == pytest.approx(1.0) and result["recall@50"] == pytest.approx(1.0)
    assert result["recall@20_se"] == pytest.approx(0.0)
    assert result["ndcg@100"] == pytest.approx(ndcg.mean(), rel=1e-6)
    assert result["ndcg@100_se"] == pytest.approx(abs(ndcg[0] - ndcg[1]) / 2, rel=1e-6)


@pytest.mark.parametrize("n_items", [60, 150])
@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_equals_the_brute_force_loop_on_tied_scores(n_items, seed):
    """With 60 items the NDCG cut-off 100 exceeds the catalogue; every candidate is then ranked."""
    fold_in, target, weights, bias = random_problem(70, n_items, seed)
    scores = fold_in.toarray() @ weights + bias
    expected = brute_per_user(scores, fold_in, target)
    per_user = per_user_metrics(item_item_scorer(weights, bias), fold_in, target, batch_size=16)
    np.testing.assert_array_equal(per_user["user"], np.flatnonzero(np.diff(target.indptr) > 0))
    result = evaluate(item_item_scorer(weights, bias), fold_in, target, batch_size=16)
    assert result["n_users"] == len(expected["recall@20"]) < fold_in.shape[0]
    for name, values in expected.items():
        np.testing.assert_allclose(per_user[name], values, rtol=1e-12)
        assert result[name] == pytest.approx(np.mean(values), rel=1e-12)
        assert result[f"{name}_se"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(len(values)), rel=1e-12)


def test_evaluate_is_identical_for_every_batch_size():
    fold_in, target, weights, bias = random_problem(50, 120, seed=3)
    scorer = item_item_scorer(weights, bias)
    reference = per_user_metrics(scorer, fold_in, target, batch_size=1)
    for batch_size in (7, 10_000):
        other = per_user_metrics(scorer, fold_in, target, batch_size=batch_size)
        for name in reference:
            np.testing.assert_array_equal(other[name], reference[name])
    summaries = [evaluate(scorer, fold_in, target, batch_size=b) for b in (1, 7, 10_000)]
    assert summaries[0] == summaries[1] == summaries[2]


def test_fold_in_items_never_reach_the_top_k():
    """Fold-in items get the highest scores and the targets the next highest: only exclusion gives 1."""
    rng = np.random.default_rng(5)
    n_users, n_items = 30, 200
    fold_in = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2).astype(np.float32))
    weights = rng.random((n_items, n_items)).astype(np.float32)
    base = fold_in.toarray() @ weights
    target = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        free = np.setdiff1d(np.arange(n_items), fold_in[u].indices)
        target[u, free[np.argsort(-base[u, free])[:10]]] = 1.0

    def fold_in_first(x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(x @ weights) + 1000.0 * x.toarray()

    result = evaluate(fold_in_first, fold_in, sp.csr_matrix(target), batch_size=8)
    assert result["n_users"] == n_users
    assert result["recall@20"] == pytest.approx(1.0)
    assert result["ndcg@100"] == pytest.approx(1.0)


def test_a_score_function_returning_a_torch_tensor_gives_the_same_result():
    fold_in, target, weights, bias = random_problem(40, 110, seed=4)
    from_numpy = evaluate(item_item_scorer(weights, bias), fold_in, target, batch_size=9)
    from_torch = evaluate(item_item_scorer(weights, bias, as_torch=True), fold_in, target, batch_size=9)
    assert from_torch == from_numpy


def test_score_function_with_the_wrong_shape_is_rejected():
    fold_in, target, weights, bias = random_problem(10, 30, seed=5)
    with pytest.raises(ValueError, match="score function returned shape"):
        evaluate(lambda x: np.zeros((x.shape[0], 29)), fold_in, target)


def test_non_finite_scores_stop_the_evaluation_naming_the_users():
    """A NaN score would rank first under torch's top-k: it must fail, not yield a plausible metric."""
    fold_in, target, weights, bias = random_problem(10, 30, seed=5)

    def scorer(x: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(x @ weights) + bias
        scores[-1, 3] = np.nan
        return scores

    with pytest.raises(NumericalError, match=r"scores of users \d+\.\.\d+ is not finite \(1 of \d+ entries"):
        evaluate(scorer, fold_in, target, batch_size=10)


def test_evaluate_does_not_modify_the_scores_returned_by_the_model():
    fold_in, target, weights, bias = random_problem(20, 110, seed=6)
    returned = []

    def remembering_scorer(x: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(x @ weights) + bias
        returned.append((scores, scores.copy()))
        return scores

    evaluate(remembering_scorer, fold_in, target, batch_size=6)
    assert len(returned) > 1
    for scores, copy in returned:
        np.testing.assert_array_equal(scores, copy)


# --- every metric family, both recall definitions, set-level coverage -----------------------


@pytest.mark.parametrize("recall", ["liang2018", "lightgcn"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_family_equals_the_brute_force_loop(seed, recall):
    """Tied scores, excluded fold-in items, cut-offs 7, 20 and one above the catalogue (300 > 150)."""
    fold_in, target, weights, bias = random_problem(70, 150, seed)
    popularity = train_popularity(sp.csr_matrix((np.random.default_rng(seed).random((90, 150)) < 0.1).astype(np.float32)))
    scores = fold_in.toarray() @ weights + bias
    metrics = metric_list(ALL_METRICS, recall=recall)
    names = [metric.name for metric in metrics if metric.per_user]
    expected = brute_per_user(scores, fold_in, target, names, popularity, recall)
    scorer = item_item_scorer(weights, bias)
    per_user = per_user_metrics(scorer, fold_in, target, batch_size=16, metrics=metrics, popularity=popularity)
    result = evaluate(scorer, fold_in, target, batch_size=16, metrics=metrics, popularity=popularity)
    assert sorted(per_user) == sorted([*names, "user"]) and "coverage@7" not in per_user
    for name in names:
        np.testing.assert_allclose(per_user[name], expected[name], rtol=1e-12, err_msg=name)
        assert result[name] == pytest.approx(np.mean(expected[name]), rel=1e-12)
        assert result[f"{name}_se"] == pytest.approx(np.std(expected[name], ddof=1) / np.sqrt(len(expected[name])), rel=1e-12)
    for k in (7, 20, 300):
        assert result[f"coverage@{k}"] == pytest.approx(brute_coverage(scores, fold_in, target, k), rel=1e-12)
        assert f"coverage@{k}_se" not in result
    assert result["coverage@300"] == 1.0 > result["coverage@7"]


def test_targets_among_the_excluded_items_count_in_t_but_never_as_hits():
    """The per-user hold-out protocol ranks every item but the user's training items; a target that is
    also a training item (possible in published splits) stays in |T| and cannot be hit. With few
    candidates the top K is shorter than K: ARP and coverage count the candidates only."""
    rng = np.random.default_rng(11)
    n_users, n_items = 40, 30
    fold_in = sp.csr_matrix((rng.random((n_users, n_items)) < 0.6).astype(np.float32))
    target = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2).astype(np.float32))
    assert (fold_in.multiply(target)).nnz > 0
    weights = rng.integers(0, 3, size=(n_items, n_items)).astype(np.float32)
    scores = fold_in.toarray() @ weights
    popularity = np.arange(n_items, dtype=np.float64) ** 2
    metrics = metric_list(cutoffs=[5, 25], recall="lightgcn")
    per_user = per_user_metrics(lambda x: np.asarray(x @ weights), fold_in, target, metrics=metrics, popularity=popularity)
    names = [metric.name for metric in metrics if metric.per_user]
    expected = brute_per_user(scores, fold_in, target, names, popularity, recall="lightgcn")
    for name in names:
        np.testing.assert_allclose(per_user[name], expected[name], rtol=1e-12, err_msg=name)
    result = evaluate(lambda x: np.asarray(x @ weights), fold_in, target, metrics=metrics, popularity=popularity)
    assert result["coverage@25"] == pytest.approx(brute_coverage(scores, fold_in, target, 25), rel=1e-12)


def test_hand_worked_coverage_and_average_recommended_popularity():
    """Two users over 5 items, K = 2. User 0 (fold-in {0}): scores 4, 3, 2, 1, 0 → top 1, 2.
    User 1 (no fold-in): scores 0, 0, 0, 5, 6 → top 4, 3. User 2 has no targets: not counted.
    Coverage = |{1, 2, 3, 4}| / 5; ARP = mean popularity (10, 20, 30, 40, 50) of each top 2."""
    scores = np.array([[4.0, 3, 2, 1, 0], [0, 0, 0, 5, 6], [9, 9, 9, 9, 9]])
    fold_in = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    metrics = metric_list(["coverage@2", "arp@2"])
    result = evaluate(lambda x: scores[: x.shape[0]], fold_in, target, metrics=metrics, popularity=np.array([10.0, 20, 30, 40, 50]))
    assert result["coverage@2"] == pytest.approx(4 / 5)
    assert result["arp@2"] == pytest.approx(np.mean([(20 + 30) / 2, (50 + 40) / 2]))
    assert set(result) == {"n_users", "coverage@2", "arp@2", "arp@2_se"} and result["n_users"] == 2


def test_arp_without_popularity_is_refused():
    fold_in, target, weights, bias = random_problem(10, 30, seed=5)
    with pytest.raises(ValueError, match="needs the training item popularity"):
        evaluate(item_item_scorer(weights, bias), fold_in, target, metrics=metric_list(["arp@5"]))


@pytest.mark.parametrize(
    "name, message",
    [
        ("recall", "is not of the form family@K"),
        ("recall@0", "is not of the form family@K"),
        ("Recall@20", "is not of the form family@K"),
        ("auc@20", "unknown family 'auc'; known families: \\['recall', 'ndcg', 'hitrate', 'mrr', 'precision', 'coverage', 'arp'\\]"),
    ],
)
def test_malformed_or_unknown_metric_names_are_refused(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_metric(name)


def test_unknown_recall_definition_is_refused():
    with pytest.raises(ConfigError, match="unknown recall definition 'mine'; known: \\['liang2018', 'lightgcn'\\]"):
        parse_metric("recall@20", recall="mine")


def test_metric_list_takes_names_then_every_family_at_each_cutoff_without_repeats():
    names = [metric.name for metric in metric_list(["ndcg@100", "recall@10"], cutoffs=[10, 20])]
    families = list(FAMILIES)
    assert names == ["ndcg@100", "recall@10"] + [f"{f}@10" for f in families[1:]] + [f"{f}@20" for f in families]


def test_the_default_metrics_are_the_papers_and_unpack_as_name_function_cutoff():
    assert [(name, k) for name, _, k in REPORTED_METRICS] == [("recall@20", 20), ("recall@50", 50), ("ndcg@100", 100)]
    assert protocol_metrics({}, "strong") == REPORTED_METRICS and selection_metric({}, "strong") == "ndcg@100"
    weak = protocol_metrics({}, "weak")
    assert [metric.name for metric in weak] == ["recall@20", "ndcg@20"] and selection_metric({}, "weak") == "ndcg@20"
    assert weak[0].family.compute is parse_metric("recall@20", recall="lightgcn").family.compute
    assert REPORTED_METRICS[0].family.compute is parse_metric("recall@20").family.compute


def test_configured_cutoffs_give_every_family_and_the_selection_metric_is_always_evaluated():
    config = {"metrics": {"strong": {"cutoffs": [10, 20]}, "weak": {"names": ["hitrate@5"], "select": "ndcg@10"}}}
    strong = [metric.name for metric in protocol_metrics(config, "strong")]
    assert strong[:3] == ["recall@20", "recall@50", "ndcg@100"]
    assert {"recall@10", "ndcg@10", "hitrate@10", "mrr@10", "precision@10", "coverage@10", "arp@10", "mrr@20"} <= set(strong)
    assert len(strong) == len(set(strong)) == 3 + 2 * len(FAMILIES) - 1  # recall@20 listed once
    assert [metric.name for metric in protocol_metrics(config, "weak")] == ["hitrate@5", "ndcg@10"]
    with pytest.raises(ConfigError, match="unknown evaluation protocol 'loose'; known: \\['strong', 'weak'\\]"):
        protocol_metrics(config, "loose")


def test_holdout_validator_returns_the_configured_metrics():
    fold_in, target, weights, bias = random_problem(30, 60, seed=8)
    metrics = metric_list(["mrr@10", "coverage@10", "ndcg@10"])

    class Model:
        score_batch = staticmethod(item_item_scorer(weights, bias))

    values = holdout_validator(fold_in, target, metrics=metrics)(Model())
    assert list(values) == ["mrr@10", "coverage@10", "ndcg@10"]
    assert values == {name: evaluate(Model.score_batch, fold_in, target, metrics=metrics)[name] for name in values}


def test_summarize_skips_set_level_metrics():
    per_user = {"user": np.arange(3), "ndcg@5": np.array([0.0, 0.5, 1.0])}
    summary = summarize(per_user, metric_list(["ndcg@5", "coverage@5"]))
    assert summary == {"n_users": 3, "ndcg@5": 0.5, "ndcg@5_se": pytest.approx(0.5 / np.sqrt(3))}


def test_protocol_defaults_match_the_config_schema():
    from islim.config import load_schema

    schema = load_schema()["properties"]["metrics"]["properties"]
    for protocol, defaults in PROTOCOL_DEFAULTS.items():
        declared = {key: value["default"] for key, value in schema[protocol]["properties"].items()}
        assert declared == defaults, protocol
