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

A ``custom`` file is read by its entry's ``format`` (:data:`FORMATS`; by default the one its name
implies, :data:`SUFFIX_FORMATS`): ``csv`` and ``tsv`` (columns by header name, or by 0-based
position with ``header: false``; any one-character ``delimiter`` or ``whitespace``), ``parquet``,
``recbole`` (RecBole atomic files such as ``.inter``: a header of ``name:type`` fields, columns
named with or without their type) and ``adjacency`` (one line per user listing its items, see
:mod:`islim.data.adjacency`). Text files of every kind but MSD and Netflix may be gzip- or
zstd-compressed, told by their first bytes (:mod:`islim.data.rawtext`); line numbers in errors are
those of the uncompressed text.
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

from islim.data.adjacency import adjacency_pairs
from islim.data.rawtext import compression_of, decompression_errors, not_utf8_line, open_raw, plain_name, read_raw_bytes, shown
from islim.errors import ConfigError, DataFormatError, IntegrityError

COLUMNS = ["user", "item", "rating"]
_NETFLIX_MEMBER = re.compile(r"(?:^|/)mv_(\d+)\.txt$")
#: Longest user or item id accepted, in characters. A longer field is a broken file (an unclosed
#: quote, a wrong separator, binary data), not an id.
MAX_ID_CHARS = 65536
#: The ``delimiter`` that means any run of spaces and tabs.
WHITESPACE = "whitespace"


def _data_row(row: int) -> str:
    return f"data row {row + 1}"


def _line_locator(path: Path, header: bool) -> Callable[[int], str]:
    """Map a 0-based data row of a delimited text file to ``"line N"`` (1-based, as an editor shows).

    Blank lines are skipped as pandas skips them. Only used to word errors: one pass over the file.
    """

    def locate(row: int) -> str:
        seen = -1 if header else 0
        with decompression_errors(path), open_raw(path) as handle:
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
                f"{path}, {locate(row)}: the {role} id {shown(frame[role].iloc[row])} is longer than the {MAX_ID_CHARS:,} "
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
        problem = "missing rating (empty, NaN or too few fields)" if pd.isna(value) else f"rating {shown(value)} is not a finite number"
        raise DataFormatError(
            f"{path}, {locate(row)}: {problem}; fix or remove that line (or check rating_col, the separator and the number of columns)"
        )
    return pd.DataFrame({"user": frame["user"].to_numpy(), "item": frame["item"].to_numpy(), "rating": rating.astype(np.float32)})


def _not_utf8(path: Path, exc: UnicodeDecodeError, what: str) -> DataFormatError:
    """The error for a file that is not UTF-8 text, naming the first line holding other bytes.

    The decoder's position is an offset into a buffer of the parser, so the line is found here:
    UTF-8 never uses the newline byte inside a character, so each line decodes on its own.
    """
    with decompression_errors(path), open_raw(path) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return not_utf8_line(path, number, line, bad, what)
    return DataFormatError(f"{path}: cannot be read as UTF-8 text ({exc}); expected {what} in UTF-8. Convert the file to UTF-8")


def _read_delimited(path: Path, sep: str, header: bool, source=None, text_columns=()) -> pd.DataFrame:
    """``pandas.read_csv`` of ``source`` (default: the uncompressed text of ``path``, which names the file in errors).

    ``sep`` is one character or :data:`WHITESPACE`. ``text_columns`` are read as text, not
    numbers, and only an empty field in them is missing (``NA``, ``null`` and pandas' other
    missing-value spellings are text there).
    """
    name = "tab" if sep == "\t" else "whitespace" if sep == WHITESPACE else repr(sep)

    def read(**options) -> pd.DataFrame:
        options |= {"sep": r"\s+" if sep == WHITESPACE else sep, "header": 0 if header else None, "engine": "c", "low_memory": False}
        if source is not None:
            source.seek(0)
            return pd.read_csv(source, **options)
        with open_raw(path) as handle:
            return pd.read_csv(handle, **options)

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
                f"{path}, {locate(row)}: {role} id {shown(ids.iloc[row])} is not an integer; ids of this format are integers. "
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
    return _read_movielens(path, ",", header=False, source=io.BytesIO(read_raw_bytes(path).replace(b"::", b",")))


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


def _columns(entry: dict[str, Any]) -> list:
    """The entry's ``user_col``, ``item_col`` and, when given, ``rating_col``: names or 0-based positions."""
    return [entry["user_col"], entry["item_col"]] + ([entry["rating_col"]] if entry.get("rating_col") is not None else [])


def _read_columns(path: Path, entry: dict[str, Any], sep: str, header: bool) -> pd.DataFrame:
    """The user, item (and rating) columns of a delimited text file, named by header or by position."""
    columns = _columns(entry)
    frame = _read_delimited(path, sep, header=header, text_columns=columns[:2])
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        known = f"among {list(frame.columns)}" if header else f"in a file of {frame.shape[1]} columns (0-based positions)"
        raise DataFormatError(
            f"{path}: no column(s) {missing} {known}; fix user_col, item_col, rating_col, header or delimiter "
            "in the dataset's registry entry (a file with a header names its columns, one without numbers them from 0)"
        )
    return _tidy(frame[columns].set_axis(COLUMNS[: len(columns)], axis=1), path, _line_locator(path, header))


