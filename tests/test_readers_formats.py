"""The formats of custom files beyond plain CSV/TSV columns, and compressed inputs.

citeulike-a's ``users.dat`` (an adjacency list with a leading count, user = line number) is read
straight from ``../shared/data``; RecBole ``.inter`` files, LightGCN ``train.txt`` files and
compressed copies are written here to ``tmp_path``. Expected frames are built independently
(hand-written or by a plain split of the text).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zstandard

from islim.data.adjacency import read_lightgcn
from islim.data.readers import read_interactions
from islim.errors import ConfigError, DataFormatError
from tests.test_readers import assert_tidy_equal, write

CITEULIKE = {"kind": "custom", "format": "adjacency", "user_ids": "line_number", "leading_count": True}
#: shared/data/citeulike-a/README.md: 204,986 (user, article) pairs, 5,551 users, 16,980 articles.
CITEULIKE_COUNTS = {"rows": 204_986, "users": 5_551, "items": 16_980}


def pairs(rows: list[tuple[str, str]], rating: list[float] | None = None) -> pd.DataFrame:
    """The tidy frame of (user, item) text pairs, ratings 1 unless given."""
    users, items = zip(*rows)
    values = np.ones(len(rows)) if rating is None else np.array(rating)
    return pd.DataFrame({"user": list(users), "item": list(items), "rating": values.astype(np.float32)})


def gzipped(path: Path, to: Path) -> Path:
    to.write_bytes(gzip.compress(path.read_bytes()))
    return to


def zstded(path: Path, to: Path) -> Path:
    to.write_bytes(zstandard.ZstdCompressor().compress(path.read_bytes()))
    return to


@pytest.fixture(scope="module")
def citeulike_path(shared_data) -> Path:
    path = shared_data / "citeulike-a" / "users.dat"
    if not path.is_file():
        pytest.skip(f"shared test data {path} is not available")
    return path


@pytest.fixture(scope="module")
def citeulike_frame(citeulike_path) -> pd.DataFrame:
    return read_interactions(citeulike_path, CITEULIKE | {"expected_raw": CITEULIKE_COUNTS})


# --- adjacency lists --------------------------------------------------------------------------


def test_citeulike_users_dat_is_read_directly_with_the_published_counts(citeulike_path, citeulike_frame):
    """Line u (0-based) is `n i_1 ... i_n`: user u's n articles (shared/data/citeulike-a/README.md)."""
    expected = []
    for user, line in enumerate(citeulike_path.read_text().split("\n")):
        count, *items = line.split(" ")
        assert int(count) == len(items)
        expected += [(str(user), item) for item in items]
    assert_tidy_equal(citeulike_frame, pairs(expected))
    assert citeulike_frame["user"].iloc[-1] == "5550"


@pytest.mark.parametrize(
    "content, entry, rows",
    [
        ("7 a b\n9 c\n", {"user_ids": "first_field"}, [("7", "a"), ("7", "b"), ("9", "c")]),
        ("7 2 a b\n\n9 1 c\n", {"user_ids": "first_field", "leading_count": True}, [("7", "a"), ("7", "b"), ("9", "c")]),
        ("a b\n\nc\n", {"user_ids": "line_number"}, [("0", "a"), ("0", "b"), ("2", "c")]),  # blank line 2 is user 1
        ("2 a b\n0\n1 c", {"user_ids": "line_number", "leading_count": True}, [("0", "a"), ("0", "b"), ("2", "c")]),
        ("7,a,b\r\n9,c\r\n", {"delimiter": ","}, [("7", "a"), ("7", "b"), ("9", "c")]),
        ("\ufeff7\t a  b \n9 c", {}, [("7", "a"), ("7", "b"), ("9", "c")]),  # BOM, tabs and runs of spaces
    ],
)
def test_adjacency_variants(tmp_path, content, entry, rows):
    path = write(tmp_path / "lists.txt", content)
    assert_tidy_equal(read_interactions(path, {"kind": "custom", "format": "adjacency"} | entry), pairs(rows))


