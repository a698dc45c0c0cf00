"""EASE, the in-place SPD inverse and the dense Gram matrix against dense float64 references."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from islim import linalg as linalg_module
from islim.errors import IslimError, MemoryBudgetError
from islim.gram import dense_gram
from islim.linalg import ease_from_gram, mirror_upper_triangle, spd_inverse_inplace
from islim.models.ease import EASE
from islim.spmm import column_tiled_product, row_split_product, sparse_dense_product
from tests.matrices import random_binary

#: float32 EASE weights agree with float64 within this fraction of the largest |B_ij|.
FLOAT32_RELATIVE_TOLERANCE = 1e-5


def reference_ease(X: sp.spmatrix, lam: float) -> np.ndarray:
    """``B = I − P diag(1/diag P)`` with ``P = (XᵀX + λI)⁻¹`` by dense float64 ``numpy.linalg.inv``."""
    dense = X.toarray().astype(np.float64)
    P = np.linalg.inv(dense.T @ dense + lam * np.eye(dense.shape[1]))
    return np.eye(P.shape[0]) - P / np.diag(P)[None, :]


def random_spd(n: int, dtype, seed: int, order: str = "C") -> np.ndarray:
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    return np.array(M @ M.T + n * np.eye(n), dtype=dtype, order=order)


@pytest.mark.parametrize("lam", [1.0, 50.0])
def test_ease_float64_equals_the_dense_inverse_reference(lam):
    X = random_binary(80, 35, 0.2, seed=0)
    model = EASE(lam=lam, dtype="float64").fit(X)
    assert model.weights_.dtype == np.float64 and model.weights_.shape == (35, 35)
    np.testing.assert_allclose(model.weights_, reference_ease(X, lam), rtol=1e-9, atol=1e-12)


def test_ease_weights_have_a_zero_diagonal():
    model = EASE(lam=10.0).fit(random_binary(60, 40, 0.15, seed=1))
    np.testing.assert_array_equal(np.diag(model.weights_), 0.0)


def test_ease_float32_is_within_tolerance_of_float64():
    X = random_binary(200, 60, 0.1, seed=2)
    single = EASE(lam=20.0, dtype="float32").fit(X).weights_
    reference = reference_ease(X, 20.0)
    assert single.dtype == np.float32
    assert np.abs(single - reference).max() <= FLOAT32_RELATIVE_TOLERANCE * np.abs(reference).max()


def test_ease_scores_are_fold_in_times_weights():
    X = random_binary(50, 30, 0.2, seed=3)
    model = EASE(lam=5.0, dtype="float64").fit(X)
    fold_in = random_binary(7, 30, 0.3, seed=4)
    scores = model.score_batch(fold_in)
    assert scores.shape == (7, 30) and isinstance(scores, np.ndarray)
    np.testing.assert_allclose(scores, fold_in.toarray() @ reference_ease(X, 5.0), rtol=1e-9, atol=1e-12)


def test_ease_with_a_precomputed_gram_matches_and_leaves_it_unchanged():
    X = random_binary(70, 25, 0.2, seed=5)
    gram = (X.T @ X).toarray().astype(np.float64)
    before = gram.copy()
    from_gram = EASE(lam=3.0, dtype="float64").fit(X, gram=gram)
    np.testing.assert_array_equal(gram, before)
    np.testing.assert_allclose(from_gram.weights_, reference_ease(X, 3.0), rtol=1e-9, atol=1e-12)


def test_ease_from_gram_overwrite_flag():
    X = random_binary(40, 20, 0.25, seed=6)
    gram = np.ascontiguousarray((X.T @ X).toarray(), dtype=np.float64)
    kept = gram.copy()
    ease_from_gram(gram, 2.0)
    np.testing.assert_array_equal(gram, kept)
    np.testing.assert_allclose(ease_from_gram(gram, 2.0, overwrite=True), reference_ease(X, 2.0), rtol=1e-9, atol=1e-12)


@pytest.fixture(params=["openblas", "mkl"])
def inverse_path(request, monkeypatch):
    """Run a test through scipy's LAPACK and through the torch/MKL path used above 4 GiB."""
    if request.param == "mkl":
        monkeypatch.setattr(linalg_module, "OPENBLAS_MAX_BYTES", 0)
    return request.param


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_spd_inverse_inplace_equals_numpy_inverse_for_c_order(dtype, rtol, inverse_path):
    A = random_spd(23, dtype, seed=7, order="C")
    expected = np.linalg.inv(A.astype(np.float64))
    result = spd_inverse_inplace(A)
    assert result.dtype == dtype and result.shape == (23, 23)
    assert np.shares_memory(result, A)  # the input buffer is reused: no second n² array
    np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    np.testing.assert_array_equal(result, result.T)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_spd_inverse_inplace_equals_numpy_inverse_for_fortran_order(dtype, rtol, inverse_path):
    A = random_spd(23, dtype, seed=7, order="F")
    expected = np.linalg.inv(A.astype(np.float64))
    result = spd_inverse_inplace(A)
    np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spd_inverse_of_an_indefinite_matrix_raises(dtype, inverse_path):
    A = np.diag([2.0, -1.0, 3.0]).astype(dtype)
    with pytest.raises(IslimError, match="not positive definite"):
        spd_inverse_inplace(A)


