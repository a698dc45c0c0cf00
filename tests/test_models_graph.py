"""The graph recommenders (LightGCN, UltraGCN ± ImplicitSLIM) against independent computations:
propagation against the dense normalised adjacency, the losses against hand-worked values, the
UltraGCN weights against their formulas evaluated densely, user-side ImplicitSLIM against the
item-side routine on Xᵀ, and end-to-end fits on a synthetic per-user split against popularity."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from islim.data.synthetic import generate
from islim.embeddings.implicit import implicit_slim, implicit_slim_users
from islim.errors import ConfigError, DataFormatError
from islim.evaluate import holdout_validator
from islim.models.graph.implicit import EmbeddingTargets, GraphImplicitSLIM
from islim.models.graph.lightgcn import LightGCN, LightGCNNetwork, bpr_loss
from islim.models.graph.structure import (
    NegativeSampler,
    binary_matrix,
    item_neighbours,
    normalized_adjacency,
    propagate,
    torch_csr,
    training_triples,
    ultragcn_beta,
)
from islim.models.graph.ultragcn import UltraGCN, ultragcn_loss
from tests.matrices import random_binary

pytestmark = pytest.mark.usefixtures("single_torch_thread")
CPU = torch.device("cpu")


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@functools.cache
def small_graph() -> sp.csr_matrix:
    """30 users × 20 items with an isolated user (row 3) and an item nobody has (column 7)."""
    X = random_binary(30, 20, 0.2, seed=5).tolil()
    X[3, :] = 0
    X[:, 7] = 0
    X[0, 1] = X[1, 1] = X[2, 1] = 1  # some ties in the co-occurrences
    return binary_matrix(sp.csr_matrix(X))


def dense_adjacency(X: sp.csr_matrix) -> np.ndarray:
    """``D^{-1/2} A D^{-1/2}`` of the bipartite graph, dense, by its definition."""
    n_users, n_items = X.shape
    A = np.zeros((n_users + n_items, n_users + n_items))
    A[:n_users, n_users:] = X.toarray()
    A[n_users:, :n_users] = X.toarray().T
    degree = A.sum(axis=1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0.0)
    return scale[:, None] * A * scale[None, :]


# ------------------------------------------------------------------ adjacency and propagation


def test_normalized_adjacency_equals_the_dense_definition():
    X = small_graph()
    A = normalized_adjacency(X)
    assert A.shape == (50, 50) and A.dtype == np.float32 and A.nnz == 2 * X.nnz
    np.testing.assert_allclose(A.toarray(), dense_adjacency(X), rtol=1e-6, atol=0)
    assert A[3].nnz == 0 and A[30 + 7].nnz == 0  # isolated nodes have empty rows


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_propagation_and_its_gradient_equal_the_dense_computation(n_layers):
    X = small_graph()
    dense = dense_adjacency(X)
    E = np.random.default_rng(0).standard_normal((50, 4))
    expected = sum(np.linalg.matrix_power(dense, k) @ E for k in range(n_layers + 1)) / (n_layers + 1)
    layer0 = torch.tensor(E, dtype=torch.float32, requires_grad=True)
    out = propagate(torch_csr(normalized_adjacency(X), CPU), layer0, n_layers)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # d/dE Σ W ⊙ (mean of Âᵏ E) = (mean of Âᵏ)ᵀ W
    W = np.random.default_rng(1).standard_normal((50, 4))
    (out * torch.tensor(W, dtype=torch.float32)).sum().backward()
    operator = sum(np.linalg.matrix_power(dense, k) for k in range(n_layers + 1)) / (n_layers + 1)
    np.testing.assert_allclose(layer0.grad.numpy(), operator.T @ W, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ losses


def test_bpr_loss_equals_the_hand_worked_value():
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[1.0, 1.0], [0.0, 0.5]])
    negative = torch.tensor([[0.0, 2.0], [3.0, 1.0]])
    # scores: (1, 0) and (0.5, 1) → −log σ(1 − 0) and −log σ(0.5 − 1)
    expected = (softplus(-1.0) + softplus(0.5)) / 2
    assert bpr_loss(user, positive, negative).item() == pytest.approx(expected, rel=1e-6)


def test_lightgcn_batch_loss_is_bpr_on_propagated_embeddings_plus_layer0_l2():
    X = small_graph()
    torch.manual_seed(0)
    network = LightGCNNetwork(X, n_factors=3, n_layers=2, l2=0.5, init_std=0.3, device=CPU)
    users, positives, negatives = torch.tensor([0, 5, 5]), torch.tensor([1, 2, 9]), torch.tensor([[4], [0], [1]])
    E = np.concatenate([network.user.detach().numpy(), network.item.detach().numpy()]).astype(np.float64)
    dense = dense_adjacency(X)
    final = (E + dense @ E + dense @ dense @ E) / 3
    u, p, n = final[users.numpy()], final[30 + positives.numpy()], final[30 + negatives.numpy()[:, 0]]
    bpr = np.mean(np.log1p(np.exp((u * n).sum(1) - (u * p).sum(1))))
    rows = np.concatenate([E[users.numpy()], E[30 + positives.numpy()], E[30 + negatives.numpy()[:, 0]]])
    expected = bpr + 0.5 * (rows**2).sum() / (2 * 3)
    assert network.loss(users, positives, negatives).item() == pytest.approx(expected, rel=1e-5)


def test_ultragcn_loss_equals_the_hand_worked_value():
    loss = ultragcn_loss(
        positive_scores=torch.tensor([2.0]),
        negative_scores=torch.tensor([[-1.0, 0.0]]),
        positive_weight=torch.tensor([0.5]),
        negative_weights=torch.tensor([[1.0, 2.0]]),
        negative_weight=3.0,
        neighbour_scores=torch.tensor([[1.0, -2.0]]),
        neighbour_weights=torch.tensor([[0.25, 0.5]]),
        lambda_ii=2.0,
    )
    expected = (
        0.5 * softplus(-2.0)  # −(w1 + w2 β) log σ(2)
        + 3.0 * (1.0 * softplus(-1.0) + 2.0 * softplus(0.0)) / 2  # mean over negatives of −(w3 + w4 β) log σ(−s)
        + 2.0 * (0.25 * softplus(-1.0) + 0.5 * softplus(2.0))  # λ Σ ω −log σ(s)
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_ultragcn_batch_loss_uses_beta_weights_neighbours_and_the_l2_of_both_tables():
    X = small_graph()
    model = UltraGCN(n_factors=2, n_neighbours=2, w1=0.1, w2=2.0, w3=0.2, w4=3.0, negative_weight=4.0, lambda_ii=0.7, l2=0.3, init_std=0.5)
    torch.manual_seed(0)
    network = model._network(X, CPU)
    users, positives, negatives = torch.tensor([0, 4]), torch.tensor([1, 2]), torch.tensor([[3, 5, 6], [0, 8, 9]])
    Eu, Ei = network.user.detach().numpy().astype(np.float64), network.item.detach().numpy().astype(np.float64)
    du, di = np.diff(X.indptr), np.bincount(X.indices, minlength=20)
    beta = lambda u, i: (1 / du[u]) * math.sqrt((du[u] + 1) / (di[i] + 1))  # noqa: E731
    S, omega = item_neighbours(X, 2)
    expected = 0.0
    for u, i, js in zip(users.tolist(), positives.tolist(), negatives.tolist()):
        expected += (0.1 + 2.0 * beta(u, i)) * softplus(-Eu[u] @ Ei[i])
        expected += 4.0 * np.mean([(0.2 + 3.0 * beta(u, j)) * softplus(Eu[u] @ Ei[j]) for j in js])
        expected += 0.7 * sum(w * softplus(-Eu[u] @ Ei[k]) for k, w in zip(S[i], omega[i]))
    expected += 0.3 * 0.5 * ((Eu**2).sum() + (Ei**2).sum())
    assert network.loss(users, positives, negatives).item() == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ UltraGCN weights


def test_beta_factors_equal_the_formula_on_every_edge():
    X = small_graph()
    a, b = ultragcn_beta(X)
    du, di = np.diff(X.indptr), np.bincount(X.indices, minlength=X.shape[1])
    users, items = X.nonzero()
    direct = (1.0 / du[users]) * np.sqrt((du[users] + 1.0) / (di[items] + 1.0))
    np.testing.assert_allclose(a[users] * b[items], direct, rtol=1e-6)
    assert a[3] == 0.0  # the isolated user


def brute_force_neighbours(X: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``ω(i, j) = G_ij / (g_i − G_ii) · √(g_i / g_j)`` densely, top-k by (−ω, j) per row, padded."""
    G = (X.T @ X).toarray().astype(np.float64)
    g = G.sum(axis=1)
    n = G.shape[0]
    neighbours = np.repeat(np.arange(n)[:, None], k, axis=1)
    weights = np.zeros((n, k))
    for i in range(n):
        candidates = []
        for j in range(n):
            if j != i and G[i, j] > 0:
                candidates.append((-(G[i, j] / (g[i] - G[i, i]) * math.sqrt(g[i] / g[j])), j))
        for slot, (negative, j) in enumerate(sorted(candidates)[:k]):
            neighbours[i, slot], weights[i, slot] = j, -negative
    return neighbours, weights