@pytest.mark.parametrize(
    "content, entry, line, problem",
    [
        ("2 a b\n3 c d\n", {"user_ids": "line_number", "leading_count": True}, 2, "the count says 3 items but 2 item ids follow"),
        ("2 a b\nx c\n", {"user_ids": "line_number", "leading_count": True}, 2, "the count 'x' is not a non-negative integer"),
        ("u1 1 a\nu2\n", {"leading_count": True}, 2, "a user id without the count"),
        ("u1,a\nu2,,b\n", {"delimiter": ","}, 2, "field 2 is empty"),
        ("u1 a\nu2 b\xff\n", {}, 2, "are not UTF-8 text"),
    ],
)
def test_malformed_adjacency_line_names_the_file_and_line(tmp_path, content, entry, line, problem):
    path = write(tmp_path / "lists.txt", content.encode("latin1"))
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}, line {line}: .*{re.escape(problem)}"):
        read_interactions(path, {"kind": "custom", "format": "adjacency"} | entry)


def test_adjacency_is_not_guessed_from_the_name(tmp_path):
    """users.dat would be read as TSV columns: the adjacency format is always named."""
    path = write(tmp_path / "lists.bin", "7 a b\n")
    with pytest.raises(ConfigError, match=r"set `format` to one of \['adjacency', 'csv', 'parquet', 'recbole', 'tsv'\]"):
        read_interactions(path, {"kind": "custom", "user_col": 0, "item_col": 1})


# --- RecBole atomic files ---------------------------------------------------------------------

#: The layout of RecBole's dataset_example/ml-100k/ml-100k.inter: a typed, tab-separated header.
INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n22\t377\t1\t878887116\n"
)
INTER_EXPECTED = pairs([("196", "242"), ("186", "302"), ("22", "377")], [3.0, 3.5, 1.0])


@pytest.mark.parametrize(
    "columns",
    [
        {"user_col": "user_id", "item_col": "item_id", "rating_col": "rating"},
        {"user_col": "user_id:token", "item_col": "item_id:token", "rating_col": "rating:float"},
    ],
)
def test_recbole_inter_columns_by_name_with_or_without_type(tmp_path, columns):
    path = write(tmp_path / "ml.inter", INTER)
    assert_tidy_equal(read_interactions(path, {"kind": "custom"} | columns), INTER_EXPECTED)  # format from .inter


def test_recbole_inter_with_other_fields_and_no_rating(tmp_path):
    path = write(tmp_path / "x.inter", "session_id:token\titem_id:token\tuser_id:token\tlabels:token_seq\n1\t10\t7\ta b\n")
    frame = read_interactions(path, {"kind": "custom", "format": "recbole", "user_col": "user_id", "item_col": "item_id"})
    assert_tidy_equal(frame, pairs([("7", "10")]))


@pytest.mark.parametrize(
    "content, columns, problem",
    [
        (
            INTER,
            {"user_col": "uid"},
            ": no field 'uid' in the RecBole header ['user_id:token', 'item_id:token', 'rating:float', 'timestamp:float']",
        ),
        (INTER, {"rating_col": "item_id"}, ": rating_col names the field 'item_id:token', but the rating column must be of type float"),
        (INTER, {"user_col": "timestamp"}, ": user_col names the field 'timestamp:float', but the user column must be of type token"),
        ("user_id\titem_id\n1\t2\n", {}, ", line 1: the header field 'user_id' is not name:type"),
        ("user_id:token\titem_id:int\n1\t2\n", {}, ", line 1: the header field 'item_id:int' is not name:type"),
        (INTER.replace("\t3.5\t", "\tmany\t"), {"rating_col": "rating"}, ", line 3: rating 'many' is not a finite number"),
        (INTER.replace("\t3.5\t", "\t3.5\t1\t"), {}, ", line 3: 5 fields, expected 4 like the lines before"),
    ],
)
def test_malformed_recbole_file_is_refused_naming_the_file(tmp_path, content, columns, problem):
    path = write(tmp_path / "ml.inter", content)
    entry = {"kind": "custom", "format": "recbole", "user_col": "user_id", "item_col": "item_id"} | columns
    with pytest.raises(DataFormatError, match=re.escape(f"{path}{problem}")):
        read_interactions(path, entry)


