"""The sanity baselines: Popularity against a hand-worked example, ItemKNN against a dense brute-force
shrunk cosine with top-k by explicit sorting (ties, k ≥ n_items − 1, items without users)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from islim.errors import ConfigError, DataFormatError, MemoryBudgetError
from islim.evaluate import evaluate
from islim.models import itemknn
from islim.models.itemknn import ItemKNN, cosine_knn, top_k_mask
from islim.models.popularity import Popularity
from islim.models.registry import build_model
from tests.matrices import random_binary

# ------------------------------------------------------------------ Popularity

#: 4 users x 5 items; user 2 stores a 2.0 (still one interaction) and an explicit zero at item 4.
HAND = sp.csr_matrix(
    (
        np.array([1, 1, 1, 1, 2, 1, 0, 1], dtype=np.float32),
        np.array([0, 1, 1, 3, 1, 3, 4, 3]),
        np.array([0, 2, 4, 7, 8]),
    ),
    shape=(4, 5),
)
#: Training users per item: item 0 has user 0; item 1 users 0, 1, 2; item 2 none; item 3 users 1, 2, 3; item 4 none.
HAND_COUNTS = [1, 3, 0, 3, 0]


def test_popularity_scores_every_user_by_the_hand_counted_training_users():
    model = Popularity().fit(HAND)
    np.testing.assert_array_equal(model.popularity_, HAND_COUNTS)
    rows = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 1, 1]], dtype=np.float32))
    scores = model.score_batch(rows)
    assert scores.dtype == np.float32 and scores.shape == (3, 5) and scores.flags.writeable
    np.testing.assert_array_equal(scores, np.tile(np.array(HAND_COUNTS, dtype=np.float32), (3, 1)))
    scores[0, 0] = -1.0  # the evaluator masks in place: the model's state must not change
    np.testing.assert_array_equal(model.popularity_, HAND_COUNTS)


def test_popularity_counts_a_duplicated_pair_once():
    duplicated = sp.csr_matrix((np.ones(3, dtype=np.float32), np.array([2, 2, 0]), np.array([0, 2, 3])), shape=(2, 3))
    assert not duplicated.has_canonical_format
    np.testing.assert_array_equal(Popularity().fit(duplicated).popularity_, [1, 0, 1])
    assert duplicated.nnz == 3  # the caller's matrix is left as it was


def test_popularity_metrics_by_hand():
    """User A folded in item 1: ranking 3, 0, 2, 4 (ties by index), target {0} at rank 2:
    NDCG@100 = (1/log2 3) / 1 and Recall@20 = 1. User B folded in item 3, target {2, 4} at ranks
    3 and 4 (ranking 1, 0, 2, 4): NDCG = (1/log2 4 + 1/log2 5) / (1 + 1/log2 3)."""
    model = Popularity().fit(HAND)
    fold_in = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 1]], dtype=np.float32))
    metrics = evaluate(model.score_batch, fold_in, target)
    ndcg_a = 1 / math.log2(3)
    ndcg_b = (1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert metrics["ndcg@100"] == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert metrics["recall@20"] == pytest.approx(1.0)


def test_popularity_has_no_hyper_parameters_and_refuses_dense_input():
    assert Popularity.default_params() == {} and build_model("popularity").get_params() == {}
    with pytest.raises(DataFormatError, match="scipy.sparse"):
        Popularity().fit(HAND.toarray())
    assert Popularity.memory_bytes(100, 1000, {}, {}) == 12 * 1000


# ------------------------------------------------------------------ ItemKNN


def shrunk_cosine(X: sp.spmatrix, shrink: float) -> np.ndarray:
    """Dense float64 ``sim(i, j) = x_iᵀx_j / (‖x_i‖ ‖x_j‖ + shrink)`` of the binary columns, pair by
    pair, 0 where the denominator is 0 and on the diagonal."""
    B = (X.toarray() != 0).astype(np.float64)
    n = B.shape[1]
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            denominator = math.sqrt(B[:, i].sum()) * math.sqrt(B[:, j].sum()) + shrink
            if i != j and denominator > 0:
                sim[i, j] = float(B[:, i] @ B[:, j]) / denominator
    return sim


def brute_force_similarity(X: sp.spmatrix, k: int, shrink: float) -> np.ndarray:
    """Dense float64 ``S``: each column's top ``k`` other items by explicit sorting on
    (−similarity, item index), zeros dropped."""
    sim = shrunk_cosine(X, shrink)
    S = np.zeros_like(sim)
    for j in range(sim.shape[1]):
        ranked = sorted((-sim[i, j], i) for i in range(sim.shape[0]) if i != j)
        for negative, i in ranked[:k]:
            S[i, j] = -negative
    return S


def with_ties_and_an_empty_item(seed: int) -> sp.csr_matrix:
    """A random 60 x 25 matrix whose item 7 duplicates item 3 and item 12 duplicates item 11 (exact
    ties in every other column), whose item 5 has no users, and with an explicit zero stored."""
    X = random_binary(60, 25, 0.2, seed=seed).toarray()
    X[:, 7] = X[:, 3]
    X[:, 12] = X[:, 11]
    X[:, 5] = 0
    X[0, 5] = 1.0
    X = sp.csr_matrix(X)
    X.data[X.indptr[0] + np.flatnonzero(X.indices[X.indptr[0] : X.indptr[1]] == 5)] = 0.0  # stored, not an interaction
    assert X.nnz > (X.toarray() != 0).sum()
    return X


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 5, 23, 24, 25, 1000])
@pytest.mark.parametrize("shrink", [0.0, 3.0])
def test_itemknn_similarity_matches_the_brute_force(seed, k, shrink):
    """Every column keeps the brute force's top ``k`` positive similarities, with their values.

    Mathematically equal similarities of different counts (1/(√2·√8) = 2/(√8·√8)) may round apart
    in float32, so at the boundary the test accepts any set whose smallest kept value is within
    rounding of the largest dropped one; bit-identical ties (duplicated items) must go to the
    lower index, and away from near-ties the result is the brute force's exactly."""
    X = with_ties_and_an_empty_item(seed)
    S = cosine_knn(X, k, shrink, n_threads=1)
    assert isinstance(S, sp.csr_matrix) and S.dtype == np.float32 and S.has_sorted_indices
    assert np.isfinite(S.data).all() and (S.diagonal() == 0).all()
    assert S[:, 5].nnz == 0 and S[5].nnz == 0  # the item without users neither has nor is a neighbour
    sim, got, expected = shrunk_cosine(X, shrink), S.toarray(), brute_force_similarity(X, k, shrink)
    tolerance = 1e-6
    for j in range(sim.shape[1]):
        kept, others = got[:, j] != 0, np.arange(sim.shape[0]) != j
        assert kept.sum() == (expected[:, j] != 0).sum() == min(k, (sim[:, j] > 0).sum())
        np.testing.assert_allclose(got[kept, j], sim[kept, j], rtol=tolerance)
        dropped = sim[others & ~kept, j]
        if kept.any() and dropped.size:
            assert sim[kept, j].min() >= dropped.max() - tolerance, j
        if kept.any() and (dropped.size == 0 or sim[kept, j].min() > dropped.max() + tolerance):
            np.testing.assert_array_equal(kept, expected[:, j] != 0)  # no near-tie at the boundary
        for low, high in ((3, 7), (11, 12)):  # bit-identical twins: the lower index wins a split
            if j not in (low, high):
                assert not (kept[high] and not kept[low]), (j, low, high)


