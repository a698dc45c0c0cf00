"""Run records: JSON round trip, NaN handling (null in params and extras; never a metric), and the tidy metrics table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from islim.errors import DataFormatError
from islim.records import (
    REQUIRED_KEYS,
    aggregate,
    make_record,
    mean_over_seeds,
    per_user_table,
    read_record,
    seed_spread,
    split_summaries,
    tidy_metrics,
    write_record,
)

METRICS = ("recall@20", "recall@50", "ndcg@100")


def evaluation(base: float, n_users: int, se=0.01) -> dict:
    """An :func:`islim.evaluate.evaluate`-shaped result with numpy scalars."""
    values = {"n_users": n_users}
    for offset, name in enumerate(METRICS):
        values[name] = np.float64(base + offset / 100)
        values[f"{name}_se"] = np.float32(se)
    return values


def record(model: str, base: float, **extra) -> dict:
    metrics = {"validation": evaluation(base, 60), "test": evaluation(base - 0.05, 59)}
    return make_record("ml-latest-small", model, {"lambda": 500.0, "dtype": "float32"}, metrics, wall_seconds=1.23456, **extra)


def test_make_write_read_round_trip(tmp_path):
    original = record("ease", 0.3, extra={"sweep": [{"lambda": np.float32(100.0), "ndcg@100": np.float64(0.25)}]})
    path = tmp_path / "runs" / "ease.json"
    write_record(path, original)
    restored = read_record(path)
    assert restored == original
    assert set(REQUIRED_KEYS) <= set(restored)
    assert restored["n_users"] == {"validation": 60, "test": 59}
    assert "n_users" not in restored["metrics"]["test"]
    assert restored["metrics"]["validation"]["recall@50"] == pytest.approx(0.31)
    assert restored["wall_seconds"] == 1.235
    assert restored["extra"]["sweep"][0] == {"lambda": 100.0, "ndcg@100": 0.25}
    assert restored["peak_memory_mb"] > 0


def test_non_finite_params_and_extras_become_null(tmp_path):
    built = make_record("d", "m", {"inf": math.inf}, {"test": evaluation(0.2, 5)}, wall_seconds=0.0, extra={"loss": float("nan")})
    path = tmp_path / "r.json"
    write_record(path, built)
    raw = json.loads(path.read_text())  # strict JSON: no NaN tokens
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert raw["params"]["inf"] is None and raw["extra"]["loss"] is None
    assert read_record(path)["metrics"]["test"]["recall@20"] == pytest.approx(0.2)


def test_write_record_refuses_an_incomplete_record(tmp_path):
    incomplete = {key: value for key, value in record("ease", 0.3).items() if key != "metrics"}
    with pytest.raises(DataFormatError, match="metrics"):
        write_record(tmp_path / "r.json", incomplete)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("content", ['{"dataset": "d", ', "not json at all", ""])
def test_malformed_json_raises(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(DataFormatError, match="not valid JSON"):
        read_record(path)


def test_record_without_required_keys_raises(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"dataset": "d", "model": "m"}))
    with pytest.raises(DataFormatError, match="lacks"):
        read_record(path)


def test_tidy_metrics_has_one_row_per_run_split_metric():
    records = [record("ease", 0.3), record("mult-vae", 0.35), record("recvae", 0.4) | {"run": "recvae+islim"}]
    table = tidy_metrics(records)
    assert len(table) == 3 * 2 * 3
    assert not table.duplicated(["run", "split", "metric"]).any()
    assert set(table["metric"]) == set(METRICS) and set(table["split"]) == {"validation", "test"}
    assert set(table["run"]) == {"ease", "mult-vae", "recvae+islim"}
    row = table[(table["run"] == "mult-vae") & (table["split"] == "test") & (table["metric"] == "ndcg@100")].iloc[0]
    assert row["value"] == pytest.approx(0.35 - 0.05 + 0.02)
    assert row["se"] == pytest.approx(0.01) and row["n_users"] == 59
    assert json.loads(row["params"]) == {"dtype": "float32", "lambda": 500.0}


def test_aggregate_writes_the_tidy_csv(tmp_path):
    paths = []
    for model, base in (("ease", 0.3), ("mult-vae", 0.35)):
        path = tmp_path / f"{model}.json"
        write_record(path, record(model, base))
        paths.append(path)
    table = aggregate(paths, tmp_path / "metrics.csv")
    written = pd.read_csv(tmp_path / "metrics.csv")
    assert len(written) == len(table) == 2 * 2 * 3
    np.testing.assert_allclose(written["value"].to_numpy(), table["value"].to_numpy(dtype=float))


def test_tidy_metrics_reports_flags_seeds_and_the_seed_sd():
    seeded = record("mf", 0.3, extra={"seeds": [0, 1, 2]}, flags=["not_converged", "grid_edge:r_p"])
    seeded["metrics"]["test"]["ndcg@100_seed_sd"] = 0.004
    table = tidy_metrics([seeded, record("ease", 0.3)])
    row = table[(table["run"] == "mf") & (table["split"] == "test") & (table["metric"] == "ndcg@100")].iloc[0]
    assert row["flags"] == "not_converged;grid_edge:r_p" and row["n_seeds"] == 3 and row["seed_sd"] == pytest.approx(0.004)
    assert table.loc[(table["run"] == "mf") & (table["metric"] == "recall@20"), "seed_sd"].isna().all()
    ease = table[table["run"] == "ease"]
    assert (ease["flags"] == "").all() and (ease["n_seeds"] == 1).all() and ease["seed_sd"].isna().all()


def test_per_user_table_names_users_by_their_original_ids():
    scores = {"user": np.array([0, 2]), "recall@20": np.array([0.5, 1.0]), "ndcg@100": np.array([0.25, 0.75])}
    table = per_user_table("test", scores, np.array([196, 186, 22]))
    assert table.to_dict("list") == {"split": ["test", "test"], "user": ["196", "22"], "recall@20": [0.5, 1.0], "ndcg@100": [0.25, 0.75]}
    (summary,) = split_summaries(table).values()
    assert summary["n_users"] == 2 and summary["ndcg@100"] == pytest.approx(0.5)
    assert summary["ndcg@100_se"] == pytest.approx(0.25)  # sd sqrt(0.125) / sqrt(2)


def test_mean_over_seeds_needs_the_same_users_in_every_table():
    first = per_user_table("test", {"user": np.array([0, 1]), "ndcg@100": np.array([0.2, 0.4])}, np.array(["a", "b"]))
    swapped = first.iloc[::-1].assign(**{"ndcg@100": [0.0, 0.6]})  # same users, other row order
    mean = mean_over_seeds([first, swapped])
    assert mean["user"].tolist() == ["a", "b"] and mean["ndcg@100"].tolist() == pytest.approx([0.4, 0.2])
    with pytest.raises(DataFormatError, match="other users"):
        mean_over_seeds([first, first.iloc[:1]])


def test_seed_spread_is_the_sd_of_the_seed_means():
    runs = [{"test": {"ndcg@100": value, "ndcg@100_se": 0.1}} for value in (0.40, 0.44, 0.48)]
    assert seed_spread(runs) == {"test": {"ndcg@100_seed_sd": pytest.approx(0.04)}}
    with pytest.raises(DataFormatError, match="at least 2"):
        seed_spread(runs[:1])
