"""Property-based tests (hypothesis, the fixed ``islim`` profile of ``conftest.py``) of the
readers, the preprocessing, the split and the metrics on random small inputs, against brute-force
Python computations written here or in ``test_metrics.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import assume, given
from hypothesis import strategies as st

from islim.data.readers import read_interactions
from islim.data.split import PARTS, binarize_and_filter, make_split
from islim.evaluate import per_user_metrics
from islim.metrics import top_k_items
from tests.test_metrics import brute_per_user

GROUPS = ("train", "validation", "test")


# ------------------------------------------------------------------ strategies


@st.composite
def rated_frames(draw):
    """Up to 60 rows of (user, item, rating) over few users and items, duplicates included."""
    n_users, n_items = draw(st.integers(1, 12)), draw(st.integers(1, 10))
    rows = draw(
        st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1), st.sampled_from([1.0, 2.5, 3.5, 4.0, 5.0])),
            min_size=1,
            max_size=60,
        )
    )
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


@st.composite
def split_problems(draw):
    """A binarised frame with at least 3 users, a feasible held-out count and split settings."""
    n_users, n_items = draw(st.integers(3, 25)), draw(st.integers(1, 15))
    pairs = draw(st.sets(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), min_size=3, max_size=n_users * n_items))
    frame = pd.DataFrame(sorted(pairs), columns=["user", "item"])
    n_present = frame["user"].nunique()
    assume(n_present >= 3)
    heldout = draw(st.integers(1, (n_present - 1) // 2))
    settings = {
        "seed": draw(st.integers(0, 2**31 - 1)),
        "target_fraction": draw(st.sampled_from(["0.1", "0.2", "0.25", "0.5", "0.9"])),
        "min_heldout_interactions": draw(st.integers(1, 6)),
    }
    return frame, heldout, settings


@st.composite
def ranking_problems(draw):
    """Disjoint binary fold-in and target matrices (some users without targets) and an integer
    item-item scorer ``x W + b`` (so ties are frequent and a row's scores depend on its fold-in only)."""
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 30))
    roles = np.array(
        draw(st.lists(st.lists(st.sampled_from("..ft"), min_size=n_items, max_size=n_items), min_size=n_users, max_size=n_users))
    )
    fold_in = sp.csr_matrix((roles == "f").astype(np.float32))
    target = sp.csr_matrix((roles == "t").astype(np.float32))
    weights = np.array(draw(st.lists(st.integers(0, 2), min_size=n_items * n_items, max_size=n_items * n_items)), dtype=np.float32).reshape(
        n_items, n_items
    )
    bias = np.array(draw(st.lists(st.integers(0, 3), min_size=n_items, max_size=n_items)), dtype=np.float32)
    return (lambda x: np.asarray(x @ weights) + bias), fold_in, target


# ------------------------------------------------------------------ preprocessing


@given(rated_frames(), st.sampled_from([None, 0.0, 3.5, 4.5]), st.integers(0, 3), st.integers(0, 3))
def test_binarize_and_filter_equals_the_brute_force_rule(frame, threshold, min_item_users, min_user_interactions):
    best = {}
    for user, item, rating in frame.itertuples(index=False):
        best[(user, item)] = max(best.get((user, item), -math.inf), rating)
    pairs = {pair for pair, rating in best.items() if threshold is None or rating > threshold}
    item_users = {i: sum(1 for _, j in pairs if j == i) for _, i in pairs}
    pairs = {(u, i) for u, i in pairs if item_users[i] >= min_item_users}
    user_items = {u: sum(1 for v, _ in pairs if v == u) for u, _ in pairs}
    pairs = {(u, i) for u, i in pairs if user_items[u] >= min_user_interactions}
    result = binarize_and_filter(frame, threshold, min_item_users, min_user_interactions)
    assert list(result.columns) == ["user", "item"] and not result.duplicated().any()
    assert set(map(tuple, result.to_numpy().tolist())) == pairs


# ------------------------------------------------------------------ the split


