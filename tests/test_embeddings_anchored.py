"""Generic implicit second step (islim.embeddings.anchored): CG vs direct solve, stationarity, iteration."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from islim.embeddings import anchored_update, block_cg, identity_weights, iterate_anchored_update, knn_weights
from islim.errors import ConfigError, MemoryBudgetError
from tests.matrices import random_binary


@pytest.fixture(scope="module")
def setup():
    X = random_binary(120, 40, 0.15, seed=11)
    E0 = np.random.default_rng(4).standard_normal((40, 5))
    mask = np.asarray(X.sum(axis=0)).ravel() >= 15
    return X, E0, mask


def lle_matrix(S):
    A = np.eye(S.shape[0]) - (S.toarray() if sp.issparse(S) else S)
    return A @ A.T


@pytest.mark.parametrize(
    "rule,kwargs", [("ease", {"lam": 5.0}), ("ease", {"lam": 5.0, "sum_to_one": True}), ("lle", {"reg": 1e-2}), ("cooccurrence", {})]
)
@pytest.mark.parametrize("alpha", [0.1, 10.0])
def test_cg_update_equals_direct_dense_solve(setup, rule, kwargs, alpha):
    X, E0, mask = setup
    S = knn_weights(X, 8, rule, **kwargs)
    direct = anchored_update(S.toarray(), E0, alpha, mask)
    iterative = anchored_update(S, E0, alpha, mask, solver="cg")
    np.testing.assert_allclose(iterative, direct, rtol=0, atol=1e-6 * np.abs(direct).max())


def test_update_is_stationary_point(setup):
    """C E + α F Fᵀ (E − E₀) = 0 with C = (I − S)(I − S)ᵀ, F = masked E₀."""
    X, E0, mask = setup
    S = knn_weights(X, 8, "ease", lam=5.0)
    E = anchored_update(S.toarray(), E0, 2.0, mask)
    F = E0 * mask[:, None]
    smooth = lle_matrix(S) @ E
    gradient = smooth + 2.0 * F @ (F.T @ (E - E0))
    assert np.abs(gradient).max() < 1e-9 * np.abs(smooth).max()


def test_identity_first_step_is_shrinkage_hand_worked():
    """S = 0, one dimension, E₀ = F = (1, 1, 0): E = α F (1 + 2α)⁻¹ · 2 = (2/3, 2/3, 0) at α = 1."""
    E0 = np.array([[1.0], [1.0], [0.0]])
    np.testing.assert_allclose(anchored_update(identity_weights(3), E0, 1.0), [[2 / 3], [2 / 3], [0.0]], atol=1e-15)


def test_identity_closed_form_equals_dense_solve(setup):
    _, E0, mask = setup
    n = E0.shape[0]
    np.testing.assert_allclose(
        anchored_update(identity_weights(n), E0, 0.3, mask), anchored_update(np.zeros((n, n)), E0, 0.3, mask), atol=1e-12
    )


def test_output_dtype_follows_input(setup):
    X, E0, _ = setup
    S = knn_weights(X, 5, "ease", lam=5.0)
    assert anchored_update(S, E0.astype(np.float32), 1.0).dtype == np.float32
    assert anchored_update(S, E0, 1.0).dtype == np.float64


def test_iterated_update_converges_to_bottom_eigenvectors(setup):
    X, E0, _ = setup
    S = knn_weights(X, 8, "ease", lam=5.0, sum_to_one=True)
    d = 3
    result = iterate_anchored_update(S, E0[:, :d], 1.0, n_iter=500, tol=1e-7)
    _, vectors = scipy.linalg.eigh(lle_matrix(S))
    assert result.converged
    assert np.degrees(scipy.linalg.subspace_angles(result.embeddings, vectors[:, :d])).max() < 1e-4


def test_block_cg_solves_spd_system_column_by_column():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((30, 30))
    A = M @ M.T + 30 * np.eye(30)
    B = rng.standard_normal((30, 4))
    B[:, 2] = 0.0  # a zero right-hand side must stay a zero solution
    X, info = block_cg(lambda P: A @ P, B, lambda R: R / np.diag(A)[:, None], tol=1e-12)
    assert info.converged and info.n_iter <= 60
    np.testing.assert_allclose(X, scipy.linalg.solve(A, B, assume_a="pos"), atol=1e-10)


def test_cg_non_convergence_warns(setup):
    X, E0, _ = setup
    S = knn_weights(X, 8, "ease", lam=5.0)
    with pytest.warns(RuntimeWarning, match="conjugate gradients"):
        anchored_update(S, E0, 1.0, maxiter=2, solver="cg")


def test_invalid_inputs_raise(setup):
    X, E0, _ = setup
    S = knn_weights(X, 5, "ease", lam=5.0)
    with pytest.raises(ConfigError):
        anchored_update(S, E0, 0.0)
    with pytest.raises(MemoryBudgetError):
        anchored_update(S.toarray(), E0, 1.0, budget_bytes=10)


def test_auto_solver_is_direct_for_small_sparse_systems_and_cg_beyond(setup, monkeypatch):
    import islim.embeddings.anchored as anchored

    X, E0, mask = setup
    S = knn_weights(X, 8, "ease", lam=5.0)
    direct = anchored_update(S.toarray(), E0, 1.0, mask)
    np.testing.assert_array_equal(anchored_update(S, E0, 1.0, mask), anchored_update(S, E0, 1.0, mask, solver="direct"))
    np.testing.assert_allclose(anchored_update(S, E0, 1.0, mask), direct, rtol=1e-12, atol=1e-12 * np.abs(direct).max())
    monkeypatch.setattr(anchored, "DIRECT_SOLVE_MAX_ITEMS", 1)
    with pytest.warns(RuntimeWarning, match="conjugate gradients"):  # now CG, capped at 2 iterations
        anchored_update(S, E0, 1.0, mask, maxiter=2)
    with pytest.raises(ConfigError, match="solver"):
        anchored_update(S, E0, 1.0, mask, solver="lu")
