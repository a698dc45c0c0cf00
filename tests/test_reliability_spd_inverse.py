"""The dense SPD inverse at every size the scipy/OpenBLAS path takes (issue 13, item 9).

OpenBLAS 0.3.30's threaded ``?potrf`` packs the first thread's share of its first trailing update,
``⌈(n − GEMM_Q)/√T⌉`` columns × GEMM_Q for ``T`` threads, into a fixed 32 MiB buffer and
segfaults once that share is larger than about GEMM_R columns: with 2 threads above n = 22,703
(float64) / 36,931 (float32) for the Haswell kernel and 15,545 / 26,289 for the SkylakeX kernel,
so below the 4 GiB up to which islim used scipy. The crash comes in the first seconds, at the first
trailing update, whatever the matrix; it does not depend on memory. :func:`islim.linalg.cholesky_inplace`
never hands OpenBLAS a symmetric update larger than :data:`islim.linalg.CHOLESKY_BLOCK`. numpy's
``A @ A.T`` is one threaded ``?syrk`` of order n with the same overflow (the dense systems of the
ablation arms): :func:`islim.linalg.symmetric_product` replaces it.

The large tests use the largest float64 matrix the scipy path takes (23,170², beyond the boundary
of both kernels) and only as much work as reaches the crash point: the factorisation's matrix is
positive definite in its first block and not in the second, so it does the whole first trailing
update (n² · block flops), then stops with the error; the product's ``A`` has 1,024 columns (≥ 2
GEMM_Q, the most the packing takes). They run in a subprocess, so that a segfault fails the test
instead of killing pytest, with 2 BLAS threads (the fewest that take OpenBLAS's threaded path; more
threads move the boundary up). The kernel that ran (``threadpoolctl``) is printed with any failure.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from islim.errors import DataFormatError, NumericalError
from islim.linalg import CHOLESKY_BLOCK, OPENBLAS_MAX_BYTES, cholesky_inplace, spd_inverse_inplace, symmetric_product
from islim.memory import available_bytes

#: The largest float64 matrix spd_inverse_inplace sends to scipy: 23,170 x 23,170 (4.29e9 bytes).
LARGEST_FLOAT64 = math.isqrt(OPENBLAS_MAX_BYTES // 8)


def spd_matrix(n: int, seed: int = 0) -> np.ndarray:
    """A well-conditioned random SPD float64 matrix."""
    M = np.random.default_rng(seed).standard_normal((n, n))
    return M @ M.T + n * np.eye(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("block", [1, 7, 64, CHOLESKY_BLOCK])
def test_the_blocked_cholesky_inverse_is_the_inverse(dtype, order, block):
    S = spd_matrix(150)
    A = np.array(S, dtype=dtype, order=order)
    inverse = spd_inverse_inplace(A, block=block)
    assert np.shares_memory(inverse, A) and inverse.flags[f"{order}_CONTIGUOUS"]
    expected = np.linalg.inv(S)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(inverse, expected, rtol=0, atol=tolerance * np.abs(expected).max())
    np.testing.assert_array_equal(inverse, inverse.T)


@pytest.mark.parametrize("block", [4, 16, 100])
def test_the_blocked_cholesky_names_the_first_leading_minor_that_is_not_positive(block):
    S = spd_matrix(60)
    S[37, 37] = -1.0
    A = np.array(S, order="F")
    assert cholesky_inplace(A, block) == 38 == scipy_potrf_info(S)
    with pytest.raises(
        NumericalError, match=r"^Cholesky factorisation failed \(LAPACK info=38\): the matrix is not positive definite; increase lambda$"
    ):
        spd_inverse_inplace(np.array(S), block=block)


def scipy_potrf_info(S: np.ndarray) -> int:
    import scipy.linalg

    (potrf,) = scipy.linalg.get_lapack_funcs(("potrf",), (S,))
    return int(potrf(np.array(S, order="F"), lower=True)[1])


def test_the_blocked_cholesky_refuses_layouts_it_cannot_work_in():
    with pytest.raises(DataFormatError, match="needs a writeable F-contiguous square array"):
        cholesky_inplace(np.eye(4)[:, :3].copy(order="F"))
    with pytest.raises(DataFormatError, match="needs a float32 or float64 matrix, got int64"):
        cholesky_inplace(np.eye(4, dtype=np.int64, order="F"))


@pytest.mark.parametrize("block", [1, 5, 64, CHOLESKY_BLOCK])
@pytest.mark.parametrize("shape", [(40, 7), (40, 90)])
def test_the_blocked_symmetric_product_is_a_at(block, shape):
    A = np.random.default_rng(1).standard_normal(shape)
    product = symmetric_product(A, block)
    assert product.flags.c_contiguous and np.array_equal(product, product.T)
    np.testing.assert_allclose(product, A @ A.T, rtol=0, atol=1e-12)
    assert symmetric_product(A.astype(np.float32), block).dtype == np.float32


#: Run first in each large test's subprocess: names the OpenBLAS kernels and limits BLAS to 2 threads.
PRELUDE = """
import sys
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
kernels = sorted({(lib["architecture"], lib["version"]) for lib in threadpool_info() if lib["internal_api"] == "openblas"})
print("OpenBLAS kernels:", kernels, flush=True)
threadpool_limits(2, user_api="blas")
"""


def run_large(script: str, *args) -> str:
    """Run ``PRELUDE + script`` with ``args`` in a fresh interpreter; its stdout, after checking it did not crash."""
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", PRELUDE + textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


LARGEST_SIZE_SCRIPT = textwrap.dedent(
    """
    from islim.errors import IslimError
    from islim.linalg import spd_inverse_inplace

    n, stop = int(sys.argv[1]), int(sys.argv[2])  # pivot `stop` (0-based) is the first that fails
    # A = 11ᵀ + diag(0, 1, ..., 1) = L Lᵀ with L = [[1, 0], [1, I]]: after the first column the
    # trailing matrix is the identity; A[stop, stop] = 1 makes that pivot 0 instead of 1.
    A = np.ones((n, n), order="F")
    A[np.diag_indices(n)] = 2.0
    A[0, 0] = A[stop, stop] = 1.0
    try:
        spd_inverse_inplace(A)
    except IslimError as exc:
        print("error:", exc, flush=True)
    # the first trailing update was computed: L21 = [1, 0, ..., 0], the trailing lower triangle is I
    assert (A[stop:, 0] == 1).all() and not A[stop:, 1:stop].any(), "the first panel is wrong"
    for start in range(stop + 1, n, 2048):
        part = np.tril(A[start:, start : start + 2048])
        width = part.shape[1]
        assert (part[:width].diagonal() == 1).all() and np.count_nonzero(part) == width, f"trailing columns {start}+ are wrong"
    print("checked", flush=True)
    """
)


@pytest.mark.skipif(available_bytes() < 7 * 2**30, reason="needs 7 GiB of free memory (a 4.3 GB float64 matrix)")
def test_the_largest_matrix_of_the_scipy_path_passes_the_size_where_openblas_crashed():
    assert LARGEST_FLOAT64 == 23_170 and LARGEST_FLOAT64**2 * 8 <= OPENBLAS_MAX_BYTES < (LARGEST_FLOAT64 + 1) ** 2 * 8
    out = run_large(LARGEST_SIZE_SCRIPT, LARGEST_FLOAT64, CHOLESKY_BLOCK)
    assert f"error: Cholesky factorisation failed (LAPACK info={CHOLESKY_BLOCK + 1}): the matrix is not positive definite" in out, out
    assert "checked" in out, out


SYMMETRIC_PRODUCT_SCRIPT = """
from islim.linalg import symmetric_product

n, k = int(sys.argv[1]), int(sys.argv[2])
x = np.arange(n) / n
A = np.ones((n, k))
A[:, 0] = x
C = symmetric_product(A)  # (k - 1) + x xᵀ
for start in range(0, n, 2048):
    assert np.allclose(C[start : start + 2048], (k - 1) + np.outer(x[start : start + 2048], x), rtol=0, atol=1e-9), start
print("checked", flush=True)
"""


@pytest.mark.skipif(available_bytes() < 7 * 2**30, reason="needs 7 GiB of free memory (a 4.3 GB float64 matrix)")
def test_the_symmetric_product_of_the_largest_size_passes_where_numpy_a_at_crashed():
    assert "checked" in run_large(SYMMETRIC_PRODUCT_SCRIPT, LARGEST_FLOAT64, 1024)
