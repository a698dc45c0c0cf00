"""ImplicitSLIM closed form (islim.embeddings.implicit) against dense evaluations of spec §2.4."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp
import torch

from islim.embeddings import SparseGram, TorchSparseGram, gram_operator, implicit_slim, iterate_implicit_slim
from islim.errors import ConfigError, DataFormatError
from tests.matrices import random_binary

ML_SMALL = Path("/work/shared/data/ml-latest-small/ratings.csv")


def ml_small(min_users):
    """ml-latest-small binarised (rating > 3.5), items with at least ``min_users`` users."""
    frame = pd.read_csv(ML_SMALL)
    frame = frame[frame.rating > 3.5]
    counts = frame.movieId.value_counts()
    frame = frame[frame.movieId.isin(counts.index[counts >= min_users])]
    users = pd.factorize(frame.userId)[0]
    items = pd.factorize(frame.movieId)[0]
    return sp.csr_matrix((np.ones(len(frame), np.float32), (users, items)))


def dense_operators(X, lam):
    """Dense float64 Γ, Δ⁻², Ω = Γ Δ⁻² Γ and Ω⁻¹ = Π Δ² Π of a small matrix."""
    R = X.toarray().astype(np.float64)
    gram = R.T @ R + lam * np.eye(R.shape[1])
    delta = np.diag(gram)
    omega = gram @ np.diag(delta**-2) @ gram
    pi = scipy.linalg.inv(gram)
    return omega, pi @ np.diag(delta**2) @ pi


def dense_implicit_slim(E0, X, lam, alpha, threshold):
    """Spec §2.4 boxed formula in the paper's d×I layout, dense float64."""
    R = X.toarray().astype(np.float64)
    omega, _ = dense_operators(X, lam)
    E = E0.T.astype(np.float64)
    F = E * (R.sum(axis=0) >= threshold)[None, :]
    d = E.shape[0]
    middle = scipy.linalg.solve(np.eye(d) + alpha * F @ omega @ F.T, F @ omega)
    return (alpha * (E @ F.T) @ middle).T


@pytest.fixture(scope="module")
def small():
    X = random_binary(60, 25, 0.2, seed=3)
    E0 = np.random.default_rng(0).standard_normal((25, 4))
    return X, E0