# --- delimiters and positions ---------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "|", " ", "whitespace"])
def test_delimited_file_with_a_delimiter(tmp_path, delimiter):
    sep = "  \t " if delimiter == "whitespace" else delimiter
    path = write(tmp_path / "x.csv", f"u{sep}i{sep}r\n1{sep}10{sep}4\n2{sep}20{sep}0.5\n")
    frame = read_interactions(path, {"kind": "custom", "user_col": "u", "item_col": "i", "rating_col": "r", "delimiter": delimiter})
    assert_tidy_equal(frame, pairs([("1", "10"), ("2", "20")], [4.0, 0.5]))


def test_headerless_position_out_of_range_names_the_column_count(tmp_path):
    path = write(tmp_path / "x.tsv", "1\t10\n")
    with pytest.raises(DataFormatError, match=r"no column\(s\) \[2\] in a file of 2 columns \(0-based positions\)"):
        read_interactions(path, {"kind": "custom", "user_col": 0, "item_col": 2, "header": False})


# --- compressed inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("compress, suffix", [(gzipped, ".gz"), (zstded, ".zst"), (gzipped, ""), (zstded, ".bin")])
def test_compressed_citeulike_reads_like_the_plain_file(tmp_path, citeulike_path, citeulike_frame, compress, suffix):
    """Told by the first bytes: the name may say so or not."""
    path = compress(citeulike_path, tmp_path / f"users.dat{suffix}")
    assert path.stat().st_size < citeulike_path.stat().st_size / 2
    assert_tidy_equal(read_interactions(path, CITEULIKE), citeulike_frame)


@pytest.mark.parametrize("compress, suffix", [(gzipped, ".gz"), (zstded, ".zst")])
@pytest.mark.parametrize("name, content, entry", [("x.csv", "u,i,r\n1,10,4\n2,20,0.5\n", {"rating_col": "r"}), ("x.inter", INTER, {})])
def test_compressed_files_take_their_format_from_the_name_under_the_suffix(tmp_path, compress, suffix, name, content, entry):
    plain = write(tmp_path / name, content)
    columns = (
        {"user_col": "u", "item_col": "i"}
        if name.endswith(".csv")
        else {"user_col": "user_id", "item_col": "item_id", "rating_col": "rating"}
    )
    expected = read_interactions(plain, {"kind": "custom"} | columns | entry)
    path = compress(plain, tmp_path / f"{name}{suffix}")
    assert_tidy_equal(read_interactions(path, {"kind": "custom"} | columns | entry), expected)


def test_concatenated_members_and_frames_are_one_stream(tmp_path):
    first, second = b"7 a b\n", b"9 c\n"
    expected = pairs([("7", "a"), ("7", "b"), ("9", "c")])
    entry = {"kind": "custom", "format": "adjacency"}
    gz = write(tmp_path / "x.gz", gzip.compress(first) + gzip.compress(second))
    zst = write(tmp_path / "x.zst", zstandard.ZstdCompressor().compress(first) + zstandard.ZstdCompressor().compress(second))
    for path in (gz, zst):
        assert_tidy_equal(read_interactions(path, entry), expected)


@pytest.mark.parametrize("compress", [gzipped, zstded])
def test_malformed_line_of_a_compressed_file_names_the_uncompressed_line(tmp_path, compress):
    plain = write(tmp_path / "plain.txt", "".join(f"u{k} 1 {k}\n" for k in range(5000)) + "u 3 x y\n")
    path = compress(plain, tmp_path / "lists")
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}, line 5001: the count says 3 items but 2 item ids follow"):
        read_interactions(path, {"kind": "custom", "format": "adjacency", "leading_count": True})
    csv = compress(write(tmp_path / "x.csv", "u,i,r\n" + "1,2,3\n" * 5000 + "1,2,x\n"), tmp_path / "x.csv.z")
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(csv))}, line 5002: rating 'x' is not a finite number"):
        read_interactions(csv, {"kind": "custom", "format": "csv", "user_col": "u", "item_col": "i", "rating_col": "r"})


