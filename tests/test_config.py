"""The configuration schema, the repository's ``config.yaml`` and the dataset registry."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate as snakemake_validate

from islim.config import SCHEMA_PATH, dataset_entry, deep_merge, ease_settings, load_config, validate_config
from islim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG_PATH = REPO / "config.yaml"
#: The entries that read the development data beside this checkout (../shared/data).
SHARED_DATA_CONFIG = REPO / "tests" / "configs" / "shared-data.yaml"
PROTOCOL = REPO.parent / "shared" / "spec" / "protocol.md"
REAL_DATASETS = ("ml-20m", "netflix", "msd", "ml-1m", "ml-100k", "ml-latest-small")
DIGEST_KEYS = ("sha256", "md5", "member_sha256", "member_md5")

#: Liang et al. Table 1, as quoted in protocol §2 (users, items, interactions; H per held-out part).
PUBLISHED = {
    "ml-20m": ({"users": 136_677, "items": 20_108, "interactions": 9_990_682}, 10_000),
    "netflix": ({"users": 463_435, "items": 17_769, "interactions": 56_880_037}, 40_000),
    "msd": ({"users": 571_355, "items": 41_140, "interactions": 33_633_450}, 50_000),
}


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config(CONFIG_PATH)


def minimal_config() -> dict:
    return {
        "run_datasets": ["d"],
        "datasets": {
            "d": {
                "kind": "movielens-csv",
                "sources": [{"url": "https://example.org/d.zip", "sha256": "a" * 64}],
                "threshold": 3.5,
                "heldout_users": 10,
            }
        },
    }


# --- the repository's configuration -------------------------------------------------------------


def test_repository_config_validates_with_load_config(config):
    assert config["run_datasets"] and set(config["run_datasets"]) <= set(config["datasets"])


def test_repository_config_validates_with_snakemake():
    raw = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    snakemake_validate(raw, str(SCHEMA_PATH))


def test_snakemake_rejects_what_load_config_rejects():
    bad = minimal_config() | {"colour": "red"}
    with pytest.raises(WorkflowError):
        snakemake_validate(bad, str(SCHEMA_PATH))
    with pytest.raises(ConfigError):
        validate_config(bad)


def test_schema_defaults_are_filled(config):
    ml100k = config["datasets"]["ml-100k"]
    assert ml100k["seed"] == 98765 and ml100k["target_fraction"] == 0.2
    assert ml100k["min_item_users"] == 0 and ml100k["min_heldout_interactions"] == 5
    shared = load_config(CONFIG_PATH, [SHARED_DATA_CONFIG])["datasets"]
    assert shared["lastfm-2k"]["header"] is True and shared["lastfm-2k"]["rating_col"] == "weight"
    assert shared["citeulike-a"]["leading_count"] is True and "header" not in shared["citeulike-a"]  # no columns to name
    synthetic = config["datasets"]["synthetic-small"]
    assert (synthetic["rank"], synthetic["taste_strength"], synthetic["threshold"]) == (16, 2.0, None)
    assert "rank" not in ml100k  # defaults of another kind's branch are not filled
    filled = validate_config(minimal_config())
    assert filled["threads"] == 2 and filled["eval_batch_size"] == 2000 and filled["data_mirror"] is None
    assert filled["ease"] == {"lambda_grid": [100, 200, 500, 1000], "dtype": "float32"}
    assert filled["datasets"]["d"]["min_user_interactions"] == 5


def test_validation_does_not_modify_its_argument():
    original = minimal_config()
    validate_config(original)
    assert original == minimal_config()


def test_every_dataset_of_the_repository_config_can_be_obtained_by_a_user(config):
    """No entry reads a local file: in a user's clone only downloaded and generated data exist (the
    development data's entries are in tests/configs/shared-data.yaml)."""
    local = [name for name, entry in config["datasets"].items() if "path" in entry]
    assert not local, f"{local} read local files; move them to {SHARED_DATA_CONFIG.name}"


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_every_real_dataset_has_verifiable_sources(config, name):
    entry = config["datasets"][name]
    assert entry["sources"]
    for source in entry["sources"]:
        assert any(key in source for key in DIGEST_KEYS) or "expect_lines" in source, f"{name}: {source} cannot be verified"


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_registry_digests_are_those_of_the_protocol(config, name):
    if not PROTOCOL.is_file():
        pytest.skip(f"{PROTOCOL} is not available")
    text = PROTOCOL.read_text(encoding="utf-8")
    for source in config["datasets"][name]["sources"]:
        for key in DIGEST_KEYS:
            if key in source:
                assert source[key] in text, f"{name}: {key} {source[key]} is not the protocol's"


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_paper_datasets_expect_the_published_sizes(config, name):
    expected, heldout = PUBLISHED[name]
    entry = config["datasets"][name]
    assert entry["expected"] == expected
    assert entry["heldout_users"] == heldout