@pytest.mark.parametrize("block", [1, 3, 4, 10, 64])
def test_mirror_upper_triangle_with_blocks_smaller_and_larger_than_n(block):
    rng = np.random.default_rng(8)
    A = rng.standard_normal((10, 10))
    expected = np.triu(A) + np.triu(A, 1).T
    mirror_upper_triangle(A, block=block)
    np.testing.assert_array_equal(A, expected)


@pytest.mark.parametrize("slab", [1, 3, 7, 29, 2048])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_gram_equals_sparse_product_for_every_slab_size(slab, dtype):
    X = random_binary(90, 29, 0.2, seed=9)
    gram = dense_gram(X, dtype=dtype, slab=slab)
    assert gram.dtype == dtype and gram.flags.c_contiguous
    np.testing.assert_array_equal(gram, (X.T @ X).toarray().astype(dtype))


def test_dense_gram_accepts_csc_and_coo_input():
    X = random_binary(50, 17, 0.3, seed=10)
    expected = (X.T @ X).toarray()
    for converted in (X.tocsc(), X.tocoo()):
        np.testing.assert_array_equal(dense_gram(converted, slab=5), expected)


@pytest.mark.parametrize("gram_given", [False, True])
def test_ease_over_budget_raises_before_allocating(gram_given):
    """5,000 items: one float32 n² array (the in-place inverse) is 100 MB; the failed fit must allocate far less."""
    n_items = 5000
    X = sp.csr_matrix((3, n_items), dtype=np.float32)
    gram = np.zeros((1, 1), dtype=np.float32) if gram_given else None  # never read: the check comes first
    tracemalloc.start()
    try:
        with pytest.raises(MemoryBudgetError) as caught:
            EASE(lam=10.0, budget_bytes=10_000_000).fit(X, gram=gram)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    message = str(caught.value)
    assert "0.09 GiB" in message and "5,000 x 5,000" in message and "0.01 GiB" in message


def test_dense_gram_over_budget_raises_naming_the_matrix():
    with pytest.raises(MemoryBudgetError, match=r"dense Gram matrix \(4,000 x 4,000 float64\)"):
        dense_gram(sp.csr_matrix((2, 4000)), dtype=np.float64, budget_bytes=1000)


@pytest.mark.parametrize("n_threads, tile_bytes", [(1, 1 << 20), (2, 40 * 4 * 16), (3, 1)])
def test_column_tiled_product_equals_the_row_order_product_bit_for_bit(n_threads, tile_bytes):
    """One tile, then tiles of 16 columns (the narrowest; 70 = 4 · 16 + 6): each entry sums its
    terms in the same order as scipy's own product."""
    X = random_binary(40, 60, 0.15, seed=13)
    X.data = np.random.default_rng(5).uniform(0.5, 2.0, X.nnz).astype(np.float32)
    dense = np.random.default_rng(6).standard_normal((60, 70)).astype(np.float32)
    product = column_tiled_product(X, dense, n_threads=n_threads, tile_bytes=tile_bytes)
    assert product.dtype == np.float32 and product.flags.c_contiguous
    np.testing.assert_array_equal(product, X @ dense)
    np.testing.assert_allclose(product, X.toarray().astype(np.float64) @ dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_rows", [0, 1, 9])
def test_row_split_product_is_scipys_column_order_product_for_any_thread_count(n_rows):
    X = random_binary(max(n_rows, 1), 50, 0.3, seed=14)[:n_rows]
    X.data = np.random.default_rng(8).uniform(0.5, 2.0, X.nnz)
    dense = np.random.default_rng(7).standard_normal((50, 5)).astype(np.float32)
    products = [row_split_product(X, dense, n_threads=n) for n in (1, 2, 3, 16)]
    assert products[0].shape == (n_rows, 5) and products[0].dtype == np.float32
    np.testing.assert_allclose(products[0], X.toarray() @ dense, rtol=1e-5, atol=1e-5)
    reference = X.astype(np.float32).tocsc() @ dense
    assert all(np.array_equal(p, reference) for p in products)  # each row sums in column order, whatever the split


def test_ease_scores_are_the_fold_in_rows_times_the_weights():
    X = random_binary(60, 25, 0.2, seed=15)
    model = EASE(lam=5.0).fit(X)
    rows = random_binary(7, 25, 0.3, seed=16)
    np.testing.assert_array_equal(model.score_batch(rows), rows @ model.weights_)


@pytest.mark.parametrize("n_threads, block", [(1, 256), (2, 7), (3, 1)])
def test_sparse_dense_product_matches_scipy(n_threads, block):
    X = random_binary(40, 30, 0.2, seed=12)
    dense = np.random.default_rng(3).standard_normal((30, 9)).astype(np.float32)
    product = sparse_dense_product(X, dense, n_threads=n_threads, block=block)
    assert product.dtype == np.float32 and product.flags.c_contiguous
    np.testing.assert_allclose(product, X.toarray() @ dense, rtol=1e-6, atol=1e-6)