@pytest.mark.parametrize("k", [1, 3, 25])
def test_item_neighbours_equal_a_dense_direct_computation(k):
    X = small_graph()
    neighbours, weights = item_neighbours(X, k, n_threads=2, budget_bytes=10**9)
    expected_neighbours, expected_weights = brute_force_neighbours(X, k)
    assert neighbours.shape == weights.shape == (20, k) and neighbours.dtype == np.int64 and weights.dtype == np.float32
    np.testing.assert_array_equal(neighbours, expected_neighbours)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)
    assert (weights[7] == 0).all() and (neighbours[7] == 7).all()  # the item nobody has


def test_item_neighbours_on_a_hand_worked_graph():
    # users: {0,1}, {0,1,2}, {2}: G = [[2,2,1],[2,2,1],[1,1,2]], g = (5, 5, 4)
    X = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=np.float32))
    neighbours, weights = item_neighbours(X, 2)
    np.testing.assert_array_equal(neighbours, [[1, 2], [0, 2], [0, 1]])
    np.testing.assert_allclose(
        weights,
        [[2 / 3, 1 / 3 * math.sqrt(5 / 4)], [2 / 3, 1 / 3 * math.sqrt(5 / 4)], [0.5 * math.sqrt(4 / 5), 0.5 * math.sqrt(4 / 5)]],
        rtol=1e-6,
    )


