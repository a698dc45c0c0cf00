"""Readers of every raw format on small fabricated files, and their errors on malformed ones."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from islim.data.readers import read_interactions
from islim.errors import ConfigError, DataFormatError, IntegrityError

#: The tidy frame every fabricated numeric file below must give.
EXPECTED = pd.DataFrame({"user": [1, 1, 2, 3], "item": [10, 20, 10, 30], "rating": np.array([4.0, 3.5, 5.0, 1.0], dtype=np.float32)})
#: The same from a ``custom`` file, whose ids are labels: the text of the field.
EXPECTED_TEXT = EXPECTED.astype({"user": str, "item": str})


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def rows(sep: str) -> str:
    return "".join(f"{u}{sep}{i}{sep}{r:g}{sep}97830{k}\n" for k, (u, i, r) in enumerate(EXPECTED.itertuples(index=False)))


def netflix_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def assert_tidy_equal(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(frame.columns) == ["user", "item", "rating"]
    assert frame["rating"].dtype == np.float32
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


# --- each format --------------------------------------------------------------------------------


def test_movielens_csv_with_header(tmp_path):
    path = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n" + rows(","))
    assert_tidy_equal(read_interactions(path, {"kind": "movielens-csv"}), EXPECTED)


def test_movielens_tsv_u_data(tmp_path):
    path = write(tmp_path / "u.data", rows("\t"))
    assert_tidy_equal(read_interactions(path, {"kind": "movielens-tsv"}), EXPECTED)


def test_movielens_dat_with_double_colons(tmp_path):
    path = write(tmp_path / "ratings.dat", rows("::"))
    assert_tidy_equal(read_interactions(path, {"kind": "movielens-dat"}), EXPECTED)


def test_netflix_training_set_tar(tmp_path):
    path = netflix_tar(
        tmp_path / "training_set.tar",
        {
            "training_set/mv_0000001.txt": b"1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n",
            "training_set/mv_0000002.txt": b"2:\n1488844,4,2005-09-07\n",
            "training_set/README": b"not a movie\n",
        },
    )
    frame = read_interactions(path, {"kind": "netflix"})
    expected = pd.DataFrame({"user": [1488844, 822109, 1488844], "item": [1, 1, 2], "rating": np.array([3, 5, 4], dtype=np.float32)})
    assert_tidy_equal(frame.sort_values(["item", "rating"]), expected.sort_values(["item", "rating"]))


def test_msd_triplets_keep_string_ids_and_play_counts(tmp_path):
    path = write(
        tmp_path / "train_triplets.txt",
        "b80344d0\tSOAKIMP12A8C130995\t1\nb80344d0\tSOBBMDR12A8C13253B\t2\n85c1f87f\tSOAKIMP12A8C130995\t7\n",
    )
    frame = read_interactions(path, {"kind": "msd"})
    expected = pd.DataFrame(
        {
            "user": ["b80344d0", "b80344d0", "85c1f87f"],
            "item": ["SOAKIMP12A8C130995", "SOBBMDR12A8C13253B", "SOAKIMP12A8C130995"],
            "rating": np.array([1, 2, 7], dtype=np.float32),
        }
    )
    assert frame["user"].tolist() == expected["user"].tolist() and frame["item"].tolist() == expected["item"].tolist()
    np.testing.assert_array_equal(frame["rating"].to_numpy(), expected["rating"].to_numpy())


def custom_frame() -> pd.DataFrame:
    """A user's file: extra columns, columns in another order."""
    return pd.DataFrame({"when": [0, 1, 2, 3], "score": EXPECTED["rating"].astype(float), "uid": EXPECTED["user"], "iid": EXPECTED["item"]})


CUSTOM_ENTRY = {"kind": "custom", "user_col": "uid", "item_col": "iid", "rating_col": "score"}


@pytest.mark.parametrize("suffix, fmt", [(".csv", "csv"), (".tsv", "tsv"), (".parquet", "parquet"), (".dat", None), (".txt", "tsv")])
def test_custom_files_by_format_or_extension(tmp_path, suffix, fmt):
    path = tmp_path / f"interactions{suffix}"
    if suffix == ".parquet":
        custom_frame().to_parquet(path, index=False)
    else:
        custom_frame().to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
    entry = CUSTOM_ENTRY | ({"format": fmt} if fmt else {})
    assert_tidy_equal(read_interactions(path, entry), EXPECTED_TEXT)


def test_custom_without_rating_column_gives_ones(tmp_path):
    path = tmp_path / "pairs.csv"
    custom_frame().to_csv(path, index=False)
    frame = read_interactions(path, {"kind": "custom", "user_col": "uid", "item_col": "iid"})
    assert_tidy_equal(frame, EXPECTED_TEXT.assign(rating=np.float32(1.0)))


def test_custom_headerless_file_with_column_indices(tmp_path):
    path = write(tmp_path / "triplets.tsv", "".join(f"{r:g}\t{u}\t{i}\n" for u, i, r in EXPECTED.itertuples(index=False)))
    frame = read_interactions(path, {"kind": "custom", "user_col": 1, "item_col": 2, "rating_col": 0, "header": False})
    assert_tidy_equal(frame, EXPECTED_TEXT)


