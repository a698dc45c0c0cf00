"""The per-user hold-out ("weak") protocol: the split against independent pandas computations, the
LightGCN-format dataset kind end to end on files written here, its metrics against a brute-force
loop, and the config checks that refuse impossible model × protocol combinations.

Real data: ml-latest-small (threshold 3.5, ≥ 5 interactions) split per user.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from islim import pipeline
from islim.catalog import check_registered_names
from islim.config import protocol_of, training_models, validate_config
from islim.data.peruser import prepare_per_user, split_per_user, split_published
from islim.data.split import PARTS, load_split, save_split, split_stats
from islim.errors import ConfigError, DataFormatError, IntegrityError
from islim.evaluate import evaluate, evaluate_split, evaluate_split_users, protocol_metrics, split_validator
from islim.metrics import metric_list
from islim.models import registry
from tests.test_split import matrix_pairs, reference_filtered, sorted_pairs

ENTRY = {"kind": "movielens-csv", "protocol": "weak", "threshold": 3.5, "min_user_interactions": 5, "seed": 4}


# --- independent reference computations ------------------------------------------------------


def reference_drop(filtered: pd.DataFrame, test_fraction: float = 0.2, validation_fraction: float = 0.2) -> tuple[set, set]:
    """Kept and dropped users by the documented rule, written out per user."""
    kept, dropped = set(), set()
    for user, n in filtered.groupby("user").size().items():
        n_test = math.floor(test_fraction * n + 1e-9)
        n_validation = math.floor(validation_fraction * (n - n_test) + 1e-9)
        (kept if n_test >= 1 and n_validation >= 1 else dropped).add(user)
    return kept, dropped


def pairs(split, part: str) -> pd.DataFrame:
    return matrix_pairs(getattr(split, part), split.user_ids["train"], split.item_ids)


@pytest.fixture(scope="module")
def ml_small_weak(ml_small_frame):
    return prepare_per_user(ml_small_frame, ENTRY, "ml-latest-small-weak")


@pytest.fixture(scope="module")
def ml_small_filtered(ml_small_frame) -> pd.DataFrame:
    return reference_filtered(ml_small_frame, 3.5, 5)


# --- the split --------------------------------------------------------------------------------


def test_weak_split_parts_partition_each_kept_users_interactions(ml_small_weak, ml_small_filtered):
    split = ml_small_weak
    kept, dropped = reference_drop(ml_small_filtered)
    assert dropped and set(split.user_ids["train"].tolist()) == kept and split.n_dropped_users == len(dropped)
    for group in ("train", "validation", "test"):
        np.testing.assert_array_equal(split.user_ids[group], np.sort(list(kept)))
    rows = ml_small_filtered[ml_small_filtered["user"].isin(kept)]
    np.testing.assert_array_equal(split.item_ids, np.sort(rows["item"].unique()))
    train, validation, test = pairs(split, "train"), pairs(split, "validation_te"), pairs(split, "test_te")
    everything = pd.concat([train, validation, test])
    assert not everything.duplicated().any(), "a pair is in two parts"
    np.testing.assert_array_equal(sorted_pairs(everything), sorted_pairs(rows))
    # Every test interaction is absent from what the model trains on and from the validation targets.
    assert pd.merge(test, pd.concat([train, validation])).empty
    # The documented layout: validation_tr = train; test_tr = train + validation.
    assert (split.validation_tr != split.train).nnz == 0
    assert (split.test_tr != split.train + split.validation_te).nnz == 0
    for part in PARTS:
        matrix = getattr(split, part)
        assert matrix.shape == (len(kept), len(split.item_ids)) and matrix.dtype == np.float32 and matrix.has_canonical_format


def test_weak_split_takes_the_documented_fraction_of_each_user(ml_small_weak):
    split = ml_small_weak
    n = np.diff(split.test_tr.indptr) + np.diff(split.test_te.indptr)
    n_test = np.diff(split.test_te.indptr)
    np.testing.assert_array_equal(n_test, np.floor(0.2 * n + 1e-9).astype(int))
    np.testing.assert_array_equal(np.diff(split.validation_te.indptr), np.floor(0.2 * (n - n_test) + 1e-9).astype(int))
    assert (n_test >= 1).all() and (np.diff(split.validation_te.indptr) >= 1).all() and (np.diff(split.train.indptr) >= 1).all()


def test_weak_split_is_deterministic_for_a_seed_and_random_across_seeds(ml_small_filtered):
    first, again = split_per_user(ml_small_filtered, seed=3), split_per_user(ml_small_filtered, seed=3)
    other = split_per_user(ml_small_filtered, seed=5)
    for part in PARTS:
        assert (getattr(first, part) != getattr(again, part)).nnz == 0
    assert (first.test_te != other.test_te).nnz > 0
    assert first.test_te.nnz == other.test_te.nnz  # the sizes depend on the counts only


def test_custom_fractions_and_the_drop_rule_on_a_hand_made_frame():
    """Users with 2, 4, 5 and 10 interactions, test 0.5 and validation 0.25: n_test = 1, 2, 2, 5 and
    n_validation = floor(0.25 x (1, 2, 3, 5)) = 0, 0, 0, 1: only the 10-interaction user is kept."""
    frame = pd.DataFrame(
        {"user": np.repeat(["a", "b", "c", "d"], [2, 4, 5, 10]), "item": [f"i{k}" for k in (*range(2), *range(4), *range(5), *range(10))]}
    )
    split = split_per_user(frame, seed=0, test_fraction=0.5, validation_fraction=0.25)
    assert split.user_ids["test"].tolist() == ["d"] and split.n_dropped_users == 3
    assert (split.test_te.nnz, split.validation_te.nnz, split.train.nnz) == (5, 1, 4)
    with pytest.raises(DataFormatError, match="none of the 3 users has enough interactions"):
        split_per_user(frame[frame["user"] != "d"], seed=0, test_fraction=0.5, validation_fraction=0.25)


def test_weak_split_saves_and_loads_with_its_protocol(ml_small_weak, tmp_path):
    save_split(ml_small_weak, tmp_path)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["protocol"] == "weak" and stats["dropped_users"] == ml_small_weak.n_dropped_users
    n_users = ml_small_weak.train.shape[0]
    assert stats["users"] == {"train": n_users, "validation": n_users, "test": n_users, "total": n_users}
    assert stats["evaluated_users"] == {"validation": n_users, "test": n_users}
    users = pd.read_csv(tmp_path / "users.csv")
    assert (users.groupby("group")["row"].apply(list) == [list(range(n_users))] * 3).all()
    loaded = load_split(tmp_path)
    assert loaded.protocol == "weak" and loaded.n_dropped_users == ml_small_weak.n_dropped_users
    fold_in, target, user_ids = loaded.held_out("test")
    assert (fold_in != ml_small_weak.test_tr).nnz == 0 and (target != ml_small_weak.test_te).nnz == 0
    np.testing.assert_array_equal(user_ids, np.arange(n_users))


def test_the_strong_split_gives_no_user_ids(ml_small_split):
    assert ml_small_split.protocol == "strong" and ml_small_split.held_out("validation")[2] is None
    assert split_stats(ml_small_split)["protocol"] == "strong"


# --- the LightGCN-format dataset kind ------------------------------------------------------------


def write_lightgcn(path, rows: dict[int, list[int]]) -> None:
    path.write_text("".join(f"{user} {' '.join(map(str, items))}\n" for user, items in rows.items()), encoding="utf-8")


TRAIN = {0: [0, 1, 2, 3, 4], 1: [2, 5, 6, 7, 8, 9, 3, 1, 0, 4], 2: [1, 3], 3: [6, 7, 8, 9, 0]}
TEST = {0: [5, 6], 1: [11], 2: [0], 3: [10, 1, 2]}  # item 11 only in test: 12 items; users 0..3


@pytest.fixture
def lightgcn_files(tmp_path):
    write_lightgcn(tmp_path / "train.txt", TRAIN)
    write_lightgcn(tmp_path / "test.txt", TEST)
    return tmp_path / "train.txt", tmp_path / "test.txt"


def lightgcn_entry(train, test, **extra) -> dict:
    return {"kind": "lightgcn", "train": {"path": str(train)}, "test": {"path": str(test)}, **extra}


def dense(rows: dict[int, list[int]], shape) -> np.ndarray:
    matrix = np.zeros(shape, dtype=np.float32)
    for user, items in rows.items():
        matrix[user, items] = 1.0
    return matrix


def test_a_lightgcn_dataset_keeps_its_test_split_and_carves_validation_from_train(lightgcn_files, tmp_path):
    train_path, test_path = lightgcn_files
    entry = lightgcn_entry(train_path, test_path, expected={"users": 4, "items": 12, "interactions": 22 + 7})
    assert protocol_of(entry) == "weak"
    manifest = pipeline.fetch("toy", pipeline.fetch_parameters(entry), tmp_path / "raw", progress=False)
    assert set(manifest["files"]) == {"train", "test"} and manifest["files"]["test"]["sha256"] == pipeline.sha256_of(test_path)
    stats = pipeline.prepare("toy", pipeline.split_parameters(entry), tmp_path / "raw" / "manifest.json", tmp_path / "processed")
    assert stats["protocol"] == "weak" and stats["dropped_users"] == 0
    split = load_split(tmp_path / "processed")
    shape = (4, 12)
    np.testing.assert_array_equal(split.test_te.toarray(), dense(TEST, shape))
    np.testing.assert_array_equal(split.test_tr.toarray(), dense(TRAIN, shape))  # all of train.txt is excluded at test
    train, validation = split.train.toarray(), split.validation_te.toarray()
    np.testing.assert_array_equal(train + validation, dense(TRAIN, shape))
    assert ((train > 0) & (validation > 0)).sum() == 0
    np.testing.assert_array_equal(validation.sum(axis=1), [1, 2, 0, 1])  # floor(0.2 n) of 5, 10, 2, 5
    np.testing.assert_array_equal(split.validation_tr.toarray(), train)
    assert stats["evaluated_users"] == {"validation": 3, "test": 4}


def test_a_lightgcn_dataset_checks_its_published_sizes(lightgcn_files, tmp_path):
    train_path, test_path = lightgcn_files
    entry = lightgcn_entry(train_path, test_path, expected={"users": 4, "items": 13, "interactions": 30})
    pipeline.fetch("toy", pipeline.fetch_parameters(entry), tmp_path / "raw", progress=False)
    with pytest.raises(IntegrityError, match="items: expected 13, found 12; interactions: expected 30, found 29"):
        pipeline.prepare("toy", entry, tmp_path / "raw" / "manifest.json", tmp_path / "processed")


def test_a_lightgcn_file_edited_since_it_was_fetched_is_refused(lightgcn_files, tmp_path):
    train_path, test_path = lightgcn_files
    entry = lightgcn_entry(train_path, test_path)
    pipeline.fetch("toy", entry, tmp_path / "raw", progress=False)
    write_lightgcn(test_path, {**TEST, 2: [4]})
    with pytest.raises(IntegrityError, match="test.txt is missing or changed since it was fetched"):
        pipeline.prepare("toy", entry, tmp_path / "raw" / "manifest.json", tmp_path / "processed")
    assert pipeline.local_files(entry) == [str(train_path), str(test_path)]


def test_lightgcn_files_download_pin_the_unpinned_train_file_and_come_from_a_mirror_by_name(lightgcn_files, tmp_path):
    train_path, test_path = lightgcn_files
    entry = {
        "kind": "lightgcn",
        "train": {"url": train_path.as_uri(), "filename": "toy-train.txt"},
        "test": {"url": (tmp_path / "gone" / "test.txt").as_uri(), "filename": "toy-test.txt", "sha256": pipeline.sha256_of(test_path)},
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy-test.txt").write_bytes(test_path.read_bytes())
    manifest = pipeline.fetch("toy", entry, tmp_path / "raw", mirror=str(mirror), progress=False)
    raw = tmp_path / "raw"
    assert (raw / "toy-train.txt.sha256").read_text().split()[0] == pipeline.sha256_of(train_path)
    assert not (raw / "toy-test.txt.sha256").exists()
    assert manifest["files"]["test"]["file"] == str((raw / "toy-test.txt").resolve())


def test_malformed_lightgcn_lines_are_refused_naming_the_line(lightgcn_files, tmp_path):
    train_path, test_path = lightgcn_files
    train_path.write_text("0 1 2\n1 3 x\n", encoding="utf-8")
    entry = lightgcn_entry(train_path, test_path)
    pipeline.fetch("toy", entry, tmp_path / "raw", progress=False)
    with pytest.raises(DataFormatError, match=r"train.txt, line 2: the item id 'x' is not a non-negative integer"):
        pipeline.prepare("toy", entry, tmp_path / "raw" / "manifest.json", tmp_path / "processed")


# --- metrics of the protocol against brute force ----------------------------------------------


def test_weak_protocol_recall_and_ndcg_equal_a_brute_force_loop():
    """A known-users model (one score row per training user) on a published split: every item but
    the user's train.txt items is ranked; Recall@K = hits / |T|; NDCG@K over min(K, |T|)."""
    rng = np.random.default_rng(2)
    n_users, n_items = 60, 45
    full = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    test = full * (rng.random((n_users, n_items)) < 0.25)
    split = split_published(sp.csr_matrix(full - test), sp.csr_matrix(test), seed=1)
    user_scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float32)  # ties everywhere

    def score_batch(rows, users):
        return user_scores[users]

    metrics = protocol_metrics({"metrics": {"weak": {"names": ["recall@5", "ndcg@5", "recall@20", "ndcg@20"]}}}, "weak")
    result = evaluate(score_batch, *split.held_out("test")[:2], batch_size=7, user_ids=split.held_out("test")[2], metrics=metrics)
    known, targets = split.test_tr.toarray(), split.test_te.toarray()
    expected = {name: [] for name in ("recall@5", "ndcg@5", "recall@20", "ndcg@20")}
    for u in range(n_users):
        relevant = set(np.flatnonzero(targets[u]).tolist())
        if not relevant:
            continue
        candidates = [i for i in range(n_items) if not known[u, i]]
        ranking = sorted(candidates, key=lambda i: (-user_scores[u, i], i))
        for k in (5, 20):
            hits = [rank for rank, item in enumerate(ranking[:k]) if item in relevant]
            expected[f"recall@{k}"].append(len(hits) / len(relevant))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
            expected[f"ndcg@{k}"].append(sum(1 / math.log2(r + 2) for r in hits) / idcg)
    assert result["n_users"] == len(expected["recall@5"])
    for name, values in expected.items():
        assert result[name] == pytest.approx(np.mean(values), rel=1e-12), name
    # The selection metric of the protocol is evaluated although not listed.
    assert [metric.name for metric in metrics][-1] == "ndcg@20" and len(metrics) == 4


