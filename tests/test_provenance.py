"""Provenance: every setting of the configuration as a readable row, and the page of the report."""

from __future__ import annotations

import json

import pandas as pd

from islim.provenance import provenance_page, provenance_table, setting_text, settings_rows, settings_table

CONFIG = {
    "run_datasets": ["ml-100k", "synthetic"],
    "threads": 2,
    "memory_budget_gb": None,
    "ease": {"lambda_grid": [100, 300.5], "dtype": "float32"},
    "ablations": {"activate": False, "scorers": {"mf": {"r_p": [10]}}, "neighbourhood": {"all": {}, "knn": None}},
    "training": {"models": {"mf": {"params": {"n_factors": 16, "implicit_slim": {"step": 1, "lam": 50.0}}, "grid": {}}}},
    "seeds": [],
}


def test_setting_text_reads_like_the_config_not_like_python():
    assert setting_text([100, 300.5]) == "100, 300.5"
    assert setting_text([]) == "none" and setting_text(None) == "none"
    assert setting_text(True) == "yes" and setting_text(False) == "no"
    assert setting_text({}) == "{}"
    assert setting_text([{"a": [1, 2]}, "x"]) == "a: 1, 2, x"
    assert setting_text("float32") == "float32" and setting_text(1e-05) == "1e-05"


def test_settings_rows_flatten_every_leaf_to_a_dotted_name_in_config_order():
    rows = {row["name"]: row["value"] for row in settings_rows(CONFIG)}
    assert list(rows) == [
        "run_datasets",
        "threads",
        "memory_budget_gb",
        "ease.lambda_grid",
        "ease.dtype",
        "ablations.activate",
        "ablations.scorers.mf.r_p",
        "ablations.neighbourhood.all",
        "ablations.neighbourhood.knn",
        "training.models.mf.params.n_factors",
        "training.models.mf.params.implicit_slim.step",
        "training.models.mf.params.implicit_slim.lam",
        "training.models.mf.grid",
        "seeds",
    ]
    assert rows["run_datasets"] == "ml-100k, synthetic" and rows["ease.lambda_grid"] == "100, 300.5"
    assert rows["memory_budget_gb"] == "none" and rows["ablations.activate"] == "no"
    assert rows["ablations.neighbourhood.all"] == "{}" and rows["ablations.neighbourhood.knn"] == "none"
    assert not any(character in value for value in rows.values() for character in "[]'")
    assert set(settings_table(CONFIG)["kind"]) == {"setting"}


def test_provenance_page_shows_packages_data_and_settings_as_tables(tmp_path):
    manifest = {"dataset": "toy", "kind": "synthetic", "file": "/data/raw/toy/toy.csv", "size": 123, "sha256": "ab" * 32}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    table = pd.concat([provenance_table([tmp_path / "manifest.json"]), settings_table(CONFIG)], ignore_index=True)
    page = provenance_page(table)
    assert page.index("<h2>Packages</h2>") < page.index("<h2>Data</h2>") < page.index("<h2>Settings</h2>")
    assert "<tr><td>toy</td><td>" + "ab" * 32 + "</td><td>synthetic, 123 bytes, toy.csv</td></tr>" in page
    assert "<tr><td>ease.lambda_grid</td><td>100, 300.5</td></tr>" in page
    assert "<th>setting</th><th>value</th></tr>" in page  # no empty detail column for settings
