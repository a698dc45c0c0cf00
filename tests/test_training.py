"""Training runs: settings merge order, grid selection on validation, curves and errors."""

from __future__ import annotations

import pandas as pd
import pytest

from islim.config import merge_settings
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.errors import ConfigError
from islim.training import CURVE_COLUMNS, train_run


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