def test_split_evaluation_passes_user_rows_under_weak_and_none_under_strong(ml_small_weak, ml_small_split):
    """A known-users model needs the rows of its users; a fold-in model is called without them."""
    rng = np.random.default_rng(0)
    user_scores = rng.random(ml_small_weak.train.shape, dtype=np.float32)
    metrics = metric_list(["recall@20", "ndcg@20", "coverage@20", "arp@20"], recall="lightgcn")

    def known_users(rows, users):
        return user_scores[users]

    fold_in, target, users = ml_small_weak.held_out("test")
    popularity = np.asarray(ml_small_weak.train.sum(axis=0)).ravel()
    direct = evaluate(known_users, fold_in, target, 500, users, metrics, popularity)
    assert evaluate_split(known_users, ml_small_weak, "test", metrics, batch_size=500) == direct
    assert set(direct) == {"n_users", "recall@20", "recall@20_se", "ndcg@20", "ndcg@20_se", "coverage@20", "arp@20", "arp@20_se"}
    per_user, set_level = evaluate_split_users(known_users, ml_small_weak, "validation", metrics)
    assert len(per_user["user"]) == ml_small_weak.train.shape[0] and set(set_level) == {"coverage@20"}

    class Model:
        @staticmethod
        def score_batch(rows):  # a fold-in model's signature: no user rows under strong
            return np.asarray(rows.sum(axis=0)).repeat(rows.shape[0], axis=0) + 0.0

    values = split_validator(ml_small_split, metrics)(Model())
    assert list(values) == ["recall@20", "ndcg@20", "coverage@20", "arp@20"]


