"""The chunked ``dropout(hardtanh₀¹(P))`` of H+Vamp's pseudo-inputs against the torch formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from islim.models.deep import clamped_dropout as module
from islim.models.deep.clamped_dropout import clamped_dropout


def pseudo_inputs(n_rows: int, n_cols: int, dtype=torch.float32) -> torch.Tensor:
    """Entries below 0, inside (0, 1), above 1 and exactly 0 and 1 (the clamp's kinks)."""
    generator = torch.Generator().manual_seed(3)
    values = torch.rand(n_rows, n_cols, generator=generator, dtype=dtype) * 1.6 - 0.3
    values[0, :4] = torch.tensor([0.0, 1.0, -0.0, 0.5], dtype=dtype)
    return values.requires_grad_(True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.5, 0.2])
def test_values_and_gradient_are_the_torch_formula_with_the_drawn_mask(monkeypatch, dtype, p):
    monkeypatch.setattr(module, "CHUNK_BYTES", 3 * 37 * 8)  # several chunks, a ragged last one
    weight = pseudo_inputs(40, 37, dtype)
    torch.manual_seed(0)
    out = clamped_dropout(weight, p, training=True)
    clamped = weight.detach().clamp(0.0, 1.0)
    kept = out.detach() != 0  # where the clamp is 0 the mask is unseen, and the value is 0 either way
    scale = 1.0 / (1.0 - p)
    assert out.dtype == dtype and out.shape == weight.shape
    torch.testing.assert_close(out.detach(), torch.where(kept, clamped * scale, torch.zeros((), dtype=dtype)), rtol=1e-6, atol=0)
    visible = clamped > 0
    kept_fraction = kept[visible].double().mean().item()
    assert abs(kept_fraction - (1 - p)) < 4 * np.sqrt(p * (1 - p) / visible.sum().item())

    upstream = torch.randn(weight.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad(out, weight, upstream)
    inside = (weight.detach() > 0) & (weight.detach() < 1)
    expected = torch.where(kept & inside, upstream * scale, torch.zeros((), dtype=dtype))
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=0)
    assert grad[0, 0] == 0 and grad[0, 1] == 0  # hardtanh's kinks pass no gradient, as in torch


def test_masks_follow_torch_seed_and_not_the_thread_count(monkeypatch):
    monkeypatch.setattr(module, "CHUNK_BYTES", 5 * 64 * 4)
    weight = pseudo_inputs(60, 64)
    outputs = []
    for threads in ("1", "3", "3"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        torch.manual_seed(7)
        outputs.append(clamped_dropout(weight, 0.5, training=True))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])
    torch.manual_seed(8)
    assert not torch.equal(clamped_dropout(weight, 0.5, training=True), outputs[0])
    # chunks draw independent streams: no two chunks share a mask
    masks = (outputs[0] != 0).reshape(12, -1)
    assert len({bytes(row.numpy()) for row in masks}) == 12


@pytest.mark.parametrize(("p", "training"), [(0.5, False), (0.0, True)])
def test_without_dropout_it_is_the_clamp(p, training):
    weight = pseudo_inputs(8, 9)
    torch.testing.assert_close(clamped_dropout(weight, p, training), F.hardtanh(weight, 0.0, 1.0), rtol=0, atol=0)
