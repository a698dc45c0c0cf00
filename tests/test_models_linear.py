"""Tests of the linear embedding models (islim.models.ridge, islim.models.linear).

The closed-form steps are checked against dense float64 normal equations written in the paper's
layout (d×I item matrix, d×U user matrix), independently of the batched sparse implementation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from islim.embeddings import implicit_slim, random_embeddings, slim_lle, svd_embeddings
from islim.errors import ConfigError, DataFormatError, IslimError
from islim.evaluate import evaluate, holdout_validator
from islim.models.linear import REFERENCE_HYPERPARAMETERS, MatrixFactorization, PLRec, reference_model
from islim.models.ridge import (
    item_ridge,
    item_statistics,
    plrec_encoder,
    plrec_item_weights,
    solve_item_step,
    user_ridge,
    user_ridge_encoder,
)

ML_LATEST_SMALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small" / "ratings.csv"
N_USERS, N_ITEMS, D = 30, 20, 4


# ------------------------------------------------------------------ fixtures and dense references
@pytest.fixture
def problem():
    """A small random binary 30×20 problem with dense and sparse copies, plus random factors."""
    rng = np.random.default_rng(0)
    R = (rng.random((N_USERS, N_ITEMS)) < 0.3).astype(np.float64)
    R[0, :] = 1.0  # every item has at least one user
    return {
        "R": R,
        "X": sp.csr_matrix(R),
        "Q": rng.standard_normal((N_ITEMS, D)),
        "P": rng.standard_normal((N_USERS, D)),
        "V": rng.standard_normal((N_ITEMS, D)),
        "b": R.mean(axis=0),
    }


def dense_user_step(R, Q, r_p, b):
    """Paper layout: P = (r_p I + Q Qᵀ)⁻¹ (Q Rᵀ − Q b 1ᵀ) with Q d×I; returned as U×d."""
    Qp = Q.T
    rhs = Qp @ R.T - (Qp @ b)[:, None]
    return np.linalg.solve(r_p * np.eye(len(Qp)) + Qp @ Qp.T, rhs).T


def dense_item_step(R, P, r_q, b, s_q=0.0, V=None):
    """Paper layout: Q = ((r_q+s_q) I + P Pᵀ)⁻¹ (P R − (P1) bᵀ + s_q V) with P d×U; returned as I×d."""
    Pp = P.T
    rhs = Pp @ R - Pp.sum(axis=1, keepdims=True) @ b[None, :]
    if s_q:
        rhs = rhs + s_q * V.T
    return np.linalg.solve((r_q + s_q) * np.eye(len(Pp)) + Pp @ Pp.T, rhs).T


def dense_plrec_users(R, W, popularity, power):
    """P = R Diag(ω) W with ω_i = 1 / (c_i^{1/p} + 1e-4)."""
    return R @ np.diag(1.0 / (popularity ** (1.0 / power) + 1e-4)) @ W


def scripted(scores, snapshots=None):
    """A validate() callback returning ``{"ndcg@100": score}`` for ``scores`` in turn (and recording the model's Q)."""
    it = iter(scores)

    def validate(model):
        if snapshots is not None:
            snapshots.append(model.item_factors_.copy())
        return {"ndcg@100": next(it)}

    return validate


# ------------------------------------------------------------------------- closed-form steps
@pytest.mark.parametrize("with_bias", [False, True])
def test_user_step_matches_dense_normal_equations(problem, with_bias):
    b = problem["b"] if with_bias else None
    expected = dense_user_step(problem["R"], problem["Q"], 3.0, problem["b"] if with_bias else np.zeros(N_ITEMS))
    got = user_ridge(problem["X"], problem["Q"], 3.0, b, batch_size=7)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_bias", [False, True])
def test_item_step_matches_dense_normal_equations(problem, with_bias):
    b = problem["b"] if with_bias else None
    expected = dense_item_step(problem["R"], problem["P"], 2.0, problem["b"] if with_bias else np.zeros(N_ITEMS))
    got = item_ridge(problem["X"], problem["P"], 2.0, b)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_regularised_item_step_matches_closed_form_and_zeroes_the_gradient(problem):
    R, P, V, b = problem["R"], problem["P"], problem["V"], problem["b"]
    r_q, s_q = 0.5, 7.0
    got = item_ridge(problem["X"], P, r_q, b, s_q=s_q, target=V)
    np.testing.assert_allclose(got, dense_item_step(R, P, r_q, b, s_q, V), rtol=1e-10, atol=1e-12)
    # ∂/∂Q of ‖R − P Qᵀ − 1bᵀ‖² + r_q‖Q‖² + s_q‖Q − V‖² vanishes at the solution.
    residual = R - P @ got.T - b[None, :]
    gradient = -2 * residual.T @ P + 2 * r_q * got + 2 * s_q * (got - V)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-9)


