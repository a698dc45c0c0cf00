"""The seeded synthetic generator: exact format, requested size, heavy tails and low-rank taste."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from islim.data.readers import read_interactions
from islim.data.synthetic import generate, user_activity, write_synthetic
from islim.errors import ConfigError

N_USERS, N_ITEMS, N_INTERACTIONS = 2000, 1000, 60_000


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    return generate(N_USERS, N_ITEMS, N_INTERACTIONS, seed=11)


def top_share(matrix: sp.csr_matrix, fraction: float = 0.01) -> float:
    """Share of all interactions held by the most popular ``fraction`` of the items."""
    popularity = np.sort(np.asarray(matrix.sum(axis=0)).ravel())[::-1]
    return popularity[: max(1, int(fraction * matrix.shape[1]))].sum() / matrix.nnz


def centred_singular_values(matrix: sp.csr_matrix) -> np.ndarray:
    """Singular values of the doubly centred dense matrix (item popularity and user activity removed)."""
    dense = matrix.toarray().astype(np.float64)
    dense -= dense.mean(axis=0, keepdims=True)
    dense -= dense.mean(axis=1, keepdims=True)
    eigenvalues = np.linalg.eigvalsh(dense.T @ dense)[::-1]
    return np.sqrt(np.clip(eigenvalues, 0.0, None))


def test_shape_dtype_and_binary_without_duplicates(matrix):
    assert matrix.shape == (N_USERS, N_ITEMS) and matrix.format == "csr" and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix.data, 1.0)
    for u in range(N_USERS):
        row = matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]]
        assert np.all(np.diff(row) > 0), f"user {u}: unsorted or repeated items"
    assert matrix.indices.min() >= 0 and matrix.indices.max() < N_ITEMS
    assert matrix.has_canonical_format


def test_interaction_count_within_a_tenth_of_a_percent(matrix):
    assert abs(matrix.nnz - N_INTERACTIONS) <= 0.001 * N_INTERACTIONS


def test_every_user_has_at_least_five_interactions(matrix):
    assert np.diff(matrix.indptr).min() >= 5


def test_same_seed_same_matrix_other_seed_other_matrix():
    first, second = generate(300, 200, 6000, seed=5), generate(300, 200, 6000, seed=5)
    assert (first != second).nnz == 0
    assert (generate(300, 200, 6000, seed=6) != first).nnz > 0


def test_item_popularity_is_heavy_tailed(matrix):
    """The top 1 % of items hold ~11 % of the interactions with Zipf(1) popularity, ~2 % without it."""
    flat = generate(N_USERS, N_ITEMS, N_INTERACTIONS, popularity_exponent=0.0, seed=11)
    assert top_share(matrix) > 0.08
    assert top_share(matrix) > 3 * top_share(flat)


def test_user_activity_is_skewed(matrix):
    activity = np.diff(matrix.indptr)
    assert activity.max() / np.median(activity) > 10


def test_taste_gives_low_rank_structure_beyond_popularity():
    """With rank 4 the 4th centred singular value stands out of the bulk; without taste it does not."""
    rank = 4
    tasteful = centred_singular_values(generate(800, 300, 24_000, rank=rank, taste_strength=2.0, seed=3))
    popularity_only = centred_singular_values(generate(800, 300, 24_000, rank=rank, taste_strength=0.0, seed=3))
    assert tasteful[rank - 1] / tasteful[2 * rank] > 1.5
    assert popularity_only[rank - 1] / popularity_only[2 * rank] < 1.2
    assert tasteful[rank - 1] > 1.5 * popularity_only[rank - 1]


@pytest.mark.parametrize(
    "n_users, n_items, n_interactions",
    [(100, 50, 499), (100, 50, 100 * 25 + 1), (10, 8, 10 * 5 - 1)],
)
def test_impossible_sizes_raise(n_users, n_items, n_interactions):
    with pytest.raises(ConfigError, match=f"n_interactions={n_interactions:,}"):
        generate(n_users, n_items, n_interactions)


@pytest.mark.parametrize(
    "n_users, n_items, n_interactions, seed",
    [(289, 1979, 6008, 199), (1987, 1486, 10_129, 644), (100, 50, 500, 0), (100, 50, 2500, 0)],
)
def test_interaction_count_is_exact_for_awkward_sizes(n_users, n_items, n_interactions, seed):
    counts = user_activity(n_users, n_items, n_interactions, 1.0, np.random.default_rng(seed))
    assert counts.sum() == n_interactions
    assert counts.min() >= 5 and counts.max() <= max(5, n_items // 2)


def test_written_parquet_reads_back_as_the_same_matrix(tmp_path):
    entry = {"kind": "synthetic", "n_users": 300, "n_items": 200, "n_interactions": 6000, "seed": 4}
    path = write_synthetic(tmp_path / "synthetic.parquet", entry)
    frame = read_interactions(path, entry)
    expected = generate(300, 200, 6000, seed=4).tocoo()
    assert len(frame) == expected.nnz
    np.testing.assert_array_equal(frame["rating"].to_numpy(), 1.0)
    got = sp.csr_matrix((np.ones(len(frame), dtype=np.float32), (frame["user"], frame["item"])), shape=(300, 200))
    assert (got != expected.tocsr()).nnz == 0