def test_custom_file_with_an_unknown_extension_needs_a_format(tmp_path):
    path = tmp_path / "interactions.bin"
    custom_frame().to_csv(path, index=False)
    with pytest.raises(ConfigError, match="set `format`"):
        read_interactions(path, CUSTOM_ENTRY)


# --- malformed files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, entry",
    [
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,10,four,978300760\n", {"kind": "movielens-csv"}),
        ("u.data", "1\t10\tx\t978300760\n", {"kind": "movielens-tsv"}),
        ("ratings.dat", "1::10::x::978300760\n", {"kind": "movielens-dat"}),
        ("train_triplets.txt", "u1\ts1\tmany\n", {"kind": "msd"}),
        ("mine.csv", "uid,iid,score\n1,10,high\n", CUSTOM_ENTRY),
    ],
)
def test_non_numeric_rating_raises_naming_the_file(tmp_path, name, content, entry):
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_interactions(path, entry)


@pytest.mark.parametrize(
    "name, content, entry",
    [
        ("ratings.csv", "userId,movieId\n1,10\n", {"kind": "movielens-csv"}),
        ("u.data", "1\t10\n", {"kind": "movielens-tsv"}),
        ("ratings.dat", "1::10\n", {"kind": "movielens-dat"}),
        ("mine.csv", "uid,score\n1,4\n", CUSTOM_ENTRY),
        ("ratings2.csv", "userId,movieId,rating,timestamp\n1,10,4,5\n,11,4,5\n", {"kind": "movielens-csv"}),
    ],
)
def test_missing_column_or_id_raises_naming_the_file(tmp_path, name, content, entry):
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_interactions(path, entry)


def test_msd_triplets_without_play_count_raise(tmp_path):
    path = write(tmp_path / "train_triplets.txt", "u1\ts1\nu2\ts2\n")
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_interactions(path, {"kind": "msd"})


GARBAGE_KINDS = [
    {"kind": "movielens-csv"},
    {"kind": "movielens-tsv"},
    {"kind": "movielens-dat"},
    {"kind": "netflix"},
    {"kind": "msd"},
    CUSTOM_ENTRY | {"format": "csv"},
    CUSTOM_ENTRY | {"format": "tsv"},
    CUSTOM_ENTRY | {"format": "parquet"},
    CUSTOM_ENTRY | {"format": "recbole"},
    {"kind": "custom", "format": "adjacency"},
    {"kind": "custom", "format": "adjacency", "user_ids": "line_number", "leading_count": True},
]


@pytest.mark.parametrize("entry", GARBAGE_KINDS)
def test_garbage_binary_raises_naming_the_file(tmp_path, entry):
    path = write(tmp_path / "garbage.bin", np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_interactions(path, entry)


def test_netflix_member_with_the_wrong_movie_line_raises(tmp_path):
    path = netflix_tar(tmp_path / "training_set.tar", {"training_set/mv_0000001.txt": b"3:\n5,1,2005-01-01\n"})
    with pytest.raises(DataFormatError, match=r"mv_0000001\.txt: first line '3:'"):
        read_interactions(path, {"kind": "netflix"})


def test_netflix_tar_without_movie_files_raises(tmp_path):
    path = netflix_tar(tmp_path / "training_set.tar", {"training_set/README": b"1:\n"})
    with pytest.raises(DataFormatError, match="no training_set/mv_"):
        read_interactions(path, {"kind": "netflix"})


def test_netflix_non_numeric_rating_raises_naming_the_file(tmp_path):
    path = netflix_tar(tmp_path / "training_set.tar", {"training_set/mv_0000001.txt": b"1:\n5,x,2005-01-01\n"})
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_interactions(path, {"kind": "netflix"})


def test_netflix_row_without_rating_raises_naming_the_file(tmp_path):
    path = netflix_tar(tmp_path / "training_set.tar", {"training_set/mv_0000001.txt": b"1:\n5\n"})
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_interactions(path, {"kind": "netflix"})


def test_missing_file_raises(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        read_interactions(tmp_path / "nowhere.csv", {"kind": "movielens-csv"})


# --- content counts --------------------------------------------------------------------------


def test_expected_raw_counts_pass_when_equal_and_name_the_mismatch(tmp_path):
    path = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n" + rows(","))
    entry = {"kind": "movielens-csv", "expected_raw": {"rows": 4, "users": 3, "items": 3}}
    assert len(read_interactions(path, entry)) == 4
    entry["expected_raw"] = {"rows": 4, "users": 3, "items": 4}
    with pytest.raises(IntegrityError, match=rf"{re.escape(str(path))}: .*items: expected 4, found 3"):
        read_interactions(path, entry)


def test_ml_small_reader_gives_the_published_counts(ml_small_path):
    """shared/data/README.md: 100,836 rows, 610 users, 9,724 movies."""
    frame = read_interactions(ml_small_path, {"kind": "movielens-csv", "expected_raw": {"rows": 100_836, "users": 610, "items": 9_724}})
    raw = pd.read_csv(ml_small_path)
    np.testing.assert_array_equal(frame["user"].to_numpy(), raw["userId"].to_numpy())
    np.testing.assert_array_equal(frame["item"].to_numpy(), raw["movieId"].to_numpy())
    np.testing.assert_array_equal(frame["rating"].to_numpy(), raw["rating"].to_numpy(dtype=np.float32))