def test_batched_statistics_give_the_same_als_epoch_as_dense_algebra(problem):
    R, Q, b = problem["R"], problem["Q"], problem["b"]
    stats = item_statistics(problem["X"], user_ridge_encoder(Q, 3.0, b), D, batch_size=7)
    got = solve_item_step(stats, 2.0, b, dtype=np.float64)
    expected = dense_item_step(R, dense_user_step(R, Q, 3.0, b), 2.0, b)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_threaded_item_step_equals_scipy_in_one_thread_bit_for_bit(monkeypatch):
    """The item step's products on 3 threads (2 user blocks, 3 item blocks per batch) give exactly
    the float32 sums of scipy's single-threaded products: ALS results do not change."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    X = sp.random(600, 700, density=0.03, random_state=8, format="csr", dtype=np.float32)
    X.data[:] = 1.0
    rng = np.random.default_rng(9)
    Q, b = rng.standard_normal((700, 6)).astype(np.float32), rng.uniform(0, 0.1, 700)
    stats = item_statistics(X, user_ridge_encoder(Q, 3.0, b), 6, batch_size=500)
    factor = scipy.linalg.cho_factor(3.0 * np.eye(6) + Q.T.astype(np.float64) @ Q)
    cross = np.zeros((700, 6))
    for rows in (slice(0, 500), slice(500, 600)):
        rhs = np.asarray(X[rows] @ Q, dtype=np.float64) - b @ Q
        P = scipy.linalg.cho_solve(factor, rhs.T).T.astype(np.float32)
        cross += X[rows].T @ P
    np.testing.assert_array_equal(stats.cross, cross)


def test_item_step_with_s_q_but_no_target_is_rejected(problem):
    with pytest.raises(ConfigError, match="target"):
        item_ridge(problem["X"], problem["P"], 1.0, s_q=1.0)


def test_plrec_projection_matches_dense_product_with_training_popularity(problem):
    X_train, R = problem["X"][:20], problem["R"]
    W = problem["Q"]
    weights = plrec_item_weights(X_train, power=2.5)
    got = plrec_encoder(W, weights)(problem["X"][20:])
    expected = dense_plrec_users(R[20:], W, R[:20].sum(axis=0), 2.5)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------- models
def test_mf_training_follows_the_official_schedule(problem):
    """init: Q₀ = IS(Gaussian); epoch 0: V = Q₀; epoch 1: V = IS(Q₁); each epoch user step then item step."""
    X, R, b = problem["X"], problem["R"], problem["b"]
    params = dict(item_lambda=5.0, item_alpha=0.7, item_threshold=2.0)
    model = MatrixFactorization(n_factors=D, r_p=3.0, r_q=0.5, s_q=4.0, n_epochs=2, seed=11, dtype="float64", **params).fit(X)

    def islim_(E):
        return implicit_slim(E, X, params["item_lambda"], params["item_alpha"], params["item_threshold"])

    Q = islim_(random_embeddings(N_ITEMS, D, 11, scale=1.0, dtype=np.float64))
    for epoch in range(2):
        V = Q if epoch == 0 else islim_(Q)
        Q = dense_item_step(R, dense_user_step(R, Q, 3.0, b), 0.5, b, 4.0, V)
    np.testing.assert_allclose(model.item_factors_, Q, rtol=1e-7, atol=1e-9)


def test_plrec_training_ties_decoder_to_implicit_slim_encoder(problem):
    X, R = problem["X"], problem["R"]
    model = PLRec(
        n_factors=D,
        power=2.0,
        r_q=0.5,
        s_q=3.0,
        init="implicit_slim",
        regularizer="implicit_slim",
        item_lambda=5.0,
        item_alpha=0.7,
        seed=5,
        dtype="float64",
    ).fit(X)
    W = implicit_slim(random_embeddings(N_ITEMS, D, 5, scale=1.0, dtype=np.float64), X, 5.0, 0.7, 0.0)
    np.testing.assert_allclose(model.encoder_factors_, W, rtol=1e-7, atol=1e-9)
    P = dense_plrec_users(R, W, R.sum(axis=0), 2.0)
    expected = dense_item_step(R, P, 0.5, np.zeros(N_ITEMS), 3.0, W)
    np.testing.assert_allclose(model.item_factors_, expected, rtol=1e-7, atol=1e-9)


def test_plrec_regulariser_iterates_implicit_slim_when_the_encoder_is_not_from_it(problem):
    """init != implicit_slim: V₁ = IS(W), V₂ = IS(V₁), …; W stays fixed."""
    X, R = problem["X"], problem["R"]
    model = PLRec(
        n_factors=D,
        power=2.0,
        r_q=0.5,
        s_q=3.0,
        init="random",
        regularizer="implicit_slim",
        item_lambda=5.0,
        item_alpha=0.7,
        n_epochs=2,
        seed=5,
        dtype="float64",
    ).fit(X)
    W = random_embeddings(N_ITEMS, D, 5, scale=1.0, dtype=np.float64)
    V = implicit_slim(implicit_slim(W, X, 5.0, 0.7, 0.0), X, 5.0, 0.7, 0.0)
    P = dense_plrec_users(R, W, R.sum(axis=0), 2.0)
    np.testing.assert_allclose(model.encoder_factors_, W)
    np.testing.assert_allclose(model.item_factors_, dense_item_step(R, P, 0.5, np.zeros(N_ITEMS), 3.0, V), rtol=1e-7, atol=1e-9)


def test_plrec_multistep_reapplies_implicit_slim_to_the_encoder_every_epoch(problem):
    X, R = problem["X"], problem["R"]
    model = PLRec(
        n_factors=D,
        power=1e4,
        r_q=0.5,
        s_q=3.0,
        init="implicit_slim",
        regularizer="implicit_slim",
        orth=True,
        init_after_step=True,
        n_init_steps=0,
        n_epochs=2,
        item_lambda=5.0,
        item_alpha=0.7,
        seed=5,
        dtype="float64",
    ).fit(X)
    W = random_embeddings(N_ITEMS, D, 5, scale=1.0, dtype=np.float64)
    for _ in range(2):
        W = np.linalg.svd(implicit_slim(W, X, 5.0, 0.7, 0.0), full_matrices=False)[0]
    # Orthonormal bases of the same column space: compare the projectors.
    np.testing.assert_allclose(model.encoder_factors_ @ model.encoder_factors_.T, W @ W.T, atol=1e-9)
    P = dense_plrec_users(R, model.encoder_factors_, R.sum(axis=0), 1e4)
    expected = dense_item_step(R, P, 0.5, np.zeros(N_ITEMS), 3.0, model.encoder_factors_)
    np.testing.assert_allclose(model.item_factors_, expected, rtol=1e-7, atol=1e-9)


def test_plrec_user_vectors_do_not_depend_on_the_rest_of_the_batch(problem):
    X, R = problem["X"], problem["R"]
    model = PLRec(n_factors=D, init="random", power=1.5, r_q=1.0, dtype="float64").fit(X[:20])
    heldout = X[20:]
    together = model.transform(heldout)
    alone = np.vstack([model.transform(heldout[[u]]) for u in range(heldout.shape[0])])
    np.testing.assert_allclose(together, alone, rtol=1e-12)
    expected = dense_plrec_users(R[20:], model.encoder_factors_, R[:20].sum(axis=0), 1.5)
    np.testing.assert_allclose(together, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MatrixFactorization(
            n_factors=D, init="random", regularizer="none", n_init_steps=0, n_epochs=3, r_p=2.0, r_q=1.0, dtype="float64"
        ),
        lambda: PLRec(n_factors=D, init="random", power=2.0, r_q=1.0, bias=True, dtype="float64"),
    ],
)
def test_fold_in_respects_the_split(problem, make):
    X = problem["X"]
    model = make().fit(X[:20])
    fitted = {name: getattr(model, name).copy() for name in ("item_factors_", "item_bias_") if getattr(model, name) is not None}
    heldout = problem["R"][20:]
    altered = heldout.copy()
    altered[1:] = 1.0 - altered[1:]
    # Held-out rows never reach training: refitting after changing them changes nothing.
    refit = make().fit(sp.csr_matrix(np.vstack([problem["R"][:20], altered]))[:20])
    np.testing.assert_array_equal(refit.item_factors_, model.item_factors_)
    # A held-out user's scores depend only on its own fold-in row, and scoring leaves the model as it was.
    scores = model.score_batch(sp.csr_matrix(heldout))
    scores_altered = model.score_batch(sp.csr_matrix(altered))
    np.testing.assert_array_equal(scores[0], scores_altered[0])
    assert not np.allclose(scores[1:], scores_altered[1:])
    for name, value in fitted.items():
        np.testing.assert_array_equal(getattr(model, name), value)
    assert scores.dtype == np.float32 and scores.shape == heldout.shape


def test_mf_fold_in_scores_match_dense_ridge_prediction(problem):
    X, R = problem["X"], problem["R"]
    model = MatrixFactorization(
        n_factors=D, init="random", regularizer="none", n_init_steps=0, n_epochs=2, r_p=2.0, r_q=1.0, dtype="float64"
    ).fit(X[:20])
    b_train = R[:20].mean(axis=0)
    P = dense_user_step(R[20:], model.item_factors_, 2.0, b_train)
    np.testing.assert_allclose(model.score_batch(X[20:]), P @ model.item_factors_.T + b_train, rtol=1e-5, atol=1e-6)


def test_seeded_fits_are_reproducible(problem):
    X = problem["X"]

    def make(seed):
        return MatrixFactorization(
            n_factors=D, n_epochs=2, r_p=3.0, r_q=0.5, s_q=4.0, item_lambda=5.0, item_alpha=0.7, item_threshold=0.0, seed=seed
        )

    first, second, other = make(3).fit(X), make(3).fit(X), make(4).fit(X)
    np.testing.assert_array_equal(first.item_factors_, second.item_factors_)
    assert not np.allclose(first.item_factors_, other.item_factors_)


def test_early_stopping_stops_at_first_non_improvement_and_restores_best(problem):
    snapshots = []
    model = MatrixFactorization(n_factors=D, init="random", regularizer="none", n_init_steps=0, n_epochs=5, r_p=2.0, r_q=1.0)
    model.fit(problem["X"], validate=scripted([0.1, 0.2, 0.2 + 5e-5, 0.9, 1.0], snapshots))
    assert [h["epoch"] for h in model.history_] == [0, 1, 2]
    assert [h["val_ndcg@100"] for h in model.history_] == [0.1, 0.2, 0.2 + 5e-5]
    assert model.best_epoch_ == 1 and model.best_score_ == 0.2
    np.testing.assert_array_equal(model.item_factors_, snapshots[1])


def test_patience_allows_that_many_non_improving_epochs(problem):
    snapshots = []
    model = MatrixFactorization(n_factors=D, init="random", regularizer="none", n_init_steps=0, n_epochs=6, r_p=2.0, r_q=1.0, patience=1)
    model.fit(problem["X"], validate=scripted([0.1, 0.2, 0.1, 0.3, 0.3, 0.2], snapshots))
    assert [h["epoch"] for h in model.history_] == [0, 1, 2, 3, 4, 5]
    assert [h["val_ndcg@100"] for h in model.history_] == [0.1, 0.2, 0.1, 0.3, 0.3, 0.2]
    assert model.best_epoch_ == 3
    np.testing.assert_array_equal(model.item_factors_, snapshots[3])


def test_init_only_mf_evaluates_every_repeated_implicit_slim_step(problem):
    X = problem["X"]
    model = MatrixFactorization(
        n_factors=D,
        regularizer="none",
        n_init_steps=3,
        n_epochs=0,
        item_lambda=5.0,
        item_alpha=0.7,
        item_threshold=0.0,
        dtype="float64",
        seed=2,
    )
    model.fit(X, validate=scripted([0.1, 0.2, 0.3]))
    assert [h["epoch"] for h in model.history_] == [-3, -2, -1]
    Q = random_embeddings(N_ITEMS, D, 2, scale=1.0, dtype=np.float64)
    for _ in range(3):
        Q = implicit_slim(Q, X, 5.0, 0.7, 0.0)
    np.testing.assert_allclose(model.item_factors_, Q, rtol=1e-7, atol=1e-9)
    assert model.score_batch(X[:3]).shape == (3, N_ITEMS)


def test_without_validation_every_epoch_runs_and_the_last_is_kept(problem):
    X = problem["X"]
    model = MatrixFactorization(n_factors=D, init="random", regularizer="none", n_init_steps=0, n_epochs=3, r_p=2.0, r_q=1.0).fit(X)
    assert model.history_ == [] and model.best_epoch_ == 2 and model.best_score_ is None
    init_only = MatrixFactorization(
        n_factors=D, regularizer="none", n_init_steps=2, n_epochs=0, item_lambda=5.0, item_alpha=0.7, item_threshold=0.0
    ).fit(X)
    assert init_only.history_ == [] and init_only.best_epoch_ == -1


@pytest.mark.parametrize("init", ["svd", "slim_lle"])
def test_init_only_mf_uses_the_requested_embeddings(problem, init):
    X = problem["X"]
    model = MatrixFactorization(n_factors=D, init=init, regularizer="none", n_epochs=0, item_lambda=5.0, seed=3, dtype="float64").fit(X)
    expected = svd_embeddings(X, D, 3, dtype=np.float64) if init == "svd" else slim_lle(X, 5.0, D)
    np.testing.assert_allclose(model.item_factors_, expected, rtol=1e-12)


@pytest.mark.parametrize("threshold", [0.0, 9.0])
def test_user_side_init_is_the_item_side_implicit_slim_on_the_transpose_then_the_item_step(problem, threshold):
    X = problem["X"]
    model = MatrixFactorization(
        n_factors=D,
        init="implicit_slim_users",
        regularizer="none",
        n_epochs=0,
        r_q=2.0,
        item_lambda=5.0,
        item_alpha=0.7,
        item_threshold=threshold,
        seed=3,
        dtype="float64",
    ).fit(X)
    start = np.random.default_rng(3).standard_normal((N_USERS, D))
    P = implicit_slim(start, sp.csr_matrix(problem["R"].T), 5.0, 0.7, threshold)
    assert threshold == 0.0 or (problem["R"].sum(axis=1) < threshold).any()  # some users do not anchor
    expected = dense_item_step(problem["R"], P, 2.0, problem["b"])
    np.testing.assert_allclose(model.item_factors_, expected, rtol=1e-9, atol=1e-12)
    trained = MatrixFactorization(
        n_factors=D, init="implicit_slim_users", regularizer="none", n_epochs=1, r_q=2.0, item_lambda=5.0, item_alpha=0.7
    ).fit(X)
    assert np.isfinite(trained.score_batch(X)).all()


def test_orth_makes_implicit_slim_embeddings_orthonormal(problem):
    model = MatrixFactorization(
        n_factors=D, regularizer="none", n_epochs=0, orth=True, item_lambda=5.0, item_alpha=0.7, item_threshold=0.0, dtype="float64"
    )
    Q = model.fit(problem["X"]).item_factors_
    np.testing.assert_allclose(Q.T @ Q, np.eye(D), atol=1e-10)


@pytest.mark.parametrize(
    "model",
    [
        MatrixFactorization(n_factors=N_ITEMS + 1),
        MatrixFactorization(init="pca", n_factors=D),
        MatrixFactorization(regularizer="l1", n_factors=D),
        MatrixFactorization(init="svd", n_init_steps=2, n_factors=D),
        MatrixFactorization(init="svd", n_init_steps=0, n_factors=D),
        MatrixFactorization(r_p=0.0, n_factors=D),
        MatrixFactorization(item_alpha=0.0, n_factors=D),
        MatrixFactorization(init="implicit_slim_users", n_init_steps=2, n_factors=D),
        PLRec(init="implicit_slim_users", n_factors=D),
        PLRec(n_epochs=0, n_factors=D),
        PLRec(init="svd", init_after_step=True, n_factors=D),
        PLRec(power=0.0, n_factors=D),
    ],
)
def test_invalid_configurations_raise_config_error(problem, model):
    with pytest.raises(ConfigError):
        model.fit(problem["X"])


def test_inputs_are_checked(problem):
    with pytest.raises(IslimError, match="not fitted"):
        MatrixFactorization().score_batch(problem["X"])
    with pytest.raises(DataFormatError, match="sparse"):
        MatrixFactorization(n_factors=D).fit(problem["R"])
    model = MatrixFactorization(n_factors=D, init="random", regularizer="none", n_init_steps=0, n_epochs=1, r_q=1.0).fit(problem["X"])
    with pytest.raises(DataFormatError, match="items"):
        model.score_batch(problem["X"][:, :5])


def test_reference_setups_build_and_defaults_are_the_mf_implicit_slim_setup():
    for name in REFERENCE_HYPERPARAMETERS:
        assert isinstance(reference_model(name), (MatrixFactorization, PLRec))
    setup = dict(REFERENCE_HYPERPARAMETERS["mf_implicit_slim"])
    setup.pop("model")
    defaults = MatrixFactorization().get_params()
    assert {key: defaults[key] for key in setup} == setup
    with pytest.raises(ConfigError, match="unknown"):
        reference_model("ease")


# ------------------------------------------------------------------- real-data sanity check
@pytest.fixture(scope="module")
def movielens_split():
    if not ML_LATEST_SMALL.exists():
        pytest.skip(f"{ML_LATEST_SMALL} is not available")
    from islim.data.readers import read_movielens_csv
    from islim.data.split import binarize_and_filter, make_split

    frame = binarize_and_filter(read_movielens_csv(ML_LATEST_SMALL), threshold=3.5, min_item_users=0, min_user_interactions=5)
    return make_split(frame, heldout_users=60, seed=98765)


def _ndcg(split, score_batch, part="test"):
    return evaluate(score_batch, getattr(split, f"{part}_tr"), getattr(split, f"{part}_te"))["ndcg@100"]


def _popularity_ndcg(split):
    popularity = np.asarray(split.train.sum(axis=0), dtype=np.float32).ravel()
    return _ndcg(split, lambda x: np.tile(popularity, (x.shape[0], 1)))


def test_mf_with_implicit_slim_beats_random_mf_and_popularity_on_movielens(movielens_split):
    split = movielens_split
    validate = holdout_validator(split.validation_tr, split.validation_te)
    random_mf = MatrixFactorization(n_factors=64, init="random", regularizer="none", n_epochs=0, r_p=10.0).fit(split.train)
    islim_mf = MatrixFactorization(
        n_factors=64, r_p=1000.0, r_q=1.0, s_q=100.0, item_lambda=30.0, item_alpha=1.0, item_threshold=0.0, n_epochs=5
    )
    islim_mf.fit(split.train, validate=validate)
    random_ndcg, islim_ndcg, popularity_ndcg = (
        _ndcg(split, random_mf.score_batch),
        _ndcg(split, islim_mf.score_batch),
        _popularity_ndcg(split),
    )
    assert islim_ndcg > random_ndcg + 0.05, (islim_ndcg, random_ndcg)
    assert islim_ndcg > popularity_ndcg + 0.05, (islim_ndcg, popularity_ndcg)


def test_plrec_with_implicit_slim_encoder_beats_popularity_on_movielens(movielens_split):
    plrec = PLRec(n_factors=64, init="implicit_slim", item_lambda=30.0, item_alpha=1.0, r_q=10.0).fit(movielens_split.train)
    plrec_ndcg, popularity_ndcg = _ndcg(movielens_split, plrec.score_batch), _popularity_ndcg(movielens_split)
    assert plrec_ndcg > popularity_ndcg + 0.05, (plrec_ndcg, popularity_ndcg)