# ------------------------------------------------------------------ sampling


def test_negatives_are_never_training_items_and_cover_the_rest():
    X = small_graph()
    sampler = NegativeSampler(X)
    users = np.repeat(np.arange(30), 40)
    negatives = sampler.sample(users, 5, np.random.default_rng(0))
    assert negatives.shape == (1200, 5) and negatives.dtype == np.int64
    dense = X.toarray() > 0
    assert not dense[users[:, None], negatives].any()
    for u in (0, 3):
        assert set(np.unique(negatives[users == u])) == set(np.flatnonzero(~dense[u]))  # 200 draws reach every non-item


def test_an_epoch_visits_every_interaction_once_in_a_seeded_order():
    X = small_graph()
    sampler = NegativeSampler(X)
    batches = list(training_triples(X, sampler, 16, 2, np.random.default_rng(3)))
    users = np.concatenate([b[0] for b in batches])
    items = np.concatenate([b[1] for b in batches])
    assert [len(b[0]) for b in batches[:-1]] == [16] * (len(batches) - 1) and len(users) == X.nnz
    assert sorted(zip(users, items)) == sorted(zip(*X.nonzero()))
    again = list(training_triples(X, sampler, 16, 2, np.random.default_rng(3)))
    assert all((a[2] == b[2]).all() and (a[0] == b[0]).all() for a, b in zip(batches, again))