def pairs_of(matrix: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(users[coo.row].tolist(), items[coo.col].tolist()))


@given(split_problems())
def test_split_protocol_invariants_hold(problem):
    frame, heldout, settings = problem
    fraction = Fraction(settings["target_fraction"])
    split = make_split(frame, heldout, settings["seed"], float(fraction), settings["min_heldout_interactions"])
    users = split.user_ids
    everyone = np.concatenate([users[g] for g in GROUPS])
    assert len(set(everyone.tolist())) == len(everyone) and set(everyone.tolist()) == set(frame["user"])
    assert len(users["validation"]) == len(users["test"]) == heldout and len(users["train"]) == len(everyone) - 2 * heldout
    by_user = frame.groupby("user")["item"].apply(set).to_dict()
    vocabulary = sorted(set().union(*(by_user[u] for u in users["train"])))
    assert split.item_ids.tolist() == vocabulary
    for part in PARTS:
        matrix = getattr(split, part)
        assert matrix.format == "csr" and matrix.dtype == np.float32 and matrix.has_canonical_format
        assert matrix.shape == (len(users[part.split("_")[0]]), len(vocabulary)) and np.all(matrix.data == 1.0)
    assert pairs_of(split.train, users["train"], split.item_ids) == {(u, i) for u in users["train"] for i in by_user[u]}
    for group in ("validation", "test"):
        fold_in, target = getattr(split, f"{group}_tr"), getattr(split, f"{group}_te")
        for row, user in enumerate(users[group]):
            kept = by_user[user] & set(vocabulary)
            given_items = set(split.item_ids[fold_in[row].indices].tolist())
            target_items = set(split.item_ids[target[row].indices].tolist())
            assert given_items | target_items == kept and not given_items & target_items
            n = len(kept)
            assert len(target_items) == (math.floor(n * fraction) if n >= settings["min_heldout_interactions"] else 0)


@given(split_problems(), st.integers(0, 2**31 - 1))
def test_split_depends_only_on_its_inputs_and_seed(problem, global_seed):
    frame, heldout, settings = problem
    args = (heldout, settings["seed"], float(Fraction(settings["target_fraction"])), settings["min_heldout_interactions"])
    first = make_split(frame, *args)
    np.random.seed(global_seed % 2**32)  # the global numpy RNG must play no part
    second = make_split(frame.copy(), *args)
    for part in PARTS:
        assert (getattr(first, part) != getattr(second, part)).nnz == 0
    for group in GROUPS:
        np.testing.assert_array_equal(first.user_ids[group], second.user_ids[group])
    np.testing.assert_array_equal(first.item_ids, second.item_ids)


# ------------------------------------------------------------------ the metrics


@given(ranking_problems())
def test_metrics_equal_the_brute_force_loop_and_lie_in_the_unit_interval(problem):
    score, fold_in, target = problem
    got = per_user_metrics(score, fold_in, target, batch_size=2)
    expected = brute_per_user(score(fold_in), fold_in, target)
    np.testing.assert_array_equal(got["user"], np.flatnonzero(np.diff(target.indptr) > 0))
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-12, atol=1e-12, err_msg=name)
        assert np.all((got[name] >= 0.0) & (got[name] <= 1.0 + 1e-12))


@given(ranking_problems(), st.data())
def test_a_perfect_ranking_scores_one(problem, data):
    _, fold_in, target = problem
    evaluated = np.flatnonzero(np.diff(target.indptr) > 0)
    fold_in, target = fold_in[evaluated], target[evaluated]  # every row is scored, in order
    noise = np.array(data.draw(st.lists(st.floats(0.0, 0.99), min_size=target.shape[1], max_size=target.shape[1])))
    scores = target.toarray() * 2.0 + noise  # every target above every other item
    got = per_user_metrics(lambda batch: scores, fold_in, target)
    for name in ("recall@20", "recall@50", "ndcg@100"):
        assert got[name] == pytest.approx(np.ones(len(evaluated)), abs=1e-12)


