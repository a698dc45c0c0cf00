"""Selecting a run from its grid-point jobs: the best mean-over-seeds point, seed-averaged per-user
scores and their spread, failed points, flags and the mean curve — on hand-built point results
whose numbers are worked out here by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from islim.errors import GridSearchError
from islim.records import make_record, per_user_table, split_summaries
from islim.training import (
    CURVE_COLUMNS,
    PointResult,
    choose_point,
    grid_edge_flags,
    mean_curve,
    not_converged,
    run_flags,
    select_run,
)

USERS = np.array(["u1", "u2", "u3"])


def point_result(
    point: dict,
    seed: int | None,
    validation: list[float],
    test: list[float],
    *,
    epochs: int = 3,
    best: int = 1,
    unconverged: bool = False,
    wall: float = 1.0,
) -> PointResult:
    """A point whose three users score ``validation`` / ``test`` on every metric."""
    tables = [
        per_user_table(split, {"user": np.arange(3), **{name: np.array(values) for name in ("recall@20", "recall@50", "ndcg@100")}}, USERS)
        for split, values in (("validation", validation), ("test", test))
    ]
    per_user = pd.concat(tables, ignore_index=True)
    extra = {
        "status": "ok",
        "point": point,
        "seed": seed,
        "variant": "baseline",
        "best_epoch": best,
        "epochs_run": epochs,
        "not_converged": unconverged,
    }
    record = make_record(
        "toy",
        "mf",
        {**point} | ({} if seed is None else {"seed": seed}),
        split_summaries(per_user),
        wall,
        extra=extra,
        peak_memory_mb=10.0 + wall,
    )
    curve = pd.DataFrame(
        {
            "epoch": range(epochs),
            "wall_seconds": np.arange(1, epochs + 1) * wall,
            "train_loss": np.nan,
            "val_recall@20": 0.1,
            "val_recall@50": 0.2,
            "val_ndcg@100": np.linspace(0.1, 0.3, epochs) + (seed or 0),
        }
    )
    return PointResult(record | {"run": "mf|baseline"}, curve[CURVE_COLUMNS], per_user)


def failed_result(point: dict, seed: int | None, reason: str) -> PointResult:
    extra = {"status": "failed", "reason": reason, "point": point, "seed": seed, "variant": "baseline"}
    record = make_record("toy", "mf", dict(point), {}, 0.5, extra=extra, peak_memory_mb=5.0)
    return PointResult(record, pd.DataFrame(columns=CURVE_COLUMNS), pd.DataFrame(columns=["split", "user"]))


def test_the_point_with_the_best_mean_over_seeds_is_kept_not_the_best_single_seed():
    # r_p=1: seeds score 0.5 and 0.1 (mean 0.3); r_p=10: 0.32 and 0.32 (mean 0.32).
    results = [
        point_result({"r_p": 1}, 0, [0.5] * 3, [0.4] * 3),
        point_result({"r_p": 1}, 1, [0.1] * 3, [0.1] * 3),
        point_result({"r_p": 10}, 0, [0.32] * 3, [0.3] * 3),
        point_result({"r_p": 10}, 1, [0.32] * 3, [0.2] * 3),
    ]
    kept, searched, failed = choose_point(results, "mf/baseline on toy")
    assert [r.record["extra"]["point"] for r in kept] == [{"r_p": 10}] * 2 and failed == []
    assert searched == [{"r_p": 1, "val_ndcg@100": pytest.approx(0.3)}, {"r_p": 10, "val_ndcg@100": pytest.approx(0.32)}]
    record, _, _ = select_run("toy", "mf", "baseline", {"r_p": [1, 10]}, results)
    assert record["params"] == {"r_p": 10} and record["extra"]["seeds"] == [0, 1]
    assert record["metrics"]["test"]["ndcg@100"] == pytest.approx(0.25)


def test_seed_average_matches_a_hand_computation():
    # Per-user test scores of the kept point: seed 0 (0.2, 0.4, 0.9), seed 1 (0.4, 0.2, 0.3).
    results = [
        point_result({}, 0, [0.1, 0.2, 0.3], [0.2, 0.4, 0.9], wall=2.0),
        point_result({}, 1, [0.3, 0.2, 0.1], [0.4, 0.2, 0.3], wall=3.0),
    ]
    record, _, per_user = select_run("toy", "mf", "baseline", {}, results)
    test = per_user[per_user["split"] == "test"]
    assert test["user"].tolist() == ["u1", "u2", "u3"]
    np.testing.assert_allclose(test["ndcg@100"], [0.3, 0.3, 0.6])  # user by user, the mean over seeds
    metrics = record["metrics"]["test"]
    assert metrics["ndcg@100"] == pytest.approx(0.4)  # (0.3 + 0.3 + 0.6) / 3
    # s.e. over users of the averaged scores: sd = sqrt(((-0.1)² + (-0.1)² + 0.2²) / 2) = sqrt(0.03), / sqrt(3) = 0.1
    assert metrics["ndcg@100_se"] == pytest.approx(0.1)
    # sd over seeds of the seeds' means 0.5 and 0.3 (ddof=1): |0.5 - 0.3| / sqrt(2)
    assert metrics["ndcg@100_seed_sd"] == pytest.approx(0.2 / math.sqrt(2))
    assert record["metrics"]["validation"]["ndcg@100_seed_sd"] == pytest.approx(0.0, abs=1e-12)  # both seeds average 0.2
    assert record["n_users"] == {"validation": 3, "test": 3}
    assert record["wall_seconds"] == pytest.approx(5.0) and record["peak_memory_mb"] == pytest.approx(13.0)
    assert [entry["seed"] for entry in record["extra"]["per_seed"]] == [0, 1]


def test_one_seed_or_a_deterministic_model_has_no_seed_sd():
    record, _, _ = select_run("toy", "mf", "baseline", {}, [point_result({}, 0, [0.1, 0.2, 0.3], [0.2, 0.4, 0.9])])
    assert not any(key.endswith("_seed_sd") for key in record["metrics"]["test"])
    assert record["extra"]["seeds"] == [0]
    record, _, _ = select_run("toy", "mf", "baseline", {}, [point_result({}, None, [0.1, 0.2, 0.3], [0.2, 0.4, 0.9])])
    assert "seeds" not in record["extra"] and not any(key.endswith("_seed_sd") for key in record["metrics"]["test"])


def test_a_point_with_a_failed_seed_is_skipped_and_listed_with_its_seed():
    results = [
        point_result({"r_p": 1}, 0, [0.9] * 3, [0.9] * 3),
        failed_result({"r_p": 1}, 1, "mf: item factors after ALS epoch 0 is not finite"),
        point_result({"r_p": 10}, 0, [0.2] * 3, [0.2] * 3),
        point_result({"r_p": 10}, 1, [0.2] * 3, [0.2] * 3),
    ]
    record, _, _ = select_run("toy", "mf", "baseline", {"r_p": [1, 10]}, results)
    assert record["params"]["r_p"] == 10
    assert record["extra"]["failed"] == [{"r_p": 1, "seed": 1, "reason": "mf: item factors after ALS epoch 0 is not finite"}]
    assert [entry["r_p"] for entry in record["extra"]["searched"]] == [10]
    assert record["wall_seconds"] == pytest.approx(3.5)  # every point's time counts, the failed one too


def test_the_selection_fails_only_when_every_point_failed():
    results = [failed_result({"r_p": 1}, None, "nan loss"), failed_result({"r_p": 10}, None, "not positive definite")]
    with pytest.raises(
        GridSearchError, match=r"mf/baseline on toy: every grid point failed:\n  r_p=1: nan loss\n  r_p=10: not positive definite"
    ):
        select_run("toy", "mf", "baseline", {"r_p": [1, 10]}, results)


@pytest.mark.parametrize(
    ("params", "best_epoch", "flagged"),
    [
        ({"n_epochs": 20, "patience": 5}, 14, False),  # 5 epochs after the best: early stopping fired at the cap
        ({"n_epochs": 20, "patience": 5}, 15, True),  # only 4 epochs after the best: stopped by the cap
        ({"n_epochs": 20, "patience": 5}, 19, True),
        ({"n_epochs": 10, "patience": 0}, 9, True),  # no patience: flagged when the last epoch is the best
        ({"n_epochs": 10, "patience": 0}, 8, False),
        ({"n_epochs": 200, "patience": None}, 199, True),  # no early stopping at all: the same rule
        ({"n_epochs": 200, "patience": None}, 150, False),
        ({"n_epochs": 1, "patience": 0}, 0, False),  # a single step (PLRec's item step) cannot converge further
        ({"lam": 100.0}, 0, False),  # one-step models have no epochs
    ],
)
def test_not_converged_rule(params, best_epoch, flagged):
    assert not_converged(params, best_epoch) is flagged


def test_grid_edge_flags_numeric_parameters_with_two_or_more_values_only():
    grid = {"alpha": [0.3, 1.0, 3.0], "k": [50], "mode": ["a", "b"], "orth": [False, True], "r_q": [10, 100, 1000]}
    point = {"alpha": 3.0, "k": 50, "mode": "a", "orth": True, "r_q": 100}
    assert grid_edge_flags(grid, point) == ["grid_edge:alpha"]
    assert grid_edge_flags(grid, {**point, "alpha": 1.0, "r_q": 10}) == ["grid_edge:r_q"]
    assert grid_edge_flags({"lambda": [100, 100]}, {"lambda": 100}) == []


def test_run_flags_in_order_and_below_popularity_on_test_ndcg():
    metrics = {"validation": {"ndcg@100": 0.9}, "test": {"ndcg@100": 0.25}}
    popularity = {"metrics": {"test": {"ndcg@100": 0.253}}}
    assert run_flags({"r_p": [1, 10]}, {"r_p": 1}, metrics, popularity, True) == ["not_converged", "grid_edge:r_p", "below_popularity"]
    assert run_flags({"r_p": [1, 10, 100]}, {"r_p": 10}, metrics, None, False) == []
    assert run_flags({}, {}, {"test": {"ndcg@100": 0.3}}, popularity, False) == []


def test_a_kept_seed_that_did_not_converge_flags_the_run():
    results = [point_result({}, 0, [0.2] * 3, [0.2] * 3), point_result({}, 1, [0.2] * 3, [0.2] * 3, unconverged=True)]
    record, _, _ = select_run("toy", "mf", "baseline", {}, results, popularity={"metrics": {"test": {"ndcg@100": 0.1}}})
    assert record["flags"] == ["not_converged"]


def test_mean_curve_averages_the_epochs_every_seed_ran():
    short = point_result({}, 0, [0.1] * 3, [0.1] * 3, epochs=2, wall=1.0).curve
    long = point_result({}, 1, [0.1] * 3, [0.1] * 3, epochs=4, wall=3.0).curve
    curve = mean_curve([short, long])
    assert list(curve.columns) == CURVE_COLUMNS and curve["epoch"].tolist() == [0, 1]
    np.testing.assert_allclose(curve["wall_seconds"], [(1 + 3) / 2, (2 + 6) / 2])
    np.testing.assert_allclose(curve["val_ndcg@100"], [(0.1 + 1.1) / 2, (0.3 + 1.1 + 0.2 / 3) / 2])
    assert curve["train_loss"].isna().all()