@pytest.mark.parametrize("compress", [gzipped, zstded])
def test_a_cut_compressed_file_is_refused(tmp_path, citeulike_path, compress):
    whole = compress(citeulike_path, tmp_path / "whole")
    path = write(tmp_path / "users.dat.cut", whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}: the compressed data is cut short or corrupt"):
        read_interactions(path, CITEULIKE)


@pytest.mark.parametrize("suffix, kind", [(".gz", "gzip"), (".zst", "zstd")])
def test_a_name_that_claims_a_compression_the_bytes_lack_is_refused(tmp_path, suffix, kind):
    path = write(tmp_path / f"x.csv{suffix}", "u,i\n1,2\n")
    with pytest.raises(DataFormatError, match=rf"the name says {kind}-compressed, but the file does not start with the {kind} bytes"):
        read_interactions(path, {"kind": "custom", "user_col": "u", "item_col": "i"})


def test_a_compressed_parquet_file_is_refused(tmp_path):
    plain = tmp_path / "x.parquet"
    pd.DataFrame({"u": [1], "i": [2]}).to_parquet(plain)
    path = gzipped(plain, tmp_path / "x.parquet.gz")
    with pytest.raises(DataFormatError, match="parquet compresses its columns itself"):
        read_interactions(path, {"kind": "custom", "user_col": "u", "item_col": "i"})


def test_compressed_movielens_file_reads_like_the_plain_one(tmp_path):
    plain = write(tmp_path / "u.data", "1\t10\t4\t5\n2\t20\t3\t6\n")
    assert_tidy_equal(
        read_interactions(zstded(plain, tmp_path / "u.data.zst"), {"kind": "movielens-tsv"}),
        read_interactions(plain, {"kind": "movielens-tsv"}),
    )


# --- LightGCN train.txt / test.txt ----------------------------------------------------------


def test_lightgcn_file_against_a_dense_matrix(tmp_path):
    lines = {0: [3, 1, 4], 1: [], 3: [0, 5, 9, 2]}  # user 2 has no line, user 1 a line without items
    path = write(tmp_path / "train.txt", "".join(f"{u} {' '.join(map(str, items))}\n".replace(" \n", "\n") for u, items in lines.items()))
    dense = np.zeros((4, 10), dtype=np.float32)
    for user, items in lines.items():
        dense[user, items] = 1
    matrix = read_lightgcn(path)
    assert matrix.shape == (4, 10) and matrix.dtype == np.float32 and matrix.has_sorted_indices
    np.testing.assert_array_equal(matrix.toarray(), dense)
    wider = read_lightgcn(path, n_items=12, n_users=6)
    assert wider.shape == (6, 12)
    np.testing.assert_array_equal(wider.toarray()[:4, :10], dense)
    assert wider[4:].nnz == 0 and wider[:, 10:].nnz == 0


def test_lightgcn_repeated_item_counts_once(tmp_path, caplog):
    path = write(tmp_path / "train.txt", "0 1 1 2\r\n1 0")
    np.testing.assert_array_equal(read_lightgcn(path).toarray(), [[0, 1, 1], [1, 0, 0]])
    assert "1 repeated (user, item) pairs counted once" in caplog.text


@pytest.mark.parametrize(
    "content, options, line, problem",
    [
        ("0 1 2\n1 2 x\n", {}, 2, "the item id 'x' is not a non-negative integer"),
        ("0 1 2\n-1 2\n", {}, 2, "the user id '-1' is not a non-negative integer"),
        ("0 1 2\n1 2.0\n", {}, 2, "the item id '2.0' is not a non-negative integer"),
        ("0 1 2\n1 7\n", {"n_items": 5}, 2, "the item id 7 is not below the 5 items given"),
        ("0 1\n1 2\n\n2 3\n", {"n_users": 2}, 4, "the user id 2 is not below the 2 users given"),
        ("0 1\n1 2\n0 3\n", {}, 3, "user 0 already has line 1"),
        ("0 1\n1 99999999999999999999\n", {}, 2, "the item id '99999999999999999999' is too large"),
    ],
)
def test_malformed_lightgcn_line_names_the_line(tmp_path, content, options, line, problem):
    path = write(tmp_path / "test.txt", content)
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}, line {line}: {re.escape(problem)}"):
        read_lightgcn(path, **options)