def test_ties_go_to_the_lowest_item_index():
    # column 0 scores: items 1..4 tie at 0.5, item 5 at 0.9; k = 3 keeps 5, then 1 and 2
    sim = np.array([[0.0, 0.5, 0.5, 0.5, 0.5, 0.9]], dtype=np.float32)
    np.testing.assert_array_equal(top_k_mask(sim, 3), [[False, True, True, False, False, True]])
    np.testing.assert_array_equal(top_k_mask(sim, 6), sim > 0)
    np.testing.assert_array_equal(top_k_mask(np.zeros((2, 4), dtype=np.float32), 2), np.zeros((2, 4), dtype=bool))


def test_slabs_and_threads_do_not_change_the_result(monkeypatch):
    X = with_ties_and_an_empty_item(4)
    whole = cosine_knn(X, 4, 2.0, n_threads=1)
    monkeypatch.setattr(itemknn, "WORKSPACE_BYTES", 3 * itemknn.SLAB_CELL_BYTES * 25)  # slabs of 3 columns, of 1 with 3 threads
    for threads in (1, 3):
        sliced = cosine_knn(X, 4, 2.0, n_threads=threads)
        assert (sliced != whole).nnz == 0


def test_itemknn_scores_are_the_fold_in_rows_times_the_brute_force_similarity():
    X = with_ties_and_an_empty_item(5)
    model = ItemKNN(k=6, shrink=1.0).fit(X)
    rows = random_binary(300, 25, 0.15, seed=6)  # more rows than one score block
    expected = rows.toarray().astype(np.float64) @ brute_force_similarity(X, 6, 1.0)
    scores = model.score_batch(rows)
    assert scores.dtype == np.float32 and scores.shape == (300, 25)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.score_batch(sp.csr_matrix((2, 25), dtype=np.float32)), np.zeros((2, 25)))


