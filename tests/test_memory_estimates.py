"""Memory requests of the workflow's jobs (islim.memory: ease_mem_mb; islim.resources: ablation_mem_mb, train_mem_mb)
against hand-worked numbers, their growth with the item count, and the defaults they repeat."""

from __future__ import annotations

import copy

import pytest

from islim.data.split import split_stats
from islim.embeddings.registry import DEFAULT_PARAMS
from islim.errors import ConfigError
from islim.memory import OVERHEAD_MB, ease_mem_mb, eval_bytes, split_bytes
from islim.models.registry import trained_by
from islim.resources import ablation_mem_mb, train_mem_mb

KNN_K = DEFAULT_PARAMS["k"]

MIB = 2**20

#: I = 1000 items, U = 5000 training users, 500 validation and 500 test users.
STATS = {
    "items": 1000,
    "users": {"train": 5000, "validation": 500, "test": 500, "total": 6000},
    "interactions": {
        "train": 100_000,
        "validation_tr": 9_000,
        "validation_te": 1_000,
        "test_tr": 9_000,
        "test_te": 1_000,
        "filtered_before_vocabulary_cut": 130_000,
    },
}
# split: 8 B x 120,000 non-zeros + 8 B x (7,000 rows + 5) indptr, plus two copies of the training
# matrix 2 x (8 x 100,000 + 8 x 5,001)
SPLIT = 8 * 120_000 + 8 * 7_005 + 2 * (8 * 100_000 + 8 * 5_001)
# evaluation: min(2000, 500) rows x 1000 items x 4 B x 3
EVAL = 3 * 4 * 500 * 1000
BASE = SPLIT + EVAL