def test_a_user_with_every_item_is_refused():
    X = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    with pytest.raises(DataFormatError, match="interacted with all 2 items"):
        NegativeSampler(X)


# ------------------------------------------------------------------ ImplicitSLIM


@pytest.mark.parametrize("threshold", [0.0, 3.0])
def test_user_side_implicit_slim_is_the_item_side_routine_on_the_transpose(threshold):
    X = random_binary(60, 25, 0.2, seed=2)
    E = np.random.default_rng(0).standard_normal((60, 4))
    expected = implicit_slim(E, sp.csr_matrix(X.T), lam=5.0, alpha=0.7, threshold=threshold)
    np.testing.assert_array_equal(implicit_slim_users(E, X, lam=5.0, alpha=0.7, threshold=threshold), expected)
    tensor = torch.tensor(E, dtype=torch.float32)
    out = implicit_slim_users(tensor, X, lam=5.0, alpha=0.7, threshold=threshold)
    assert isinstance(out, torch.Tensor) and out.shape == (60, 4)
    np.testing.assert_array_equal(out.numpy(), implicit_slim(tensor, sp.csr_matrix(X.T), lam=5.0, alpha=0.7, threshold=threshold).numpy())
    with pytest.raises(DataFormatError, match="scipy sparse"):
        implicit_slim_users(E, X.toarray(), lam=5.0, alpha=0.7)


def graph_target(function, E: torch.Tensor, X) -> torch.Tensor:
    """``function`` (item- or user-side ImplicitSLIM, λ = 3, α = 2) of ``E`` scaled to unit
    root-mean-square entries, in float64, rescaled to the Frobenius norm of ``E``."""
    out = torch.as_tensor(function((E / E.square().mean().sqrt()).double(), X, 3.0, 2.0), dtype=E.dtype)
    return out * (E.norm() / out.norm())


@pytest.mark.parametrize("sides", ["both", "items", "none"])
def test_implicit_slim_initialises_regularises_and_refreshes_the_named_tables(sides):
    X = random_binary(40, 15, 0.25, seed=4)
    generator = torch.Generator().manual_seed(0)
    tables = {
        "user": torch.nn.Parameter(torch.randn(40, 3, generator=generator)),
        "item": torch.nn.Parameter(torch.randn(15, 3, generator=generator)),
    }
    before = {side: table.detach().clone() for side, table in tables.items()}
    config = GraphImplicitSLIM(sides=sides, step=4, lam=3.0, alpha=2.0, reg_weight=0.5)
    targets = EmbeddingTargets(config, X)
    targets.initialise(tables)
    expected = {
        "user": graph_target(implicit_slim_users, before["user"], X),
        "item": graph_target(implicit_slim, before["item"], X),
    }
    named = {"both": ("user", "item"), "items": ("item",), "none": ()}[sides]
    for side in ("user", "item"):
        torch.testing.assert_close(tables[side].detach(), expected[side] if side in named else before[side])
    if not named:
        assert targets.penalty(tables) is None and targets.computed_epochs_ == []
        return
    assert targets.penalty(tables).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        for table in tables.values():
            table.add_(1.0)
    penalty = 0.5 * sum(((tables[s].detach() - expected[s]) ** 2).sum().item() / tables[s].shape[0] for s in named)
    assert targets.penalty(tables).item() == pytest.approx(penalty, rel=1e-5)
    for epoch in range(9):
        targets.on_epoch_start(tables, epoch)
    assert targets.computed_epochs_ == [-1, 4, 8]
    torch.testing.assert_close(targets.targets_["item"], graph_target(implicit_slim, tables["item"].detach(), X))