def test_itemknn_leaves_the_training_matrix_unchanged():
    X = with_ties_and_an_empty_item(7)
    before = X.copy()
    ItemKNN(k=3).fit(X)
    assert (X != before).nnz == 0 and X.nnz == before.nnz


def test_a_single_item_has_no_neighbours():
    X = sp.csr_matrix(np.ones((4, 1), dtype=np.float32))
    model = ItemKNN(k=5).fit(X)
    assert model.similarity_.shape == (1, 1) and model.similarity_.nnz == 0
    np.testing.assert_array_equal(model.score_batch(X[:2]), np.zeros((2, 1)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.5}, "k must be an integer >= 1"),
        ({"k": True}, "k must be an integer >= 1"),
        ({"shrink": -1.0}, "shrink must be a finite number >= 0"),
        ({"shrink": float("nan")}, "shrink must be a finite number >= 0"),
        ({"shrink": "10"}, "shrink must be a finite number >= 0"),
    ],
)
def test_itemknn_refuses_invalid_settings(params, message):
    with pytest.raises(ConfigError, match=message):
        ItemKNN(**params).fit(random_binary(10, 6, 0.3, seed=0))


def test_itemknn_checks_the_memory_budget():
    X = random_binary(10, 50, 0.3, seed=0)
    with pytest.raises(MemoryBudgetError, match="item-kNN similarity slabs"):
        ItemKNN(k=3, budget_bytes=1000).fit(X)


def test_itemknn_memory_counts_the_slabs_three_copies_of_s_at_the_largest_k_and_a_score_block():
    # 1,000 items: 22 B x 10⁶ slab cells (below the 256 MiB cap), 3 x 8 B x 1,000 x 400 entries of S,
    # 3 x 8 B x 256 rows x 1,000 items of a score block's sparse product
    assert ItemKNN.memory_bytes(5000, 1000, {"k": 100, "shrink": 10.0}, {"k": [20, 400]}) == 22 * 1000**2 + 24 * 1000 * (400 + 256)
    # 100,000 items: the slabs are capped; k is at most n_items − 1
    assert ItemKNN.memory_bytes(5000, 100_000, {"k": 100}, {}) == itemknn.WORKSPACE_BYTES + 24 * 100_000 * (100 + 256)
    assert ItemKNN.memory_bytes(5000, 10, {"k": 100}, {}) == 22 * 100 + 24 * 10 * (9 + 256)