def mb(nbytes: int, attempt: int = 1) -> int:
    return (OVERHEAD_MB + -(-nbytes // MIB)) * attempt


def with_items(n_items: int) -> dict:
    stats = copy.deepcopy(STATS)
    stats["items"] = n_items
    return stats


def test_the_shared_terms():
    assert split_bytes(STATS) == 2_696_056
    assert eval_bytes(STATS, 2000) == 6_000_000
    assert eval_bytes(STATS, 100) == 3 * 4 * 100 * 1000


def test_ease_holds_the_gram_matrix_and_b_in_float32():
    dense = 2 * 4 * 1000**2
    assert ease_mem_mb(STATS) == mb(dense + BASE) == 616
    assert ease_mem_mb(STATS, attempt=2) == 2 * 616
    assert ease_mem_mb(STATS, "float64") == mb(2 * 8 * 1000**2 + BASE) == 624


def test_ease_above_4_gib_counts_the_mkl_paths_two_more_copies():
    stats = with_items(40_000)  # 40,000² float32 = 6.4 GB > 4 GiB
    assert ease_mem_mb(stats) == mb(4 * 4 * 40_000**2 + split_bytes(stats) + eval_bytes(stats, 2000))
    assert ease_mem_mb(stats) > 24_000  # MB: the MSD-shaped fit alone peaked at 19.6 GiB


EMBEDDINGS = 8 * (8 * 1000 * 64 + 2 * 5000 * 64)  # I x d item arrays (x8) and U x d user factors (x2), float64


@pytest.mark.parametrize(
    ("arm", "grids", "expected_bytes", "expected_mb"),
    [
        # ImplicitSLIM's closed form: no I x I array
        ({"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"}, None, 0, 618),
        # S, A = I - S, L = A Aᵀ and LAPACK's copy: 4 float64 I x I
        ({"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}, None, 4 * 8 * 1000**2, 648),
        # LLE weights take 5 copies while they are built, then S + the dense system (x2) = 3
        ({"neighbourhood": "all", "first_step": "lle", "second_step": "implicit"}, None, 5 * 8 * 1000**2, 656),
        ({"neighbourhood": "all", "first_step": "cooccurrence", "second_step": "implicit_iterated"}, None, 3 * 8 * 1000**2, 640),
        ({"neighbourhood": "all", "first_step": "identity", "second_step": "implicit"}, None, 0, 618),
        # k = 20: L has min(I k², I²) = 400,000 > 10 % of I² non-zeros -> densified (2 copies), plus sparse S and L
        (
            {"neighbourhood": "knn", "first_step": "ease", "second_step": "explicit"},
            {"neighbourhood": {"knn": {"k": [10, 20]}}},
            2 * 8 * 1000**2 + 12 * (1000 * 20 + 400_000),
            638,
        ),
        # default k = 100: the float32 co-occurrence matrix and sparse S
        ({"neighbourhood": "knn", "first_step": "ease", "second_step": "implicit"}, None, 4 * 1000**2 + 12 * 1000 * KNN_K, 623),
        # randomized SVD: 3 (U + I)(d + 10) float64
        ({"reference": "svd"}, None, 8 * 3 * 6000 * 74, 628),
        ({"reference": "random"}, None, 0, 618),
    ],
)
def test_ablation_cells_count_their_dense_arrays(arm, grids, expected_bytes, expected_mb):
    assert ablation_mem_mb(STATS, arm, 64, grids) == mb(expected_bytes + EMBEDDINGS + BASE) == expected_mb


def test_the_mkl_path_adds_two_copies_to_an_ease_first_step_only_while_it_is_built():
    stats = with_items(30_000)  # 30,000² float64 = 7.2 GB > 4 GiB: 1 + 2 copies, then explicit's 4
    arm = {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}
    extra = 8 * (8 * 30_000 * 64 + 2 * 5000 * 64)
    assert ablation_mem_mb(stats, arm, 64) == mb(4 * 8 * 30_000**2 + extra + split_bytes(stats) + eval_bytes(stats, 2000))


@pytest.mark.parametrize(
    ("model", "settings", "expected_bytes", "expected_mb"),
    [
        # f = 256: 6 I f + 3 U f float64
        ("mf", {"params": {}, "variants": {"baseline": {"init": "random"}}}, 8 * (6 * 1000 * 256 + 3 * 5000 * 256), 650),
        # + SLIM-LLE's three dense float64 I x I
        (
            "plrec",
            {"params": {"n_factors": 256}, "variants": {"lle": {"init": "slim_lle"}}},
            8 * (6 * 1000 * 256 + 3 * 5000 * 256) + 3 * 8 * 1000**2,
            673,
        ),
        # Mult-VAE: P = 2 I H = 1.2 M weights x5, batch 500 x I x6, float32
        ("multvae", {"params": {}, "variants": {"baseline": {}}}, 4 * (5 * 2 * 1000 * 600 + 6 * 500 * 1000), 643),
        # + ImplicitSLIM: eight I x H float32
        (
            "multvae",
            {"params": {"implicit_slim": {"step": 1}}, "variants": {"islim": {"implicit_slim": {"mode": "replace"}}}},
            4 * (5 * 2 * 1000 * 600 + 6 * 500 * 1000) + 4 * 8 * 1000 * 600,
            661,
        ),
        # the grid's largest hidden_dim: P = I (2 x 900 + 200)
        (
            "recvae",
            {"params": {}, "grid": {"hidden_dim": [300, 900]}, "variants": {"baseline": {}}},
            4 * (5 * 1000 * 2000 + 6 * 500 * 1000),
            658,
        ),
        # gated H+Vamp: P = I (2 x 2 x 600 + 600 + 1000 pseudo-inputs), batch 200
        ("hvamp", {"params": {}, "variants": {"baseline": {}}}, 4 * (5 * 1000 * 4000 + 6 * 200 * 1000), 690),
        # popularity: I float32 counts and their int64 bincount
        ("popularity", {"variants": {"baseline": {}}}, 12 * 1000, 609),
        # item-kNN: 22 B per cell of the I x I similarity slabs (below the 256 MiB cap), three copies
        # of S's I x k entries (8 B each) at the grid's largest k and of a 256-row score block's product
        (
            "itemknn",
            {"params": {}, "variants": {"baseline": {}}, "grid": {"k": [20, 400], "shrink": [0, 10]}},
            22 * 1000**2 + 3 * 8 * 1000 * (400 + 256),
            645,
        ),
    ],
)
def test_training_runs_count_their_weights_and_batches(model, settings, expected_bytes, expected_mb):
    assert train_mem_mb(STATS, model, settings) == mb(expected_bytes + BASE) == expected_mb
    assert train_mem_mb(STATS, model, settings, attempt=3) == 3 * expected_mb


def test_an_unknown_model_is_named():
    with pytest.raises(ConfigError, match="unknown model 'slim'"):
        train_mem_mb(STATS, "slim", {})


ARMS = [
    {"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"},
    {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"},
    {"neighbourhood": "knn", "first_step": "cooccurrence", "second_step": "implicit"},
    {"reference": "svd"},
]


@pytest.mark.parametrize(
    "estimate",
    [
        lambda stats: ease_mem_mb(stats),
        *[lambda stats, arm=arm: ablation_mem_mb(stats, arm, 64) for arm in ARMS],
        *[lambda stats, model=model: train_mem_mb(stats, model, {"params": {}, "variants": {"v": {}}}) for model in trained_by("train")],
    ],
)
def test_requests_grow_with_the_item_count(estimate):
    requests = [estimate(with_items(n)) for n in (1_000, 10_000, 20_000, 40_000)]
    assert requests == sorted(requests) and requests[-1] > requests[0]


def test_dense_arms_grow_quadratically_and_implicit_slim_linearly():
    dense = {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}
    implicit = {"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"}
    grow = lambda arm: ablation_mem_mb(with_items(20_000), arm, 64) - ablation_mem_mb(with_items(10_000), arm, 64)  # noqa: E731
    base = lambda arm: ablation_mem_mb(with_items(10_000), arm, 64) - ablation_mem_mb(with_items(5_000), arm, 64)  # noqa: E731
    assert grow(dense) == pytest.approx(4 * base(dense), rel=0.02)
    assert grow(implicit) == pytest.approx(2 * base(implicit), rel=0.05)


def test_the_estimators_read_the_stats_the_split_writes(ml_small_split):
    stats = split_stats(ml_small_split)
    assert ease_mem_mb(stats) > OVERHEAD_MB
    assert ablation_mem_mb(stats, ARMS[1], 64) > ablation_mem_mb(stats, ARMS[0], 64) > OVERHEAD_MB
    assert train_mem_mb(stats, "multvae", {"params": {}, "variants": {"v": {}}}) > OVERHEAD_MB


def test_a_model_without_large_state_counts_only_the_split_and_evaluation(monkeypatch):
    from islim.models.base import Recommender
    from islim.models.linear import MatrixFactorization

    monkeypatch.setattr(MatrixFactorization, "memory_bytes", classmethod(Recommender.memory_bytes.__func__))
    assert train_mem_mb(STATS, "mf", {"params": {}, "variants": {"v": {}}}) == mb(BASE)
