"""Explicit LLE step (islim.embeddings.explicit) on ml-latest-small and small random matrices."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp

import islim.embeddings.explicit as explicit_module
from islim.embeddings import knn_weights, lle_embeddings, slim_lle, slim_lle_weights
from islim.errors import ConfigError, MemoryBudgetError

ML_SMALL = Path("/work/shared/data/ml-latest-small/ratings.csv")


@pytest.fixture(scope="module")
def ml_small():
    """ml-latest-small binarised (rating > 3.5), movies with at least 20 such ratings (≈600 items)."""
    frame = pd.read_csv(ML_SMALL)
    frame = frame[frame.rating > 3.5]
    counts = frame.movieId.value_counts()
    frame = frame[frame.movieId.isin(counts.index[counts >= 20])]
    users = pd.factorize(frame.userId)[0]
    items = pd.factorize(frame.movieId)[0]
    return sp.csr_matrix((np.ones(len(frame), np.float32), (users, items)))


def full_spectrum(S):
    A = np.eye(S.shape[0]) - S
    return scipy.linalg.eigh(A @ A.T)


def test_slim_lle_eigenvalues_ascending_first_zero_and_dropped_vector_constant(ml_small):
    S = slim_lle_weights(ml_small, 200.0)
    embeddings, values = lle_embeddings(S, 16, return_eigenvalues=True)
    assert values.shape == (17,) and embeddings.shape == (ml_small.shape[1], 16)
    assert np.all(np.diff(values) >= 0)
    assert abs(values[0]) < 1e-10 * values[-1]
    all_values, all_vectors = full_spectrum(S)
    constant = all_vectors[:, 0] * np.sign(all_vectors[0, 0])
    np.testing.assert_allclose(constant, 1 / np.sqrt(len(S)), atol=1e-8)
    np.testing.assert_allclose(values, all_values[:17], atol=1e-9 * all_values[-1])
    # kept eigenvectors are orthogonal to the constant one and span eigenvectors 2..17
    np.testing.assert_allclose(embeddings.sum(axis=0), 0.0, atol=1e-8)
    assert np.degrees(scipy.linalg.subspace_angles(embeddings, all_vectors[:, 1:17])).max() < 1e-6


def test_slim_lle_end_to_end_is_orthonormal_and_matches_steps(ml_small):
    E = slim_lle(ml_small, 200.0, 8)
    np.testing.assert_allclose(E.T @ E, np.eye(8), atol=1e-10)
    steps = lle_embeddings(slim_lle_weights(ml_small, 200.0), 8)
    assert np.degrees(scipy.linalg.subspace_angles(E, steps)).max() < 1e-6


def test_without_sum_to_one_nothing_is_dropped():
    S = np.array([[0.0, 0.5, 0.2], [0.3, 0.0, 0.1], [0.1, 0.2, 0.0]])
    embeddings, values = lle_embeddings(S, 2, return_eigenvalues=True)
    all_values, all_vectors = full_spectrum(S)
    np.testing.assert_allclose(values, all_values[:2], atol=1e-12)
    assert np.degrees(scipy.linalg.subspace_angles(embeddings, all_vectors[:, :2])).max() < 1e-6


@pytest.mark.parametrize("dense_fraction", [1.0, 0.0], ids=["shift-invert", "densified"])
@pytest.mark.parametrize("rule,kwargs", [("ease", {"lam": 50.0, "sum_to_one": True}), ("ease", {"lam": 50.0}), ("lle", {"reg": 1e-3})])
def test_sparse_eigensolver_matches_dense(ml_small, rule, kwargs, dense_fraction, monkeypatch):
    monkeypatch.setattr(explicit_module, "DENSE_FRACTION", dense_fraction)
    S = knn_weights(ml_small, 20, rule, **kwargs)
    dense, dense_values = lle_embeddings(S.toarray(), 10, return_eigenvalues=True)
    sparse, sparse_values = lle_embeddings(S, 10, return_eigenvalues=True)
    np.testing.assert_allclose(sparse_values, dense_values, atol=1e-9 * max(1.0, dense_values[-1]))
    assert np.degrees(scipy.linalg.subspace_angles(dense, sparse)).max() < 1e-5


def test_too_many_dimensions_and_memory_budget_raise(ml_small):
    S = np.zeros((4, 4))
    with pytest.raises(ConfigError):
        lle_embeddings(S, 4)
    with pytest.raises(MemoryBudgetError):
        slim_lle(ml_small, 100.0, 4, budget_bytes=1000)
