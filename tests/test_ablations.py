"""The ablation grid cell runner: hyper-parameter selection, scorers, skipped cells, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from islim.ablations import (
    CellResult,
    ablation_cell,
    ablation_table,
    arm_grid,
    read_cell,
    reference_cell,
    run_cell,
    scorer_functions,
    seed_mean,
    write_cell,
)
from islim.config import grid_points
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.errors import ConfigError, DataFormatError
from islim.evaluate import evaluate, evaluate_split, metric_settings, per_user_metrics, settings_metrics
from islim.metrics import metric_list, metric_names

SCORERS = {"mf": {"r_p": [1.0, 10.0]}, "plrec": {"power": [1.0], "r_q": [10.0]}}
#: Non-default metric settings of the strong protocol: a set-level metric among the names, and a
#: selection metric that is not among them (evaluated all the same, last).
SETTINGS = {"names": ["recall@20", "coverage@10"], "cutoffs": [], "select": "ndcg@50", "recall": "liang2018"}


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
    records, per_user = run_cell("toy", split, "toy-arm", lambda p: candidates[p["seed"]], {"seed": [0, 1, 2]}, {"mf": {"r_p": [1.0]}})
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
    best = candidates[record["params"]["seed"]].astype(np.float32)
    score = scorer_functions("mf", best, split.train, {"r_p": 1.0})
    for name, (fold_in, target) in {
        "validation": (split.validation_tr, split.validation_te),
        "test": (split.test_tr, split.test_te),
    }.items():
        expected = per_user_metrics(score, fold_in, target)
        rows = per_user[per_user["split"] == name]
        assert list(rows["scorer"].unique()) == ["mf"]
        assert rows["user"].tolist() == split.user_ids[name][expected["user"]].astype(str).tolist()  # original ids, as in runs' tables
        np.testing.assert_allclose(rows["ndcg@100"], expected["ndcg@100"], rtol=1e-6)
        assert rows["ndcg@100"].mean() == pytest.approx(record["metrics"][name]["ndcg@100"], rel=1e-9)


def test_run_cell_evaluates_and_selects_on_the_configured_metrics(split):
    rng = np.random.default_rng(1)  # four embeddings of which NDCG@50 and NDCG@100 prefer different ones
    candidates = {seed: rng.standard_normal((split.n_items, 4)) for seed in range(4)}
    metrics = settings_metrics(SETTINGS)
    scorers = {"mf": {"r_p": [1.0]}}
    records, per_user = run_cell(
        "toy", split, "toy-arm", lambda p: candidates[p["seed"]], {"seed": list(candidates)}, scorers, 2000, SETTINGS
    )
    validation = {}
    for seed, E in candidates.items():
        score = scorer_functions("mf", E.astype(np.float32), split.train, {"r_p": 1.0})
        validation[seed] = evaluate_split(score, split, "validation", metric_list(["ndcg@50", "ndcg@100"]))
    by_ndcg50 = max(validation, key=lambda seed: validation[seed]["ndcg@50"])
    assert by_ndcg50 != max(validation, key=lambda seed: validation[seed]["ndcg@100"])  # the case tells the two apart
    (record,) = records
    assert record["params"]["seed"] == by_ndcg50
    best = scorer_functions("mf", candidates[by_ndcg50].astype(np.float32), split.train, {"r_p": 1.0})
    for name in ("validation", "test"):
        expected = evaluate_split(best, split, name, metrics)
        # exactly the configured metrics (the selection metric last), coverage without _se
        assert list(record["metrics"][name]) == ["recall@20", "recall@20_se", "ndcg@50", "ndcg@50_se", "coverage@10"]
        assert record["n_users"][name] == expected.pop("n_users")
        assert record["metrics"][name] == pytest.approx(expected, rel=1e-6)
    assert list(per_user.columns) == ["scorer", "split", "user", "recall@20", "ndcg@50"]  # set-level metrics in the records only
    table = ablation_table(_labelled(records))
    assert set(table["metric"]) == {"recall@20", "ndcg@50", "coverage@10"}
    assert table.loc[table["metric"] == "coverage@10", "se"].isna().all()


def _labelled(records: list[dict]) -> list[dict]:
    """``run_cell`` records with what ``ablation_cell`` adds and :func:`ablation_table` reads."""
    return [{**record, "params": {**record["params"], "d": 4}} for record in records]


def test_default_metric_settings_are_the_strong_protocols(split):
    arm = {"neighbourhood": "knn", "first_step": "ease", "second_step": "implicit"}
    axes = {
        "neighbourhood": {"knn": {"k": [10, 30]}},
        "first_step": {"ease": {"lam": [10.0]}},
        "second_step": {"implicit": {"alpha": [1.0]}},
    }
    default = ablation_cell("toy", split, arm, 4, axes, SCORERS)
    configured = ablation_cell("toy", split, arm, 4, axes, SCORERS, metric_settings=metric_settings({}, "strong"))
    for a, b in zip(default.records, configured.records, strict=True):
        assert a["params"] == b["params"] and a["metrics"] == b["metrics"]
        assert list(a["metrics"]["test"]) == [
            f"{name}{suffix}" for name in ("recall@20", "recall@50", "ndcg@100") for suffix in ("", "_se")
        ]
    pd.testing.assert_frame_equal(default.per_user, configured.per_user)


def test_skipped_cells_and_reference_arms_follow_the_configured_metrics(split):
    skipped = ablation_cell(
        "toy",
        split,
        {"neighbourhood": "all", "first_step": "identity", "second_step": "explicit"},
        4,
        {},
        SCORERS,
        metric_settings=SETTINGS,
    )
    assert skipped.per_user.empty and list(skipped.per_user.columns) == ["scorer", "split", "user", "recall@20", "ndcg@50"]
    runs = [ablation_cell("toy", split, {"reference": "random"}, 4, {}, SCORERS, seed=seed, metric_settings=SETTINGS) for seed in (0, 1)]
    assert list(runs[0].per_user.columns) == ["scorer", "split", "user", "recall@20", "ndcg@50"]
    mean = seed_mean(runs, [0, 1])
    for position, record in enumerate(mean.records):
        coverage = [run.records[position]["metrics"]["test"]["coverage@10"] for run in runs]
        assert record["metrics"]["test"]["coverage@10"] == pytest.approx(np.mean(coverage))  # set-level: the seeds' mean
        assert record["metrics"]["test"]["coverage@10_seed_sd"] == pytest.approx(np.std(coverage, ddof=1))
        assert set(metric_names(record["metrics"]["test"])) == {"recall@20", "ndcg@50", "coverage@10"}
    assert list(mean.per_user.columns) == ["scorer", "split", "user", "recall@20", "ndcg@50"]
    all_failed = seed_mean([CellResult(skipped.records, skipped.per_user)] * 2, [0, 1])
    assert list(all_failed.per_user.columns) == ["scorer", "split", "user", "recall@20", "ndcg@50"]


def test_undefined_and_oversized_cells_are_skipped_with_the_reason(split):
    undefined, no_users = ablation_cell(
        "toy", split, {"neighbourhood": "all", "first_step": "identity", "second_step": "explicit"}, 4, {}, SCORERS
    )
    assert no_users.empty and list(no_users.columns) == ["scorer", "split", "user", "recall@20", "recall@50", "ndcg@100"]
    assert [r["extra"]["status"] for r in undefined] == ["skipped", "skipped"]
    assert "undefined" in undefined[0]["extra"]["reason"]
    oversized, _ = ablation_cell(
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
    records = ablation_cell(
        "toy", split, {"neighbourhood": "knn", "first_step": "ease", "second_step": "implicit"}, 4, axes, SCORERS
    ).records
    assert {r["params"]["k"] for r in records} == {split.n_items - 1}
    records += reference_cell("toy", split, "svd", 4, SCORERS).records
    records += ablation_cell(
        "toy", split, {"neighbourhood": "all", "first_step": "identity", "second_step": "explicit"}, 4, {}, SCORERS
    ).records
    table = ablation_table(records)
    ok = table[table["status"] == "ok"]
    assert len(ok) == 2 * 2 * 2 * 3  # two cells x two scorers x two splits x three metrics
    assert table[table["status"] == "skipped"]["reason"].str.len().gt(0).all()
    assert set(ok["arm"]) == {"ablation:knn/ease/implicit", "reference:svd"}


def test_a_reference_arm_runs_through_ablation_cell(split):
    """The workflow runs reference arms through the same entry point as grid cells."""
    direct = reference_cell("toy", split, "random", 4, SCORERS, seed=3)
    via_cell = ablation_cell("toy", split, {"reference": "random"}, 4, {}, SCORERS, seed=3)
    for a, b in zip(direct.records, via_cell.records, strict=True):
        assert a["run"] == b["run"] == f"reference:random|d=4|{a['extra']['scorer']}"
        assert a["metrics"] == b["metrics"]
    pd.testing.assert_frame_equal(direct.per_user, via_cell.per_user)


def hand_cell(seed: int, mf_test: list[float], status: str = "ok") -> CellResult:
    """A random-arm result with MF only: two validation users scoring 0.5 and given test NDCG@100."""
    names = ("recall@20", "recall@50", "ndcg@100")
    rows = [{"scorer": "mf", "split": "validation", "user": str(u), "recall@20": 0.0, "recall@50": 0.0, "ndcg@100": 0.5} for u in (0, 1)]
    rows += [
        {"scorer": "mf", "split": "test", "user": str(u), "recall@20": 0.0, "recall@50": 0.0, "ndcg@100": v} for u, v in enumerate(mf_test)
    ]
    table = pd.DataFrame(rows)
    summary = {}
    for split in ("validation", "test"):
        means = table[table["split"] == split][list(names)].mean()
        summary[split] = {"n_users": 2, **{m: float(means[m]) for m in names}, **{f"{m}_se": 0.1 for m in names}}
    extra = {"status": status, "scorer": "mf", "extraction_seconds": 1.0 + seed, "extraction_peak_mb": 5.0 * (seed + 1), "failed": []}
    record = {
        "dataset": "toy",
        "model": "reference:random",
        "params": {"r_p": 10.0 if seed else 1.0, "d": 4},
        "metrics": summary if status == "ok" else {},
        "n_users": {"validation": 2, "test": 2},
        "wall_seconds": 2.0,
        "peak_memory_mb": 1.0,
        "extra": extra if status == "ok" else {**extra, "reason": f"failed at seed {seed}"},
        "run": "reference:random|d=4|mf",
    }
    return CellResult([record], table if status == "ok" else table.iloc[:0])


def test_seed_mean_averages_each_users_scores_over_the_seeds():
    mean = seed_mean([hand_cell(0, [0.2, 0.4]), hand_cell(1, [0.4, 1.0]), hand_cell(2, [0.0, 0.0], "skipped")], [0, 1, 2])
    (record,) = mean.records
    test = mean.per_user[mean.per_user["split"] == "test"]
    assert test["ndcg@100"].tolist() == pytest.approx([0.3, 0.7])  # (0.2 + 0.4) / 2, (0.4 + 1.0) / 2
    assert record["metrics"]["test"]["ndcg@100"] == pytest.approx(0.5)
    assert record["metrics"]["test"]["ndcg@100_se"] == pytest.approx(np.std([0.3, 0.7], ddof=1) / np.sqrt(2))
    assert record["extra"]["seeds"] == [0, 1]  # seed 2 did not run
    assert record["metrics"]["test"]["ndcg@100_seed_sd"] == pytest.approx(np.std([0.3, 0.7], ddof=1))  # seed means 0.3 and 0.7
    assert record["metrics"]["validation"]["ndcg@100_seed_sd"] == pytest.approx(0.0)
    assert record["params"] == {"r_p": [1.0, 10.0], "d": 4} and record["run"] == "reference:random|d=4|mf"
    assert record["extra"]["extraction_seconds"] == 1.5 and record["extra"]["extraction_peak_mb"] == 10.0
    assert record["wall_seconds"] == 4.0
    table = ablation_table(mean.records)
    row = table[(table["split"] == "test") & (table["metric"] == "ndcg@100")].iloc[0]
    assert row["n_seeds"] == 2 and row["seed_sd"] == pytest.approx(np.std([0.3, 0.7], ddof=1))


def test_seed_mean_of_seeds_that_all_failed_is_skipped_with_every_reason():
    (record,), per_user = seed_mean([hand_cell(0, [0.0, 0.0], "skipped"), hand_cell(1, [0.0, 0.0], "skipped")], [0, 1])
    assert record["extra"]["status"] == "skipped" and per_user.empty
    assert "seed 0: failed at seed 0" in record["extra"]["reason"] and "seed 1: failed at seed 1" in record["extra"]["reason"]


def test_seed_mean_refuses_runs_of_different_users_or_cells():
    other_users = hand_cell(1, [0.4, 1.0])
    other_users.per_user.loc[other_users.per_user["split"] == "test", "user"] = ["5", "6"]
    with pytest.raises(DataFormatError, match="scorer mf: .* other users"):
        seed_mean([hand_cell(0, [0.2, 0.4]), other_users], [0, 1])
    with pytest.raises(DataFormatError, match="one result per seed"):
        seed_mean([hand_cell(0, [0.2, 0.4])], [0, 1])


def test_the_random_arm_seed_mean_is_the_mean_of_its_seeds(split, tmp_path):
    runs = [reference_cell("toy", split, "random", 4, SCORERS, seed=seed) for seed in (0, 1)]
    for seed, run in enumerate(runs):  # the files the workflow passes between the seed jobs and the mean
        write_cell(run, tmp_path / f"s{seed}.json", tmp_path / f"s{seed}.parquet")
    mean = seed_mean([read_cell(tmp_path / f"s{seed}.json", tmp_path / f"s{seed}.parquet") for seed in (0, 1)], [0, 1])
    for position, record in enumerate(mean.records):
        seeds = [run.records[position]["metrics"]["test"]["ndcg@100"] for run in runs]
        assert record["metrics"]["test"]["ndcg@100"] == pytest.approx(np.mean(seeds), rel=1e-6)
        assert record["metrics"]["test"]["ndcg@100_seed_sd"] == pytest.approx(np.std(seeds, ddof=1), rel=1e-6)
    assert len(mean.per_user) == len(runs[0].per_user)