def _delimiter(entry: dict[str, Any], fmt: str) -> str:
    return entry.get("delimiter") or DELIMITERS[fmt]


def read_csv(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """Comma-separated (or ``delimiter``-separated) columns, with a header line unless ``header: false``."""
    return _read_columns(path, entry, _delimiter(entry, "csv"), entry.get("header", True))


def read_tsv(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """Tab-separated (or ``delimiter``-separated) columns, with a header line unless ``header: false``."""
    return _read_columns(path, entry, _delimiter(entry, "tsv"), entry.get("header", True))


def read_custom_parquet(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """The ``user_col``, ``item_col`` (and ``rating_col``) columns of a parquet file."""
    if compression_of(path) is not None:
        raise DataFormatError(
            f"{path}: a parquet file inside {compression_of(path)} compression; parquet compresses its columns itself, "
            "so store the file uncompressed"
        )
    return _tidy(_read_parquet(path, _columns(entry)), path, _data_row)


#: The field types of RecBole atomic files (RecBole's ``FeatureType``).
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def _recbole_header(path: Path, sep: str) -> dict[str, str]:
    """``{name: "name:type"}`` of the header line of a RecBole atomic file."""
    with decompression_errors(path), open_raw(path) as handle:
        line = handle.readline()
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as bad:
        raise not_utf8_line(path, 1, line, bad, "a RecBole header of name:type fields") from bad
    fields = text.split() if sep == WHITESPACE else text.split(sep)
    wrong = [field for field in fields if field.rpartition(":")[2] not in RECBOLE_TYPES or not field.rpartition(":")[0]]
    if not text.strip() or wrong:
        raise DataFormatError(
            f"{path}, line 1: {'no header' if not text.strip() else f'the header field {shown(wrong[0])} is not name:type'}; "
            f"a RecBole atomic file starts with a header of name:type fields with a type in {list(RECBOLE_TYPES)} "
            "(e.g. `user_id:token item_id:token rating:float timestamp:float`). Fix the header, or check the delimiter "
            "(or read the file as format csv or tsv)"
        )
    return {field.rpartition(":")[0]: field for field in fields} | {field: field for field in fields}


def read_recbole(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """A RecBole atomic file (``.inter``): tab-separated with a header of ``name:type`` fields.

    ``user_col``, ``item_col`` and ``rating_col`` name header fields without their type
    (``user_id``) or with it (``user_id:token``); ids must be ``token`` fields, a rating a
    ``float`` one.
    """
    sep = _delimiter(entry, "recbole")
    header = _recbole_header(path, sep)
    wanted = {"user": ("user_col", "token"), "item": ("item_col", "token"), "rating": ("rating_col", "float")}
    resolved = {}
    for role, (key, kind) in wanted.items():
        if entry.get(key) is None:
            continue
        field = header.get(entry[key])
        if field is None:
            names = list(dict.fromkeys(header.values()))
            raise DataFormatError(
                f"{path}: no field {entry[key]!r} in the RecBole header {names}; fix {key} in the dataset's registry entry"
            )
        if field.rpartition(":")[2] != kind:
            raise DataFormatError(
                f"{path}: {key} names the field {field!r}, but the {role} column must be of type {kind}; "
                f"point {key} at a {kind} field of the header"
            )
        resolved[key] = field
    return _read_columns(path, {**entry, **resolved}, sep, header=True)


def read_adjacency(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """One line per user listing its items (:func:`islim.data.adjacency.adjacency_pairs`); ratings are 1."""
    sep = _delimiter(entry, "adjacency")
    frame, lines = adjacency_pairs(
        path, entry.get("user_ids", "first_field"), entry.get("leading_count", False), None if sep == WHITESPACE else sep
    )
    return _tidy(frame, path, lambda row: f"line {lines[row]}")


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
    """The ``format`` a file name implies (after a compression suffix), from :data:`SUFFIX_FORMATS`."""
    suffix = plain_name(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise ConfigError(f"{path}: cannot tell the format from the extension {suffix!r}; set `format` to one of {sorted(FORMATS)}")
    return SUFFIX_FORMATS[suffix]


def read_custom(path: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """A user's own file in the entry's ``format`` (default: from the file name), read by :data:`FORMATS`."""
    return FORMATS[entry.get("format") or _format_from_suffix(path)](path, entry)


def read_synthetic(path: Path) -> pd.DataFrame:
    """The parquet file written by :func:`islim.data.synthetic.write_synthetic`."""
    return _tidy(pd.read_parquet(path), path)


#: The readers of ``custom`` files, by the entry's ``format``: ``reader(path, entry) -> frame``.
FORMATS = {
    "csv": read_csv,
    "tsv": read_tsv,
    "parquet": read_custom_parquet,
    "recbole": read_recbole,
    "adjacency": read_adjacency,
}
#: The field separator of each text format when the entry gives no ``delimiter``.
DELIMITERS = {"csv": ",", "tsv": "\t", "recbole": "\t", "adjacency": WHITESPACE}
#: The format a file name implies when the entry gives no ``format``.
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".dat": "tsv", ".txt": "tsv", ".parquet": "parquet", ".inter": "recbole"}

#: The readers of the downloaded and generated kinds: ``reader(path) -> frame``.
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
    with decompression_errors(path):
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
