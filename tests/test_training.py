"""Training runs: settings merge order, grid selection on validation, seeds, per-user scores,
curves and errors (the selection's arithmetic on hand-built points: test_training_selection.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from islim.config import merge_settings, point_settings, run_point_names
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.errors import ConfigError
from islim.training import CURVE_COLUMNS, read_point, select_run, train_point, train_run, write_point

MF = {"n_factors": 8, "n_epochs": 3, "patience": 5, "r_q": 1.0}
MF_BASELINE = {"init": "random", "regularizer": "none", "n_init_steps": 0}


@pytest.fixture(scope="module")
def split():
    X = generate(400, 120, 8000, seed=5).tocoo()
    return make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=40, seed=2)


def test_variant_settings_override_params_and_nested_mappings_merge():
    params = {"n_epochs": 5, "implicit_slim": {"lam": 1.0, "step": 3}}
    merged = merge_settings(params, {"n_epochs": 2, "implicit_slim": {"mode": "replace"}})
    assert merged == {"n_epochs": 2, "implicit_slim": {"lam": 1.0, "step": 3, "mode": "replace"}}
    assert params == {"n_epochs": 5, "implicit_slim": {"lam": 1.0, "step": 3}}  # not modified


def test_grid_point_with_best_validation_is_kept(split):
    params = {"n_factors": 8, "n_epochs": 3, "patience": 5, "r_q": 1.0}
    variant = {"init": "random", "regularizer": "none", "n_init_steps": 0}
    record, curve = train_run("toy", split, "mf", "baseline", params, variant, {"r_p": [0.1, 10.0]}, progress=False)
    searched = {entry["r_p"]: entry["val_ndcg@100"] for entry in record["extra"]["searched"]}
    assert record["params"]["r_p"] == max(searched, key=searched.get)
    assert record["metrics"]["validation"]["ndcg@100"] == pytest.approx(max(searched.values()), rel=1e-9)
    assert list(curve.columns) == CURVE_COLUMNS and len(curve) == record["extra"]["epochs_run"]
    assert curve["val_ndcg@100"].max() == pytest.approx(record["metrics"]["validation"]["ndcg@100"], rel=1e-9)
    assert record["run"] == "mf|baseline" and record["extra"]["best_epoch"] in set(curve["epoch"])


def test_deep_model_run_reports_its_curve(split):
    params = {"n_epochs": 2, "hidden_dim": 16, "latent_dim": 4}
    record, curve = train_run(
        "toy", split, "multvae", "implicit_slim", params, {"implicit_slim": {"mode": "replace", "step": 1, "lam": 10.0}}, {}, progress=False
    )
    assert len(curve) == 2 and curve["wall_seconds"].is_monotonic_increasing
    assert record["params"]["implicit_slim"]["mode"] == "replace"
    assert 0 < record["metrics"]["test"]["ndcg@100"] <= 1


def test_unknown_model_or_setting_is_a_config_error(split):
    with pytest.raises(ConfigError, match="unknown model"):
        train_run("toy", split, "svdpp", "baseline", {}, {}, {})
    with pytest.raises(ConfigError, match="n_layers_typo"):
        train_run("toy", split, "mf", "baseline", {"n_layers_typo": 3}, {}, {})


def test_curve_columns_follow_the_reported_metrics():
    assert CURVE_COLUMNS == ["epoch", "wall_seconds", "train_loss", "val_recall@20", "val_recall@50", "val_ndcg@100"]


def test_point_jobs_of_two_seeds_give_the_selected_run_and_its_per_user_file(split, tmp_path):
    """The workflow's path: one job per grid point x seed (files written and read back), then the
    selection; the per-user table's means are the record's metrics and its users the split's ids."""
    run = {"params": MF, "grid": {"r_p": [0.1, 10.0]}, "variants": {"baseline": MF_BASELINE}}
    names = run_point_names(run["grid"], [0, 1])
    assert names == ["p0.s0", "p0.s1", "p1.s0", "p1.s1"]
    results = []
    for name in names:
        job = point_settings(run, "baseline", name)
        result = train_point("toy", split, "mf", "baseline", job["settings"], job["point"], job["seed"], progress=False)
        paths = [tmp_path / f"{name}.json", tmp_path / f"{name}.curve.csv", tmp_path / f"{name}.per_user.parquet"]
        write_point(result, *paths)
        results.append(read_point(*paths))
    seed_scores = [result.record["metrics"]["test"]["ndcg@100"] for result in results]
    assert seed_scores[0] != seed_scores[1]  # MF's random start depends on the seed
    record, curve, per_user = select_run("toy", "mf", "baseline", run["grid"], results)
    kept = [r for r in results if r.record["extra"]["point"]["r_p"] == record["params"]["r_p"]]
    assert record["extra"]["seeds"] == [0, 1] and "seed" not in record["params"]
    assert record["metrics"]["test"]["ndcg@100"] == pytest.approx(np.mean([r.record["metrics"]["test"]["ndcg@100"] for r in kept]))
    assert record["metrics"]["test"]["ndcg@100_seed_sd"] == pytest.approx(
        np.std([r.record["metrics"]["test"]["ndcg@100"] for r in kept], ddof=1)
    )
    assert list(per_user.columns) == ["split", "user", "recall@20", "recall@50", "ndcg@100"]
    for part in ("validation", "test"):
        rows = per_user[per_user["split"] == part]
        assert len(rows) == record["n_users"][part]
        assert set(rows["user"]) <= set(split.user_ids[part].astype(str))
        for metric in ("recall@20", "recall@50", "ndcg@100"):
            assert rows[metric].mean() == pytest.approx(record["metrics"][part][metric], rel=1e-12)
            assert rows[metric].std(ddof=1) / np.sqrt(len(rows)) == pytest.approx(record["metrics"][part][f"{metric}_se"], rel=1e-12)
    assert list(curve.columns) == CURVE_COLUMNS and len(curve) == min(r.record["extra"]["epochs_run"] for r in kept)


def test_a_deterministic_model_trains_each_point_once_whatever_the_seeds(split):
    record, curve = train_run("toy", split, "popularity", "baseline", {}, {}, {}, progress=False, seeds=[0, 1])
    assert "seeds" not in record["extra"] and [entry["seed"] for entry in record["extra"]["per_seed"]] == [None]
    assert len(curve) == 1 and record["flags"] == []


def test_a_stochastic_models_seed_comes_from_the_seeds_setting_only():
    run = {"params": {"seed": 5}, "grid": {}, "variants": {"baseline": {}}}
    with pytest.raises(ConfigError, match="top-level `seeds`"):
        point_settings(run, "baseline", "p0.s1")
    assert point_settings(run, "baseline", "p0")["settings"] == {"seed": 5}  # an unseeded point keeps it
