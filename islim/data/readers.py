"""Readers of raw interaction files into a tidy frame with columns ``user``, ``item``, ``rating``.

``rating`` is the explicit rating (MovieLens, Netflix), the play count (MSD, Last.fm) or 1.0 when
the file has none. Malformed files raise :class:`~islim.errors.DataFormatError` naming the file,
the line (text files; the data row for parquet and Netflix members) and what to fix: a line with
too many or too few fields, a missing id, a rating that is not a finite number, an empty file or
one without data rows. A UTF-8 byte-order mark and CRLF line endings are read as usual text.
Duplicate (user, item) rows are kept here; the split merges them (:mod:`islim.data.split`).
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from islim.errors import ConfigError, DataFormatError, IntegrityError

COLUMNS = ["user", "item", "rating"]
_NETFLIX_MEMBER = re.compile(r"(?:^|/)mv_(\d+)\.txt$")


def _data_row(row: int) -> str:
    return f"data row {row + 1}"


def _line_locator(path: Path, header: bool) -> Callable[[int], str]:
    """Map a 0-based data row of a delimited text file to ``"line N"`` (1-based, as an editor shows).

    Blank lines are skipped as pandas skips them. Only used to word errors: one pass over the file.
    """

    def locate(row: int) -> str:
        seen = -1 if header else 0
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip(b"\r\n"):
                    if seen == row:
                        return f"line {number}"
                    seen += 1
        return _data_row(row)

    return locate


def _tidy(frame: pd.DataFrame, path: Path, locate: Callable[[int], str] = _data_row) -> pd.DataFrame:
    """Check ids and ratings and give the canonical columns and dtypes.

    ``locate(row)`` words the position of a bad 0-based data row in errors.
    """
    missing_id = frame[["user", "item"]].isna().any(axis=1).to_numpy()
    if missing_id.any():
        raise DataFormatError(
            f"{path}, {locate(int(missing_id.argmax()))}: missing user or item id; fix or remove that line "
            "(or check the separator and the user/item columns)"
        )
    if "rating" not in frame:
        frame = frame.assign(rating=1.0)
    rating = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rating)
    if bad.any():
        row = int(bad.argmax())
        value = frame["rating"].iloc[row]
        problem = "missing rating (empty, NaN or too few fields)" if pd.isna(value) else f"rating {value!r} is not a finite number"
        raise DataFormatError(
            f"{path}, {locate(row)}: {problem}; fix or remove that line (or check rating_col, the separator "
            "and the number of columns)"
        )
    return pd.DataFrame({"user": frame["user"].to_numpy(), "item": frame["item"].to_numpy(), "rating": rating.astype(np.float32)})


def _read_delimited(path: Path, sep: str, header: bool, source=None) -> pd.DataFrame:
    """``pandas.read_csv`` of ``source`` (default: ``path``, which names the file in errors)."""
    name = "tab" if sep == "\t" else repr(sep)
    try:
        frame = pd.read_csv(path if source is None else source, sep=sep, header=0 if header else None, engine="c", low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataFormatError(f"{path}: the file is empty; expected {name}-separated interactions. Fetch it again or fix the path") from exc
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = f"line {match.group(2)}: {match.group(3)} fields, expected {match.group(1)} like the lines before" if match else str(exc)
        raise DataFormatError(f"{path}, {detail}; fix or remove that line, or check that the file is {name}-separated") from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: cannot be parsed as {name}-separated UTF-8 text: {exc}") from exc
    return frame


def read_movielens_csv(path: Path) -> pd.DataFrame:
    """``userId,movieId,rating,timestamp`` with a header (ML-20M, ml-latest-small)."""
    frame = _read_delimited(path, ",", header=True)
    if frame.shape[1] < 3:
        raise DataFormatError(f"{path}: expected at least 3 columns userId,movieId,rating; found {list(frame.columns)}")
    return _tidy(frame.iloc[:, :3].set_axis(COLUMNS, axis=1), path, _line_locator(path, header=True))


def read_movielens_tsv(path: Path) -> pd.DataFrame:
    """``user<TAB>item<TAB>rating<TAB>ts`` without a header (ML-100K ``u.data``)."""
    frame = _read_delimited(path, "\t", header=False)
    if frame.shape[1] < 3:
        raise DataFormatError(f"{path}: expected 4 tab-separated columns user, item, rating, timestamp; found {frame.shape[1]}")
    return _tidy(frame.iloc[:, :3].set_axis(COLUMNS, axis=1), path, _line_locator(path, header=False))


def read_movielens_dat(path: Path) -> pd.DataFrame:
    """``user::movie::rating::ts`` (ML-1M ``ratings.dat``); the two-character separator is folded
    to a comma so the fast C parser can be used."""
    text = path.read_bytes().replace(b"::", b",")
    frame = _read_delimited(path, ",", header=False, source=io.BytesIO(text))
    if frame.shape[1] < 3:
        raise DataFormatError(f"{path}: expected 4 '::'-separated columns user, movie, rating, timestamp")
    return _tidy(frame.iloc[:, :3].set_axis(COLUMNS, axis=1), path, _line_locator(path, header=False))


def read_netflix(path: Path) -> pd.DataFrame:
    """The Netflix Prize ``training_set.tar``: one ``mv_NNNNNNN.txt`` per movie whose first line is
    ``MovieID:`` followed by ``CustomerID,Rating,Date`` rows."""
    parts = []
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                match = _NETFLIX_MEMBER.search(member.name)
                if not (member.isfile() and match):
                    continue
                handle = archive.extractfile(member)
                first = handle.readline().decode("ascii").strip()
                if first != f"{int(match.group(1))}:":
                    raise DataFormatError(f"{path}:{member.name}: first line {first!r} is not the movie id line")
                block = pd.read_csv(handle, header=None, usecols=[0, 1], names=["user", "rating"], dtype={"user": np.int64, "rating": np.float32})
                block["item"] = np.int64(match.group(1))
                parts.append(block)
    except tarfile.TarError as exc:
        raise DataFormatError(f"{path}: not a readable tar archive ({exc}); delete it and download again") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"{path}:{member.name}: rows are not CustomerID,Rating,Date ({exc})") from exc
    if not parts:
        raise DataFormatError(f"{path}: no training_set/mv_*.txt members found")
    return _tidy(pd.concat(parts, ignore_index=True), path)


def read_msd(path: Path) -> pd.DataFrame:
    """The MSD Taste Profile ``train_triplets.txt``: ``user<TAB>song<TAB>play_count``, no header.

    A row without a play count is reported as malformed (see :func:`_tidy`)."""
    try:
        frame = pd.read_csv(path, sep="\t", header=None, names=COLUMNS, dtype={"user": "category", "item": "category", "rating": np.float32}, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataFormatError(f"{path}: not user<TAB>song<TAB>count triplets: {exc}") from exc
    return _tidy(frame, path, _line_locator(path, header=False))


def read_custom(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """A user's own file described by ``user_col``, ``item_col``, optional ``rating_col``, ``format``, ``header``."""
    fmt = entry.get("format") or _format_from_suffix(path)
    columns = [entry["user_col"], entry["item_col"]] + ([entry["rating_col"]] if entry.get("rating_col") is not None else [])
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path, columns=columns)
        except Exception as exc:  # pyarrow raises several unrelated types for bad files and columns
            raise DataFormatError(f"{path}: cannot read columns {columns} from this parquet file: {exc}") from exc
        locate = _data_row
    else:
        header = entry.get("header", True)
        frame = _read_delimited(path, "," if fmt == "csv" else "\t", header=header)
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise DataFormatError(
                f"{path}: no column(s) {missing} among {list(frame.columns)}; fix user_col, item_col, rating_col "
                "or header in the dataset's registry entry"
            )
        frame = frame[columns]
        locate = _line_locator(path, header)
    return _tidy(frame.set_axis(COLUMNS[: len(columns)], axis=1), path, locate)


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".tsv": "tsv", ".dat": "tsv", ".txt": "tsv", ".parquet": "parquet"}
    if suffix not in formats:
        raise ConfigError(f"{path}: cannot tell the format from the extension {suffix!r}; set `format` to csv, tsv or parquet")
    return formats[suffix]


