"""Preprocessing and the strong-generalisation split (Liang et al., WWW 2018).

Steps, in order (``../shared/spec/protocol.md`` §2):

1. keep ``rating > threshold`` (if a threshold is set) and binarise (one entry per user–item pair:
   duplicate rows of a pair are merged, so a pair is positive if any of its ratings passes the
   threshold, i.e. its maximum rating counts; the number merged is logged);
2. keep items with ``>= min_item_users`` users, then users with ``>= min_user_interactions``;
3. shuffle the users (sorted ids, ``numpy.random.RandomState(seed).permutation`` as in vae_cf;
   ids sort as numbers in the integer-id formats, as text in ``custom`` files, whose ids are
   labels: see :mod:`islim.data.readers`); the last ``2H`` are held out: ``H`` for validation,
   then ``H`` for test;
4. item vocabulary = items of the training users (sorted raw ids); held-out interactions with
   other items are dropped;
5. each held-out user with ``>= min_heldout_interactions`` interactions gives a random
   ``floor(target_fraction · n)`` of them to the target set; the rest (and every interaction of
   smaller users) is the fold-in input;
6. a held-out user with a non-empty target set is *evaluable*: a split with fewer than
   ``min_evaluable_users`` of them in validation or in test is refused (the metrics would be
   undefined or their standard error, which needs two users, NaN).

Matrices are ``(n_users_in_part, n_items)`` CSR float32 ones with columns in vocabulary order;
rows follow the shuffled user order.

The per-user hold-out ("weak generalisation") protocol writes the same five matrices with other
contents (:mod:`islim.data.peruser`); :attr:`Split.protocol` says which, :meth:`Split.held_out`
gives what evaluation needs under either.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from islim.errors import ConfigError, DataFormatError, IntegrityError
from islim.fileio import atomic_path, write_csv, write_json

log = logging.getLogger(__name__)

PARTS = ("train", "validation_tr", "validation_te", "test_tr", "test_te")
#: The least ``min_evaluable_users``: the standard error of a metric needs two evaluated users.
MIN_EVALUABLE_USERS = 2
QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


@dataclasses.dataclass
class Split:
    """The five matrices of the protocol plus the maps back to raw ids.

    Attributes
    ----------
    train : scipy.sparse.csr_matrix, shape (n_train_users, n_items)
        All interactions of the training users.
    validation_tr, validation_te : scipy.sparse.csr_matrix
        Fold-in and target of the validation users.
    test_tr, test_te : scipy.sparse.csr_matrix
        Fold-in and target of the test users.
    user_ids : dict of str to ndarray
        Raw user id of each row, per group ``train``/``validation``/``test``.
    item_ids : ndarray, shape (n_items,)
        Raw item id of each column (the vocabulary).
    n_filtered_interactions : int
        Interactions after filtering, before the vocabulary cut.
    protocol : str
        ``"strong"`` or ``"weak"`` (:data:`islim.models.registry.PROTOCOLS`). Under ``weak`` all five matrices have
        one row per user, the same user in the same row (:mod:`islim.data.peruser`).
    n_dropped_users : int
        Users dropped by the per-user hold-out rule (0 under ``strong``).
    """

    train: sp.csr_matrix
    validation_tr: sp.csr_matrix
    validation_te: sp.csr_matrix
    test_tr: sp.csr_matrix
    test_te: sp.csr_matrix
    user_ids: dict[str, np.ndarray]
    item_ids: np.ndarray
    n_filtered_interactions: int
    protocol: str = "strong"
    n_dropped_users: int = 0

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def held_out(self, group: str) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray | None]:
        """What evaluating on ``group`` (``"validation"`` or ``"test"``) passes to
        :func:`islim.evaluate.evaluate`: ``(fold_in, target, user_ids)``.

        ``fold_in`` is scored from and excluded from the rankings; ``user_ids`` are the rows of the
        users in :attr:`train` (``None`` under ``strong``, whose held-out users are not in it; under
        ``weak`` ``0 … n_users − 1``, so models that score known users can look them up).
        """
        if group not in ("validation", "test"):
            raise ValueError(f"group must be 'validation' or 'test', not {group!r}")
        fold_in, target = getattr(self, f"{group}_tr"), getattr(self, f"{group}_te")
        return fold_in, target, (np.arange(fold_in.shape[0]) if self.protocol == "weak" else None)


def binarize_and_filter(frame: pd.DataFrame, threshold: float | None, min_item_users: int, min_user_interactions: int) -> pd.DataFrame:
    """Steps 1–2: threshold, binarise, then the item filter followed by the user filter (one pass each)."""
    if threshold is not None:
        frame = frame[frame["rating"] > threshold]
    duplicated = frame.duplicated(["user", "item"]).to_numpy()
    if duplicated.any():
        log.info(
            "merged %d duplicate (user, item) rows: a pair counts once, as positive if any of its ratings passes the threshold",
            int(duplicated.sum()),
        )
    frame = frame.loc[~duplicated, ["user", "item"]]
    if min_item_users > 0:
        item_users = frame["item"].value_counts()
        frame = frame[frame["item"].isin(item_users.index[item_users >= min_item_users])]
    if min_user_interactions > 0:
        activity = frame["user"].value_counts()
        frame = frame[frame["user"].isin(activity.index[activity >= min_user_interactions])]
    return frame.reset_index(drop=True)


def n_heldout(n_users: int, heldout_users: int | float) -> int:
    """Held-out users per validation/test part: a count, or a fraction of ``n_users`` (rounded)."""
    count = heldout_users if isinstance(heldout_users, int) else int(round(heldout_users * n_users))
    if count < 1 or n_users - 2 * count < 1:
        most = (n_users - 1) // 2
        advice = (
            f"set heldout_users to a count from 1 to {most:,} or a fraction giving one"
            if most >= 1
            else "lower threshold or the minimum counts so that at least 3 users remain"
        )
        raise ConfigError(
            f"heldout_users={heldout_users} gives {count} validation and {count} test users out of "
            f"{n_users:,} users after filtering; need at least 1 each and at least 1 training user: {advice}"
        )
    return count


def interaction_matrix(frame: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
    """CSR ones with rows in the order of ``users`` and columns in the order of sorted ``items``."""
    rows = pd.Index(users).get_indexer(frame["user"])
    cols = np.searchsorted(items, frame["item"].to_numpy())
    data = np.ones(len(frame), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    matrix.sort_indices()
    return matrix


def part_size(counts: np.ndarray, fraction: float) -> np.ndarray:
    """``floor(fraction · n)`` for each count ``n`` (int64; robust to ``0.2 · 5 = 0.9999…``)."""
    return np.floor(np.asarray(counts) * fraction + 1e-9).astype(np.int64)


def random_per_row(rows: np.ndarray, n_rows: int, fraction: float, rng: np.random.Generator, min_count: int = 0) -> np.ndarray:
    """Mark a random ``floor(fraction · n)`` of each row's ``n`` entries (rows with ``n < min_count``: none).

    Parameters
    ----------
    rows : ndarray of int, shape (n_entries,)
        Row index of each entry (user of each interaction), in ``0 … n_rows − 1``.
    n_rows : int
        Number of rows.
    fraction : float
        Fraction of each row marked, rounded down.
    rng : numpy.random.Generator
        Draws one uniform key per entry (``rng.random(n_entries)``); the lowest keys of a row are marked.
    min_count : int
        Rows with fewer entries get none marked.

    Returns
    -------
    ndarray of bool, shape (n_entries,)
    """
    key = rng.random(len(rows))
    order = np.lexsort((key, rows))
    row_sorted = rows[order]
    counts = np.bincount(row_sorted, minlength=n_rows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_row = np.arange(len(order)) - starts[row_sorted]
    n_marked = np.where(counts >= min_count, part_size(counts, fraction), 0)
    marked = np.empty(len(rows), dtype=bool)
    marked[order] = rank_in_row < n_marked[row_sorted]
    return marked


def _fold_in_target(
    frame: pd.DataFrame, users: np.ndarray, items: np.ndarray, rng: np.random.Generator, fraction: float, min_interactions: int
):
    """Step 5 for one held-out part: random ``floor(fraction · n)`` items of each user become the target."""
    frame = frame[frame["item"].isin(items)]
    is_target = random_per_row(pd.Index(users).get_indexer(frame["user"]), len(users), fraction, rng, min_interactions)
    return interaction_matrix(frame[~is_target], users, items), interaction_matrix(frame[is_target], users, items)


def make_split(
    frame: pd.DataFrame, heldout_users: int | float, seed: int = 98765, target_fraction: float = 0.2, min_heldout_interactions: int = 5
) -> Split:
    """Steps 3–5 on a binarised, filtered frame with columns ``user``, ``item``."""
    if frame.empty:
        raise DataFormatError("no interactions are left after thresholding and filtering; lower `threshold` or the minimum counts")
    users = np.sort(frame["user"].unique())
    n_val = n_heldout(len(users), heldout_users)
    shuffled = users[np.random.RandomState(seed).permutation(len(users))]
    n_train = len(users) - 2 * n_val
    groups = {"train": shuffled[:n_train], "validation": shuffled[n_train : n_train + n_val], "test": shuffled[n_train + n_val :]}
    group_of_user = pd.Series(np.repeat(list(groups), [len(v) for v in groups.values()]), index=shuffled)
    frame_group = group_of_user.reindex(frame["user"]).to_numpy()
    train_frame = frame[frame_group == "train"]
    items = np.sort(train_frame["item"].unique())
    rng = np.random.default_rng(seed)
    val_tr, val_te = _fold_in_target(
        frame[frame_group == "validation"], groups["validation"], items, rng, target_fraction, min_heldout_interactions
    )
    test_tr, test_te = _fold_in_target(frame[frame_group == "test"], groups["test"], items, rng, target_fraction, min_heldout_interactions)
    return Split(interaction_matrix(train_frame, groups["train"], items), val_tr, val_te, test_tr, test_te, groups, items, len(frame))


def split_stats(split: Split) -> dict[str, Any]:
    """Sizes, density and popularity/activity quantiles of a split (JSON-serialisable)."""
    popularity = np.asarray(split.train.sum(axis=0)).ravel()
    activity = np.diff(split.train.indptr)
    n_train_users = split.train.shape[0]
    weak = split.protocol == "weak"  # every group holds every user
    return {
        "protocol": split.protocol,
        "users": {group: int(len(ids)) for group, ids in split.user_ids.items()}
        | {"total": int(n_train_users if weak else sum(len(v) for v in split.user_ids.values()))},
        "items": int(split.n_items),
        "interactions": {part: int(getattr(split, part).nnz) for part in PARTS}
        | {"filtered_before_vocabulary_cut": int(split.n_filtered_interactions)},
        "evaluated_users": {group: int((np.diff(getattr(split, f"{group}_te").indptr) > 0).sum()) for group in ("validation", "test")},
        "dropped_users": int(split.n_dropped_users),
        "density": float(split.train.nnz / max(1, n_train_users * split.n_items)),
        "item_popularity_quantiles": {str(q): float(np.quantile(popularity, q)) for q in QUANTILES},
        "user_activity_quantiles": {str(q): float(np.quantile(activity, q)) for q in QUANTILES},
    }


def check_expected(stats: dict[str, Any], expected: dict[str, int], name: str) -> None:
    """Fail loudly when the published sizes (users, items, interactions) are not reproduced."""
    found = {
        "users": stats["users"]["total"],
        "items": stats["items"],
        "interactions": stats["interactions"]["filtered_before_vocabulary_cut"],
    }
    wrong = [f"{key}: expected {value:,}, found {found[key]:,}" for key, value in expected.items() if found[key] != value]
    if wrong:
        raise IntegrityError(
            f"{name}: preprocessing does not reproduce the published sizes ({'; '.join(wrong)}); check the raw file and the threshold/filter settings"
        )


def check_evaluable(stats: dict[str, Any], entry: dict[str, Any], name: str) -> None:
    """Step 6: fail unless validation and test each have ``min_evaluable_users`` evaluable users.

    Parameters
    ----------
    stats : dict
        :func:`split_stats` of the split (``users`` and ``evaluated_users`` per group).
    entry : dict
        The dataset's registry entry: ``min_evaluable_users`` (default 2) and the settings that
        decide who is evaluable, named in the error with their values.
    name : str
        The dataset, named in the error.

    Raises
    ------
    DataFormatError
        Naming the dataset, the evaluable and held-out users of each part and the settings to change.
    """
    least = entry.get("min_evaluable_users", MIN_EVALUABLE_USERS)
    found = stats["evaluated_users"]
    if min(found.values()) >= least:
        return
    counts = ", ".join(f"{group} {found[group]:,} of {stats['users'][group]:,}" for group in ("validation", "test"))
    lower = f"; or lower min_evaluable_users (now {least}, at least {MIN_EVALUABLE_USERS})" if least > MIN_EVALUABLE_USERS else ""
    if stats.get("protocol") == "weak":
        raise DataFormatError(
            f"dataset {name!r}: too few users with held-out interactions under the per-user hold-out protocol: {counts}; "
            f"min_evaluable_users={least} are needed in each of validation and test. A user has validation interactions when "
            f"floor(validation_fraction={entry.get('validation_fraction', 0.2)} x training interactions) >= 1. "
            f"Use a dataset with more users, or lower min_user_interactions or the thresholds in its registry entry{lower}"
        )
    values = {
        key: entry.get(key, default)
        for key, default in (("min_heldout_interactions", 5), ("target_fraction", 0.2), ("min_user_interactions", 5))
    }
    raise DataFormatError(
        f"dataset {name!r}: too few evaluable held-out users (with at least one target interaction): {counts}; "
        f"min_evaluable_users={least} are needed in each of validation and test. A held-out user is evaluable when it keeps "
        f"at least min_heldout_interactions={values['min_heldout_interactions']} interactions with training items and "
        f"floor(target_fraction={values['target_fraction']} x interactions) >= 1. In its registry entry raise heldout_users "
        f"(now {entry.get('heldout_users')}) or min_user_interactions (now {values['min_user_interactions']}), or lower "
        f"min_heldout_interactions{lower}"
    )


def save_split(split: Split, directory: str | Path) -> None:
    """Write the five ``.npz`` matrices, ``users.csv``, ``items.csv`` and ``stats.json`` atomically."""
    directory = Path(directory)
    for part in PARTS:
        with atomic_path(directory / f"{part}.npz", suffix=".npz") as tmp:
            sp.save_npz(tmp, getattr(split, part), compressed=True)
    users = pd.concat([pd.DataFrame({"group": group, "row": np.arange(len(ids)), "user_id": ids}) for group, ids in split.user_ids.items()])
    write_csv(directory / "users.csv", users)
    write_csv(directory / "items.csv", pd.DataFrame({"column": np.arange(split.n_items), "item_id": split.item_ids}))
    stats = split_stats(split)
    write_json(directory / "stats.json", stats)


def read_ids(text: pd.Series) -> np.ndarray:
    """Original user or item ids read back as text: integers where every id is written as one
    (``"7"``, ``"-3"``, no leading zeros), otherwise the strings as written (``"007"`` stays
    ``"007"``, ``"NA"`` is an id, not a missing value), so ids round-trip through the CSV."""
    if text.str.fullmatch(r"0|-?[1-9][0-9]{0,17}").all():
        return text.astype(np.int64).to_numpy()
    return text.to_numpy(dtype=object)


def load_split(directory: str | Path) -> Split:
    """Read a split written by :func:`save_split`."""
    directory = Path(directory)
    try:
        matrices = {part: sp.load_npz(directory / f"{part}.npz").tocsr() for part in PARTS}
        users = pd.read_csv(directory / "users.csv", dtype={"user_id": str}, keep_default_na=False)
        items = read_ids(pd.read_csv(directory / "items.csv", dtype={"item_id": str}, keep_default_na=False)["item_id"])
        stats = pd.read_json(directory / "stats.json", typ="series")
    except FileNotFoundError as exc:
        raise DataFormatError(f"{directory}: incomplete split ({exc.filename} missing); run the preprocessing step again") from exc
    user_ids = {group: read_ids(users.loc[users["group"] == group, "user_id"]) for group in ("train", "validation", "test")}
    n_filtered = int(stats["interactions"]["filtered_before_vocabulary_cut"])
    protocol, dropped = stats.get("protocol", "strong"), int(stats.get("dropped_users", 0))
    return Split(
        **matrices, user_ids=user_ids, item_ids=items, n_filtered_interactions=n_filtered, protocol=protocol, n_dropped_users=dropped
    )


def filter_entry(frame: pd.DataFrame, entry: dict[str, Any], name: str) -> pd.DataFrame:
    """Steps 1–2 with the settings of a registry ``entry``; a frame left empty is refused, naming them."""
    filters = {key: entry.get(key, default) for key, default in (("threshold", None), ("min_item_users", 0), ("min_user_interactions", 5))}
    filtered = binarize_and_filter(frame, *filters.values())
    if filtered.empty:
        settings = ", ".join(f"{key}={value}" for key, value in filters.items())
        raise DataFormatError(
            f"dataset {name!r}: no user is left after thresholding and filtering {len(frame):,} raw interactions "
            f"({settings}); lower these settings in its registry entry"
        )
    return filtered


def check_split(split: Split, entry: dict[str, Any], name: str) -> Split:
    """Check the ``expected`` sizes of a registry ``entry`` (if given) and step 6; returns ``split``."""
    stats = split_stats(split)
    if entry.get("expected"):
        check_expected(stats, entry["expected"], name)
    check_evaluable(stats, entry, name)
    return split


def prepare(frame: pd.DataFrame, entry: dict[str, Any], name: str) -> Split:
    """Steps 1–6 with the parameters of a registry ``entry``; checks ``expected`` sizes if given."""
    filtered = filter_entry(frame, entry, name)
    try:
        split = make_split(
            filtered,
            entry["heldout_users"],
            entry.get("seed", 98765),
            entry.get("target_fraction", 0.2),
            entry.get("min_heldout_interactions", 5),
        )
    except ConfigError as exc:
        raise ConfigError(f"dataset {name!r}: {exc}") from exc
    return check_split(split, entry, name)
