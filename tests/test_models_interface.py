"""Every registered model implements the one :class:`~islim.models.base.Recommender` interface:
parameters (defaults, get/set, unknown names), ``fit`` with a validation callback (``history_``
rows, ``best_epoch_`` under the model's own early-stopping rule, the best epoch restored) and
``score_batch``.

Each model is trained with tiny settings on small random matrices (:mod:`tests.matrices`); a
model added to :data:`islim.models.registry.MODELS` needs an entry in :data:`SMALL` here. Models
that score known users (``user_scoring = "known_users"``) are validated and scored as the first
training users (:func:`users_of`).
"""

from __future__ import annotations

import copy
import functools
import inspect
import math

import numpy as np
import pytest
import scipy.sparse as sp

from islim.errors import ConfigError, DataFormatError, IslimError
from islim.evaluate import holdout_validator
from islim.models.base import USER_SCORING, EpochHistory, Recommender
from islim.models.registry import MODELS, build_model, default_params, model_class
from tests.matrices import random_binary

N_ITEMS = 40
DEEP = {"batch_size": 32, "n_epochs": 3, "device": "cpu", "seed": 3}
LINEAR = {"n_factors": 4, "n_epochs": 3, "patience": 5, "item_lambda": 10.0, "item_alpha": 1.0, "item_threshold": 0.0}

#: Tiny settings per registered model (a few factors, hidden units and epochs).
SMALL = {
    "ease": {"lam": 10.0},
    "mf": {**LINEAR, "r_p": 10.0, "r_q": 1.0, "s_q": 1.0},
    "plrec": {**LINEAR, "regularizer": "implicit_slim", "s_q": 1.0, "r_q": 1.0},
    "multvae": {**DEEP, "hidden_dim": 16, "latent_dim": 4},
    "recvae": {**DEEP, "hidden_dim": 16, "latent_dim": 4},
    "hvamp": {**DEEP, "hidden_dim": 16, "z1_dim": 4, "z2_dim": 4, "n_components": 3},
    "popularity": {},
    "itemknn": {"k": 5, "shrink": 2.0},
    "lightgcn": {"n_factors": 8, "n_layers": 2, "batch_size": 256, "n_epochs": 3, "device": "cpu", "seed": 3},
    "ultragcn": {
        "n_factors": 8,
        "batch_size": 256,
        "n_negatives": 4,
        "n_neighbours": 3,
        "lr": 1e-2,
        "n_epochs": 3,
        "device": "cpu",
        "seed": 3,
    },
}

REQUIRED_COLUMNS = {"epoch", "wall_seconds", "train_loss", "val_ndcg@100"}

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def small(name: str) -> dict:
    if name not in SMALL:
        pytest.fail(f"registered model {name!r} has no tiny settings in tests/test_models_interface.py:SMALL")
    return copy.deepcopy(SMALL[name])


@functools.cache
def users_of(name: str, n: int) -> np.ndarray | None:
    """Training-row ids of ``n`` evaluated users for a model scoring known users (the first ``n``
    training users), ``None`` for a fold-in model."""
    return np.arange(n) if model_class(name).user_scoring == "known_users" else None


def data():
    """Training matrix and validation (fold-in, target) over the same ``N_ITEMS`` items."""
    return random_binary(150, N_ITEMS, 0.15, seed=0), random_binary(40, N_ITEMS, 0.15, seed=1), random_binary(40, N_ITEMS, 0.1, seed=2)


def recording(validate):
    """``validate`` wrapped so that every value it returns is kept (in ``.calls``)."""

    def record(model):
        metrics = validate(model)
        record.calls.append(dict(metrics))
        return metrics

    record.calls = []
    return record


def scripted(scores):
    """A validator returning ``scores`` in turn (the same value for every metric)."""
    it = iter(scores)
    return lambda model: dict.fromkeys(("recall@20", "recall@50", "ndcg@100"), next(it))


def expected_best_epoch(model: Recommender, rows: list[dict]) -> int:
    """The epoch the model's rule selects: the first row, then a row improving on the best by more
    than ``tol`` (linear models) or strictly (models without ``tol``)."""
    tol = model.get_params().get("tol", 0.0)
    best_epoch, best_value = None, None
    for row in rows:
        value = row["val_ndcg@100"]
        if best_value is None or value > best_value + tol:
            best_epoch, best_value = row["epoch"], value
    return best_epoch


@functools.cache
def fitted(name: str):
    """``(model, recorded validation results)`` of the model fitted with tiny settings and validation."""
    X, fold_in, target = data()
    validate = recording(holdout_validator(fold_in, target, user_ids=users_of(name, fold_in.shape[0])))
    model = build_model(name, small(name))
    assert model.fit(X, validate) is model
    return model, validate.calls


