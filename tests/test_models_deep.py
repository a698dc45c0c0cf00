"""Tests of the deep recommenders (islim.models.deep): shapes, sparse/dense equivalence, hand-computed
losses and optimiser steps, the ImplicitSLIM hook, training, early stopping and reproducibility."""

from __future__ import annotations

import copy
import math
import platform
import resource

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.special import log_softmax as np_log_softmax
from scipy.special import logsumexp as np_logsumexp
from scipy.stats import norm

from islim.embeddings import implicit_slim
from islim.errors import ConfigError, DataFormatError
from islim.evaluate import holdout_validator
from islim.models.deep import (
    DenseRows,
    HVamp,
    HVampModel,
    ImplicitSLIMConfig,
    ImplicitSLIMHook,
    MultVAE,
    MultVAEModel,
    RecVAE,
    RecVAEModel,
    SparseRows,
    TrainState,
    layers,
)
from islim.models.deep.allocation import reuse_freed_memory
from islim.models.deep.layers import ItemOutputLinear, log_likelihood
from islim.models.deep.trainer import resolve_params, score_batch
from islim.models.registry import model_spec
from islim.training import CURVE_COLUMNS

TINY = {
    "multvae": {"hidden_dim": 16, "latent_dim": 8},
    "recvae": {"hidden_dim": 16, "latent_dim": 8},
    "hvamp": {"hidden_dim": 16, "z1_dim": 8, "z2_dim": 8, "n_components": 6},
}
CLASSES = {"multvae": MultVAE, "recvae": RecVAE, "hvamp": HVamp}
ESTIMATORS = {"multvae": MultVAEModel, "recvae": RecVAEModel, "hvamp": HVampModel}


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: one thread avoids OpenMP hand-off costs on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def random_feedback(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    """Binary CSR with at least one item per row."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.fixture
def movielens(ml_small_split):
    """ml-latest-small binarised at rating > 3.5, users with >= 5 items, 60 validation users
    (the shared ``ml_small_split`` fixture): ``(train, (fold_in, target))``."""
    return ml_small_split.train, (ml_small_split.validation_tr, ml_small_split.validation_te)


def tiny_model(name: str, n_items: int, **overrides):
    torch.manual_seed(0)
    return CLASSES[name](n_items, **{**TINY[name], **overrides})


# ---------------------------------------------------------------------------------------------
# Shapes, sparse vs dense


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_forward_and_loss_shapes_on_sparse_batch(name):
    X = random_feedback(7, 30, 0.2, seed=1)
    model = tiny_model(name, 30)
    x = SparseRows.from_csr(X)
    model.eval()
    assert model(x).shape == (7, 30)
    model.train()
    terms = model.loss(x, TrainState(epoch=3, step=10), dropout=0.5)
    assert terms.total.shape == () and torch.isfinite(terms.total)
    for weight in model.implicit_slim_targets().values():
        assert weight.shape[0] == 30


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_sparse_input_path_equals_dense_input_path(name):
    X = random_feedback(9, 25, 0.25, seed=2)
    model = tiny_model(name, 25).double()
    sparse_rows = SparseRows.from_csr(X, dtype=torch.float64)
    dense_rows = DenseRows(torch.from_numpy(X.toarray()).double())
    model.eval()
    torch.testing.assert_close(model(sparse_rows), model(dense_rows), rtol=1e-12, atol=1e-12)

    model.train()  # sampled z with the same seed, no dropout: identical losses and gradients
    grads = []
    for rows in (sparse_rows, dense_rows):
        model.zero_grad()
        torch.manual_seed(5)
        loss = model.loss(rows, TrainState(epoch=1, step=3), dropout=0.0).total
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-12, atol=1e-12)
    assert grads[0][1].keys() == grads[1][1].keys()
    for key in grads[0][1]:
        torch.testing.assert_close(grads[0][1][key], grads[1][1][key], rtol=1e-10, atol=1e-12)


def test_sparse_rows_operations_match_dense_numpy():
    X = random_feedback(6, 11, 0.3, seed=3)
    X.data = np.arange(1, X.nnz + 1, dtype=np.float32)
    dense = X.toarray().astype(np.float64)
    rows = SparseRows.from_csr(X, dtype=torch.float64)
    M = np.random.default_rng(0).normal(size=(6, 11))
    W = np.random.default_rng(1).normal(size=(11, 4))
    np.testing.assert_allclose(rows.row_sums().numpy(), dense.sum(1))
    np.testing.assert_allclose(rows.l2_normalized().to_dense().numpy(), dense / np.linalg.norm(dense, axis=1, keepdims=True))
    np.testing.assert_allclose(rows.matmul(torch.from_numpy(W)).numpy(), dense @ W)
    np.testing.assert_allclose(rows.inner(torch.from_numpy(M)).numpy(), (dense * M).sum(1))
    torch.manual_seed(0)
    dropped = rows.dropout(0.5, training=True).to_dense().numpy()
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * dense[kept])  # inverted dropout scaling
    assert not (kept & (dense == 0)).any()


@pytest.mark.parametrize("n_threads", [1, 3])
def test_cpu_sparse_input_product_and_gradient_equal_dense_matmul(n_threads):
    """The column-ordered CPU product (and its Xᵀ G gradient) against a dense float64 reference."""
    X = random_feedback(13, 9000, 0.004, seed=21)  # several 2,048-item blocks of the forward product
    X.data = np.random.default_rng(4).uniform(0.5, 2.0, X.nnz)
    rows = SparseRows.from_csr(X, dtype=torch.float64).dropout(0.5, training=True)
    assert rows.columns is not None
    weight = torch.randn(9000, 7, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(13, 7, dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        out = rows.matmul(weight)
        out.backward(upstream)
    finally:
        torch.set_num_threads(previous)
    dense = rows.to_dense().numpy()
    np.testing.assert_allclose(out.detach().numpy(), dense @ weight.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weight.grad.numpy(), dense.T @ upstream.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_rows_product_and_gradients_equal_torch_autograd(dtype):
    generator = torch.Generator().manual_seed(9)
    x = torch.rand(6, 40, generator=generator, dtype=dtype).requires_grad_(True)
    weight = torch.randn(40, 7, generator=generator, dtype=dtype).requires_grad_(True)
    upstream = torch.randn(6, 7, generator=generator, dtype=dtype)
    ours = DenseRows(x).matmul(weight)
    grads = torch.autograd.grad(ours, (x, weight), upstream)
    reference = x @ weight
    expected = torch.autograd.grad(reference, (x, weight), upstream)
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(ours, reference, **tolerance)
    for got, want in zip(grads, expected):
        assert got.shape == want.shape and got.dtype == dtype
        torch.testing.assert_close(got, want, **tolerance)


def test_sparse_rows_without_column_order_use_torch_sparse_product():
    """Batches built without a column order (other devices) take torch's COO product, same values."""
    X = random_feedback(5, 40, 0.2, seed=22)
    fast = SparseRows.from_csr(X, dtype=torch.float64)
    coo = SparseRows(fast.rows, fast.cols, fast.values, (5, 40))
    weight = torch.randn(40, 3, dtype=torch.float64)
    torch.testing.assert_close(fast.matmul(weight), coo.matmul(weight), rtol=1e-12, atol=1e-12)


def test_item_output_layer_equals_nn_linear():
    torch.manual_seed(3)
    reference = torch.nn.Linear(6, 11)
    torch.manual_seed(3)
    layer = ItemOutputLinear(6, 11)
    assert layer.state_dict().keys() == reference.state_dict().keys()
    assert all(torch.equal(layer.state_dict()[k], reference.state_dict()[k]) for k in reference.state_dict())
    h = torch.randn(4, 6)
    torch.testing.assert_close(layer(h), reference(h), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("block_bytes", [2**21, 8 * 7 * 5])
@pytest.mark.parametrize("trainable", ["all", "input", "layer"])
def test_blocked_multinomial_equals_log_softmax_route(monkeypatch, block_bytes, trainable):
    """ItemOutputLinear.multinomial_log_likelihood (item blocks, here one block or blocks of 5
    items) gives the log-likelihood and the gradients of log_likelihood(layer(h), x) for whatever
    subset of h and the layer's parameters is trainable (RecVAE's phases train either side)."""
    monkeypatch.setattr(layers, "ITEM_BLOCK_BYTES", block_bytes)
    X = random_feedback(7, 23, 0.3, seed=5)
    X.data[:] = np.random.default_rng(1).integers(1, 4, X.nnz)  # counts, not only ones
    torch.manual_seed(4)
    layer = ItemOutputLinear(6, 23).double()
    x = SparseRows.from_csr(X, dtype=torch.float64)
    h = torch.randn(7, 6, dtype=torch.float64, requires_grad=trainable in ("all", "input"))
    layer.requires_grad_(trainable in ("all", "layer"))
    upstream = torch.randn(7, dtype=torch.float64)
    results = []
    for compute in (lambda: layer.multinomial_log_likelihood(h, x), lambda: log_likelihood(layer(h), x)):
        ll = compute()
        leaves = [t for t in (h, layer.weight, layer.bias) if t.requires_grad]
        results.append((ll, *torch.autograd.grad(ll, leaves, upstream)))
    for fused, reference in zip(*results):
        torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_memory_is_reused_inside_training_steps_only():
    """A freed 64 MiB tensor comes back without page faults inside reuse_freed_memory (glibc would
    unmap and map it again, faulting every page), and on leaving the block the kept memory is given
    back, so the next allocation faults its pages in again.

    Measured as a training loop sees it, in steady state: the median over repeated allocations.
    A single allocation can still fault once inside the block, when a small allocation made in
    between (by Python itself) was carved from the start of the freed block, so the next 64 MiB
    no longer fits in it and the heap grows once; from then on two such blocks alternate."""

    def faults_of_allocation() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(16 * 2**20)  # allocated, touched and freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    pages = 64 * 2**20 // resource.getpagesize()
    with reuse_freed_memory():
        inside = [faults_of_allocation() for _ in range(7)]
    outside = faults_of_allocation()
    assert np.median(inside[1:]) < pages // 100, inside
    assert outside > pages // 2  # the heap kept inside was given back on exit (malloc_trim)


# ---------------------------------------------------------------------------------------------
# Hand-computed objectives


def multvae_numpy_loss(params: dict[str, np.ndarray], x: np.ndarray, beta: float) -> float:
    """Mult-VAE negative ELBO with z = μ (evaluation mode), written out in numpy."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    h = np.tanh(xn @ params["encoder_input.weight"] + params["encoder_input.bias"])
    out = h @ params["encoder_output.weight"].T + params["encoder_output.bias"]
    latent = out.shape[1] // 2
    mu, logvar = out[:, :latent], out[:, latent:]
    hd = np.tanh(mu @ params["decoder_hidden.weight"].T + params["decoder_hidden.bias"])
    logits = hd @ params["decoder_output.weight"].T + params["decoder_output.bias"]
    nll = -(x * np_log_softmax(logits, axis=1)).sum(1).mean()
    kl = (0.5 * (np.exp(logvar) + mu**2 - 1 - logvar)).sum(1).mean()
    return nll + beta * kl


def test_multvae_loss_gradient_and_adam_step_match_hand_computation():
    x = np.array([[1, 0, 1, 1], [0, 1, 0, 1]], dtype=np.float64)
    model = MultVAE(4, hidden_dim=3, latent_dim=2, anneal_cap=0.2, total_anneal_steps=10).double()
    model.eval()  # z = μ and no dropout: a deterministic objective
    state = TrainState(epoch=0, step=1)  # β = min(0.2, 1/10) = 0.1
    params = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    loss = model.loss(SparseRows.from_csr(sp.csr_matrix(x), dtype=torch.float64), state, dropout=0.5).total
    assert loss.item() == pytest.approx(multvae_numpy_loss(params, x, 0.1), rel=1e-12)

    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    optimizer.zero_grad()
    loss.backward()
    for name, p in model.named_parameters():  # central finite differences of the numpy objective
        numeric = np.zeros_like(params[name])
        for index in np.ndindex(numeric.shape):
            shifted = copy.deepcopy(params)
            shifted[name][index] += 1e-6
            up = multvae_numpy_loss(shifted, x, 0.1)
            shifted[name][index] -= 2e-6
            numeric[index] = (up - multvae_numpy_loss(shifted, x, 0.1)) / 2e-6
        np.testing.assert_allclose(p.grad.numpy(), numeric, rtol=1e-5, atol=1e-8, err_msg=name)
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    optimizer.step()
    for name, p in model.named_parameters():  # first Adam step: θ − lr · g / (|g| + eps)
        expected = params[name] - 0.01 * grads[name] / (np.abs(grads[name]) + 1e-8)
        np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-12, atol=1e-12, err_msg=name)


def test_multvae_beta_annealing_schedule():
    model = MultVAE(5, hidden_dim=3, latent_dim=2, anneal_cap=0.2, total_anneal_steps=100)
    assert [model.beta(s) for s in (0, 10, 20, 500)] == [0.0, 0.1, 0.2, 0.2]


def test_recvae_composite_prior_and_kl_weight_match_scipy():
    X = random_feedback(5, 12, 0.4, seed=4)
    model = tiny_model("recvae", 12, gamma=0.01).double()
    model.eval()
    rows = SparseRows.from_csr(X, dtype=torch.float64)
    z = torch.randn(5, 8, dtype=torch.float64)
    post_mu, post_logvar = (t.detach().numpy() for t in model.prior.encoder_old(rows.l2_normalized()))
    expected = np.log(
        3 / 20 * norm.pdf(z.numpy(), 0, 1)
        + 3 / 4 * norm.pdf(z.numpy(), post_mu, np.exp(0.5 * post_logvar))
        + 1 / 10 * norm.pdf(z.numpy(), 0, math.exp(5.0))
    )
    np.testing.assert_allclose(model.prior.log_prob(rows.l2_normalized(), z).numpy(), expected, rtol=1e-10)

    # eval-mode loss: z = μ, KL weight γ·|u| per user
    mu, logvar = (t.detach().numpy() for t in model.encoder(rows.l2_normalized()))
    logits = model.decoder(torch.from_numpy(mu)).detach().numpy()
    nll = -(X.toarray() * np_log_softmax(logits, axis=1)).sum(1)
    log_q = norm.logpdf(mu, mu, np.exp(0.5 * logvar)).sum(1)
    log_p = model.prior.log_prob(rows.l2_normalized(), torch.from_numpy(mu)).numpy().sum(1)
    expected_total = (nll + 0.01 * X.sum(1).A1.astype(np.float64) * (log_q - log_p)).mean()
    assert model.loss(rows, TrainState(), dropout=0.5).total.item() == pytest.approx(expected_total, rel=1e-10)


def test_recvae_decoder_steps_reuse_the_live_posterior_for_the_prior_bit_for_bit(monkeypatch):
    X = random_feedback(30, 25, 0.3, seed=8)
    model, optimizers = _trained_recvae(X)  # ends with update_prior: the copy holds the encoder
    rows = SparseRows.from_csr(X)
    assert model.prior.holds(model.encoder)
    calls = []
    model.prior.encoder_old.register_forward_hook(lambda *args: calls.append(args))
    decoder = model.training_phases()[1]
    torch.manual_seed(5)
    reused = model.loss(rows, TrainState(), decoder.dropout)
    assert calls == []  # the frozen copy did not run
    monkeypatch.setattr(model.prior, "holds", lambda encoder: False)
    torch.manual_seed(5)
    recomputed = model.loss(rows, TrainState(), decoder.dropout)
    assert len(calls) == 1
    assert torch.equal(reused.total, recomputed.total) and torch.equal(reused.kl, recomputed.kl)
    monkeypatch.undo()

    # any in-place change of either encoder ends the reuse: an encoder step, ImplicitSLIM's copy_, a state load
    encoder_phase = model.training_phases()[0]
    optimizers[0].zero_grad()
    model.loss(rows, TrainState(), encoder_phase.dropout).total.backward()
    optimizers[0].step()
    assert not model.prior.holds(model.encoder)
    model.update_prior()
    with torch.no_grad():
        model.encoder.fc1.weight.copy_(model.encoder.fc1.weight * 0.5)
    assert not model.prior.holds(model.encoder)
    model.update_prior()
    model.prior.encoder_old.load_state_dict(model.encoder.state_dict())
    assert not model.prior.holds(model.encoder)
    assert not tiny_model("recvae", 25).prior.holds(model.encoder)


def test_log_normal_pairs_equals_broadcast_sum_in_float32():
    """The expanded mixture densities (float64 inside) equal the float64 broadcast sum of
    log_normal for float32 inputs, also where z ≈ μ and the variances are tiny (e^-12), where the
    expanded terms cancel."""
    generator = torch.Generator().manual_seed(8)
    mu = torch.randn(5, 16, generator=generator) * 10
    logvar = torch.full((5, 16), -12.0)
    logvar[:2] = torch.rand(2, 16, generator=generator) * 8 - 4
    z = torch.cat((mu[:3] + 1e-3 * torch.randn(3, 16, generator=generator), torch.randn(4, 16, generator=generator)))
    expected = layers.log_normal(z.double()[:, None], mu.double()[None], logvar.double()[None]).sum(-1)
    pairs = layers.log_normal_pairs(z, mu, logvar)
    assert pairs.dtype == torch.float32
    torch.testing.assert_close(pairs.double(), expected, rtol=1e-6, atol=1e-3)


def test_hvamp_vamp_prior_matches_explicit_mixture():
    model = tiny_model("hvamp", 10).double()
    model.eval()
    z2 = torch.randn(4, 8, dtype=torch.float64)
    pseudo = np.clip(model.pseudo_inputs.detach().numpy(), 0.0, 1.0)
    means, logvars = (t.detach().numpy() for t in model.q_z2(DenseRows(torch.from_numpy(pseudo))))
    log_components = norm.logpdf(z2.numpy()[:, None, :], means[None], np.exp(0.5 * logvars)[None]).sum(-1)
    expected = np_logsumexp(log_components, axis=1) - math.log(6)
    np.testing.assert_allclose(model.log_p_z2(z2, dropout=0.5).detach().numpy(), expected, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# ImplicitSLIM hook


def _snapshot(model, optimizers):
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    states = [
        {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for p, s in opt.state.items()} for opt in optimizers
    ]
    return params, states


def _trained_recvae(X):
    """A tiny RecVAE after one encoder and one decoder step (so both Adam optimisers have state)."""
    model = tiny_model("recvae", X.shape[1])
    optimizers = [torch.optim.Adam(phase.parameters, lr=1e-2) for phase in model.training_phases()]
    for phase, optimizer in zip(model.training_phases(), optimizers):
        optimizer.zero_grad()
        model.loss(SparseRows.from_csr(X), TrainState(), phase.dropout).total.backward()
        optimizer.step()
    model.update_prior()
    return model, optimizers


def test_replace_hook_changes_only_target_weights_on_due_epochs():
    X = random_feedback(40, 20, 0.3, seed=6)
    model, optimizers = _trained_recvae(X)
    hook = ImplicitSLIMHook(ImplicitSLIMConfig(mode="replace", step=3, lam=5.0, alpha=2.0, threshold=2.0), X)
    before, states_before = _snapshot(model, optimizers)

    assert [hook.is_due(e) for e in range(7)] == [False, False, True, False, False, True, False]
    assert not hook.on_epoch_start(model, optimizers, epoch=1)
    after, _ = _snapshot(model, optimizers)
    assert all(torch.equal(before[n], after[n]) for n in before)

    assert hook.on_epoch_start(model, optimizers, epoch=2)
    after, states_after = _snapshot(model, optimizers)
    targets = {"encoder.fc1.weight", "decoder.weight"}
    for name in targets:
        expected = torch.as_tensor(implicit_slim(before[name].clone(), X, lam=5.0, alpha=2.0, threshold=2.0))
        torch.testing.assert_close(after[name], expected.to(after[name].dtype))
        assert not torch.equal(after[name], before[name])
    for name in set(before) - targets:  # biases, other layers, the prior's frozen encoder
        assert torch.equal(before[name], after[name]), name
    for old, new in zip(states_before, states_after):  # Adam moments untouched
        assert old.keys() == new.keys()
        for key in old:
            for field, value in old[key].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(new[key][field]))
    assert hook.applied_epochs_ == [2]


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("multvae", {}, {"encoder_input.weight", "decoder_output.weight"}),
        ("recvae", {}, {"encoder.fc1.weight", "decoder.weight"}),
        ("hvamp", {}, {"q_z2_input.h.weight", "q_z1_input.h.weight", "p_x_output.weight"}),
        (
            "hvamp",
            {"implicit_slim_gates": True},
            {"q_z2_input.h.weight", "q_z2_input.g.weight", "q_z1_input.h.weight", "q_z1_input.g.weight", "p_x_output.weight"},
        ),
    ],
)
def test_implicit_slim_targets_are_the_input_and_output_item_layers(name, overrides, expected):
    model = tiny_model(name, 13, **overrides)
    by_identity = {id(p): n for n, p in model.named_parameters()}
    assert {by_identity[id(p)] for p in model.implicit_slim_targets().values()} == expected


def test_replace_hook_can_reset_adam_state_of_replaced_weights_only():
    X = random_feedback(30, 15, 0.3, seed=7)
    model, optimizers = _trained_recvae(X)
    hook = ImplicitSLIMHook(ImplicitSLIMConfig(mode="replace", step=1, reset_optimizer_state=True), X)
    hook.on_epoch_start(model, optimizers, epoch=0)
    targets = {id(p) for p in model.implicit_slim_targets().values()}
    remaining = {id(p) for optimizer in optimizers for p in optimizer.state}
    assert not targets & remaining
    assert len(remaining) == sum(len(phase.parameters) for phase in model.training_phases()) - len(targets)


def test_regularize_hook_penalty_equals_squared_distance_to_targets():
    X = random_feedback(30, 15, 0.3, seed=8)
    model = tiny_model("multvae", 15)
    hook = ImplicitSLIMHook(ImplicitSLIMConfig(mode="regularize", step=2, lam=3.0, alpha=1.5, reg_weight=0.7), X)
    assert hook.penalty(model) is None
    assert [hook.is_due(e) for e in range(4)] == [True, False, True, False]
    weights = {n: p.detach().clone() for n, p in model.implicit_slim_targets().items()}
    hook.on_epoch_start(model, [], epoch=0)
    with torch.no_grad():
        model.encoder_input.weight.add_(0.1)
    expected = 0.7 * sum(
        (
            (model.implicit_slim_targets()[n].detach() - torch.as_tensor(implicit_slim(w.clone(), X, lam=3.0, alpha=1.5, threshold=0.0)))
            ** 2
        ).sum()
        for n, w in weights.items()
    )
    penalty = hook.penalty(model)
    assert penalty.requires_grad
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("mode, expected_epochs", [("replace", [1, 3]), ("regularize", [0, 2])])
def test_fit_calls_implicit_slim_on_the_scheduled_epochs(monkeypatch, mode, expected_epochs):
    calls = []

    def recording_double(embeddings, X, lam, alpha, threshold=0.0):
        calls.append((current_epoch[0], tuple(embeddings.shape)))
        return embeddings * 0.5

    current_epoch = [None]
    original = ImplicitSLIMHook.on_epoch_start

    def tracking(self, model, optimizers, epoch):
        current_epoch[0] = epoch
        return original(self, model, optimizers, epoch)

    monkeypatch.setattr("islim.embeddings.implicit_slim", recording_double)  # a spy with the real signature
    monkeypatch.setattr(ImplicitSLIMHook, "on_epoch_start", tracking)
    X = random_feedback(30, 12, 0.3, seed=9)
    params = {**TINY["recvae"], "n_epochs": 4, "batch_size": 16, "implicit_slim": {"mode": mode, "step": 2}}
    RecVAEModel(**params).fit(X, progress=False)
    assert calls == [(e, shape) for e in expected_epochs for shape in ((12, 16), (12, 8))]


# ---------------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_training_loss_decreases_on_movielens(movielens, name):
    X, validation = movielens
    params = {**TINY[name], "n_epochs": 4, "batch_size": 128, "lr": 3e-3}
    if name == "multvae":
        params["total_anneal_steps"] = 1000
    validate = holdout_validator(*validation, batch_size=2000)
    model = ESTIMATORS[name](**params)
    assert model.fit(X, validate, progress=False) is model
    curve = pd.DataFrame(model.history_)
    assert sorted(curve.columns) == sorted(CURVE_COLUMNS)  # every history row has every curve column
    assert list(curve["epoch"]) == [0, 1, 2, 3]
    assert curve["train_loss"].iloc[-1] < curve["train_loss"].iloc[0]
    assert curve["wall_seconds"].is_monotonic_increasing
    assert curve["val_ndcg@100"].between(0, 1).all()
    # the fitted model carries the weights of the best validation epoch
    best = curve["val_ndcg@100"].idxmax()
    assert model.best_epoch_ == curve.loc[best, "epoch"]
    metrics = validate(model)
    assert metrics["ndcg@100"] == pytest.approx(curve.loc[best, "val_ndcg@100"], rel=1e-6)
    assert not model.module_.training


def test_seeded_runs_are_reproducible_on_cpu(movielens):
    X, validation = movielens
    params = {**TINY["recvae"], "n_epochs": 2, "batch_size": 256, "seed": 11, "device": "cpu"}
    runs = [RecVAEModel(**params).fit(X, holdout_validator(*validation), progress=False) for _ in range(2)]
    columns = [c for c in CURVE_COLUMNS if c != "wall_seconds"]
    curves = [pd.DataFrame(model.history_) for model in runs]
    assert curves[0][columns].equals(curves[1][columns])
    states = [model.module_.state_dict() for model in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_early_stopping_stops_after_patience_and_restores_best():
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    saved = {}

    def fake_validation(model):
        score = next(scripted)
        saved[score] = {k: v.clone() for k, v in model.module_.state_dict().items()}
        return {"ndcg@100": score, "recall@20": score, "recall@50": score}

    X = random_feedback(30, 12, 0.3, seed=10)
    params = {**TINY["multvae"], "n_epochs": 5, "batch_size": 8, "patience": 2}
    model = MultVAEModel(**params).fit(X, fake_validation, progress=False)
    curve = pd.DataFrame(model.history_)
    assert list(curve["val_ndcg@100"]) == [0.1, 0.3, 0.2, 0.25]  # best at epoch 1, stop 2 epochs later
    assert model.best_epoch_ == 1
    assert all(torch.equal(v, saved[0.3][k]) for k, v in model.module_.state_dict().items())


def test_score_batch_returns_dense_scores_and_keeps_mode():
    X = random_feedback(6, 14, 0.3, seed=12)
    model = tiny_model("multvae", 14)
    model.train()
    scores = score_batch(model, X[:4])
    assert scores.shape == (4, 14) and scores.dtype == np.float32
    assert model.training
    model.eval()
    np.testing.assert_allclose(scores, model(DenseRows(torch.from_numpy(X[:4].toarray()))).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_invalid_parameters_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown parameters"):
        resolve_params(MultVAE, {"hiden_dim": 3})
    with pytest.raises(ConfigError, match="unknown parameters"):
        MultVAEModel(hiden_dim=3)
    with pytest.raises(ConfigError, match="unknown model"):
        model_spec("vae")
    with pytest.raises(ConfigError, match="implicit_slim.mode"):
        resolve_params(RecVAE, {"implicit_slim": {"mode": "sometimes"}})
    with pytest.raises(ConfigError, match="implicit_slim.mode"):
        RecVAEModel(implicit_slim={"mode": "sometimes"})
    with pytest.raises(ConfigError, match="exactly one KL weight"):
        RecVAE(10, beta=0.2)
    with pytest.raises(DataFormatError):
        MultVAEModel(n_epochs=1).fit(np.ones((3, 3)), progress=False)
    assert resolve_params(RecVAE, {"implicit_slim": {"mode": "replace"}})["implicit_slim"]["step"] == 10
    assert RecVAEModel(implicit_slim={"mode": "replace"}).get_params()["implicit_slim"]["step"] == 10
