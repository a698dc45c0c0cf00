"""The per-user hold-out protocol through the workflow: graph models on a tiny synthetic dataset
(tests/configs/weak-tiny.yaml) from the split to metrics.csv and Figure 2, in under a minute."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from islim.data.split import load_split
from islim.evaluate import evaluate_split, metric_list
from islim.models.popularity import Popularity
from tests.workflow_helpers import CONFIGS, snakemake

pytestmark = pytest.mark.workflow

DATASET = "weak-tiny"
METRICS = ["recall@20", "ndcg@20"]


def test_graph_models_run_end_to_end_under_the_per_user_hold_out(tmp_path):
    targets = [f"results/{DATASET}/metrics.csv", f"reports/{DATASET}/convergence.png"]
    result = snakemake(tmp_path, "--cores", "2", *targets, configfile=CONFIGS / "weak-tiny.yaml", timeout=600)  # targets after an option
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"ablations: not run on {DATASET}" in result.stdout + result.stderr

    split = load_split(tmp_path / "data" / "processed" / DATASET)
    assert split.protocol == "weak" and split.test_tr.shape == split.train.shape
    metrics = pd.read_csv(tmp_path / "results" / DATASET / "metrics.csv")
    runs = {"ease", "popularity|baseline", "lightgcn|baseline", "lightgcn|implicit_slim", "ultragcn|baseline"}
    assert set(metrics["run"]) == runs
    assert set(metrics["metric"]) == set(METRICS)  # the weak protocol's metrics, no NDCG@100
    test = metrics[metrics["split"] == "test"].set_index(["run", "metric"])
    assert (test["n_users"] == split.test_te.shape[0]).all()  # every user is evaluated on test

    # Popularity's test scores equal a direct evaluation on the saved split (training rows excluded).
    direct = evaluate_split(Popularity().fit(split.train).score_batch, split, "test", metric_list(METRICS, [], "lightgcn"))
    for metric in METRICS:
        assert test.loc[("popularity|baseline", metric), "value"] == pytest.approx(direct[metric], rel=1e-9)

    record = json.loads((tmp_path / "results" / DATASET / "runs" / "lightgcn-implicit_slim.json").read_text())
    assert record["extra"]["selected_by"].startswith("validation ndcg@20")
    curve = pd.read_csv(tmp_path / "results" / DATASET / "curves" / "lightgcn-implicit_slim.csv")
    assert "val_ndcg@20" in curve.columns and len(curve) >= 1
    assert (tmp_path / "reports" / DATASET / "convergence.png").stat().st_size > 0
    assert not (tmp_path / "results" / DATASET / "ablations").exists()