# --- config checks -------------------------------------------------------------------------------


@pytest.fixture
def base_config() -> dict:
    config = yaml.safe_load(open(pipeline.__file__.replace("islim/pipeline.py", "config.yaml"), encoding="utf-8"))
    config["training"] = {"activate": True, "models": {"mf": {"variants": {"baseline": {}}}}}
    config["datasets"]["toy"] = lightgcn_entry("train.txt", "test.txt")
    return config


@pytest.fixture
def registry_protocols(monkeypatch):
    """EASE and MF on both protocols, ItemKNN on ``weak`` only, popularity and PLRec on ``strong``
    only, whatever the registry says now."""
    both, weak, strong = ("strong", "weak"), ("weak",), ("strong",)
    for name, protocols in (("ease", both), ("mf", both), ("itemknn", weak), ("popularity", strong), ("plrec", strong)):
        monkeypatch.setitem(registry.MODELS, name, dataclasses.replace(registry.MODELS[name], protocols=protocols))


def test_a_model_without_the_datasets_protocol_is_refused_when_the_config_is_checked(base_config, registry_protocols):
    config = copy.deepcopy(base_config)
    config["run_datasets"] = ["ml-100k", "toy"]
    check_registered_names(validate_config(config))
    config["training"]["models"]["itemknn"] = {"variants": {"baseline": {}}}
    with pytest.raises(
        ConfigError, match="dataset 'ml-100k' is evaluated under the 'strong' protocol, which model 'itemknn' does not support"
    ):
        check_registered_names(validate_config(config))
    config["run_datasets"] = ["toy"]
    check_registered_names(validate_config(config))
    config["datasets"]["toy"]["training"] = {"models": {"popularity": {"variants": {"baseline": {}}}}}
    with pytest.raises(ConfigError, match="dataset 'toy' is evaluated under the 'weak' protocol, which model 'popularity'"):
        check_registered_names(validate_config(config))


