"""The per-user hold-out ("weak generalisation") protocol: every user is in train, validation and test.

Graph models (LightGCN, UltraGCN) score the users they were trained on, so they are evaluated by
holding out part of *each* user's interactions rather than whole users. Two ways in:

* :func:`split_per_user` splits any interaction frame (``protocol: weak`` on a dataset entry),
  after the usual thresholding and filters (:func:`islim.data.split.filter_entry`):

  1. each user with ``n`` interactions gives a random (seeded) ``n_test = floor(test_fraction · n)``
     of them to test;
  2. of the other ``n − n_test``, a random ``floor(validation_fraction · (n − n_test))`` go to
     validation; the rest is the user's training part;
  3. **dropped users**: a user for whom either number is 0 is dropped with all its
     interactions (with the default fractions 0.2: users with fewer than 6 interactions);
  4. the item vocabulary is the items of the kept users (any part; sorted raw ids); rows are
     the kept users in sorted raw-id order.

* :func:`split_published` takes a split published in the LightGCN authors' format (``kind:
  lightgcn``, ``train.txt`` and ``test.txt``, read by :func:`islim.data.adjacency.read_lightgcn`):
  the test split is kept untouched, validation is a random ``floor(validation_fraction · n)`` of
  each user's ``n`` training interactions, and no user is dropped (a user with too few training
  interactions has no validation part and is not evaluated on validation). Users and items keep
  their ids (``0 … U−1``, ``0 … I−1``, the largest id in either file plus one).

On disk (``data/processed/<dataset>/``) the five matrices of the strong protocol are written with
these contents, each of shape ``(n_users, n_items)``, row ``u`` being the same user everywhere:

=================  =============================================================================
``train``          the training part: what every model fits on
``validation_tr``  the same training part: excluded from the validation rankings, and the rows a
                   fold-in model (EASE, MF, …) scores the user from
``validation_te``  the validation part: the validation targets
``test_tr``        training + validation parts (for a published split: all of ``train.txt``):
                   excluded from the test rankings (as the LightGCN code excludes every
                   ``train.txt`` item) and the rows a fold-in model scores the user from
``test_te``        the test part: the test targets
=================  =============================================================================

``users.csv`` lists every user under each of the groups ``train``, ``validation`` and ``test``
with the same row; ``stats.json`` records ``"protocol": "weak"`` and the ``dropped_users``. Models
that score known users get ``users = 0 … n_users − 1`` (:meth:`islim.data.split.Split.held_out`).
The model selected on validation is evaluated on test as it is (not refitted on training +
validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from islim.data.adjacency import read_lightgcn
from islim.data.split import Split, check_split, filter_entry, interaction_matrix, part_size, random_per_row
from islim.errors import DataFormatError

#: Default fractions held out for test and, from the rest, for validation.
TEST_FRACTION = VALIDATION_FRACTION = 0.2


def take_per_user(matrix: sp.csr_matrix, fraction: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each row of ``matrix``: a random ``floor(fraction · n)`` of its ``n`` entries, and the rest.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Binary interactions.
    fraction : float
        Fraction of each row taken, rounded down.
    rng : numpy.random.Generator
        Source of the random choice (one uniform draw per interaction).

    Returns
    -------
    tuple of scipy.sparse.csr_matrix
        ``(taken, rest)``, both of ``matrix``'s shape, float32 ones, sorted indices.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    taken = random_per_row(rows, matrix.shape[0], fraction, rng)

    def part(mask: np.ndarray) -> sp.csr_matrix:
        ones = np.ones(int(mask.sum()), dtype=np.float32)
        result = sp.csr_matrix((ones, (rows[mask], matrix.indices[mask])), shape=matrix.shape, dtype=np.float32)
        result.sort_indices()
        return result

    return part(taken), part(~taken)


def _weak_split(
    train: sp.csr_matrix,
    validation: sp.csr_matrix,
    known: sp.csr_matrix,
    test: sp.csr_matrix,
    users: np.ndarray,
    items: np.ndarray,
    n_interactions: int,
    n_dropped: int,
) -> Split:
    """The :class:`Split` of the layout in the module notes; ``known`` = what test rankings exclude."""
    return Split(
        train=train,
        validation_tr=train,
        validation_te=validation,
        test_tr=known,
        test_te=test,
        user_ids=dict.fromkeys(("train", "validation", "test"), users),
        item_ids=items,
        n_filtered_interactions=n_interactions,
        protocol="weak",
        n_dropped_users=n_dropped,
    )


def split_per_user(
    frame: pd.DataFrame, seed: int = 98765, test_fraction: float = TEST_FRACTION, validation_fraction: float = VALIDATION_FRACTION
) -> Split:
    """Steps 1–4 of the module notes on a binarised, filtered frame with columns ``user``, ``item``.

    Raises
    ------
    DataFormatError
        No user has enough interactions for both a test and a validation part.
    """
    counts = frame["user"].value_counts()
    n_test = part_size(counts.to_numpy(), test_fraction)
    enough = (n_test >= 1) & (part_size(counts.to_numpy() - n_test, validation_fraction) >= 1)
    users = np.sort(counts.index[enough].to_numpy())
    if not len(users):
        raise DataFormatError(
            f"none of the {len(counts):,} users has enough interactions for a test and a validation part "
            f"(floor({test_fraction} x n) >= 1 and floor({validation_fraction} x (n - n_test)) >= 1; at most "
            f"{int(counts.max()) if len(counts) else 0} interactions found)"
        )
    kept = frame[frame["user"].isin(users)]
    items = np.sort(kept["item"].unique())
    rng = np.random.default_rng(seed)
    test, known = take_per_user(interaction_matrix(kept, users, items), test_fraction, rng)
    validation, train = take_per_user(known, validation_fraction, rng)
    return _weak_split(train, validation, known, test, users, items, len(frame), int((~enough).sum()))


def split_published(
    train: sp.csr_matrix, test: sp.csr_matrix, seed: int = 98765, validation_fraction: float = VALIDATION_FRACTION
) -> Split:
    """A published per-user split (LightGCN format): ``test`` untouched, validation carved from ``train``.

    Parameters
    ----------
    train, test : scipy.sparse matrix
        Binary user × item matrices of ``train.txt`` and ``test.txt``, row = user id, column = item
        id; each is padded to the larger shape of the two.
    seed : int
        Seed of the validation choice.
    validation_fraction : float
        Fraction of each user's training interactions that goes to validation (rounded down).

    Returns
    -------
    Split
        With ``n_filtered_interactions`` = the interactions of both files.
    """
    shape = (max(train.shape[0], test.shape[0]), max(train.shape[1], test.shape[1]))
    train, test = (sp.csr_matrix(matrix, dtype=np.float32) for matrix in (train, test))
    for matrix in (train, test):
        matrix.resize(shape)
        matrix.sort_indices()
    validation, fit = take_per_user(train, validation_fraction, np.random.default_rng(seed))
    users, items = np.arange(shape[0]), np.arange(shape[1])
    return _weak_split(fit, validation, train, test, users, items, train.nnz + test.nnz, 0)


def prepare_per_user(frame: pd.DataFrame, entry: dict[str, Any], name: str) -> Split:
    """Filter a raw frame with the settings of a registry ``entry`` and split it per user, then
    check the ``expected`` sizes (if given) and the evaluable users."""
    filtered = filter_entry(frame, entry, name)
    try:
        split = split_per_user(
            filtered,
            entry.get("seed", 98765),
            entry.get("test_fraction", TEST_FRACTION),
            entry.get("validation_fraction", VALIDATION_FRACTION),
        )
    except DataFormatError as exc:
        raise DataFormatError(
            f"dataset {name!r}: {exc}; lower test_fraction or validation_fraction, or the filters, in its registry entry"
        ) from exc
    return check_split(split, entry, name)


def prepare_published(train_path: str | Path, test_path: str | Path, entry: dict[str, Any], name: str) -> Split:
    """Read a LightGCN-format ``train.txt`` / ``test.txt`` pair and split it (:func:`split_published`),
    then check the ``expected`` sizes (if given) and the evaluable users."""
    split = split_published(
        read_lightgcn(train_path), read_lightgcn(test_path), entry.get("seed", 98765), entry.get("validation_fraction", VALIDATION_FRACTION)
    )
    return check_split(split, entry, name)