def read_synthetic(path: Path) -> pd.DataFrame:
    """The parquet file written by :func:`islim.data.synthetic.write_synthetic`."""
    return _tidy(pd.read_parquet(path), path)


READERS = {
    "movielens-csv": read_movielens_csv,
    "movielens-tsv": read_movielens_tsv,
    "movielens-dat": read_movielens_dat,
    "netflix": read_netflix,
    "msd": read_msd,
    "synthetic": read_synthetic,
}


def read_interactions(path: str | Path, entry: dict[str, Any]) -> pd.DataFrame:
    """Read the raw file of a registry ``entry`` and check its ``expected_raw`` content counts."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist; run the fetch step first (`islim fetch <dataset>`)")
    kind = entry["kind"]
    frame = read_custom(path, entry) if kind == "custom" else READERS[kind](path)
    if frame.empty:
        problem = "the file is empty" if path.stat().st_size == 0 else "no data rows"
        raise DataFormatError(f"{path}: {problem}; fetch it again (delete it first) or fix the path")
    check_raw_counts(frame, entry.get("expected_raw", {}), path)
    return frame


def check_raw_counts(frame: pd.DataFrame, expected: dict[str, int], path: Path) -> None:
    """Compare row/user/item counts of the raw frame with the published ones."""
    found = {"rows": len(frame), "users": frame["user"].nunique(), "items": frame["item"].nunique()}
    wrong = {key: (value, found[key]) for key, value in expected.items() if found[key] != value}
    if wrong:
        detail = ", ".join(f"{key}: expected {exp:,}, found {got:,}" for key, (exp, got) in wrong.items())
        raise IntegrityError(f"{path}: content counts differ from the published ones ({detail}); the file is corrupt or a different release — delete it and fetch again")
