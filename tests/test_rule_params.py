"""Each rule gets only the settings it uses (its `params:`), so that changing another setting does
not rerun it: the key selections in islim.pipeline and islim.config, and a dry run that shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from islim.config import (
    SCHEMA_PATH,
    ablation_cell_grids,
    load_config,
    point_settings,
    run_point_names,
    run_seeds,
    training_variant,
)
from islim.errors import ConfigError
from islim.pipeline import DOWNLOAD_KEYS, FETCH_KEYS, SPLIT_KEYS, fetch_parameters, split_parameters
from tests.workflow_helpers import snakemake, write_tiny_config

REPO = Path(__file__).resolve().parents[1]

#: Dataset keys neither the fetch nor the split reads (the EASE and training rules read the
#: last two through islim.config.ease_settings and training_models).
NOT_DATA_KEYS = {"description", "ease", "training"}

ML_20M = {
    "kind": "movielens-csv",
    "description": "MovieLens 20M",
    "sources": [{"url": "https://example.org/ml-20m.zip", "member": "ml-20m/ratings.csv"}],
    "expected_raw": {"rows": 20000263},
    "threshold": 3.5,
    "min_user_interactions": 5,
    "heldout_users": 10000,
    "seed": 98765,
    "expected": {"users": 136677},
    "ease": {"lambda_grid": [500]},
    "training": {"models": {"mf": {"params": {"n_factors": 64}}}},
}
SYNTHETIC = {
    "kind": "synthetic",
    "n_users": 600,
    "n_items": 300,
    "n_interactions": 15000,
    "rank": 8,
    "heldout_users": 50,
    "seed": 7,
    "ease": {"lambda_grid": [10]},
}
CUSTOM = {
    "kind": "custom",
    "path": "/data/x.tsv",
    "format": "tsv",
    "user_col": "u",
    "item_col": "i",
    "rating_col": None,
    "header": True,
    "threshold": None,
    "heldout_users": 0.1,
    "description": "mine",
}


def test_fetch_gets_the_sources_of_a_downloaded_dataset_only():
    assert fetch_parameters(ML_20M) == {"kind": "movielens-csv", "sources": ML_20M["sources"]}


def test_fetch_of_a_synthetic_dataset_gets_the_generator_settings_and_seed():
    assert fetch_parameters(SYNTHETIC) == {
        "kind": "synthetic",
        "n_users": 600,
        "n_items": 300,
        "n_interactions": 15000,
        "rank": 8,
        "seed": 7,
    }


def test_fetch_of_a_custom_dataset_gets_where_the_file_is():
    assert fetch_parameters(CUSTOM) == {"kind": "custom", "path": "/data/x.tsv"}


def test_split_gets_reading_preprocessing_and_split_keys_only():
    assert split_parameters(ML_20M) == {
        "kind": "movielens-csv",
        "expected_raw": {"rows": 20000263},
        "threshold": 3.5,
        "min_user_interactions": 5,
        "heldout_users": 10000,
        "seed": 98765,
        "expected": {"users": 136677},
    }
    assert split_parameters(CUSTOM) == {
        "kind": "custom",
        "format": "tsv",
        "user_col": "u",
        "item_col": "i",
        "rating_col": None,
        "header": True,
        "threshold": None,
        "heldout_users": 0.1,
    }


@pytest.mark.parametrize("entry", [ML_20M, SYNTHETIC, CUSTOM], ids=["download", "synthetic", "custom"])
@pytest.mark.parametrize(("key", "value"), [("ease", {"lambda_grid": [1, 2]}), ("training", {"models": {}}), ("description", "changed")])
def test_ease_training_and_description_change_neither_fetch_nor_split(entry, key, value):
    changed = {**entry, key: value}
    assert fetch_parameters(changed) == fetch_parameters(entry)
    assert split_parameters(changed) == split_parameters(entry)


def test_a_split_setting_does_not_refetch_a_downloaded_dataset_but_resplits_it():
    changed = {**ML_20M, "seed": 1, "heldout_users": 5000, "expected_raw": {"rows": 1}}
    assert fetch_parameters(changed) == fetch_parameters(ML_20M)
    assert split_parameters(changed) != split_parameters(ML_20M)


def test_a_new_source_refetches_but_does_not_resplit():
    changed = {**ML_20M, "sources": [{"url": "file:///mirror/ml-20m.zip"}]}
    assert fetch_parameters(changed) != fetch_parameters(ML_20M)
    assert split_parameters(changed) == split_parameters(ML_20M)


def dataset_keys_of_schema() -> dict[str, set[str]]:
    """Keys a registry entry may have, from the schema: 'common' ones and those of each kind's branch."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    dataset = schema["$defs"]["dataset"]
    keys = {"common": set(dataset["properties"]) | set(schema["$defs"]["preprocessing"]["properties"])}
    for part in dataset["allOf"]:
        if "if" in part:  # a branch of some kinds, or of any kind (e.g. of a protocol)
            kind = part["if"].get("properties", {}).get("kind")
            group = "|".join(kind.get("enum", [kind.get("const")])) if kind else "common"
            keys[group] = keys.get(group, set()) | branch_keys(part["then"])
    return keys


def branch_keys(branch: dict) -> set[str]:
    """Property names of a kind's branch, with those of its nested ``if``/``then`` parts (e.g. the
    settings of one custom format)."""
    nested = [part["then"] for part in branch.get("allOf", []) if "then" in part]
    return set(branch.get("properties", {})).union(*map(branch_keys, nested))