def test_implicit_slim_settings_are_checked():
    with pytest.raises(ConfigError, match="sides must be one of"):
        GraphImplicitSLIM(sides="users")
    with pytest.raises(ConfigError, match="unknown implicit_slim keys \\['mode'\\]"):
        LightGCN(implicit_slim={"mode": "replace"})
    with pytest.raises(ConfigError, match="'step' must be an integer"):
        UltraGCN(implicit_slim={"step": 2.5})
    with pytest.raises(ConfigError, match="all-zero item embeddings"):
        LightGCN(n_factors=2, n_epochs=1, device="cpu", implicit_slim={"sides": "items", "threshold": 1e6}).fit(small_graph())


def test_hyper_parameters_are_checked_by_type_and_range():
    with pytest.raises(ConfigError, match="'n_layers' must be an integer"):
        LightGCN(n_layers=2.5)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        UltraGCN(lr=0.0)
    with pytest.raises(ConfigError, match="n_negatives must be an integer >= 1"):
        UltraGCN(n_negatives=0)
    with pytest.raises(ConfigError, match="patience must be null"):
        LightGCN(patience=0)
    assert LightGCN(n_layers=0).n_layers == 0


# ------------------------------------------------------------------ end to end


@functools.cache
def per_user_split() -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """A synthetic low-rank matrix (300 users × 200 items) split per user at random into train
    (60 %), validation (20 %) and test (20 %): the same users in all three."""
    X = generate(300, 200, 9000, rank=4, taste_strength=3.0, seed=0).tocoo()
    part = np.random.default_rng(1).random(X.nnz)

    def matrix(mask):
        return sp.csr_matrix((np.ones(mask.sum(), np.float32), (X.row[mask], X.col[mask])), shape=X.shape)

    return matrix(part < 0.6), matrix((part >= 0.6) & (part < 0.8)), matrix(part >= 0.8)