@given(ranking_problems(), st.data())
def test_top_k_is_the_stable_sort_with_ties_to_the_lower_index(problem, data):
    score, fold_in, _ = problem
    scores = score(fold_in).astype(np.float32)
    scores[fold_in.toarray() > 0] = -np.inf
    k = data.draw(st.integers(1, scores.shape[1]))
    np.testing.assert_array_equal(top_k_items(scores, k), np.argsort(-scores, axis=1, kind="stable")[:, :k])


# ------------------------------------------------------------------ the readers: ids are labels

#: Characters of random ids: digits and the signs of numbers (so many ids look numeric: ``007``,
#: ``7.0``, ``1e0``, ``-0``), letters (``NA``, ``nan``, ``e``), both delimiters, the quote, spaces
#: and a non-ASCII letter.
ID_ALPHABET = '0123456789.e+-xNAn ,\t"é'


def delimited_field(text: str, sep: str, quote: bool) -> str:
    """``text`` as one field: quoted (inner quotes doubled) when asked or when it must be."""
    if quote or sep in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def delimited_files(draw):
    """The bytes of a random CSV or TSV file of (user, item, rating) rows and the ids written in it:
    ids mixing numeric-looking and other text, random quoting, optional header, BOM and CRLF."""
    ids = st.text(ID_ALPHABET, min_size=1, max_size=5)
    users = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    items = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    rows = draw(st.lists(st.tuples(st.sampled_from(users), st.sampled_from(items), st.integers(0, 5)), min_size=1, max_size=30))
    fmt, header = draw(st.sampled_from(["csv", "tsv"])), draw(st.booleans())
    sep = "," if fmt == "csv" else "\t"
    quoting = st.booleans()
    lines = [sep.join(delimited_field(name, sep, draw(quoting)) for name in ("user", "item", "rating"))] if header else []
    lines += [sep.join([delimited_field(u, sep, draw(quoting)), delimited_field(i, sep, draw(quoting)), str(r)]) for u, i, r in rows]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    content = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + "".join(line + newline for line in lines).encode("utf-8")
    columns = ("user", "item", "rating") if header else (0, 1, 2)
    entry = {"kind": "custom", "format": fmt, "header": header, "user_col": columns[0], "item_col": columns[1], "rating_col": columns[2]}
    return content, entry, rows


@given(delimited_files())
def test_delimited_ids_are_exactly_the_texts_written(tmp_path_factory, case):
    content, entry, rows = case
    path = tmp_path_factory.mktemp("reader") / f"interactions.{entry['format']}"
    path.write_bytes(content)
    frame = read_interactions(path, entry)
    assert frame["user"].tolist() == [u for u, _, _ in rows] and frame["item"].tolist() == [i for _, i, _ in rows]
    assert set(frame["user"]) == {u for u, _, _ in rows} and set(frame["item"]) == {i for _, i, _ in rows}
    assert frame["rating"].tolist() == [float(r) for _, _, r in rows]


@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20),
    st.lists(st.text(ID_ALPHABET, min_size=1, max_size=5), min_size=1, max_size=20),
)
def test_parquet_ids_are_the_canonical_text_of_each_value(tmp_path_factory, integers, floats, texts):
    n = min(len(integers), len(floats), len(texts))
    path = tmp_path_factory.mktemp("reader") / "interactions.parquet"
    pd.DataFrame({"u": integers[:n], "i": floats[:n], "s": texts[:n]}).to_parquet(path, index=False)
    by_number = read_interactions(path, {"kind": "custom", "user_col": "u", "item_col": "i"})
    assert by_number["user"].tolist() == [str(value) for value in integers[:n]]
    assert [float(text) for text in by_number["item"]] == floats[:n]  # the text is the number, exactly
    assert by_number["item"].nunique() == len({np.float64(value).tobytes() for value in floats[:n]})  # one text per value
    by_text = read_interactions(path, {"kind": "custom", "user_col": "s", "item_col": "u"})
    assert by_text["user"].tolist() == texts[:n] and by_text["user"].nunique() == len(set(texts[:n]))
