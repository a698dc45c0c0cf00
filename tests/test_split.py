"""The strong-generalisation split (protocol §2) against independent pandas computations.

Real data: ml-latest-small (threshold 3.5, ≥ 5 interactions, H = 60) and Last.fm 2K as a custom
triplets file (no threshold, ≥ 5 interactions, H = 10 % of the users).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from islim.data.readers import read_interactions
from islim.data.split import (
    PARTS,
    binarize_and_filter,
    check_expected,
    load_split,
    make_split,
    n_heldout,
    prepare,
    save_split,
    split_stats,
)
from islim.errors import ConfigError, DataFormatError, IntegrityError

GROUPS = ("train", "validation", "test")


# --- independent reference computations ------------------------------------------------------


def reference_filtered(raw: pd.DataFrame, threshold: float | None, min_user_interactions: int) -> pd.DataFrame:
    """Unique (user, item) pairs with rating > threshold, of users with enough such pairs."""
    kept = raw if threshold is None else raw[raw["rating"] > threshold]
    pairs = kept[["user", "item"]].drop_duplicates()
    activity = pairs.groupby("user")["item"].count()
    return pairs[pairs["user"].isin(activity.index[activity >= min_user_interactions])]


def matrix_pairs(matrix: sp.csr_matrix, user_ids: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
    """The non-zeros of ``matrix`` as raw (user, item) ids."""
    coo = matrix.tocoo()
    return pd.DataFrame({"user": user_ids[coo.row], "item": item_ids[coo.col]})


def sorted_pairs(frame: pd.DataFrame) -> np.ndarray:
    """(user, item) pairs as a lexicographically sorted ``(n, 2)`` array, for exact comparison."""
    pairs = frame[["user", "item"]].to_numpy()
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def assert_split_invariants(split, filtered: pd.DataFrame, n_heldout_users: int) -> None:
    """Every protocol invariant of ``split`` given the independently filtered pairs."""
    users = {group: split.user_ids[group] for group in GROUPS}
    # Users: each filtered user in exactly one group, H in validation and in test.
    all_users = np.concatenate(list(users.values()))
    assert len(np.unique(all_users)) == len(all_users)
    assert set(all_users.tolist()) == set(filtered["user"].unique().tolist())
    assert len(users["validation"]) == len(users["test"]) == n_heldout_users
    assert split.n_filtered_interactions == len(filtered)
    # Vocabulary: exactly the items of the training users, sorted.
    train_rows = filtered[filtered["user"].isin(users["train"])]
    np.testing.assert_array_equal(split.item_ids, np.sort(train_rows["item"].unique()))
    # Matrix format: float32 ones, one column per vocabulary item, canonical CSR, one row per user.
    for part in PARTS:
        matrix = getattr(split, part)
        assert sp.issparse(matrix) and matrix.format == "csr" and matrix.dtype == np.float32
        assert matrix.shape == (len(users[part.split("_")[0]]), len(split.item_ids))
        assert matrix.has_canonical_format
        np.testing.assert_array_equal(matrix.data, 1.0)
    # Training users keep every interaction.
    np.testing.assert_array_equal(sorted_pairs(matrix_pairs(split.train, users["train"], split.item_ids)), sorted_pairs(train_rows))
    for group in ("validation", "test"):
        assert_heldout_group(split, group, filtered)


def assert_heldout_group(split, group: str, filtered: pd.DataFrame) -> None:
    """Fold-in ∪ target = the user's in-vocabulary pairs; disjoint; |target| = floor(0.2 n) or 0 if n < 5."""
    ids = split.user_ids[group]
    fold_in = matrix_pairs(getattr(split, f"{group}_tr"), ids, split.item_ids)
    target = matrix_pairs(getattr(split, f"{group}_te"), ids, split.item_ids)
    rows = filtered[filtered["user"].isin(ids)]
    in_vocabulary = rows[rows["item"].isin(split.item_ids)]
    both = pd.concat([fold_in, target])
    assert not both.duplicated().any(), "fold-in and target overlap"
    np.testing.assert_array_equal(sorted_pairs(both), sorted_pairs(in_vocabulary))
    n = in_vocabulary.groupby("user").size().reindex(ids, fill_value=0).to_numpy()
    expected_target = np.where(n >= 5, n // 5, 0)
    np.testing.assert_array_equal(np.diff(getattr(split, f"{group}_te").indptr), expected_target)


def reference_stats_counts(split, filtered: pd.DataFrame) -> dict:
    return {
        "users": {group: len(split.user_ids[group]) for group in GROUPS} | {"total": filtered["user"].nunique()},
        "items": len(split.item_ids),
        "interactions": {part: getattr(split, part).nnz for part in PARTS} | {"filtered_before_vocabulary_cut": len(filtered)},
    }


@pytest.fixture(scope="module")
def ml_small_raw(ml_small_path) -> pd.DataFrame:
    raw = pd.read_csv(ml_small_path)
    return raw.rename(columns={"userId": "user", "movieId": "item"})[["user", "item", "rating"]]


@pytest.fixture(scope="module")
def ml_small_filtered(ml_small_raw) -> pd.DataFrame:
    return reference_filtered(ml_small_raw, 3.5, 5)


# --- ml-latest-small ----------------------------------------------------------------------------


def test_ml_small_split_satisfies_every_protocol_invariant(ml_small_split, ml_small_filtered):
    assert_split_invariants(ml_small_split, ml_small_filtered, 60)
    kept = sum(getattr(ml_small_split, part).nnz for part in PARTS)
    assert kept < len(ml_small_filtered), "the vocabulary cut should drop some held-out interactions here"


def test_ml_small_threshold_count_matches_the_shared_readme(ml_small_raw):
    """shared/data/README.md: 48,580 rows have rating > 3.5."""
    assert int((ml_small_raw["rating"] > 3.5).sum()) == 48_580


def test_ml_small_stats_equal_independent_counts(ml_small_split, ml_small_filtered):
    stats = split_stats(ml_small_split)
    expected = reference_stats_counts(ml_small_split, ml_small_filtered)
    assert stats["users"] == expected["users"]
    assert stats["items"] == expected["items"]
    assert stats["interactions"] == expected["interactions"]
    assert stats["users"]["train"] == expected["users"]["total"] - 120
    for group in ("validation", "test"):
        assert stats["evaluated_users"][group] == int((np.diff(getattr(ml_small_split, f"{group}_te").indptr) > 0).sum())
    assert stats["density"] == pytest.approx(ml_small_split.train.nnz / (stats["users"]["train"] * stats["items"]))


def test_saved_users_csv_puts_every_user_in_exactly_one_part(ml_small_split, ml_small_filtered, tmp_path):
    save_split(ml_small_split, tmp_path)
    users = pd.read_csv(tmp_path / "users.csv")
    assert not users["user_id"].duplicated().any()
    assert set(users["user_id"]) == set(ml_small_filtered["user"])
    assert users.groupby("group").size().to_dict() == {"train": len(set(ml_small_filtered["user"])) - 120, "validation": 60, "test": 60}


def test_save_and_load_split_round_trip(ml_small_split, tmp_path):
    save_split(ml_small_split, tmp_path / "split")
    loaded = load_split(tmp_path / "split")
    for part in PARTS:
        original, restored = getattr(ml_small_split, part), getattr(loaded, part)
        assert restored.format == "csr" and restored.dtype == np.float32 and restored.shape == original.shape
        assert (restored != original).nnz == 0
    for group in GROUPS:
        np.testing.assert_array_equal(loaded.user_ids[group], ml_small_split.user_ids[group])
    np.testing.assert_array_equal(loaded.item_ids, ml_small_split.item_ids)
    assert loaded.n_filtered_interactions == ml_small_split.n_filtered_interactions
    assert split_stats(loaded) == split_stats(ml_small_split)


def test_text_ids_round_trip_without_type_guessing(tmp_path):
    """Ids that a CSV reader would turn into numbers or missing values ("007", "NA") come back as
    written; all-integer ids come back as integers."""
    frame = pd.DataFrame(
        {
            "user": np.repeat(["007", "NA", "7", "u4", "u5", "u6"], 6),
            "item": np.tile(["01", "1", "null", "x", "y", "z"], 6),
        }
    )
    split = make_split(frame, heldout_users=1, seed=0, min_heldout_interactions=1)
    save_split(split, tmp_path)
    loaded = load_split(tmp_path)
    for group in GROUPS:
        assert loaded.user_ids[group].tolist() == split.user_ids[group].tolist()
    assert loaded.item_ids.tolist() == split.item_ids.tolist()
    assert sorted(np.concatenate(list(loaded.user_ids.values())).tolist()) == ["007", "7", "NA", "u4", "u5", "u6"]
    integers = pd.DataFrame({"user": np.repeat([10, 20, 30, 40], 6), "item": np.tile([5, 6, 7, 8, 9, 11], 4)})
    save_split(make_split(integers, heldout_users=1, seed=0, min_heldout_interactions=1), tmp_path / "integers")
    assert load_split(tmp_path / "integers").item_ids.dtype == np.int64


def test_load_split_of_an_incomplete_directory_raises(ml_small_split, tmp_path):
    save_split(ml_small_split, tmp_path)
    (tmp_path / "test_te.npz").unlink()
    with pytest.raises(DataFormatError, match="incomplete split"):
        load_split(tmp_path)


def test_split_is_deterministic_for_a_seed_and_changes_with_it(ml_small_frame):
    filtered = binarize_and_filter(ml_small_frame, 3.5, 0, 5)
    first, second = make_split(filtered, 60, seed=98765), make_split(filtered, 60, seed=98765)
    for part in PARTS:
        assert (getattr(first, part) != getattr(second, part)).nnz == 0
    for group in GROUPS:
        np.testing.assert_array_equal(first.user_ids[group], second.user_ids[group])
    other = make_split(filtered, 60, seed=1)
    assert set(other.user_ids["test"]) != set(first.user_ids["test"])


def test_check_expected_passes_on_the_true_sizes_and_names_a_mismatch(ml_small_split):
    stats = split_stats(ml_small_split)
    true = {
        "users": stats["users"]["total"],
        "items": stats["items"],
        "interactions": stats["interactions"]["filtered_before_vocabulary_cut"],
    }
    check_expected(stats, true, "ml-latest-small")
    wrong = true | {"items": true["items"] + 1}
    with pytest.raises(IntegrityError, match=rf"ml-latest-small: .*items: expected {true['items'] + 1:,}, found {true['items']:,}"):
        check_expected(stats, wrong, "ml-latest-small")


def test_prepare_checks_the_expected_sizes(ml_small_frame, ml_small_split, ml_small_entry):
    users = len(np.concatenate(list(ml_small_split.user_ids.values())))
    with pytest.raises(IntegrityError, match=rf"users: expected {users + 1:,}, found {users:,}"):
        prepare(ml_small_frame, ml_small_entry | {"expected": {"users": users + 1}}, "ml-latest-small")


# --- Last.fm 2K as a custom triplets dataset -------------------------------------------------------


def test_lastfm_raw_counts_match_the_published_ones(lastfm_path, lastfm_entry):
    """shared/data/README.md: 92,834 rows, 1,892 users, 17,632 artists (checked by the reader too)."""
    frame = read_interactions(lastfm_path, lastfm_entry | {"expected_raw": {"rows": 92_834, "users": 1_892, "items": 17_632}})
    assert len(frame) == 92_834 and frame["user"].nunique() == 1_892 and frame["item"].nunique() == 17_632


def test_lastfm_split_satisfies_every_protocol_invariant(lastfm_path, lastfm_split):
    # A custom file's ids are labels: their text.
    raw = pd.read_csv(lastfm_path, sep="\t", dtype={"userID": str, "artistID": str})
    raw = raw.rename(columns={"userID": "user", "artistID": "item", "weight": "rating"})
    filtered = reference_filtered(raw, None, 5)
    assert_split_invariants(lastfm_split, filtered, round(0.1 * filtered["user"].nunique()))
    assert sum(getattr(lastfm_split, part).nnz for part in PARTS) < len(filtered)


# --- small hand-made frames ---------------------------------------------------------------------


def frame_of(pairs, ratings=None) -> pd.DataFrame:
    users, items = zip(*pairs)
    return pd.DataFrame({"user": users, "item": items, "rating": ratings if ratings is not None else [1.0] * len(pairs)})


def test_item_filter_comes_before_the_user_filter_one_pass_each():
    """u1 {a, b}, u2 {a, c}, u3 {c}; at least 2 users per item, then 2 items per user.

    Items first: b goes (1 user) → u1 {a}, u2 {a, c}, u3 {c} → only u2 keeps 2 items: {(u2, a), (u2, c)}.
    (Users first would give {(u1, a), (u2, a)}; repeating the item filter would then drop everything.)
    """
    frame = frame_of([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "c")])
    result = binarize_and_filter(frame, None, min_item_users=2, min_user_interactions=2)
    assert sorted(map(tuple, result[["user", "item"]].to_numpy().tolist())) == [("u2", "a"), ("u2", "c")]