def recall_at_20(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    """Mean over users with test items of |top-20 ∩ test| / |test|, training items excluded (brute force)."""
    scores = np.where(train.toarray() > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    relevant = test.toarray() > 0
    hits, n = np.take_along_axis(relevant, top, axis=1).sum(axis=1), relevant.sum(axis=1)
    return float((hits[n > 0] / n[n > 0]).mean())


SETTINGS = {
    "lightgcn": (LightGCN, {"n_factors": 16, "batch_size": 256, "lr": 1e-2, "n_epochs": 15}),
    "ultragcn": (
        UltraGCN,
        {"n_factors": 16, "batch_size": 256, "lr": 1e-2, "n_epochs": 25, "n_negatives": 50, "negative_weight": 50.0, "init_std": 0.1},
    ),
}


@pytest.mark.parametrize(
    ("name", "variant"),
    [("lightgcn", {"sides": "none"}), ("lightgcn", {"sides": "both"}), ("lightgcn", {"sides": "items"}), ("ultragcn", {"sides": "none"})],
)
def test_a_fit_on_a_per_user_split_beats_popularity(name, variant):
    """The ImplicitSLIM variants of UltraGCN share the training code tested with LightGCN's."""
    train, validation, test = per_user_split()
    users = np.arange(train.shape[0])
    cls, settings = SETTINGS[name]
    model = cls(device="cpu", seed=0, implicit_slim=variant, **settings)
    model.fit(train, holdout_validator(train, validation, user_ids=users), monitor="recall@20")
    popularity = np.tile(np.asarray(train.sum(axis=0), dtype=np.float32), (train.shape[0], 1))
    baseline = recall_at_20(popularity, train, test)
    ours = recall_at_20(model.score_batch(train, users), train, test)
    assert baseline == pytest.approx(0.316, abs=0.01)
    assert ours > baseline + 0.1, (ours, baseline)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_fixed_seed_gives_the_same_model_and_another_seed_another(name):
    train, _, _ = per_user_split()
    cls, settings = SETTINGS[name]
    settings = {**settings, "n_epochs": 2, "implicit_slim": {"sides": "both"}}
    first, second, other = (cls(device="cpu", seed=seed, **settings).fit(train) for seed in (5, 5, 6))
    for side in ("user", "item"):
        assert torch.equal(getattr(first.network_, side), getattr(second.network_, side))
        assert not torch.equal(getattr(first.network_, side), getattr(other.network_, side))
    assert [row["train_loss"] for row in first.history_] == [row["train_loss"] for row in second.history_]


class Crash(Exception):
    pass


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_resumed_fit_equals_the_uninterrupted_one(name, tmp_path):
    train, validation, _ = per_user_split()
    users = np.arange(train.shape[0])
    cls, settings = SETTINGS[name]
    settings = {**settings, "n_epochs": 4, "implicit_slim": {"sides": "both", "step": 2}}
    validate = holdout_validator(train, validation, user_ids=users)
    reference = cls(device="cpu", **settings).fit(train, validate)

    calls = []

    def crashing(model):  # killed during the validation of epoch 2: epochs 0 and 1 are checkpointed
        if len(calls) == 2:
            raise Crash
        calls.append(1)
        return validate(model)

    path = tmp_path / "run.ckpt.pt"
    with pytest.raises(Crash):
        cls(device="cpu", **settings).fit(train, crashing, checkpoint=str(path))
    resumed = cls(device="cpu", **settings).fit(train, validate, checkpoint=str(path))
    assert resumed.resumed_from_epoch_ == 1
    assert [row["val_ndcg@100"] for row in resumed.history_] == [row["val_ndcg@100"] for row in reference.history_]
    assert resumed.best_epoch_ == reference.best_epoch_
    for side in ("user", "item"):
        assert torch.equal(getattr(resumed.network_, side), getattr(reference.network_, side))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_cuda_training_matches_the_cpu_closely(name):
    train, validation, _ = per_user_split()
    cls, settings = SETTINGS[name]
    settings = {**settings, "n_epochs": 2, "implicit_slim": {"sides": "both"}}
    cpu = cls(device="cpu", **settings).fit(train)
    cuda = cls(device="cuda", **settings).fit(train)
    users = np.arange(train.shape[0])
    np.testing.assert_allclose(cuda.score_batch(train, users), cpu.score_batch(train, users), rtol=1e-3, atol=1e-3)


def test_memory_estimates_count_the_tables_and_each_models_working_set():
    n_users, n_items = 1000, 500
    defaults = LightGCN.default_params()
    tables = 4 * 6 * (n_users + n_items)
    assert (
        LightGCN.memory_bytes(n_users, n_items, defaults, {"n_factors": [32, 128]}) == tables * 128 + 4 * 2 * 5 * (n_users + n_items) * 128
    )
    plain = LightGCN.memory_bytes(n_users, n_items, defaults, {})
    with_implicit_slim = LightGCN.memory_bytes(n_users, n_items, {**defaults, "implicit_slim": {"sides": "both"}}, {})
    assert with_implicit_slim - plain == 4 * (2 * (n_users + n_items) * 64 + 8 * n_users * 64)
    score_block, negatives, neighbour_table = 4 * 2 * 512 * n_items, 8 * 3 * 512 * 1500, 12 * n_items * 10
    assert UltraGCN.memory_bytes(n_users, n_items, UltraGCN.default_params(), {}) == tables * 64 + score_block + negatives + neighbour_table
    with pytest.raises(ConfigError, match="'n_layers' must be an integer"):
        LightGCN.memory_bytes(n_users, n_items, defaults, {"n_layers": [2, "3"]})
