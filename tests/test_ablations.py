"""The ablation grid cell runner: hyper-parameter selection, scorers, skipped cells, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from islim.ablations import ablation_cell, ablation_table, arm_grid, reference_cell, run_cell, scorer_functions
from islim.config import grid_points
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.errors import ConfigError
from islim.evaluate import evaluate

SCORERS = {"mf": {"r_p": [1.0, 10.0]}, "plrec": {"power": [1.0], "r_q": [10.0]}}


@pytest.fixture(scope="module")
def split():
    X = generate(400, 120, 8000, seed=3).tocoo()
    return make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=40, seed=1)


def test_grid_points_enumerates_the_product():
    points = list(grid_points({"b": [1, 2], "a": [3]}))
    assert points == [{"a": 3, "b": 1}, {"a": 3, "b": 2}]
    assert list(grid_points({})) == [{}]


def test_arm_grid_takes_only_the_parameters_an_arm_reads():
    axes = {"neighbourhood": {"knn": {"k": [5]}}, "first_step": {"ease": {"lam": [1, 2]}}, "second_step": {"implicit": {"alpha": [3]}}}
    assert arm_grid({"neighbourhood": "knn", "first_step": "ease", "second_step": "implicit"}, axes) == {
        "k": [5],
        "lam": [1, 2],
        "alpha": [3],
    }
    with pytest.raises(ConfigError, match="does not read"):
        arm_grid(
            {"neighbourhood": "all", "first_step": "cooccurrence", "second_step": "explicit"},
            {"first_step": {"cooccurrence": {"lam": [1]}}},
        )


def test_mf_scorer_is_the_ridge_fold_in(split):
    E = np.random.default_rng(0).standard_normal((split.n_items, 6)).astype(np.float64)
    batch = split.validation_tr[:5]
    x = batch.toarray()
    expected = x @ E @ np.linalg.inv(E.T @ E + 3.0 * np.eye(6)) @ E.T  # p = (r_p I + EᵀE)⁻¹ Eᵀ x, scores p Eᵀ
    np.testing.assert_allclose(scorer_functions("mf", E, split.train, {"r_p": 3.0})(batch), expected, rtol=1e-8, atol=1e-10)
    with pytest.raises(ConfigError):
        scorer_functions("knn", E, split.train, {})


def test_run_cell_keeps_the_grid_point_with_the_best_validation_ndcg(split):
    rng = np.random.default_rng(1)
    candidates = {seed: rng.standard_normal((split.n_items, 4)) for seed in (0, 1, 2)}
    records = run_cell("toy", split, "toy-arm", lambda p: candidates[p["seed"]], {"seed": [0, 1, 2]}, {"mf": {"r_p": [1.0]}})
    scores = {
        seed: evaluate(scorer_functions("mf", E.astype(np.float32), split.train, {"r_p": 1.0}), split.validation_tr, split.validation_te)[
            "ndcg@100"
        ]
        for seed, E in candidates.items()
    }
    (record,) = records
    assert record["params"]["seed"] == max(scores, key=scores.get)
    assert record["metrics"]["validation"]["ndcg@100"] == pytest.approx(max(scores.values()), rel=1e-6)
    assert record["extra"]["extraction_seconds"] >= 0 and record["extra"]["extraction_peak_mb"] >= 0


def test_undefined_and_oversized_cells_are_skipped_with_the_reason(split):
    undefined = ablation_cell("toy", split, {"neighbourhood": "all", "first_step": "identity", "second_step": "explicit"}, 4, {}, SCORERS)
    assert [r["extra"]["status"] for r in undefined] == ["skipped", "skipped"]
    assert "undefined" in undefined[0]["extra"]["reason"]
    oversized = ablation_cell(
        "toy",
        split,
        {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"},
        4,
        {"first_step": {"ease": {"lam": [10.0]}}},
        SCORERS,
        budget_bytes=1000,
    )
    assert {r["extra"]["status"] for r in oversized} == {"skipped"} and "GiB" in oversized[0]["extra"]["reason"]
    assert all(r["params"]["d"] == 4 and r["run"].endswith(r["extra"]["scorer"]) for r in undefined + oversized)


def test_knn_cell_clamps_k_and_the_table_has_one_row_per_metric(split):
    axes = {
        "neighbourhood": {"knn": {"k": [10_000]}},
        "first_step": {"ease": {"lam": [10.0]}},
        "second_step": {"implicit": {"alpha": [1.0], "threshold": [0]}},
    }
    records = ablation_cell("toy", split, {"neighbourhood": "knn", "first_step": "ease", "second_step": "implicit"}, 4, axes, SCORERS)
    assert {r["params"]["k"] for r in records} == {split.n_items - 1}
    records += reference_cell("toy", split, "svd", 4, SCORERS)
    records += ablation_cell("toy", split, {"neighbourhood": "all", "first_step": "identity", "second_step": "explicit"}, 4, {}, SCORERS)
    table = ablation_table(records)
    ok = table[table["status"] == "ok"]
    assert len(ok) == 2 * 2 * 2 * 3  # two cells x two scorers x two splits x three metrics
    assert table[table["status"] == "skipped"]["reason"].str.len().gt(0).all()
    assert set(ok["arm"]) == {"ablation:knn/ease/implicit", "reference:svd"}


def test_a_reference_arm_runs_through_ablation_cell(split):
    """The workflow runs reference arms through the same entry point as grid cells."""
    direct = reference_cell("toy", split, "random", 4, SCORERS, seed=3)
    via_cell = ablation_cell("toy", split, {"reference": "random"}, 4, {}, SCORERS, seed=3)
    for a, b in zip(direct, via_cell, strict=True):
        assert a["run"] == b["run"] == f"reference:random|d=4|{a['extra']['scorer']}"
        assert a["metrics"] == b["metrics"]