BACKENDS = {
    "default": lambda X: X,
    "scipy": lambda X: SparseGram(X, np.float64, block_size=17, chunk_width=3),
    "torch": lambda X: TorchSparseGram(X, dtype=torch.float64, block_size=17, chunk_width=3),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("threshold", [0.0, 3.0, 6.0])
def test_float64_equals_dense_closed_form(small, threshold, backend):
    X, E0 = small
    expected = dense_implicit_slim(E0, X, 2.5, 0.7, threshold)
    out = implicit_slim(E0, BACKENDS[backend](X), 2.5, 0.7, threshold)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_float32_on_ml_small_within_documented_tolerance():
    X = ml_small(20)
    E0 = np.random.default_rng(1).standard_normal((X.shape[1], 8))
    expected = dense_implicit_slim(E0, X, 50.0, 0.5, 10.0)
    out = implicit_slim(E0.astype(np.float32), X, 50.0, 0.5, 10.0)
    assert out.dtype == np.float32
    # float32 products over ~600 items: relative error a few 1e-5 of the largest entry.
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_output_is_stationary_point_of_objective(small):
    """∇ [tr(Eᵀ Ω⁻¹ E) + α‖Fᵀ(E − E₀)‖²] / 2 = Ω⁻¹ E + α F Fᵀ (E − E₀) = 0 at the output."""
    X, E0 = small
    lam, alpha = 2.5, 0.7
    E = implicit_slim(E0, X, lam, alpha)
    _, omega_inv = dense_operators(X, lam)
    smooth = omega_inv @ E
    anchor = alpha * E0 @ (E0.T @ (E - E0))
    gradient = smooth + anchor
    assert np.abs(gradient).max() < 1e-9 * np.abs(smooth).max()


def test_large_alpha_enforces_anchor_constraint(small):
    X, E0 = small
    E = implicit_slim(E0, X, 2.5, 1e9)
    np.testing.assert_allclose(E0.T @ E, E0.T @ E0, rtol=1e-6)


def test_threshold_above_every_popularity_gives_zero(small):
    X, E0 = small
    popularity = np.asarray(X.sum(axis=0)).ravel()
    out = implicit_slim(E0, X, 2.5, 0.7, threshold=popularity.max() + 1)
    assert out.shape == E0.shape
    assert not np.any(out)


def test_threshold_is_strict_less_than(small):
    """Items with popularity exactly τ still anchor."""
    X, E0 = small
    popularity = np.asarray(X.sum(axis=0)).ravel()
    tau = float(np.sort(popularity)[len(popularity) // 2])
    expected = dense_implicit_slim(E0, X, 2.5, 0.7, tau)
    np.testing.assert_allclose(implicit_slim(E0, X, 2.5, 0.7, tau), expected, atol=1e-8 * np.abs(expected).max())
    assert np.any(popularity == tau)


@pytest.mark.parametrize("block_size,n_workers,chunk_width", [(1, 1, 64), (7, 2, 1), (13, 3, 3), (1000, 2, 2)])
def test_blocks_chunks_and_workers_do_not_change_result(small, block_size, n_workers, chunk_width):
    X, E0 = small
    reference = implicit_slim(E0, SparseGram(X, np.float64, block_size=60, n_workers=1), 2.5, 0.7)
    scipy_gram = SparseGram(X, np.float64, block_size=block_size, n_workers=n_workers, chunk_width=chunk_width)
    torch_gram = TorchSparseGram(X, dtype=torch.float64, block_size=block_size, chunk_width=chunk_width)
    for out in (
        implicit_slim(E0, scipy_gram, 2.5, 0.7),
        implicit_slim(E0, torch_gram, 2.5, 0.7),
        implicit_slim(E0, X, 2.5, 0.7, block_size=block_size),
    ):
        np.testing.assert_allclose(out, reference, rtol=0, atol=1e-12 * np.abs(reference).max())


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_gram_operator_equals_dense_product(small, backend):
    X, E0 = small
    gram = BACKENDS[backend](X)
    product = gram.matmul(torch.from_numpy(E0) if backend == "torch" else E0)
    np.testing.assert_allclose(np.asarray(product), (X.T @ X).toarray() @ E0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_tensor_in_tensor_out_equal_to_numpy(small, dtype):
    X, E0 = small
    tensor = torch.from_numpy(E0).to(dtype)
    out = implicit_slim(tensor, X, 2.5, 0.7, 3.0)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.device.type == "cpu"
    expected = implicit_slim(tensor.numpy(), SparseGram(X, tensor.numpy().dtype), 2.5, 0.7, 3.0)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=tol * np.abs(expected).max())
    through_scipy = implicit_slim(tensor, SparseGram(X, tensor.numpy().dtype), 2.5, 0.7, 3.0)
    assert isinstance(through_scipy, torch.Tensor)
    np.testing.assert_allclose(through_scipy.numpy(), expected, rtol=0, atol=tol * np.abs(expected).max())


def test_conversion_is_cached_per_matrix_object_and_dtype(small):
    X, E0 = small
    assert gram_operator(X, like=E0) is gram_operator(X, like=torch.from_numpy(E0))
    assert gram_operator(X.copy(), like=E0) is not gram_operator(X, like=E0)
    assert gram_operator(X, like=E0.astype(np.float32)) is not gram_operator(X, like=E0)
    operator = gram_operator(X, like=E0)
    assert gram_operator(operator) is operator


def test_float16_input_is_computed_in_float32(small):
    X, E0 = small
    out = implicit_slim(E0.astype(np.float16), X, 2.5, 0.7)
    assert out.dtype == np.float32


def test_iterated_converges_to_top_eigenvectors_of_omega():
    X = random_binary(80, 30, 0.25, seed=5)
    d = 3
    result = iterate_implicit_slim(np.random.default_rng(2).standard_normal((30, d)), X, 4.0, 1.0, n_iter=3000, tol=1e-8, n_workers=1)
    omega, _ = dense_operators(X, 4.0)
    _, vectors = scipy.linalg.eigh(omega)
    angles = np.degrees(scipy.linalg.subspace_angles(result.embeddings, vectors[:, -d:]))
    assert result.converged
    assert angles.max() < 1e-5
    np.testing.assert_allclose(result.embeddings.T @ result.embeddings, np.eye(d), atol=1e-10)
    assert result.n_iter == len(result.angles)


def test_invalid_arguments_raise():
    X = random_binary(10, 5, 0.5, seed=0)
    E0 = np.ones((5, 2))
    with pytest.raises(ConfigError):
        implicit_slim(E0, X, 0.0, 1.0)
    with pytest.raises(ConfigError):
        implicit_slim(E0, X, 1.0, -1.0)
    with pytest.raises(DataFormatError):
        implicit_slim(E0.T, X, 1.0, 1.0)
    with pytest.raises(DataFormatError):
        implicit_slim(E0, X.toarray(), 1.0, 1.0)
