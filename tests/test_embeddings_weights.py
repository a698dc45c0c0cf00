"""First-step weights (islim.embeddings.weights, islim.embeddings.knn) against brute force and hand-worked cases."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from islim.embeddings import (
    cooccurrence_weights,
    ease_weights,
    identity_weights,
    knn_weights,
    lle_weights,
    slim_lle_weights,
    top_k_neighbours,
)
from islim.errors import ConfigError, MemoryBudgetError
from tests.matrices import random_binary

#: 4 users × 3 items; XᵀX = [[3, 2, 2], [2, 3, 1], [2, 1, 2]].
HAND_X = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 0]], dtype=np.float32))


@pytest.fixture(scope="module")
def X():
    return random_binary(50, 12, 0.3, seed=7)


def kkt_column(R, i, neighbours, lam, sum_to_one):
    """Brute force: min ‖r_i − R_N w‖² + lam‖w‖² (s.t. 1ᵀw = 1) through the KKT system of column i."""
    A = R[:, neighbours]
    k = len(neighbours)
    hessian = 2 * (A.T @ A + lam * np.eye(k))
    gradient = 2 * A.T @ R[:, i]
    if not sum_to_one:
        return scipy.linalg.solve(hessian, gradient)
    kkt = np.block([[hessian, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    return scipy.linalg.solve(kkt, np.append(gradient, 1.0))[:k]


def brute_force_weights(X, lam, sum_to_one):
    R = X.toarray().astype(np.float64)
    n = R.shape[1]
    S = np.zeros((n, n))
    for i in range(n):
        others = [j for j in range(n) if j != i]
        S[others, i] = kkt_column(R, i, others, lam, sum_to_one)
    return S


def brute_force_lle(X, reg, neighbourhoods):
    """Roweis–Saul recipe item by item: local Gram of differences, trace regulariser, normalise."""
    R = X.toarray().astype(np.float64)
    n = R.shape[1]
    S = np.zeros((n, n))
    for i in range(n):
        N = neighbourhoods[i]
        diff = R[:, [i]] - R[:, N]
        G = diff.T @ diff
        G += reg * np.trace(G) / len(N) * np.eye(len(N))
        w = scipy.linalg.solve(G, np.ones(len(N)))
        S[N, i] = w / w.sum()
    return S


def test_slim_lle_weights_zero_diagonal_unit_column_sums_and_kkt(X):
    S = slim_lle_weights(X, 3.0)
    np.testing.assert_array_equal(np.diag(S), 0.0)
    np.testing.assert_allclose(S.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(S, brute_force_weights(X, 3.0, sum_to_one=True), atol=1e-10)


def test_ease_weights_equal_restricted_ridge_regressions(X):
    S = ease_weights(X, 3.0)
    np.testing.assert_array_equal(np.diag(S), 0.0)
    np.testing.assert_allclose(S, brute_force_weights(X, 3.0, sum_to_one=False), atol=1e-10)


def test_ease_hand_worked_column():
    """Column 0 with λ = 1: [[4, 1], [1, 3]]⁻¹ [2, 2] = [4, 6] / 11."""
    S = ease_weights(HAND_X, 1.0)
    np.testing.assert_allclose(S[:, 0], [0.0, 4 / 11, 6 / 11], atol=1e-12)


def test_lle_weights_equal_roweis_saul_recipe(X):
    n = X.shape[1]
    everyone = [[j for j in range(n) if j != i] for i in range(n)]
    S = lle_weights(X, reg=0.05)
    np.testing.assert_allclose(S.sum(axis=0), 1.0, atol=1e-10)
    np.testing.assert_array_equal(np.diag(S), 0.0)
    np.testing.assert_allclose(S, brute_force_lle(X, 0.05, everyone), atol=1e-9)


def test_lle_hand_worked():
    """reg = 2/3: item 0 has G = diag(2, 1), r = 1 → w ∝ (1/3, 1/2) = (2/5, 3/5), etc."""
    expected = np.array([[0, 8 / 13, 5 / 7], [2 / 5, 0, 2 / 7], [3 / 5, 5 / 13, 0]])
    np.testing.assert_allclose(lle_weights(HAND_X, reg=2 / 3), expected, atol=1e-12)
    np.testing.assert_allclose(knn_weights(HAND_X, 2, "lle", reg=2 / 3).toarray(), expected, atol=1e-12)


def test_cooccurrence_hand_worked():
    expected = np.array([[0, 2 / 3, 2 / 3], [1 / 2, 0, 1 / 3], [1 / 2, 1 / 3, 0]])
    np.testing.assert_allclose(cooccurrence_weights(HAND_X), expected, atol=1e-15)
    np.testing.assert_allclose(knn_weights(HAND_X, 2, "cooccurrence").toarray(), expected, atol=1e-15)


def test_cooccurrence_isolated_item_keeps_zero_column():
    X = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float32))
    S = cooccurrence_weights(X)
    np.testing.assert_array_equal(S[:, 2], 0.0)
    np.testing.assert_allclose(S[:, :2].sum(axis=0), 1.0)


def test_identity_weights_is_empty_sparse():
    S = identity_weights(5)
    assert sp.issparse(S) and S.shape == (5, 5) and S.nnz == 0


@pytest.mark.parametrize(
    "rule,kwargs,dense",
    [
        ("ease", {"lam": 3.0}, lambda X: ease_weights(X, 3.0)),
        ("ease", {"lam": 3.0, "sum_to_one": True}, lambda X: slim_lle_weights(X, 3.0)),
        ("lle", {"reg": 0.05}, lambda X: lle_weights(X, 0.05)),
        ("cooccurrence", {}, cooccurrence_weights),
    ],
)
def test_knn_with_all_neighbours_reproduces_global(X, rule, kwargs, dense):
    S = knn_weights(X, X.shape[1] - 1, rule, **kwargs)
    assert sp.issparse(S)
    np.testing.assert_allclose(S.toarray(), dense(X), atol=1e-9)


def test_knn_identity_rule_is_zero(X):
    assert knn_weights(X, 3, "identity").nnz == 0


def test_top_k_neighbours_exclude_self_and_take_largest_cooccurrence(X):
    C = (X.T @ X).toarray()
    N = top_k_neighbours(C, 4)
    for i, row in enumerate(N):
        assert i not in row and len(set(row)) == 4
        others = np.delete(C[:, i], i)
        assert C[row, i].min() >= np.sort(others)[-4]


@pytest.mark.parametrize("sum_to_one", [False, True])
def test_knn_ease_columns_equal_local_kkt_solve(X, sum_to_one):
    k = 4
    S = knn_weights(X, k, "ease", lam=2.0, sum_to_one=sum_to_one).toarray()
    N = top_k_neighbours((X.T @ X).toarray(), k)
    R = X.toarray().astype(np.float64)
    for i in range(X.shape[1]):
        expected = np.zeros(X.shape[1])
        expected[N[i]] = kkt_column(R, i, N[i], 2.0, sum_to_one)
        np.testing.assert_allclose(S[:, i], expected, atol=1e-10)
    if sum_to_one:
        np.testing.assert_allclose(S.sum(axis=0), 1.0, atol=1e-12)


def test_knn_lle_equals_roweis_saul_recipe_on_neighbourhoods(X):
    k = 5
    N = top_k_neighbours((X.T @ X).toarray(), k)
    S = knn_weights(X, k, "lle", reg=0.1).toarray()
    np.testing.assert_allclose(S, brute_force_lle(X, 0.1, [list(row) for row in N]), atol=1e-10)


def test_invalid_first_steps_raise(X):
    with pytest.raises(ConfigError):
        ease_weights(X, 0.0)
    with pytest.raises(ConfigError):
        knn_weights(X, X.shape[1], "ease")
    with pytest.raises(ConfigError):
        knn_weights(X, 3, "slim")


def test_memory_budget_is_checked_before_allocating(X):
    with pytest.raises(MemoryBudgetError, match="GiB"):
        ease_weights(X, 1.0, budget_bytes=100)
    with pytest.raises(MemoryBudgetError):
        lle_weights(X, budget_bytes=100)
