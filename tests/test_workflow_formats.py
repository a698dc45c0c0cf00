"""Custom datasets in other formats run through the workflow as they are, with no conversion.

citeulike-a's ``users.dat`` (an adjacency list: a count, then the items of the user whose 0-based
line number it is) is read in place from ``../shared/data`` with its entry of
``tests/configs/shared-data.yaml``; a RecBole atomic ``.inter`` file is written to a temporary
folder from ml-latest-small's ratings. Both run fetch → split → EASE (one λ) → aggregate up to
``results/<dataset>/metrics.csv``; items are cut to the popular ones (``min_item_users``) so that
EASE's dense item × item work takes seconds.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.workflow_helpers import CONFIGS, SHARED_DATA, snakemake

pytestmark = pytest.mark.workflow

CITEULIKE = SHARED_DATA / "citeulike-a" / "users.dat"
ML_SMALL = SHARED_DATA / "ml-latest-small" / "ratings.csv"
#: The header of RecBole's own ml-100k.inter (dataset_example/ml-100k).
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
DATASETS = ["citeulike-a", "ml-small-inter"]


def write_inter(path) -> pd.DataFrame:
    """ml-latest-small's ratings in RecBole's atomic-file layout; returns the ratings."""
    ratings = pd.read_csv(ML_SMALL)
    path.write_text(INTER_HEADER + ratings.to_csv(sep="\t", header=False, index=False), encoding="utf-8")
    return ratings


@pytest.fixture(scope="module")
def formats_run(tmp_path_factory):
    if not (CITEULIKE.is_file() and ML_SMALL.is_file()):
        pytest.skip(f"shared test data in {SHARED_DATA} is not available")
    directory = tmp_path_factory.mktemp("formats_run")
    ratings = write_inter(directory / "ml-small.inter")
    citeulike = yaml.safe_load((CONFIGS / "shared-data.yaml").read_text(encoding="utf-8"))["datasets"]["citeulike-a"]
    config = {
        "run_datasets": DATASETS,
        "ablations": {"activate": False},
        "training": {"activate": False},
        "ease": {"lambda_grid": [200]},
        "datasets": {
            "citeulike-a": citeulike | {"path": str(CITEULIKE), "min_item_users": 20},
            "ml-small-inter": {
                "kind": "custom",
                "path": str(directory / "ml-small.inter"),  # format recbole from the name
                "user_col": "user_id",
                "item_col": "item_id:token",
                "rating_col": "rating",
                "expected_raw": {"rows": len(ratings), "users": ratings["userId"].nunique(), "items": ratings["movieId"].nunique()},
                "threshold": 3.5,
                "min_item_users": 10,
                "heldout_users": 60,
            },
        },
    }
    configfile = directory / "config.formats.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    targets = [f"results/{name}/metrics.csv" for name in DATASETS]
    result = snakemake(directory, "--cores", "2", *targets, configfile=configfile, timeout=600)  # targets after an option: not config files
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return directory


@pytest.mark.parametrize("dataset", DATASETS)
def test_custom_format_runs_to_metrics(formats_run, dataset):
    table = pd.read_csv(formats_run / "results" / dataset / "metrics.csv")
    test = table[(table["run"] == "ease") & (table["split"] == "test")]
    assert set(test["metric"]) >= {"recall@20", "ndcg@100"}
    assert ((test["value"] > 0) & (test["value"] <= 1)).all()


def test_citeulike_is_read_in_place_with_users_as_line_numbers(formats_run):
    manifest = json.loads((formats_run / "data" / "raw" / "citeulike-a" / "manifest.json").read_text())
    assert manifest["file"] == str(CITEULIKE.resolve())
    assert manifest["sha256"] == "53211d82c14ff261e595634d285ed9fbf8049cf81dcb751d924d695b9612a02c"  # shared/data README
    users = pd.read_csv(formats_run / "data" / "processed" / "citeulike-a" / "users.csv", dtype=str)
    # every user kept has at least 5 of the 1,921 articles in 20 or more libraries (counted here from the text)
    lines = CITEULIKE.read_text().split("\n")
    popular = pd.Series([item for line in lines for item in line.split()[1:]]).value_counts()
    popular = set(popular[popular >= 20].index)
    kept = {str(u) for u, line in enumerate(lines) if len(popular.intersection(line.split()[1:])) >= 5}
    assert set(users["user_id"]) == kept


def test_recbole_file_is_split_from_its_typed_columns(formats_run):
    stats = json.loads((formats_run / "data" / "processed" / "ml-small-inter" / "stats.json").read_text())
    ratings = pd.read_csv(ML_SMALL)
    positive = ratings[ratings["rating"] > 3.5]
    counts = positive["movieId"].value_counts()
    positive = positive[positive["movieId"].isin(counts[counts >= 10].index)]
    active = positive["userId"].value_counts()
    assert stats["users"]["total"] == (active >= 5).sum()
