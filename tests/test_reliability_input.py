"""Bad input data: malformed lines are reported with the file, the line number and what to fix;
a BOM and CRLF line endings are read as usual text; duplicates are merged (max rating); filters
that leave nobody, too many held-out users and splits with too few evaluable users are refused
naming the parameter, and a run record never holds a NaN metric. Ids are labels (their text);
hostile fields and bytes get one clear message each.

Line numbers are those of the fabricated files (1-based, as an editor shows them), counted here.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from islim.config import load_config, validate_config
from islim.data.readers import read_interactions
from islim.data.split import binarize_and_filter, prepare
from islim.errors import ConfigError, DataFormatError, NumericalError
from islim.evaluate import REPORTED_METRICS, summarize
from islim.records import make_record
from tests.test_readers import EXPECTED, EXPECTED_TEXT, assert_tidy_equal

REPO = Path(__file__).resolve().parents[1]

CUSTOM_CSV = {"kind": "custom", "user_col": "uid", "item_col": "iid", "rating_col": "score"}
CUSTOM_TSV_NO_HEADER = {"kind": "custom", "user_col": 0, "item_col": 1, "rating_col": 2, "header": False, "format": "tsv"}

#: (file name, registry entry, header line or None, separator) of every line-oriented format.
FORMATS = {
    "movielens-csv": ("ratings.csv", {"kind": "movielens-csv"}, "userId,movieId,rating,timestamp", ","),
    "movielens-tsv": ("u.data", {"kind": "movielens-tsv"}, None, "\t"),
    "movielens-dat": ("ratings.dat", {"kind": "movielens-dat"}, None, "::"),
    "custom-csv": ("mine.csv", CUSTOM_CSV, "uid,iid,score,when", ","),
    "custom-tsv": ("mine.tsv", CUSTOM_TSV_NO_HEADER, None, "\t"),
}


def lines_of(fmt: str, bad: str | None = None, at: int = 2) -> list[str]:
    """The lines of a file of ``fmt`` holding EXPECTED, with data line ``at`` (0-based) replaced by ``bad``."""
    _, _, header, sep = FORMATS[fmt]
    data = [sep.join([str(u), str(i), f"{r:g}", f"97830{k}"]) for k, (u, i, r) in enumerate(EXPECTED.itertuples(index=False))]
    if bad is not None:
        data[at] = bad.replace(",", sep)
    return ([header] if header else []) + data


def write_lines(tmp_path: Path, fmt: str, lines: list[str], newline: str = "\n", prefix: bytes = b"") -> Path:
    path = tmp_path / FORMATS[fmt][0]
    path.write_bytes(prefix + "".join(line + newline for line in lines).encode())
    return path


def line_number(lines: list[str], text: str) -> int:
    return lines.index(text) + 1


# ------------------------------------------------------------------ malformed lines


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "bad, problem",
    [
        ("2,10,five,978300", "rating 'five' is not a finite number"),
        ("2,10,inf,978300", "is not a finite number"),
        ("2,10,nan,978300", "missing rating"),
        ("2,10,,978300", "missing rating"),
        (",10,4,978300", "missing user or item id"),
    ],
)
def test_bad_value_names_the_file_and_line(tmp_path, fmt, bad, problem):
    lines = lines_of(fmt, bad)
    sep = FORMATS[fmt][3]
    path = write_lines(tmp_path, fmt, lines)
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, FORMATS[fmt][1])
    message = str(caught.value)
    assert f"{path}, line {line_number(lines, bad.replace(',', sep))}:" in message
    assert problem in message and "fix or remove that line" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_line_with_too_many_fields_names_the_line_and_the_counts(tmp_path, fmt):
    lines = lines_of(fmt, "2,10,4,978300,extra", at=3)
    path = write_lines(tmp_path, fmt, lines)
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}, line {len(lines)}: 5 fields, expected 4"):
        read_interactions(path, FORMATS[fmt][1])


@pytest.mark.parametrize("fmt", ["movielens-csv", "movielens-tsv", "movielens-dat"])
def test_a_line_with_too_few_fields_names_the_line(tmp_path, fmt):
    lines = lines_of(fmt, "2,10", at=1)
    path = write_lines(tmp_path, fmt, lines)
    with pytest.raises(DataFormatError, match=rf"line {line_number(lines, lines[-3])}: missing rating"):
        read_interactions(path, FORMATS[fmt][1])


def test_blank_lines_do_not_shift_the_reported_line(tmp_path):
    lines = lines_of("movielens-tsv", "3\t30\tx\t1", at=3)
    lines.insert(1, "")
    lines.insert(2, "")
    path = write_lines(tmp_path, "movielens-tsv", lines)
    with pytest.raises(DataFormatError, match=rf", line {len(lines)}: rating 'x'"):
        read_interactions(path, FORMATS["movielens-tsv"][1])


def test_parquet_rows_are_named_by_data_row(tmp_path):
    path = tmp_path / "mine.parquet"
    pd.DataFrame({"uid": [1, 2, 3], "iid": [10, 20, 30], "score": [4.0, np.nan, 1.0]}).to_parquet(path, index=False)
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}, data row 2: missing rating"):
        read_interactions(path, CUSTOM_CSV)


# ------------------------------------------------------------------ empty files


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_file_is_named_as_empty(tmp_path, fmt):
    path = write_lines(tmp_path, fmt, [])
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}: the file is empty"):
        read_interactions(path, FORMATS[fmt][1])


def test_an_empty_msd_file_is_named_as_empty(tmp_path):
    path = tmp_path / "train_triplets.txt"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="the file is empty"):
        read_interactions(path, {"kind": "msd"})


@pytest.mark.parametrize("fmt", ["movielens-csv", "custom-csv"])
def test_a_header_without_data_rows_is_refused(tmp_path, fmt):
    path = write_lines(tmp_path, fmt, lines_of(fmt)[:1])
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}: no data rows; fetch it again"):
        read_interactions(path, FORMATS[fmt][1])


# ------------------------------------------------------------------ BOM and CRLF are read correctly


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "bom, newline", [(b"\xef\xbb\xbf", "\n"), (b"", "\r\n"), (b"\xef\xbb\xbf", "\r\n")], ids=["bom", "crlf", "bom-crlf"]
)
def test_bom_and_crlf_files_read_like_plain_ones(tmp_path, fmt, bom, newline):
    path = write_lines(tmp_path, fmt, lines_of(fmt), newline=newline, prefix=bom)
    assert_tidy_equal(read_interactions(path, FORMATS[fmt][1]), EXPECTED_TEXT if fmt.startswith("custom") else EXPECTED)


def test_msd_with_bom_and_crlf_keeps_clean_string_ids(tmp_path):
    path = tmp_path / "train_triplets.txt"
    path.write_bytes(b"\xef\xbb\xbfu1\ts1\t3\r\nu2\ts1\t1\r\n")
    frame = read_interactions(path, {"kind": "msd"})
    assert frame["user"].tolist() == ["u1", "u2"] and frame["item"].tolist() == ["s1", "s1"]
    assert frame["rating"].tolist() == [3.0, 1.0]


# ------------------------------------------------------------------ ids are labels


MIXED_IDS = ["007", "7", "7.0", "1e0", "1", "01", "1.0", "NA", "null", "nan"]


@pytest.mark.parametrize("fmt", ["custom-csv", "custom-tsv"])
@pytest.mark.parametrize("with_text_id", [False, True], ids=["numeric-looking only", "with a non-numeric id"])
def test_custom_ids_are_their_text_whatever_else_the_file_holds(tmp_path, fmt, with_text_id):
    ids = MIXED_IDS + (["user-x"] if with_text_id else [])
    lines = ([FORMATS[fmt][2]] if FORMATS[fmt][2] else []) + [FORMATS[fmt][3].join([u, u, "4", "0"]) for u in ids]
    frame = read_interactions(write_lines(tmp_path, fmt, lines), FORMATS[fmt][1])
    assert frame["user"].tolist() == ids and frame["item"].tolist() == ids
    assert frame["user"].nunique() == len(ids)


def test_quoted_and_unquoted_ids_are_the_same_text(tmp_path):
    lines = ["uid,iid,score,when", '"7",10,4,0', "7,10,5,0", '"07",10,3,0', '"7.0",10,3,0']
    frame = read_interactions(write_lines(tmp_path, "custom-csv", lines), CUSTOM_CSV)
    assert frame["user"].tolist() == ["7", "7", "07", "7.0"]


def test_only_an_empty_field_is_a_missing_id(tmp_path):
    lines = ["uid,iid,score,when", "NA,10,4,0", "null,10,4,0", "3,,4,0", "4,10,4,0"]
    path = write_lines(tmp_path, "custom-csv", lines)
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}, line 4: missing user or item id"):
        read_interactions(path, CUSTOM_CSV)


def write_parquet(tmp_path: Path, **columns) -> Path:
    path = tmp_path / "mine.parquet"
    pd.DataFrame(columns).to_parquet(path, index=False)
    return path


def test_parquet_numeric_ids_become_their_canonical_text(tmp_path):
    path = write_parquet(tmp_path, uid=np.array([7, 7, 10, -3], dtype=np.int64), iid=[7.0, 0.5, 1e16, 1e-05], score=[4.0, 4.0, 4.0, 4.0])
    frame = read_interactions(path, CUSTOM_CSV)
    assert frame["user"].tolist() == ["7", "7", "10", "-3"]
    assert frame["item"].tolist() == ["7", "0.5", "1e+16", "0.00001"]
    assert [float(item) for item in frame["item"]] == [7.0, 0.5, 1e16, 1e-05]


@pytest.mark.parametrize("fmt", ["movielens-csv", "movielens-tsv", "movielens-dat"])
def test_a_movielens_id_that_is_not_an_integer_names_the_line(tmp_path, fmt):
    lines = lines_of(fmt, "2,ten,4,978300", at=2)
    path = write_lines(tmp_path, fmt, lines)
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, FORMATS[fmt][1])
    message = str(caught.value)
    assert f"{path}, line {line_number(lines, lines[-2])}: item id 'ten' is not an integer" in message
    assert "kind `custom`" in message


# ------------------------------------------------------------------ hostile fields and bytes


def test_a_parquet_id_column_of_lists_is_refused_naming_the_column_and_type(tmp_path):
    path = write_parquet(tmp_path, uid=[[1, 2], [3]], iid=[10, 20], score=[4.0, 5.0])
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, CUSTOM_CSV)
    message = str(caught.value)
    assert message.startswith(f"{path}: parquet column 'uid' (user ids) has type list<element: int64>")
    assert "expected one string or number per row" in message and "write that column as strings or numbers" in message


def test_a_parquet_rating_column_of_lists_is_refused(tmp_path):
    path = write_parquet(tmp_path, uid=[1, 2], iid=[10, 20], score=[[4.0], [5.0]])
    with pytest.raises(
        DataFormatError, match=r"parquet column 'score' \(ratings\) has type list<element: double>, expected one number per row"
    ):
        read_interactions(path, CUSTOM_CSV)


def test_an_id_field_of_hundreds_of_megabytes_is_refused_with_a_short_message(tmp_path):
    huge = "u" * (256 * 2**20)
    lines = lines_of("custom-csv", f"{huge},10,4,978300", at=1)
    path = write_lines(tmp_path, "custom-csv", lines)
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, CUSTOM_CSV)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 3: the user id 'uuuu")
    assert f"({len(huge):,} characters) is longer than the 65,536 characters an id may have" in message
    assert "unclosed quote or a wrong separator" in message and len(message) < 400


@pytest.mark.parametrize("fmt", ["custom-csv", "custom-tsv"])
def test_ids_may_have_up_to_65536_characters(tmp_path, fmt):
    longest = "i" * 65536
    lines = lines_of(fmt, f"2,{longest},4,978300", at=1)
    assert read_interactions(write_lines(tmp_path, fmt, lines), FORMATS[fmt][1])["item"].tolist()[1] == longest
    lines = lines_of(fmt, f"2,{longest}i,4,978300", at=1)
    path = write_lines(tmp_path, fmt, lines)
    with pytest.raises(DataFormatError, match=rf"line {line_number(lines, lines[-3])}: the item id 'iii.* \(65,537 characters\) is longer"):
        read_interactions(path, FORMATS[fmt][1])


def test_a_rating_field_of_hundreds_of_megabytes_gives_a_short_message(tmp_path):
    huge = "r" * (256 * 2**20)
    lines = lines_of("custom-csv", f"2,10,{huge},978300", at=1)
    path = write_lines(tmp_path, "custom-csv", lines)
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, CUSTOM_CSV)
    message = str(caught.value)
    assert "line 3: rating 'rrrr" in message and f"({len(huge):,} characters) is not a finite number" in message
    assert len(message) < 400


@pytest.mark.parametrize("fmt", [*FORMATS, "msd"])
def test_bytes_that_are_not_utf8_name_the_line(tmp_path, fmt):
    if fmt == "msd":
        path, entry = tmp_path / "train_triplets.txt", {"kind": "msd"}
        lines = ["u1\ts1\t3", "u2\ts1\t1", "u3\ts2\t5", "u4\ts2\t1"]
    else:
        path, entry = tmp_path / FORMATS[fmt][0], FORMATS[fmt][1]
        lines = lines_of(fmt) * 2000  # the bad byte lies far beyond the parser's first buffer
    data = [line.encode() for line in lines]
    data[-2] = data[-2][:1] + b"\xe9" + data[-2][1:]  # Latin-1 'é' in the second-to-last line
    path.write_bytes(b"\n".join(data) + b"\n")
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, entry)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {len(lines) - 1}: bytes b'\\xe9' at character 2 are not UTF-8 text")
    assert "Convert the file to UTF-8" in message and "position" not in message


def test_an_unclosed_quote_names_the_line_where_it_opens(tmp_path):
    lines = lines_of("custom-csv", '2,"10,4,978300', at=1)
    path = write_lines(tmp_path, "custom-csv", lines)
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path, CUSTOM_CSV)
    assert str(caught.value).startswith(f"{path}, line 3: a quoted field starts there and never ends")


# ------------------------------------------------------------------ duplicate (user, item) rows


def test_duplicates_are_merged_keeping_the_maximum_rating(caplog):
    raw = pd.DataFrame(
        {
            "user": [1, 1, 2, 2, 3, 3, 3],
            "item": [10, 10, 10, 10, 10, 10, 11],
            "rating": [3.0, 5.0, 5.0, 3.0, 2.0, 3.0, 4.0],
        }
    )
    caplog.set_level(logging.INFO, logger="islim.data.split")
    result = binarize_and_filter(raw, 3.5, 0, 0)
    expected = {(u, i) for (u, i), r in raw.groupby(["user", "item"])["rating"].max().items() if r > 3.5}
    assert set(map(tuple, result.to_numpy().tolist())) == expected == {(1, 10), (2, 10), (3, 11)}
    assert len(result) == len(expected)
    assert "duplicate" not in caplog.text  # each pair has at most one rating above the threshold
    unthresholded = binarize_and_filter(raw, None, 0, 0)
    assert set(map(tuple, unthresholded.to_numpy().tolist())) == set(zip(raw["user"], raw["item"]))
    assert len(unthresholded) == 4 and "merged 3 duplicate (user, item) rows" in caplog.text


# ------------------------------------------------------------------ impossible preprocessing


def frame_of(n_users: int, per_user: int) -> pd.DataFrame:
    users = np.repeat(np.arange(n_users), per_user)
    return pd.DataFrame({"user": users, "item": np.tile(np.arange(per_user), n_users), "rating": 5.0})


def test_filters_leaving_no_user_name_the_dataset_and_the_settings():
    entry = {"kind": "custom", "threshold": 3.5, "min_user_interactions": 50, "heldout_users": 1}
    with pytest.raises(DataFormatError) as caught:
        prepare(frame_of(10, 8), entry, "tiny")
    message = str(caught.value)
    assert "dataset 'tiny'" in message and "80 raw interactions" in message
    assert "threshold=3.5" in message and "min_user_interactions=50" in message and "lower these settings" in message


def test_a_threshold_above_every_rating_is_refused_the_same_way():
    with pytest.raises(DataFormatError, match=r"no user is left .*threshold=5\.0"):
        prepare(frame_of(10, 8), {"threshold": 5.0, "heldout_users": 1}, "tiny")


@pytest.mark.parametrize("heldout, most", [(6, 4), (5, 4), (0.49, 4)])
def test_more_heldout_users_than_users_names_the_parameter_and_its_maximum(heldout, most):
    with pytest.raises(ConfigError) as caught:
        prepare(frame_of(10, 8), {"heldout_users": heldout}, "tiny")
    message = str(caught.value)
    assert message.startswith(f"dataset 'tiny': heldout_users={heldout}") and "out of 10 users" in message
    assert f"a count from 1 to {most}" in message


# ------------------------------------------------------------------ a split nobody can be evaluated on


def test_a_split_without_evaluable_users_names_the_dataset_the_counts_and_the_settings():
    single = pd.DataFrame({"user": np.arange(50), "item": np.arange(50) % 7, "rating": 5.0})  # one interaction per user
    with pytest.raises(DataFormatError) as caught:
        prepare(single, {"heldout_users": 5, "min_user_interactions": 0}, "tiny")
    message = str(caught.value)
    assert message.startswith(
        "dataset 'tiny': too few evaluable held-out users (with at least one target interaction): validation 0 of 5, "
        "test 0 of 5; min_evaluable_users=2 are needed in each of validation and test"
    )
    assert "min_heldout_interactions=5" in message and "target_fraction=0.2" in message
    assert "raise heldout_users (now 5) or min_user_interactions (now 0), or lower min_heldout_interactions" in message


def test_min_evaluable_users_is_the_least_accepted_in_each_part():
    frame = frame_of(20, 10)  # every held-out user keeps 10 interactions: 2 targets each
    split = prepare(frame, {"heldout_users": 3, "min_evaluable_users": 3}, "tiny")
    assert (np.diff(split.validation_te.indptr) > 0).sum() == (np.diff(split.test_te.indptr) > 0).sum() == 3
    with pytest.raises(
        DataFormatError, match=r"validation 3 of 3, test 3 of 3; min_evaluable_users=4 .* lower min_evaluable_users \(now 4, at least 2\)"
    ):
        prepare(frame, {"heldout_users": 3, "min_evaluable_users": 4}, "tiny")


def test_min_evaluable_users_defaults_to_two_and_cannot_be_lower():
    config = load_config(REPO / "config.yaml")
    assert {entry["min_evaluable_users"] for entry in config["datasets"].values()} == {2}
    config["datasets"]["ml-100k"]["min_evaluable_users"] = 1
    with pytest.raises(ConfigError, match=r"datasets/ml-100k/min_evaluable_users: 1 is less than the minimum of 2"):
        validate_config(config)


@pytest.mark.parametrize(
    "n_users, undefined",
    [
        (1, "recall@20_se, recall@50_se, ndcg@100_se are not finite numbers"),
        (0, "recall@20, recall@20_se, recall@50, recall@50_se, ndcg@100, ndcg@100_se are not finite numbers"),
    ],
)
def test_a_record_never_holds_a_nan_metric(n_users, undefined):
    def evaluated(n):
        return summarize({"user": np.arange(n)} | {name: np.linspace(0.2, 0.6, n) for name, _, _ in REPORTED_METRICS})

    with pytest.raises(NumericalError) as caught:
        make_record("tiny", "ease", {"lambda": 100.0}, {"validation": evaluated(3), "test": evaluated(n_users)}, 1.0)
    message = str(caught.value)
    assert message.startswith(f"run record of 'ease' on dataset 'tiny': test {undefined} ({n_users} evaluated user(s))")
    assert "data/processed/tiny/stats.json" in message and "raise heldout_users" in message