def test_every_key_of_a_registry_entry_is_classified():
    """A new key in the schema must be added to FETCH_KEYS, SPLIT_KEYS or NOT_DATA_KEYS (this test
    fails until it is), so that no step silently stops seeing a setting it reads."""
    keys = dataset_keys_of_schema()
    fetch = set(DOWNLOAD_KEYS).union(*FETCH_KEYS.values())
    assert keys["common"] <= fetch | set(SPLIT_KEYS) | NOT_DATA_KEYS
    for kinds, branch in keys.items():
        if kinds == "common":
            continue
        for kind in kinds.split("|"):
            fetched = set(FETCH_KEYS.get(kind, DOWNLOAD_KEYS))
            assert branch <= fetched | set(SPLIT_KEYS), (kind, branch - fetched - set(SPLIT_KEYS))
            assert "kind" in fetched


def test_every_dataset_of_the_default_config_keeps_its_keys_between_fetch_split_and_the_rest():
    config = load_config(REPO / "config.yaml")
    for name, entry in config["datasets"].items():
        used = set(fetch_parameters(entry)) | set(split_parameters(entry)) | (set(entry) & NOT_DATA_KEYS)
        assert used == set(entry), (name, set(entry) - used)


def test_a_training_run_gets_its_own_variant_only():
    config = {
        "training": {
            "models": {
                "mf": {
                    "params": {"n_factors": 16},
                    "grid": {"r_p": [1, 10]},
                    "variants": {"baseline": {"init": "random"}, "implicit_slim": {"init": "implicit_slim"}},
                }
            }
        },
        "datasets": {"d": {"kind": "synthetic", "training": {"models": {"mf": {"variants": {"implicit_slim": {"lam": 5}}}}}}},
    }
    assert training_variant(config, "d", "mf", "baseline") == {
        "params": {"n_factors": 16},
        "grid": {"r_p": [1, 10]},
        "variants": {"baseline": {"init": "random"}},
    }
    assert training_variant(config, "d", "mf", "implicit_slim")["variants"] == {"implicit_slim": {"init": "implicit_slim", "lam": 5}}


def test_a_grid_point_job_gets_its_point_and_seed_only():
    run = {"params": {"n_factors": 16}, "grid": {"r_p": [1, 10], "r_q": [0.5]}, "variants": {"baseline": {"init": "random"}}}
    assert run_point_names(run["grid"], run_seeds([0, 1], stochastic=True)) == ["p0.s0", "p0.s1", "p1.s0", "p1.s1"]
    assert run_point_names(run["grid"], run_seeds([0, 1], stochastic=False)) == ["p0", "p1"]
    assert run_point_names({}, [None]) == ["p0"]  # no grid: one point with the settings as given
    assert point_settings(run, "baseline", "p1.s0") == {
        "point": {"r_p": 10, "r_q": 0.5},
        "seed": 0,
        "settings": {"n_factors": 16, "init": "random", "r_p": 10, "r_q": 0.5, "seed": 0},
    }
    assert point_settings(run, "baseline", "p0")["settings"] == {"n_factors": 16, "init": "random", "r_p": 1, "r_q": 0.5}


@pytest.mark.parametrize(("name", "message"), [("p2", "has 2 point"), ("p01", "not a grid point name"), ("q0", "not a grid point name")])
def test_a_grid_point_that_does_not_exist_is_refused(name, message):
    run = {"params": {}, "grid": {"r_p": [1, 10]}, "variants": {"baseline": {}}}
    with pytest.raises(ConfigError, match=message):
        point_settings(run, "baseline", name)


def test_an_ablation_cell_gets_the_grids_of_its_own_arms_only():
    ablations = {
        "neighbourhood": {"all": {}, "knn": {"k": [20, 50]}},
        "first_step": {"ease": {"lam": [100]}, "lle": None, "cooccurrence": {}},
        "second_step": {"implicit": {"alpha": [1.0]}, "explicit": {}},
    }
    assert ablation_cell_grids(ablations, {"neighbourhood": "knn", "first_step": "ease", "second_step": "explicit"}) == {
        "neighbourhood": {"knn": {"k": [20, 50]}},
        "first_step": {"ease": {"lam": [100]}},
        "second_step": {"explicit": {}},
    }


PLANNED = re.compile(r"^(?:local)?rule (\w+):$", re.MULTILINE)


@pytest.mark.workflow
def test_changing_a_datasets_ease_grid_reruns_ease_but_not_its_fetch_or_split(tmp_path):
    """A real fetch -> split -> ease on the tiny synthetic dataset, then dry runs after changing
    settings in its registry entry."""
    target = "results/synthetic-tiny/runs/ease.json"
    entry = {"kind": "synthetic", "n_users": 600, "n_items": 300, "n_interactions": 15000, "heldout_users": 50, "seed": 7}

    def configure(**changes):
        return write_tiny_config(tmp_path, {"run_datasets": ["synthetic-tiny"], "datasets": {"synthetic-tiny": {**entry, **changes}}})

    result = snakemake(tmp_path, "--cores", "2", target, configfile=configure())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    result = snakemake(tmp_path, "--dry-run", target, configfile=configure(ease={"lambda_grid": [50, 100]}))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(PLANNED.findall(result.stdout)) == ["ease", "ease_point", "ease_point"]  # each changed lambda, then the selection
    assert "params changed" in result.stdout.lower() or "params have changed" in result.stdout.lower()

    for change in ({"description": "renamed"}, {"training": {"models": {"mf": {"params": {"n_factors": 8}}}}}):
        result = snakemake(tmp_path, "--dry-run", target, configfile=configure(**change))
        assert result.returncode == 0, result.stderr[-3000:]
        assert PLANNED.findall(result.stdout) == [], change