MODEL_NAMES = sorted(MODELS)


# ------------------------------------------------------------------ class and parameters


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_estimator_is_a_recommender_with_a_known_user_scoring(name):
    cls = model_class(name)
    assert inspect.isclass(cls) and issubclass(cls, Recommender)
    assert cls.user_scoring in ("fold_in", "known_users") and cls.user_scoring in USER_SCORING


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_params_are_the_constructor_defaults(name):
    cls = model_class(name)
    defaults = cls.default_params()
    assert set(defaults) == set(cls.parameter_names())
    # the constructor's explicit keyword defaults (all of them for scikit-learn style classes)
    signature = inspect.signature(cls.__init__)
    explicit = {
        key: parameter.default
        for key, parameter in signature.parameters.items()
        if key != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    }
    assert all(parameter is not inspect.Parameter.empty for parameter in explicit.values()), "every hyper-parameter has a default"
    assert {key: defaults[key] for key in explicit} == explicit
    # a default instance, and one built from the defaults spelled out, hold exactly the defaults
    assert cls().get_params() == defaults
    assert cls(**defaults).get_params() == defaults
    assert default_params(name) == defaults == build_model(name).get_params()
    # a fresh copy every time: changing one changes no other
    for value in defaults.values():
        if isinstance(value, dict):
            value["changed"] = True
    assert cls.default_params() == cls().get_params()
    assert all("changed" not in value for value in cls.default_params().values() if isinstance(value, dict))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_set_params_round_trips_and_rejects_unknown_names(name):
    cls = model_class(name)
    settings = small(name)
    model = cls()
    assert model.set_params(**settings) is model
    params = model.get_params()
    assert {key: params[key] for key in settings} == settings
    assert {key: value for key, value in params.items() if key not in settings} == {
        key: value for key, value in cls.default_params().items() if key not in settings
    }
    other = cls().set_params(**params)
    assert other.get_params() == params
    assert cls(**params).get_params() == params
    with pytest.raises(ConfigError, match=r"unknown parameters \['nonexistent'\]"):
        model.set_params(nonexistent=1)
    with pytest.raises(ConfigError, match="nonexistent"):
        model.set_params(**dict(list(settings.items())[:1]), nonexistent=1)  # a known name (if any) with an unknown one
    assert model.get_params() == params  # a rejected call changes nothing


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_build_rejects_unknown_parameters(name):
    with pytest.raises(ConfigError, match="nonexistent"):
        build_model(name, {"nonexistent": 1})
    with pytest.raises(ConfigError, match="nonexistent"):
        build_model(name, {**small(name), "nonexistent": 1})


# ------------------------------------------------------------------ fit with validation


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_records_one_history_row_per_validation_with_its_values(name):
    model, calls = fitted(name)
    rows = model.history_
    assert isinstance(rows, list) and len(rows) == len(calls) >= 1
    epochs = [row["epoch"] for row in rows]
    assert all(isinstance(epoch, int) for epoch in epochs) and epochs == sorted(set(epochs))
    for row, metrics in zip(rows, calls):
        assert REQUIRED_COLUMNS <= set(row), row
        assert set(row) == {"epoch", "wall_seconds", "train_loss"} | {f"val_{metric}" for metric in metrics}
        for metric, value in metrics.items():
            assert row[f"val_{metric}"] == value, (metric, row)
        assert row["wall_seconds"] >= 0 and not math.isinf(row["train_loss"])
    assert [row["wall_seconds"] for row in rows] == sorted(row["wall_seconds"] for row in rows)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_best_epoch_follows_the_model_rule_and_its_state_is_kept(name):
    model, calls = fitted(name)
    assert model.best_epoch_ == expected_best_epoch(model, model.history_)
    best = next(row for row in model.history_ if row["epoch"] == model.best_epoch_)
    _, fold_in, target = data()
    again = holdout_validator(fold_in, target, user_ids=users_of(name, fold_in.shape[0]))(model)  # scores as at its best epoch
    for metric, value in again.items():
        assert value == pytest.approx(best[f"val_{metric}"], rel=1e-6, abs=1e-9), metric


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_best_epoch_under_scripted_scores(name):
    """0.3 then 0.3 + 5e-5: a gain below the linear models' ``tol`` (1e-4) but a strict improvement."""
    X, _, _ = data()
    model = build_model(name, small(name))
    model.fit(X, scripted([0.1, 0.3, 0.3 + 5e-5, 0.2, 0.2, 0.2]))
    values = [row["val_ndcg@100"] for row in model.history_]
    assert values == [0.1, 0.3, 0.3 + 5e-5][: len(values)]
    assert model.best_epoch_ == expected_best_epoch(model, model.history_)
    if "tol" in model.get_params():
        assert model.best_epoch_ == 1
    elif len(values) == 3:
        assert model.best_epoch_ == 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_an_unknown_monitor_is_a_config_error(name):
    X, fold_in, target = data()
    model = build_model(name, small(name))
    with pytest.raises(ConfigError, match="monitor 'ndcg@10'"):
        model.fit(X, holdout_validator(fold_in, target, user_ids=users_of(name, fold_in.shape[0])), monitor="ndcg@10")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_without_validation_keeps_the_last_epoch(name):
    X, _, _ = data()
    model = build_model(name, small(name))
    assert model.fit(X) is model
    assert isinstance(model.best_epoch_, int)
    assert not any(key.startswith("val_") for row in model.history_ for key in row)
    if model.history_:
        assert model.best_epoch_ == model.history_[-1]["epoch"]
    assert np.isfinite(model.score_batch(X[:5], users_of(name, 5))).all()


