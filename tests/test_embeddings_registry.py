"""Reference arms (random, SVD) and the arm registry (islim.embeddings.reference, .registry)."""

import itertools

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from islim.embeddings import (
    FIRST_STEPS,
    NEIGHBOURHOODS,
    SECOND_STEPS,
    anchored_update,
    arm_embeddings,
    ease_weights,
    implicit_slim,
    random_embeddings,
    reference_embeddings,
    slim_lle,
    svd_embeddings,
)
from islim.errors import ConfigError, MemoryBudgetError


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(3)
    # low-rank structure plus noise so the top singular values are well separated
    scores = rng.standard_normal((150, 3)) @ rng.standard_normal((3, 40)) * 2 + rng.standard_normal((150, 40))
    return sp.csr_matrix((scores > 1.0).astype(np.float32))


def test_random_embeddings_deterministic_and_scaled():
    a, b = random_embeddings(500, 8, seed=1), random_embeddings(500, 8, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (500, 8)
    assert not np.array_equal(a, random_embeddings(500, 8, seed=2))
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0, atol=0.15)


def test_svd_embeddings_match_dense_right_singular_vectors(X):
    _, _, Vt = scipy.linalg.svd(X.toarray().astype(np.float64), full_matrices=False)
    converged = svd_embeddings(X, 5, seed=0, n_power_iter=40, dtype=np.float64)
    np.testing.assert_allclose(converged.T @ converged, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(converged * Vt[:5].T, axis=0)), 1.0, atol=1e-8)  # same order, up to sign
    default = svd_embeddings(X, 5, seed=0)
    assert default.dtype == np.float32
    assert np.degrees(scipy.linalg.subspace_angles(default[:, :1], Vt[:1].T)).max() < 1e-2


def test_reference_embeddings_dispatch(X):
    assert reference_embeddings("random", X, 4, seed=3).shape == (40, 4)
    np.testing.assert_allclose(reference_embeddings("svd", X, 4), svd_embeddings(X, 4))
    with pytest.raises(ConfigError):
        reference_embeddings("pca", X, 4)


VALID_ARMS = [arm for arm in itertools.product(NEIGHBOURHOODS, FIRST_STEPS, SECOND_STEPS) if arm[1:] != ("identity", "explicit")]


@pytest.mark.parametrize("neighbourhood,first_step,second_step", VALID_ARMS)
def test_every_arm_returns_finite_embeddings(X, neighbourhood, first_step, second_step):
    params = {"lam": 5.0, "alpha": 1.0, "k": 10, "n_iter": 20, "reg": 1e-2}
    E = arm_embeddings(X, 4, neighbourhood, first_step, second_step, params, seed=0)
    assert E.shape == (40, 4) and np.all(np.isfinite(E)) and np.any(E)


def test_paper_cells_are_the_paper_methods(X):
    E0 = random_embeddings(40, 4, seed=0)
    np.testing.assert_array_equal(
        arm_embeddings(X, 4, "all", "ease", "implicit", {"lam": 5.0, "alpha": 0.5}), implicit_slim(E0, X, 5.0, 0.5)
    )
    np.testing.assert_allclose(arm_embeddings(X, 4, "all", "ease", "explicit", {"lam": 5.0}), slim_lle(X, 5.0, 4))
    exact = arm_embeddings(X, 4, "all", "ease", "implicit", {"lam": 5.0, "alpha": 0.5, "surrogate": False})
    np.testing.assert_allclose(exact, anchored_update(ease_weights(X, 5.0), E0, 0.5), rtol=1e-6)


def test_identity_explicit_and_unknown_names_are_rejected(X):
    with pytest.raises(ConfigError, match="undefined"):
        arm_embeddings(X, 4, "all", "identity", "explicit")
    with pytest.raises(ConfigError, match="neighbourhood"):
        arm_embeddings(X, 4, "global", "ease", "explicit")
    with pytest.raises(ConfigError, match="unknown arm parameters"):
        arm_embeddings(X, 4, "all", "ease", "explicit", {"lambda": 3.0})


def test_arm_that_does_not_fit_raises_memory_budget_error(X):
    with pytest.raises(MemoryBudgetError, match="GiB"):
        arm_embeddings(X, 4, "all", "lle", "explicit", budget_bytes=1000)
