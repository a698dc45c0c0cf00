"""The dense products of a torch computation and the time a GEMM needs for them.

:class:`DenseProducts` records every dense matrix product (``aten.mm``, ``addmm``, ``bmm``,
``baddbmm``, with their ``out=`` and in-place forms) that a block of torch code runs, forward and backward, as ``(m, k, n)`` with the
operands' layouts; products with a sparse operand (the sparse input layers) are not dense products
and are left out. :func:`time_products` replays them on random operands of the same shapes and
layouts (the ``np.matmul`` products a model runs on the CPU too, by numpy), and
:func:`square_gemm_rate` measures the rate of one large square float32 GEMM: with the
FLOP count of the products, either rate gives the time the products alone would take (the floor of
the computation).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
#: Product op → positions of its two matrix operands in the call's arguments: the functional
#: forms, their ``out=`` forms (``torch.mm(a, b, out=c)``) and the in-place accumulations
#: (``c.addmm_(a, b)``), all of which the models' blocked output layer uses.
_OPERANDS = {
    aten.mm.default: (0, 1),
    aten.mm.out: (0, 1),
    aten.bmm.default: (0, 1),
    aten.bmm.out: (0, 1),
    aten.addmm.default: (1, 2),
    aten.addmm.out: (1, 2),
    aten.addmm_.default: (1, 2),
    aten.baddbmm.default: (1, 2),
    aten.baddbmm.out: (1, 2),
    aten.baddbmm_.default: (1, 2),
}
_NUMPY_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
_ACCUMULATING = {op for op, positions in _OPERANDS.items() if positions == (1, 2)}


@dataclass(frozen=True)
class Product:
    """One dense product ``A @ B``: ``batch`` products of ``(m, k) @ (k, n)``.

    ``a_transposed``/``b_transposed`` say whether the operand is a transposed view (column-major
    storage), which decides the BLAS call; ``accumulate`` whether a third operand is added (``addmm``).
    """

    batch: int
    m: int
    k: int
    n: int
    a_transposed: bool
    b_transposed: bool
    accumulate: bool
    dtype: torch.dtype
    #: ``"torch"``, or ``"numpy"`` for a product the model runs through numpy's BLAS (``np.matmul``).
    library: str = "torch"

    @property
    def flops(self) -> int:
        """``2·batch·m·k·n`` (one multiply and one add per term)."""
        return 2 * self.batch * self.m * self.k * self.n

    def operands(self) -> tuple[torch.Tensor, ...]:
        """Random operands of this product's shapes and layouts (and ``(m, n)`` addend)."""
        lead = (self.batch,) if self.batch > 1 else ()

        def matrix(rows: int, cols: int, transposed: bool) -> torch.Tensor:
            if transposed:
                return torch.randn(*lead, cols, rows, dtype=self.dtype).transpose(-1, -2)
            return torch.randn(*lead, rows, cols, dtype=self.dtype)

        a, b = matrix(self.m, self.k, self.a_transposed), matrix(self.k, self.n, self.b_transposed)
        return (torch.randn(*lead, self.m, self.n, dtype=self.dtype), a, b) if self.accumulate else (a, b)

    def run(self, operands: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The product on ``operands`` from :meth:`operands`, by the library the model used."""
        if self.library == "numpy":
            return np.matmul(*(operand.numpy() for operand in operands))
        if self.accumulate:
            return (torch.baddbmm if self.batch > 1 else torch.addmm)(*operands)
        return (torch.bmm if self.batch > 1 else torch.mm)(*operands)


def _is_transposed(matrix: torch.Tensor) -> bool:
    return matrix.stride(-1) != 1 and matrix.stride(-2) == 1


class DenseProducts(TorchDispatchMode):
    """Records the dense products run inside ``with DenseProducts() as recorder:`` in
    ``recorder.counts`` (:class:`Product` → number of calls): torch's, and the 2-D float ``np.matmul``
    calls a model makes on the CPU (``numpy.matmul`` is wrapped inside the block)."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[Product] = Counter()
        self._numpy_matmul = None

    def __enter__(self):
        self._numpy_matmul = np.matmul
        matmul = self._numpy_matmul

        def recording_matmul(a, b, *args, **kwargs):
            if getattr(a, "ndim", 0) == 2 and getattr(b, "ndim", 0) == 2 and a.dtype in _NUMPY_DTYPES:
                transposed = [not m.flags.c_contiguous and m.flags.f_contiguous for m in (a, b)]
                self.counts[Product(1, a.shape[0], a.shape[1], b.shape[1], *transposed, False, _NUMPY_DTYPES[a.dtype], "numpy")] += 1
            return matmul(a, b, *args, **kwargs)

        np.matmul = recording_matmul
        return super().__enter__()

    def __exit__(self, *exc):
        np.matmul = self._numpy_matmul
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        positions = _OPERANDS.get(func)
        if positions is not None:
            a, b = args[positions[0]], args[positions[1]]
            if a.layout == torch.strided and b.layout == torch.strided:
                batch = a.shape[0] if a.dim() == 3 else 1
                self.counts[
                    Product(
                        batch,
                        a.shape[-2],
                        a.shape[-1],
                        b.shape[-1],
                        _is_transposed(a),
                        _is_transposed(b),
                        func in _ACCUMULATING,
                        a.dtype,
                    )
                ] += 1
        return func(*args, **(kwargs or {}))

    @property
    def flops(self) -> int:
        """Total FLOPs of the recorded products."""
        return sum(product.flops * count for product, count in self.counts.items())


def time_products(counts: Counter[Product]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds to run every product of ``counts`` as often as recorded
    (each once more before, untimed)."""
    wall = cpu = 0.0
    for product, count in counts.items():
        operands = product.operands()
        product.run(operands)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(count):
            product.run(operands)
        wall += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
    return wall, cpu


def square_gemm_rate(size: int = 2048, repeats: int = 3, dtype: torch.dtype = torch.float32, library: str = "torch") -> tuple[float, float]:
    """FLOP/s of ``size × size`` products by ``library`` (``"torch"`` or ``"numpy"``), ``2·size³`` over
    the median of ``repeats`` timings (after one untimed): per wall-clock second and per second of
    process CPU time (all threads)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    if library == "numpy":
        a, b = a.numpy(), b.numpy()
    a @ b
    wall, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        a @ b
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return 2 * size**3 / statistics.median(wall), 2 * size**3 / statistics.median(cpu)
