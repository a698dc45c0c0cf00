"""Adjacency-list files: one line per user listing the user's items.

Two readers share one line parser (:func:`adjacency_lines`):

- :func:`adjacency_pairs`, the ``adjacency`` format of ``custom`` datasets, whose ids are labels
  (text). A line is ``[user] [count] item item …``: the user id is either the first field
  (``user_ids: first_field``) or the line's 0-based number (``user_ids: line_number``, as in
  citeulike-a's ``users.dat``, whose line *u* holds user *u*), and ``leading_count: true`` says a
  count of the items comes (after the user id, if any) before the items, and must match them.
  A user id on several lines has the items of all of them; an item listed twice is kept twice
  here (the split merges duplicate pairs).
- :func:`read_lightgcn`, the ``train.txt``/``test.txt`` files of the LightGCN authors
  (``user_id item_id item_id …``, integer ids, users ``0 … U−1``), read straight into a sparse
  user × item matrix.

Fields are separated by runs of whitespace (spaces, tabs) unless a one-character separator is
given. Blank lines are skipped, except that with ``user_ids: line_number`` a blank line still
counts as a user (without items), so that ids stay line numbers. A UTF-8 byte-order mark, CRLF
line endings and a missing final newline are read as usual; gzip and zstd files are read as their
uncompressed text (:mod:`islim.data.rawtext`). Malformed lines raise
:class:`~islim.errors.DataFormatError` naming the file and the 1-based line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from islim.data.rawtext import decompression_errors, not_utf8_line, open_raw, shown
from islim.errors import DataFormatError

log = logging.getLogger(__name__)

#: Where the user id of a line comes from (the ``user_ids`` setting of the ``adjacency`` format).
USER_IDS = ("first_field", "line_number")
_BOM = b"\xef\xbb\xbf"


def adjacency_lines(path: Path, separator: str | None, what: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, fields)`` for every line of ``path``; a blank line gives no fields.

    Parameters
    ----------
    path : Path
        A plain, gzip or zstd text file in UTF-8.
    separator : str or None
        One character between fields, or ``None`` for runs of whitespace.
    what : str
        What a line should look like, for the error messages.

    Raises
    ------
    DataFormatError
        Bytes that are not UTF-8, an empty field between two separators (naming the line), or a
        cut or corrupt compressed stream.
    """
    with decompression_errors(path), open_raw(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as bad:
                raise not_utf8_line(path, number, raw, bad, what) from bad
            if separator is None or not text.strip():
                yield number, text.split()
                continue
            fields = text.split(separator)
            if "" in fields:
                raise DataFormatError(
                    f"{path}, line {number}: field {fields.index('') + 1} is empty (two {separator!r} in a row, or one at "
                    f"the start or end of the line); expected {what}. Fix that line, or check the delimiter"
                )
            yield number, fields


def _count(path: Path, number: int, token: str | None, n_items: int) -> None:
    """Check a line's leading count against the ``n_items`` item ids that follow it."""
    if token is None:
        raise DataFormatError(f"{path}, line {number}: a user id without the count of items that should follow it; fix that line")
    if not token.isascii() or not token.isdigit():
        raise DataFormatError(
            f"{path}, line {number}: the count {shown(token)} is not a non-negative integer; fix that line, or set "
            "`leading_count: false` if the lines hold no count"
        )
    if int(token) != n_items:
        raise DataFormatError(
            f"{path}, line {number}: the count says {int(token):,} items but {n_items:,} item ids follow; fix that line "
            "(or check `leading_count`, `user_ids` and the delimiter)"
        )


def adjacency_pairs(
    path: Path, user_ids: str = "first_field", leading_count: bool = False, separator: str | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The (user, item) pairs of an adjacency-list file, ids as text, in file order.

    Parameters
    ----------
    path : Path
        The file (plain, gzip or zstd; UTF-8).
    user_ids : {"first_field", "line_number"}
        The user id of a line: its first field, or its 0-based line number (``"0"`` for line 1).
    leading_count : bool
        Each line holds the number of its items before them (after the user id, if any).
    separator : str or None
        One character between fields, or ``None`` for runs of whitespace.

    Returns
    -------
    tuple
        A frame with text columns ``user`` and ``item``, one row per listed item (n_pairs rows;
        an item listed twice for a user gives two rows), and the 1-based line of each row
        (int64, shape (n_pairs,)).

    Raises
    ------
    DataFormatError
        A missing, non-integer or wrong count, an empty field, bytes that are not UTF-8, naming
        the line.
    """
    if user_ids not in USER_IDS:
        raise ValueError(f"user_ids must be one of {USER_IDS}, not {user_ids!r}")
    shape = " ".join((["user"] if user_ids == "first_field" else []) + (["count"] if leading_count else []) + ["item", "item", "..."])
    users, sizes, items, numbers = [], [], [], []
    for number, fields in adjacency_lines(path, separator, f"lines `{shape}`"):
        if user_ids == "line_number":
            user, rest = str(number - 1), fields
        elif fields:
            user, rest = fields[0], fields[1:]
        else:
            continue
        if leading_count and fields:
            _count(path, number, rest[0] if rest else None, len(rest) - 1)
            rest = rest[1:]
        users.append(user)
        sizes.append(len(rest))
        items.extend(rest)
        numbers.append(number)
    frame = pd.DataFrame({"user": np.repeat(np.array(users, dtype=object), sizes), "item": np.array(items, dtype=object)})
    return frame, np.repeat(np.array(numbers, dtype=np.int64), sizes)


def _integer_ids(tokens: list[str], lines: np.ndarray, path: Path, role: str, limit: int | None) -> np.ndarray:
    """``tokens`` (ASCII digits) as int64 ids below ``limit`` (if given); errors name ``lines[k]``."""
    joined = "".join(tokens)
    if tokens and not (joined.isascii() and joined.isdigit()):
        k = next(k for k, token in enumerate(tokens) if not (token.isascii() and token.isdigit()))
        raise DataFormatError(
            f"{path}, line {lines[k]}: the {role} id {shown(tokens[k])} is not a non-negative integer; ids of this format "
            "are integers 0, 1, 2, … Fix or remove that line"
        )
    try:
        ids = np.array(tokens, dtype=np.int64)
    except OverflowError:
        k = next(k for k, token in enumerate(tokens) if int(token) > np.iinfo(np.int64).max)
        raise DataFormatError(f"{path}, line {lines[k]}: the {role} id {shown(tokens[k])} is too large; fix that line") from None
    if limit is not None and ids.size and ids.max() >= limit:
        k = int(ids.argmax())
        raise DataFormatError(
            f"{path}, line {lines[k]}: the {role} id {ids[k]} is not below the {limit:,} {role}s given; fix that line, "
            f"or leave n_{role}s out to count the {role}s from the file"
        )
    return ids


def read_lightgcn(path: str | Path, n_items: int | None = None, n_users: int | None = None) -> sp.csr_matrix:
    """A ``train.txt`` or ``test.txt`` of the LightGCN authors as a binary user × item matrix.

    Each non-blank line is ``user_id item_id item_id …`` (whitespace-separated integers, ids from
    0); row ``u`` of the result holds the items of the line of user ``u``. A user listed on no line
    has an empty row; a line with only a user id is a user without items. An item listed twice on
    one line counts once (logged).

    Parameters
    ----------
    path : str or Path
        The file (plain, gzip or zstd).
    n_items, n_users : int, optional
        The number of columns and rows; by default the largest id in the file plus one. Give the
        same numbers for the train and test files of one dataset so that their shapes agree.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape (n_users, n_items), float32 ones, sorted indices, no duplicates.

    Raises
    ------
    DataFormatError
        A line whose ids are not non-negative integers or not below ``n_users`` / ``n_items``, a
        user on two lines, bytes that are not UTF-8, naming the file and the line.
    """
    path = Path(path)
    user_tokens, item_tokens, sizes, numbers = [], [], [], []
    for number, fields in adjacency_lines(path, None, "lines `user_id item_id item_id ...` of integers"):
        if fields:
            user_tokens.append(fields[0])
            item_tokens.extend(fields[1:])
            sizes.append(len(fields) - 1)
            numbers.append(number)
    numbers = np.array(numbers, dtype=np.int64)
    users = _integer_ids(user_tokens, numbers, path, "user", n_users)
    items = _integer_ids(item_tokens, np.repeat(numbers, sizes), path, "item", n_items)
    order = np.argsort(users, kind="stable")
    repeated = np.flatnonzero(np.diff(users[order]) == 0)
    if repeated.size:
        first, second = sorted(numbers[order[repeated[0] : repeated[0] + 2]])
        raise DataFormatError(
            f"{path}, line {second}: user {users[order[repeated[0]]]} already has line {first}; each user has one line. Merge the two lines"
        )
    shape = (
        int(users.max() + 1 if users.size else 0) if n_users is None else n_users,
        int(items.max() + 1 if items.size else 0) if n_items is None else n_items,
    )
    matrix = sp.csr_matrix((np.ones(items.size, dtype=np.float32), (np.repeat(users, sizes), items)), shape=shape)
    matrix.sum_duplicates()
    if matrix.nnz < items.size:
        log.warning("%s: %d repeated (user, item) pairs counted once", path, items.size - matrix.nnz)
        matrix.data[:] = 1.0
    return matrix
