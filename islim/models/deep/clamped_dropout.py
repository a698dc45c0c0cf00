"""``dropout(hardtanh₀¹(P))`` of a large dense CPU matrix in one threaded pass each way: H+Vamp's
pseudo-inputs (``K × I``: 1,000 × 20,108 at ML-20M shape, a new mask at every training step).

Through torch, ``F.dropout(F.hardtanh(P, 0, 1))`` and its backward took 466 ms per step at that
shape on 2 threads (measured): the mask comes from torch's Mersenne Twister, which fills a CPU
tensor serially (~12 ns per entry on this AMD CPU; only Intel CPUs get MKL's parallel generator),
and the clamp, the mask, its scaling, the product and both backward steps are five passes of
80 MB each. Here the matrix is processed in row chunks of about 512 KiB on
:func:`islim.threads.compute_threads` threads: each chunk draws its uniforms from its own PCG64
stream (numpy; seeded by one draw from torch's default generator and the chunk's index, so a run is
reproducible under ``torch.manual_seed`` and does not depend on the thread count), and clamps,
masks and scales while the chunk is in cache; the backward pass multiplies the incoming gradient by
the kept ``scale · 1[kept and 0 < P < 1]`` chunk by chunk.

The values are those of the torch route with another random mask: an entry is kept with
probability ``1 − p`` and scaled by ``1/(1 − p)``; the gradient passes where it was kept and the
clamp is inactive (``0 < P < 1``, torch's ``hardtanh`` convention). Other devices, dtypes other
than float32/float64, ``p`` of 0 or 1 and evaluation use the torch route.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from islim.threads import thread_map

#: Bytes of one row chunk (its uniforms, input and output stay in a core's L2/L3 cache).
CHUNK_BYTES = 1 << 19


def clamped_dropout(weight: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(F.hardtanh(weight, 0, 1), p, training)`` for a 2-D ``weight``, same shape and dtype;
    differentiable in ``weight``. CPU float matrices take the chunked path (module docstring)."""
    fast = training and 0.0 < p < 1.0 and weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)
    if not fast or weight.dim() != 2:
        return F.dropout(F.hardtanh(weight, 0.0, 1.0), p=p, training=training)
    seed = int(torch.randint(0, 2**62, (1,)))
    return _ClampedDropout.apply(weight, p, seed)


def _row_chunks(n_rows: int, n_cols: int, itemsize: int) -> range:
    rows = max(1, CHUNK_BYTES // max(1, n_cols * itemsize))
    return range(0, n_rows, rows)


class _ClampedDropout(torch.autograd.Function):
    """Forward ``where(kept, clamp(P, 0, 1) · scale, 0)``; backward ``grad · scale · 1[kept, 0 < P < 1]``."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, p: float, seed: int) -> torch.Tensor:
        values = weight.detach().contiguous().numpy()
        n_rows, n_cols = values.shape
        scale = values.dtype.type(1.0 / (1.0 - p))
        out = np.empty_like(values)
        passes = np.empty(values.shape, dtype=bool)
        starts = _row_chunks(n_rows, n_cols, values.itemsize)
        step = starts.step

        def chunk(start: int) -> None:
            rows = slice(start, min(start + step, n_rows))
            stream = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(start // step,))))
            block, source = out[rows], values[rows]
            stream.random(out=block, dtype=values.dtype)  # the uniforms, in the output's own memory
            kept = block >= p
            np.clip(source, 0.0, 1.0, out=block)
            np.multiply(block, scale, out=block)
            np.multiply(block, kept, out=block)
            np.logical_and(kept, source > 0.0, out=passes[rows])
            np.logical_and(passes[rows], source < 1.0, out=passes[rows])

        thread_map(chunk, starts)
        ctx.passes, ctx.scale, ctx.step = passes, scale, step
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        incoming = grad.detach().contiguous().numpy()
        passes, scale, step = ctx.passes, ctx.scale, ctx.step
        result = np.empty_like(incoming)

        def chunk(start: int) -> None:
            rows = slice(start, start + step)
            np.multiply(incoming[rows], scale, out=result[rows])
            np.multiply(result[rows], passes[rows], out=result[rows])

        thread_map(chunk, range(0, incoming.shape[0], step))
        return torch.from_numpy(result), None, None