def test_paper_dataset_preprocessing_follows_the_protocol(config):
    for name in ("ml-20m", "netflix"):
        entry = config["datasets"][name]
        assert (entry["threshold"], entry["min_item_users"], entry["min_user_interactions"]) == (3.5, 0, 5)
    msd = config["datasets"]["msd"]
    assert (msd["threshold"], msd["min_item_users"], msd["min_user_interactions"]) == (None, 200, 20)
    assert msd["expected_raw"] == {"rows": 48_373_586, "users": 1_019_318, "items": 384_546}
    assert config["datasets"]["ml-20m"]["expected_raw"] == {"rows": 20_000_263}
    assert config["datasets"]["ml-latest-small"]["expected_raw"] == {"rows": 100_836, "users": 610, "items": 9_724}


# --- invalid configurations ---------------------------------------------------------------------


def _unknown_kind(c):
    c["datasets"]["d"]["kind"] = "movielens-xls"


def _no_heldout(c):
    del c["datasets"]["d"]["heldout_users"]


def _heldout_too_large(c):
    c["datasets"]["d"]["heldout_users"] = 0.7


def _custom_without_user_col(c):
    c["datasets"]["mine"] = {"kind": "custom", "path": "mine.csv", "item_col": "item", "heldout_users": 0.1}


def _malformed_sha256(c):
    c["datasets"]["d"]["sources"][0]["sha256"] = "abc123"


def _unknown_run_dataset(c):
    c["run_datasets"] = ["d", "ml-30m"]


def _unknown_top_level_key(c):
    c["colour"] = "red"


def _source_without_location(c):
    del c["datasets"]["d"]["sources"][0]["url"]


def _synthetic_without_size(c):
    c["datasets"]["s"] = {"kind": "synthetic", "n_users": 10, "n_items": 10, "heldout_users": 1}


@pytest.mark.parametrize(
    "mutate, names",
    [
        (_unknown_kind, ["datasets/d/kind", "movielens-xls"]),
        (_no_heldout, ["datasets/d", "'heldout_users' is a required property"]),
        (_heldout_too_large, ["datasets/d/heldout_users", "0.7"]),
        (_custom_without_user_col, ["datasets/mine", "'user_col' is a required property"]),
        (_malformed_sha256, ["datasets/d/sources/0/sha256", "abc123"]),
        (_unknown_run_dataset, ["run_datasets", "ml-30m"]),
        (_unknown_top_level_key, ["<top level>", "colour"]),
        (_source_without_location, ["datasets/d/sources/0"]),
        (_synthetic_without_size, ["datasets/s", "'n_interactions' is a required property"]),
    ],
)
def test_invalid_configs_raise_config_error_naming_the_key(mutate, names):
    config = minimal_config()
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    for name in names:
        assert name in str(caught.value)


# --- merging and loading -------------------------------------------------------------------------


def test_deep_merge_merges_mappings_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "lst": [1, 2, 3], "s": "keep", "n": 5}
    update = {"a": {"y": {"q": 20, "r": 30}, "z": 3}, "lst": [9], "n": None, "new": {"k": 1}}
    before_base, before_update = copy.deepcopy(base), copy.deepcopy(update)
    merged = deep_merge(base, update)
    assert merged == {"a": {"x": 1, "y": {"p": 1, "q": 20, "r": 30}, "z": 3}, "lst": [9], "s": "keep", "n": None, "new": {"k": 1}}
    assert base == before_base and update == before_update
    merged["new"]["k"] = 2
    assert update["new"]["k"] == 1  # no shared nested objects


def test_a_mapping_replaces_a_scalar_and_a_scalar_replaces_a_mapping():
    assert deep_merge({"a": 1, "b": {"c": 1}}, {"a": {"x": 1}, "b": 2}) == {"a": {"x": 1}, "b": 2}


def test_load_config_applies_override_files_in_order(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text("run_datasets: [ml-latest-small]\nease: {lambda_grid: [7]}\n")
    second = tmp_path / "second.yaml"
    second.write_text("ease: {dtype: float64}\ndatasets: {ml-latest-small: {heldout_users: 30}}\n")
    config = load_config(CONFIG_PATH, [first, second])
    assert config["run_datasets"] == ["ml-latest-small"]
    assert config["ease"] == {"lambda_grid": [7], "dtype": "float64"}
    entry = dataset_entry(config, "ml-latest-small")
    assert entry["heldout_users"] == 30 and entry["threshold"] == 3.5 and entry["kind"] == "movielens-csv"


@pytest.mark.parametrize(
    "content, message", [(None, "does not exist"), ("a: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "mapping at the top level")]
)
def test_unreadable_config_files_raise(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_ease_settings_apply_the_dataset_override(config):
    assert ease_settings(config, "ml-20m") == {"lambda_grid": [500], "dtype": config["ease"]["dtype"]}
    assert ease_settings(config, "ml-100k") == config["ease"]


def test_unknown_dataset_entry_raises(config):
    with pytest.raises(ConfigError, match="'ml-30m' is not in the registry"):
        dataset_entry(config, "ml-30m")
