"""The configured metrics flow from the config to a run's record, ``metrics.csv`` and the results
table: a run trained and selected with ``cutoffs: [10, 20]`` reports every family at both cut-offs
(the set-level coverage without a standard error), each value equal to a direct evaluation; the
per-user hold-out protocol reports its own metrics and selects on its own metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from islim.data.peruser import split_per_user
from islim.data.split import make_split
from islim.evaluate import dataset_metric_settings, evaluate_split, settings_metrics
from islim.metrics import FAMILIES
from islim.pipeline import ease_point, select_ease
from islim.records import tidy_metrics
from islim.results_table import formatted_rows, results_table
from islim.training import curve_columns, select_run, train_point


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Seeded interactions of 300 users with 80 items, popular items more likely."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(300), rng.integers(8, 30, size=300))
    items = np.minimum(rng.zipf(1.3, size=len(users)) - 1, 79)
    return pd.DataFrame({"user": users, "item": items}).drop_duplicates().reset_index(drop=True)


def config(datasets: dict, metrics: dict | None = None) -> dict:
    return {"datasets": datasets} | ({} if metrics is None else {"metrics": metrics})


def test_cutoffs_reach_the_record_metrics_csv_and_the_results_table(frame):
    split = make_split(frame, 30, seed=1)
    settings = dataset_metric_settings(config({"toy": {"kind": "custom"}}, {"strong": {"cutoffs": [10, 20]}}), "toy")
    metrics = settings_metrics(settings)
    result = train_point("toy", split, "popularity", "baseline", {}, {}, metrics=metrics, monitor=settings["select"])
    assert list(result.curve.columns[:3]) == ["epoch", "wall_seconds", "train_loss"]
    assert list(result.curve.columns) == curve_columns(metrics) and "val_hitrate@10" in result.curve.columns
    record, _, per_user = select_run("toy", "popularity", "baseline", {}, [result], monitor=settings["select"])
    assert record["extra"]["selected_by"] == "validation ndcg@100"
    assert "coverage@10" not in per_user.columns and "mrr@20" in per_user.columns
    table = tidy_metrics([record])
    expected = {f"{family}@{k}" for family in FAMILIES for k in (10, 20)} | {"recall@50", "ndcg@100"}
    assert set(table["metric"]) == expected
    direct = evaluate_split(result_model(split), split, "test", metrics)
    test = table[table["split"] == "test"].set_index("metric")
    for name in expected:
        assert test.loc[name, "value"] == pytest.approx(direct[name], rel=1e-12), name
    assert test.loc["coverage@10", "se"] is None or pd.isna(test.loc["coverage@10", "se"])
    assert test.loc["hitrate@10", "se"] == pytest.approx(direct["hitrate@10_se"], rel=1e-12)
    shown = results_table(table, published=pd.DataFrame(columns=["dataset", "model", "variant", "metric", "value", "source"]))
    assert list(shown["metric"]) == sorted(expected, key=lambda n: (list(FAMILIES).index(n.split("@")[0]), int(n.split("@")[1])))
    cells = {row[3]: row[4] for row in formatted_rows(shown)}
    assert "±" in cells["HitRate@10"] and "±" not in cells["Coverage@10"] and set(cells) >= {"MRR@10", "Precision@20", "ARP@20"}


def result_model(split):
    """The popularity model fitted as train_point fits it (its scores do not depend on a seed)."""
    from islim.models.registry import build_model

    return build_model("popularity").fit(split.train).score_batch


def test_the_per_user_hold_out_protocol_reports_and_selects_on_its_own_metrics(frame):
    split = split_per_user(frame, seed=2)
    settings = dataset_metric_settings(config({"toy": {"kind": "custom", "protocol": "weak"}}), "toy")
    assert settings["select"] == "ndcg@20" and settings["recall"] == "lightgcn"
    results = [ease_point("toy", split, lam, metric_settings=settings) for lam in (1.0, 100.0)]
    record, sweep, _ = select_ease("toy", [1.0, 100.0], results, monitor=settings["select"])
    assert record["extra"]["selected_by"] == "validation ndcg@20"
    assert set(tidy_metrics([record])["metric"]) == {"recall@20", "ndcg@20"}
    assert {"recall@20", "ndcg@20"} <= set(sweep.columns) and "ndcg@100" not in sweep.columns
    best = max(results, key=lambda r: r.record["metrics"]["validation"]["ndcg@20"])
    assert record["params"]["lambda"] == best.record["extra"]["point"]["lambda"]