def test_a_dataset_switches_off_a_model_of_the_global_section_by_mapping_it_to_null(base_config, registry_protocols):
    config = copy.deepcopy(base_config)
    config["run_datasets"] = ["toy"]
    config["training"]["models"]["plrec"] = {"variants": {"baseline": {}}}
    with pytest.raises(ConfigError, match="dataset 'toy' is evaluated under the 'weak' protocol, which model 'plrec'"):
        check_registered_names(validate_config(config))
    config["datasets"]["toy"]["training"] = {"models": {"plrec": None, "mf": {"variants": {"implicit_slim": {}}}}}
    checked = validate_config(config)
    check_registered_names(checked)
    assert training_models(checked, "toy") == {"mf": {"variants": {"baseline": {}, "implicit_slim": {}}}}
    assert set(training_models(checked, "ml-100k")) == {"mf", "plrec"}  # other datasets keep it


@pytest.mark.parametrize(
    "metrics, message",
    [
        ({"strong": {"names": ["auc@10"]}}, "metrics.strong.names: metric 'auc@10': unknown family 'auc'"),
        ({"weak": {"select": "coverage@20"}}, "metrics.weak.select is coverage@20, which cannot select a model"),
        ({"weak": {"select": "arp@20"}}, "metrics.weak.select is arp@20, which cannot select a model"),
    ],
)
def test_unknown_or_unusable_metrics_are_refused_when_the_config_is_checked(base_config, metrics, message):
    config = copy.deepcopy(base_config) | {"metrics": metrics}
    with pytest.raises(ConfigError, match=message):
        check_registered_names(validate_config(config))


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"kind": "movielens-tsv", "protocol": "weak", "heldout_users": 3}, "'heldout_users' was unexpected"),
        ({"kind": "lightgcn", "train": {"path": "a"}, "test": {"path": "b"}, "threshold": 3}, "'threshold' was unexpected"),
        ({"kind": "lightgcn", "train": {"path": "a"}, "test": {"path": "b"}, "protocol": "strong"}, "'weak' was expected"),
        ({"kind": "lightgcn", "train": {"path": "a", "url": "https://x/t"}, "test": {"path": "b"}}, "'url' was unexpected"),
        ({"kind": "lightgcn", "train": {"path": "a"}}, "'test' is a required property"),
        ({"kind": "movielens-tsv"}, "'heldout_users' is a required property"),
    ],
)
def test_the_schema_refuses_settings_of_the_other_protocol(base_config, entry, message):
    config = copy.deepcopy(base_config)
    config["datasets"]["bad"] = {"sources": [{"url": "https://x/u.data"}], **entry} if entry["kind"] != "lightgcn" else entry
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_the_registry_entries_of_the_lightgcn_datasets(base_config):
    datasets = validate_config(base_config)["datasets"]
    commit = "947ca2b3b1d2d3545b114145710cb06c4e57b3d2"
    for name, users, items, interactions in (
        ("gowalla", 29858, 40981, 1027370),
        ("yelp2018", 31668, 38048, 1561406),
        ("amazon-book", 52643, 91599, 2984108),
    ):
        entry = datasets[name]
        assert protocol_of(entry) == "weak" and entry["expected"] == {"users": users, "items": items, "interactions": interactions}
        for role in ("train", "test"):
            assert entry[role]["url"] == f"https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/{commit}/data/{name}/{role}.txt"
        assert "sha256" not in entry["train"] and len(entry["test"]["sha256"]) == 64