def test_threshold_keeps_ratings_strictly_above_it_and_binarises():
    frame = frame_of([(1, 10), (1, 11), (1, 12), (1, 13), (1, 14), (1, 14), (2, 10)], ratings=[3.5, 3.6, 4.0, 0.5, 5.0, 4.5, 3.0])
    result = binarize_and_filter(frame, 3.5, 0, 0)
    assert sorted(map(tuple, result.to_numpy().tolist())) == [(1, 11), (1, 12), (1, 14)]
    assert list(result.columns) == ["user", "item"]
    unthresholded = binarize_and_filter(frame, None, 0, 0)
    assert len(unthresholded) == 6  # the duplicate (1, 14) counts once


def test_small_heldout_users_go_entirely_to_fold_in():
    """40 users with 1..40 interactions over a shared catalogue; the invariants cover n < 5 and n ≥ 5."""
    rng = np.random.default_rng(0)
    pairs = [(u, int(i)) for u in range(40) for i in rng.choice(60, size=u + 1, replace=False)]
    filtered = frame_of(pairs)[["user", "item"]]
    split = make_split(filtered, heldout_users=10, seed=3)
    assert_split_invariants(split, filtered, 10)
    n_target = np.concatenate([np.diff(split.validation_te.indptr), np.diff(split.test_te.indptr)])
    n_fold_in = np.concatenate([np.diff(split.validation_tr.indptr), np.diff(split.test_tr.indptr)])
    assert ((n_fold_in < 5) & (n_target == 0)).any() and (n_target > 0).any()


def test_make_split_of_an_empty_frame_raises():
    with pytest.raises(DataFormatError, match="no interactions are left"):
        make_split(pd.DataFrame({"user": [], "item": []}), heldout_users=1)


@pytest.mark.parametrize("n_users, heldout, expected", [(100, 10, 10), (100, 0.15, 15), (610, 0.1, 61), (3, 1, 1), (1877, 0.1, 188)])
def test_n_heldout_accepts_a_count_or_a_fraction(n_users, heldout, expected):
    assert n_heldout(n_users, heldout) == expected


@pytest.mark.parametrize("n_users, heldout", [(10, 5), (2, 1), (100, 0.001), (100, 0), (10, 0.49)])
def test_n_heldout_rejects_impossible_values(n_users, heldout):
    with pytest.raises(ConfigError, match=f"heldout_users={heldout}"):
        n_heldout(n_users, heldout)