# ------------------------------------------------------------------ scoring


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_score_batch_returns_float32_scores_of_every_item(name):
    model, _ = fitted(name)
    _, fold_in, _ = data()
    rows = fold_in[:7]
    scores = model.score_batch(rows, users_of(name, 7))
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (7, N_ITEMS)
    assert np.isfinite(scores).all()
    if users_of(name, 7) is None:  # fold-in models ignore users
        np.testing.assert_array_equal(scores, model.score_batch(rows, users=np.arange(7)))
    else:  # known-users models need them, and score by them, not by the rows
        with pytest.raises(DataFormatError, match="users"):
            model.score_batch(rows)
        np.testing.assert_array_equal(scores[::-1], model.score_batch(rows, users=np.arange(7)[::-1]))
        np.testing.assert_array_equal(scores, model.score_batch(fold_in[10:17], users=np.arange(7)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_scoring_before_fit_or_over_other_items_is_refused_clearly(name):
    _, fold_in, target = data()
    with pytest.raises(IslimError, match="not fitted"):
        build_model(name, small(name)).score_batch(fold_in[:3])
    model, _ = fitted(name)
    other_items = random_binary(5, N_ITEMS + 1, 0.2, seed=4)
    with pytest.raises(DataFormatError, match=f"over {N_ITEMS} items, got {N_ITEMS + 1} columns"):
        model.score_batch(other_items)
    X, _, _ = data()
    validate = holdout_validator(other_items, random_binary(5, N_ITEMS + 1, 0.2, seed=5))
    with pytest.raises(DataFormatError, match=f"over {N_ITEMS} items, got {N_ITEMS + 1} columns"):
        build_model(name, small(name)).fit(X, validate)


class KnownUserPopularity(Recommender):
    """A toy ``known_users`` model: each training user's own interactions plus item popularity,
    so its scores depend on *which* training user is asked, not on the rows it is given."""

    user_scoring = "known_users"

    def __init__(self, weight: float = 1000.0):
        self._store_params(locals())

    def fit(self, X, validate=None, *, monitor="ndcg@100", checkpoint=None, progress=False):
        self.train_ = sp.csr_matrix(X, dtype=np.float32)
        self.popularity_ = np.asarray(self.train_.sum(axis=0)).ravel()
        history = EpochHistory(validate, monitor)
        if validate is not None:
            history.record(self, 0)
        self.history_, self.best_epoch_ = history.rows, 0
        return self

    def score_batch(self, rows, users=None):
        if users is None:
            raise ValueError("a known-users model needs the users' training rows")
        return (self.weight * self.train_[users].toarray() + self.popularity_).astype(np.float32)


def test_a_known_users_model_is_scored_by_training_row_through_the_validator():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 80)) < 0.15).astype(np.float32))
    users = np.array([3, 7, 11, 20])
    # Each evaluated user's target is its own training items, which only a model that receives the
    # right training rows ranks on top; the fold-in rows are empty (nothing to exclude).
    target = X[users]
    fold_in = sp.csr_matrix(target.shape, dtype=np.float32)
    model = KnownUserPopularity().fit(X, holdout_validator(fold_in, target, user_ids=users))
    assert model.history_[0]["val_ndcg@100"] == pytest.approx(1.0)
    shuffled = holdout_validator(fold_in, target, user_ids=users[::-1])(model)
    assert shuffled["ndcg@100"] < 0.9
    with pytest.raises(ValueError, match="training rows"):
        holdout_validator(fold_in, target)(model)
