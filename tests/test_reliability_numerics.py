"""Numerical faults: NaN or infinity in a deep model's loss, in ImplicitSLIM embeddings, in ALS
factors or in an ablation arm stops the run (or skips the cell) with an error naming the epoch and
the quantity; degenerate inputs — an item nobody interacted with, a user with every item, d >= I —
are computed correctly or refused clearly.

Faults are injected by patching one function to return NaN/inf; correct results are compared with
a dense float64 evaluation of the closed form written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import islim.embeddings
import islim.models.linear as linear
from islim.ablations import ablation_cell
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.embeddings import arm_embeddings, implicit_slim, svd_embeddings
from islim.errors import ConfigError, GridSearchError, NumericalError
from islim.evaluate import holdout_validator, per_user_metrics
from islim.models.deep.estimator import MultVAEModel
from islim.models.deep.hooks import ImplicitSLIMConfig, ImplicitSLIMHook
from islim.models.deep.multvae import MultVAE
from islim.models.deep.trainer import build_model, resolve_params
from islim.training import fit_model, train_run

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {"hidden_dim": 16, "latent_dim": 4, "batch_size": 50, "n_epochs": 4, "device": "cpu"}


def fit_multvae(X, validation, params):
    """A Mult-VAE estimator fitted on ``X`` (validated on ``(fold_in, target)`` unless ``None``) and its curve."""
    validate = holdout_validator(*validation) if validation is not None else None
    model = MultVAEModel(**params).fit(X, validate, progress=False)
    return model, pd.DataFrame(model.history_)


@pytest.fixture(scope="module")
def split():
    X = generate(150, 40, 2000, seed=5).tocoo()
    return make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=15, seed=3)


def dense_implicit_slim(E0: np.ndarray, X: sp.spmatrix, lam: float, alpha: float) -> np.ndarray:
    """E⁺ = α Ω E₀ (I + α E₀ᵀ Ω E₀)⁻¹ E₀ᵀ E₀ with Ω = Γ Δ⁻² Γ, Γ = XᵀX + λI, Δ = diag(XᵀX) + λ (τ = 0)."""
    G = (X.T @ X).toarray().astype(np.float64)
    gamma = G + lam * np.eye(G.shape[0])
    inv_delta = np.diag(1.0 / (np.diag(G) + lam))
    omega = gamma @ inv_delta @ inv_delta @ gamma
    d = E0.shape[1]
    return alpha * omega @ E0 @ np.linalg.solve(np.eye(d) + alpha * E0.T @ omega @ E0, E0.T @ E0)


# ------------------------------------------------------------------ NaN / inf in the deep trainer


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_training_loss_stops_the_run_naming_the_epoch(split, monkeypatch, tmp_path, bad):
    original = MultVAE.loss

    def loss(self, x, state, dropout):
        terms = original(self, x, state, dropout)
        if state.epoch == 2:
            terms.total = terms.total * bad
        return terms

    monkeypatch.setattr(MultVAE, "loss", loss)
    path = tmp_path / "run.ckpt.pt"
    one_batch = {**TINY, "batch_size": split.train.shape[0]}  # the epoch's loss is that one batch's
    # the estimator names the epoch ...
    with pytest.raises(NumericalError, match=rf"^the training loss at epoch 2 is not finite \({bad}\); the run stops here"):
        MultVAEModel(**one_batch).fit(
            split.train, holdout_validator(split.validation_tr, split.validation_te), checkpoint=tmp_path / "direct.ckpt.pt"
        )
    assert torch.load(tmp_path / "direct.ckpt.pt", weights_only=True)["progress"]["epoch"] == 1
    # ... and a training run adds the model's name
    with pytest.raises(NumericalError, match=rf"multvae: the training loss at epoch 2 is not finite \({bad}\); the run stops here"):
        fit_model("multvae", split, one_batch, 2000, False, path)
    assert torch.load(path, weights_only=True)["progress"]["epoch"] == 1  # the last good epoch is kept


@pytest.mark.parametrize("mode", ["replace", "regularize"])
def test_non_finite_implicit_slim_embeddings_stop_the_run_and_change_no_weight(split, monkeypatch, mode):
    monkeypatch.setattr(islim.embeddings, "implicit_slim", lambda E, X, **kw: np.asarray(E) * np.nan)
    params = resolve_params(MultVAE, {**TINY, "implicit_slim": {"mode": mode, "step": 1}})
    model = build_model(MultVAE, split.n_items, params)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hook = ImplicitSLIMHook(ImplicitSLIMConfig.from_mapping(params["implicit_slim"]), split.train)
    with pytest.raises(
        NumericalError, match=r"the ImplicitSLIM embeddings of encoder_input\.weight at the start of epoch 0 is not finite \(640 of 640"
    ):
        hook.on_epoch_start(model, [], 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert hook.targets_ == {} and hook.applied_epochs_ == []


def test_implicit_slim_refuses_non_finite_input_embeddings(split):
    E0 = np.random.default_rng(0).standard_normal((split.n_items, 4))
    E0[3, 1] = np.inf
    with pytest.raises(NumericalError, match="is not positive definite"):
        implicit_slim(E0, split.train, lam=10.0, alpha=1.0)


# ------------------------------------------------------------------ NaN in ALS factors and ablation arms


@pytest.mark.parametrize(
    "model, settings, bad_call, epoch",
    [
        ("mf", {"n_factors": 4, "n_epochs": 3, "init": "random", "regularizer": "none", "n_init_steps": 0, "patience": 5}, 2, 1),
        ("plrec", {"n_factors": 4, "n_epochs": 2, "init": "svd", "r_q": 1.0, "patience": 5}, 1, 0),
    ],
)
def test_non_finite_als_factors_stop_the_run_naming_the_epoch(split, monkeypatch, model, settings, bad_call, epoch):
    original, calls = linear.solve_item_step, []

    def solve(*args, **kwargs):
        calls.append(1)
        factors = original(*args, **kwargs)
        return factors * np.nan if len(calls) == bad_call else factors

    monkeypatch.setattr(linear, "solve_item_step", solve)
    # the only grid point fails, so the run does, naming the point and the reason
    with pytest.raises(GridSearchError, match=rf"defaults: {model}: item factors after ALS epoch {epoch} is not finite"):
        train_run("toy", split, model, "baseline", settings, {}, {}, progress=False)


def test_non_finite_initialisation_is_named_by_its_negative_epoch(split, monkeypatch):
    original, calls = linear.implicit_slim, []

    def implicit(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs) * (np.nan if len(calls) == 2 else 1.0)

    monkeypatch.setattr(linear, "implicit_slim", implicit)
    settings = {"n_factors": 4, "n_epochs": 0, "init": "implicit_slim", "regularizer": "none", "n_init_steps": 2, "item_threshold": 0.0}
    with pytest.raises(GridSearchError, match=r"defaults: mf: item factors after ALS epoch -1 is not finite"):
        train_run("toy", split, "mf", "baseline", settings, {}, {}, progress=False)


def test_an_ablation_arm_with_non_finite_embeddings_is_skipped_with_the_reason(split, monkeypatch):
    monkeypatch.setattr("islim.ablations.arm_embeddings", lambda X, d, *args, **kwargs: np.full((X.shape[1], d), np.inf))
    (record,) = ablation_cell(
        "toy", split, {"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"}, 4, {}, {"mf": {"r_p": [1.0]}}
    ).records
    assert record["extra"]["status"] == "skipped"
    assert "ablation:all/ease/implicit: the embeddings for {} is not finite (160 of 160" in record["extra"]["reason"]


# ------------------------------------------------------------------ degenerate inputs


def with_empty_item(X: sp.csr_matrix, item: int) -> sp.csr_matrix:
    X = X.tolil(copy=True)
    X[:, item] = 0
    return X.tocsr()


def test_an_item_nobody_interacted_with_gets_the_closed_form_embedding(split):
    X = with_empty_item(split.train, 7)
    E0 = np.random.default_rng(1).standard_normal((X.shape[1], 5))
    out = implicit_slim(E0, X, lam=10.0, alpha=2.0)
    np.testing.assert_allclose(out, dense_implicit_slim(E0, X, 10.0, 2.0), rtol=1e-8, atol=1e-10)


def test_models_train_finitely_with_an_item_nobody_interacted_with(split):
    X = with_empty_item(split.train, 7)
    model, curve = fit_multvae(X, None, {**TINY, "implicit_slim": {"mode": "replace", "step": 2, "lam": 10.0}})
    assert len(curve) == TINY["n_epochs"] and np.isfinite(curve["train_loss"]).all() and np.isfinite(model.score_batch(split.test_tr)).all()
    mf = linear.MODELS["mf"](n_factors=4, n_epochs=2, n_init_steps=1, item_threshold=0.0).fit(X)
    assert np.isfinite(mf.item_factors_).all() and np.isfinite(mf.score_batch(split.test_tr)).all()


def test_a_heldout_user_with_every_item_is_split_and_scored_perfectly():
    n_items = 30
    pairs = [(u, i) for u in range(12) for i in range(n_items) if (u * 7 + i) % 3 == 0]  # training users: a third each
    pairs += [(99, i) for i in range(n_items)]  # one user with every item
    frame = pd.DataFrame(pairs, columns=["user", "item"])
    split = next(s for s in (make_split(frame, heldout_users=1, seed=seed) for seed in range(50)) if 99 not in s.user_ids["train"])
    group = "validation" if 99 in split.user_ids["validation"] else "test"
    fold_in, target = getattr(split, f"{group}_tr"), getattr(split, f"{group}_te")
    assert fold_in.nnz + target.nnz == n_items and target.nnz == n_items // 5
    scores = np.random.default_rng(0).standard_normal(fold_in.shape)
    metrics = per_user_metrics(lambda batch: scores[: batch.shape[0]], fold_in, target)
    only_targets_left = [metrics[name][0] for name in ("recall@20", "recall@50", "ndcg@100")]
    assert only_targets_left == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)


def test_a_training_user_with_every_item_keeps_the_computation_finite(split):
    X = sp.vstack([split.train, sp.csr_matrix(np.ones((1, split.n_items), dtype=np.float32))]).tocsr()
    E0 = np.random.default_rng(2).standard_normal((split.n_items, 4))
    np.testing.assert_allclose(implicit_slim(E0, X, lam=5.0, alpha=1.0), dense_implicit_slim(E0, X, 5.0, 1.0), rtol=1e-8, atol=1e-10)
    _, curve = fit_multvae(X, None, TINY)
    assert len(curve) == TINY["n_epochs"] and np.isfinite(curve["train_loss"]).all()


def test_implicit_slim_with_more_dimensions_than_items_is_the_closed_form(split):
    d = split.n_items + 3
    E0 = np.random.default_rng(3).standard_normal((split.n_items, d))
    np.testing.assert_allclose(
        implicit_slim(E0, split.train, lam=10.0, alpha=1.0), dense_implicit_slim(E0, split.train, 10.0, 1.0), rtol=1e-7, atol=1e-9
    )


def test_a_deep_model_with_a_latent_space_wider_than_the_catalogue_trains(split):
    _, curve = fit_multvae(split.train, (split.validation_tr, split.validation_te), {**TINY, "latent_dim": split.n_items + 5})
    assert len(curve) >= 1 and np.isfinite(curve["train_loss"]).all()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda X, d: linear.MODELS["mf"](n_factors=d, n_epochs=1).fit(X), "n_factors must be between 1 and the number of items"),
        (lambda X, d: svd_embeddings(X, d), "svd_embeddings needs 1 <= d < n_items"),
        (lambda X, d: arm_embeddings(X, d, "all", "ease", "explicit"), "choose d < n_items - 1"),
    ],
    ids=["mf", "svd", "explicit-arm"],
)
def test_methods_that_cannot_have_d_at_least_the_item_count_refuse_it(split, make, message):
    with pytest.raises(ConfigError, match=message):
        make(split.train, split.n_items + 1)
