"""Readers of raw interaction files into a tidy frame with columns ``user``, ``item``, ``rating``.

``rating`` is the explicit rating (MovieLens, Netflix), the play count (MSD, Last.fm) or 1.0 when
the file has none. Malformed files raise :class:`~islim.errors.DataFormatError` naming the file,
the line (text files; the data row for parquet and Netflix members) and what to fix: a line with
too many or too few fields, a missing id, an id longer than :data:`MAX_ID_CHARS`, a rating that is
not a finite number, bytes that are not UTF-8, an unclosed quote, an empty file or one without data
rows. A UTF-8 byte-order mark and CRLF line endings are read as usual text. Duplicate (user, item)
rows are kept here; the split merges them (:mod:`islim.data.split`).

Ids are labels. In a ``custom`` file two ids are the same user (item) exactly when their text is
the same: a CSV/TSV id is the field's text after unquoting (``"7"`` is ``7``), never a number
(``007``, ``7``, ``7.0`` and ``1e0`` are four users, whatever else the file holds), and only an
empty field is a missing id (``NA`` or ``null`` are ids). A parquet id column of strings is read as
is; a numeric (or boolean) one is converted once to Arrow's text of each value (integers ``7``,
floats their shortest round-trip text ``7``, ``0.5``, ``1e+16``; booleans ``true``/``false``); a
column of lists, structs or binary values is refused. The MovieLens and Netflix formats have
integer ids: they are read as numbers (``007`` is ``7``) and a file with a non-integer id is
refused naming its line. MSD ids are text.
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
#: Longest user or item id accepted, in characters. A longer field is a broken file (an unclosed
#: quote, a wrong separator, binary data), not an id.
MAX_ID_CHARS = 65536
#: Characters of a bad value quoted in an error message.
_SHOWN_CHARS = 60


def _shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`_SHOWN_CHARS` characters with the full length when longer."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}... ({len(str(value)):,} characters)"


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


def _id_lengths(ids: pd.Series) -> np.ndarray | None:
    """Characters of each id of a text (or categorical text) column; ``None`` for numeric ids."""
    if ids.dtype.kind in "iufb":
        return None
    try:
        lengths = ids.str.len()
    except AttributeError:  # an object column that does not hold strings
        return None
    return lengths.fillna(0).to_numpy(dtype=np.int64)


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
    for role in ("user", "item"):
        lengths = _id_lengths(frame[role])
        if lengths is not None and (lengths > MAX_ID_CHARS).any():
            row = int((lengths > MAX_ID_CHARS).argmax())
            raise DataFormatError(
                f"{path}, {locate(row)}: the {role} id {_shown(frame[role].iloc[row])} is longer than the {MAX_ID_CHARS:,} "
                "characters an id may have; such a field usually comes from an unclosed quote or a wrong "
                "separator: fix that line (or check the separator and the user/item columns)"
            )
    if "rating" not in frame:
        frame = frame.assign(rating=1.0)
    rating = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rating)
    if bad.any():
        row = int(bad.argmax())
        value = frame["rating"].iloc[row]
        problem = "missing rating (empty, NaN or too few fields)" if pd.isna(value) else f"rating {_shown(value)} is not a finite number"
        raise DataFormatError(
            f"{path}, {locate(row)}: {problem}; fix or remove that line (or check rating_col, the separator and the number of columns)"
        )
    return pd.DataFrame({"user": frame["user"].to_numpy(), "item": frame["item"].to_numpy(), "rating": rating.astype(np.float32)})


def _not_utf8(path: Path, exc: UnicodeDecodeError, what: str) -> DataFormatError:
    """The error for a file that is not UTF-8 text, naming the first line holding other bytes.

    The decoder's position is an offset into a buffer of the parser, so the line is found here:
    UTF-8 never uses the newline byte inside a character, so each line decodes on its own.
    """
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return DataFormatError(
                    f"{path}, line {number}: bytes {line[bad.start : bad.end]!r} at character {len(line[: bad.start].decode('utf-8')) + 1} "
                    f"are not UTF-8 text; expected {what} in UTF-8. Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) "
                    "or fix that line"
                )
    return DataFormatError(f"{path}: cannot be read as UTF-8 text ({exc}); expected {what} in UTF-8. Convert the file to UTF-8")


def _read_delimited(path: Path, sep: str, header: bool, source=None, text_columns=()) -> pd.DataFrame:
    """``pandas.read_csv`` of ``source`` (default: ``path``, which names the file in errors).

    ``text_columns`` are read as text, not numbers, and only an empty field in them is missing
    (``NA``, ``null`` and pandas' other missing-value spellings are text there).
    """
    name = "tab" if sep == "\t" else repr(sep)

    def read(**options) -> pd.DataFrame:
        if hasattr(source, "seek"):
            source.seek(0)
        return pd.read_csv(
            path if source is None else source, sep=sep, header=0 if header else None, engine="c", low_memory=False, **options
        )

    try:
        frame = read(dtype=dict.fromkeys(text_columns, str))
        present = [column for column in text_columns if column in frame.columns]
        if present and frame[present].isna().to_numpy().any():
            frame[present] = read(usecols=present, dtype=dict.fromkeys(present, str), keep_default_na=False, na_values=[""])[present]
    except pd.errors.EmptyDataError as exc:
        raise DataFormatError(f"{path}: the file is empty; expected {name}-separated interactions. Fetch it again or fix the path") from exc
    except pd.errors.ParserError as exc:
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        quote = re.search(r"EOF inside string starting at row (\d+)", str(exc))
        if fields:
            detail = f"line {fields.group(2)}: {fields.group(3)} fields, expected {fields.group(1)} like the lines before"
        elif quote:
            line = _line_locator(path, header=False)(int(quote.group(1)))
            detail = f"{line}: a quoted field starts there and never ends (an unmatched '\"'), so the rest of the file would be one field"
        else:
            detail = str(exc)
        raise DataFormatError(f"{path}, {detail}; fix or remove that line, or check that the file is {name}-separated") from exc
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc, f"{name}-separated interactions") from exc
    return frame


def _require_integer_ids(frame: pd.DataFrame, path: Path, locate: Callable[[int], str], read_text: Callable[[], pd.DataFrame]) -> None:
    """Refuse a file of an integer-id format (MovieLens) whose ids are not all integers.

    ``frame`` is the tidy frame; ``read_text()`` reads the file's user and item columns again as
    text (only when an id column did not parse as integers), to name the first offending line.
    """
    if frame["user"].dtype.kind in "iu" and frame["item"].dtype.kind in "iu":
        return
    text = read_text()
    for role in ("user", "item"):
        ids = text[role]
        integer = ids.str.fullmatch(r"\s*[+-]?\d+\s*").fillna(False).to_numpy(dtype=bool)
        if not integer.all():
            row = int((~integer).argmax())
            raise DataFormatError(
                f"{path}, {locate(row)}: {role} id {_shown(ids.iloc[row])} is not an integer; ids of this format are integers. "
                "Fix or remove that line (or read the file as kind `custom`, whose ids are text)"
            )


def _read_movielens(path: Path, sep: str, header: bool, source=None) -> pd.DataFrame:
    """A MovieLens text file: user, item, rating in the first three columns, integer ids."""
    frame = _read_delimited(path, sep, header, source)
    if frame.shape[1] < 3:
        raise DataFormatError(
            f"{path}: expected at least 3 {sep!r}-separated columns user, item, rating(, timestamp); found {frame.shape[1]}"
        )
    locate = _line_locator(path, header)
    tidy = _tidy(frame.iloc[:, :3].set_axis(COLUMNS, axis=1), path, locate)
    ids = list(frame.columns[:2])
    _require_integer_ids(
        tidy, path, locate, lambda: _read_delimited(path, sep, header, source, text_columns=ids)[ids].set_axis(COLUMNS[:2], axis=1)
    )
    return tidy


def read_movielens_csv(path: Path) -> pd.DataFrame:
    """``userId,movieId,rating,timestamp`` with a header (ML-20M, ml-latest-small)."""
    return _read_movielens(path, ",", header=True)


def read_movielens_tsv(path: Path) -> pd.DataFrame:
    """``user<TAB>item<TAB>rating<TAB>ts`` without a header (ML-100K ``u.data``)."""
    return _read_movielens(path, "\t", header=False)


def read_movielens_dat(path: Path) -> pd.DataFrame:
    """``user::movie::rating::ts`` (ML-1M ``ratings.dat``); the two-character separator is folded
    to a comma so the fast C parser can be used."""
    return _read_movielens(path, ",", header=False, source=io.BytesIO(path.read_bytes().replace(b"::", b",")))


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
                block = pd.read_csv(
                    handle, header=None, usecols=[0, 1], names=["user", "rating"], dtype={"user": np.int64, "rating": np.float32}
                )
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
        frame = pd.read_csv(
            path, sep="\t", header=None, names=COLUMNS, dtype={"user": "category", "item": "category", "rating": np.float32}, engine="c"
        )
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc, "user<TAB>song<TAB>count triplets") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataFormatError(f"{path}: not user<TAB>song<TAB>count triplets: {exc}") from exc
    return _tidy(frame, path, _line_locator(path, header=False))


def read_custom(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """A user's own file described by ``user_col``, ``item_col``, optional ``rating_col``, ``format``, ``header``."""
    fmt = entry.get("format") or _format_from_suffix(path)
    columns = [entry["user_col"], entry["item_col"]] + ([entry["rating_col"]] if entry.get("rating_col") is not None else [])
    if fmt == "parquet":
        frame = _read_parquet(path, columns)
        locate = _data_row
    else:
        header = entry.get("header", True)
        frame = _read_delimited(path, "," if fmt == "csv" else "\t", header=header, text_columns=columns[:2])
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise DataFormatError(
                f"{path}: no column(s) {missing} among {list(frame.columns)}; fix user_col, item_col, rating_col "
                "or header in the dataset's registry entry"
            )
        frame = frame[columns]
        locate = _line_locator(path, header)
    return _tidy(frame.set_axis(COLUMNS[: len(columns)], axis=1), path, locate)


def _read_parquet(path: Path, columns: list) -> pd.DataFrame:
    """The ``columns`` (user, item[, rating]) of a parquet file; ids as text (see the module notes)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files and columns
        raise DataFormatError(f"{path}: cannot read columns {columns} from this parquet file: {exc}") from exc
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean)
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_null)
    data = {}
    for role, name in zip(COLUMNS, columns):
        column = table.column(name)
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if not any(test(kind) for test in numeric + text):
            what = "user ids" if role == "user" else "item ids" if role == "item" else "ratings"
            one = "one string or number per row" if role != "rating" else "one number per row"
            raise DataFormatError(
                f"{path}: parquet column {name!r} ({what}) has type {column.type}, expected {one}; "
                f"write that column as {'strings or numbers' if role != 'rating' else 'numbers'}, one value per row "
                f"(or point {role}_col at another column)"
            )
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, kind)
        if role != "rating" and any(test(kind) for test in numeric):
            column = pc.cast(column, pa.string())
        data[role] = column.to_pandas()
    return pd.DataFrame(data)


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
        raise IntegrityError(
            f"{path}: content counts differ from the published ones ({detail}); the file is corrupt or a different release — delete it and fetch again"
        )
