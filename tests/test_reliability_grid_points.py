"""One failing grid point no longer aborts a search (issue 13, item 8).

A point whose fit or evaluation fails numerically or over the memory budget
(:data:`islim.errors.GRID_POINT_ERRORS`) is logged, recorded with its reason — in the EASE sweep
table (``status``/``reason``) and in the run records' ``extra.failed`` — and skipped; the search
fails, with a :class:`~islim.errors.GridSearchError` naming every point and its reason, only when
every point fails. Other errors (programming errors, bad settings) still stop it.

The failures are real where that is cheap: the training matrix has two items bought by the same
single user, so ``XᵀX`` is exactly singular on them and a λ that vanishes against 1 in the
working precision (1e-8 in float32, 1e-20 in float64) makes the Cholesky factorisation fail at
its second pivot. Failures of trained models are injected (NaN factors), as in
``test_reliability_numerics.py``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import islim.ablations
import islim.models.linear as linear
import islim.training
from islim.ablations import ablation_cell
from islim.data.split import make_split, save_split
from islim.data.synthetic import generate
from islim.errors import GridSearchError, MemoryBudgetError
from islim.pipeline import ease_point, ease_sweep, select_ease
from islim.training import read_point, train_point, train_run, write_point

CHOLESKY = "Cholesky factorisation failed (LAPACK info=2): the matrix is not positive definite; increase lambda"
EASE_CHOLESKY = f"ease: {CHOLESKY}"  # a model's numerical failure is named after the model
ADVICE = "Change or drop these settings (each reason says what went wrong) and run again"
PLREC = {"n_factors": 4, "n_epochs": 2, "init": "svd", "r_q": 1.0, "patience": 5}
EXPLICIT_ARM = {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}


@pytest.fixture(scope="module")
def split():
    """A small split whose training Gram matrix is singular: items 0 and 1 have the same single user."""
    X = generate(150, 40, 2000, seed=5).tocoo()
    split = make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=15, seed=3)
    train = split.train.tolil()
    train[:, :2] = 0
    train[0, :2] = 1
    split.train = train.tocsr()
    return split


@pytest.fixture(scope="module")
def split_dir(split, tmp_path_factory):
    directory = tmp_path_factory.mktemp("split")
    save_split(split, directory)
    return directory


# ------------------------------------------------------------------ EASE λ sweep


def test_a_lambda_whose_cholesky_fails_is_recorded_and_the_sweep_goes_on(split_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="islim.training"):
        record, sweep = ease_sweep("toy", split_dir, [100.0, 1e-8, 300.0])
    assert record["params"]["lambda"] in (100.0, 300.0)
    assert record["extra"]["failed"] == [{"lambda": 1e-8, "reason": EASE_CHOLESKY}]
    assert [entry["lambda"] for entry in record["extra"]["searched"]] == [100.0, 300.0]
    assert f"ease {{'lambda': 1e-08}} failed and is skipped: {EASE_CHOLESKY}" in caplog.text
    failed = sweep[sweep["status"] == "failed"]
    assert failed["lambda"].tolist() == [1e-8] and failed["reason"].tolist() == [EASE_CHOLESKY]
    assert failed["split"].isna().all() and failed["ndcg@100"].isna().all()
    ok = sweep[sweep["status"] == "ok"]
    assert sorted(zip(ok["lambda"], ok["split"])) == [(100.0, "test"), (100.0, "validation"), (300.0, "test"), (300.0, "validation")]
    assert ok["ndcg@100"].notna().all() and (ok["reason"].fillna("") == "").all()


def test_a_sweep_fails_only_when_every_lambda_fails_naming_each(split_dir):
    with pytest.raises(GridSearchError) as caught:
        ease_sweep("toy", split_dir, [1e-8, 1e-9])
    assert (
        str(caught.value)
        == f"EASE on toy: every grid point failed:\n  lambda=1e-08: {EASE_CHOLESKY}\n  lambda=1e-09: {EASE_CHOLESKY}\n{ADVICE}"
    )


def test_a_lambda_job_that_fails_writes_a_failed_record_and_the_selection_skips_it(split, tmp_path):
    """The workflow's ease_point job: a failing lambda is written as a failed point, not raised."""
    results = []
    for index, lam in enumerate([1e-8, 200.0]):
        paths = (tmp_path / f"p{index}.json", None, tmp_path / f"p{index}.per_user.parquet")
        write_point(ease_point("toy", split, lam), *paths)
        results.append(read_point(*paths))
    assert [result.ok for result in results] == [False, True]
    assert results[0].record["extra"]["reason"] == EASE_CHOLESKY and results[0].record["metrics"] == {}
    record, sweep, per_user = select_ease("toy", [1e-8, 200.0], results)
    assert record["params"] == {"lambda": 200.0, "dtype": "float32"} and record["extra"]["failed"] == [
        {"lambda": 1e-8, "reason": EASE_CHOLESKY}
    ]
    assert record["flags"] == ["grid_edge:lambda"]  # 200 is the largest lambda of the grid
    assert per_user.groupby("split")["ndcg@100"].mean().to_dict() == pytest.approx(
        {split: record["metrics"][split]["ndcg@100"] for split in ("validation", "test")}
    )


# ------------------------------------------------------------------ training runs


def nan_factors_for(monkeypatch, bad_r_q: set[float]):
    """Make PLRec's item step return NaN factors when its ridge strength is in ``bad_r_q``."""
    original = linear.solve_item_step

    def solve(stats, r_q, *args, **kwargs):
        factors = original(stats, r_q, *args, **kwargs)
        return factors * np.nan if r_q in bad_r_q else factors

    monkeypatch.setattr(linear, "solve_item_step", solve)


def test_a_training_grid_point_that_fails_is_recorded_and_the_search_goes_on(split, monkeypatch, caplog):
    nan_factors_for(monkeypatch, {2.0})
    with caplog.at_level(logging.WARNING, logger="islim.training"):
        record, curve = train_run("toy", split, "plrec", "baseline", PLREC, {}, {"r_q": [1.0, 2.0, 4.0]}, progress=False)
    reason = "plrec: item factors after ALS epoch 0 is not finite (160 of 160 entries NaN or infinite)"
    (failed,) = record["extra"]["failed"]
    assert failed["r_q"] == 2.0 and failed["reason"].startswith(reason)
    assert [entry["r_q"] for entry in record["extra"]["searched"]] == [1.0, 4.0]
    assert record["params"]["r_q"] in (1.0, 4.0) and len(curve) >= 1
    assert f"plrec/baseline {{'r_q': 2.0}} failed and is skipped: {reason}" in caplog.text


def test_a_training_run_fails_only_when_every_point_fails_naming_each(split, monkeypatch):
    nan_factors_for(monkeypatch, {1.0, 2.0})
    with pytest.raises(GridSearchError) as caught:
        train_run("toy", split, "plrec", "baseline", PLREC, {}, {"r_q": [1.0, 2.0]}, progress=False)
    lines = str(caught.value).split("\n")
    assert lines[0] == "plrec/baseline on toy: every grid point failed:" and lines[-1] == ADVICE
    for line, r_q in zip(lines[1:3], (1.0, 2.0)):
        assert line.startswith(f"  r_q={r_q}: plrec: item factors after ALS epoch 0 is not finite (160 of 160 entries NaN or infinite)")


def test_a_point_over_the_memory_budget_fails_alone_but_programming_errors_stop_the_run(split, monkeypatch):
    original = islim.training.fit_model

    def fit(model, split, settings, *args):
        if settings["r_q"] == 2.0:
            raise MemoryBudgetError("plrec needs an estimated 9.00 GiB but the memory budget is 1.00 GiB")
        if settings["r_q"] == 3.0:
            raise TypeError("a bug")
        return original(model, split, settings, *args)

    monkeypatch.setattr(islim.training, "fit_model", fit)
    record, _ = train_run("toy", split, "plrec", "baseline", PLREC, {}, {"r_q": [1.0, 2.0]}, progress=False)
    assert record["extra"]["failed"] == [{"r_q": 2.0, "reason": "plrec needs an estimated 9.00 GiB but the memory budget is 1.00 GiB"}]
    with pytest.raises(TypeError, match="a bug"):
        train_run("toy", split, "plrec", "baseline", PLREC, {}, {"r_q": [1.0, 3.0]}, progress=False)


def test_a_training_point_job_that_fails_writes_a_failed_record(split, monkeypatch, tmp_path):
    """The workflow's train_point job: a failing point is written (record, empty curve and per-user
    table) as failed, so that the selection can skip it instead of the whole DAG stopping."""
    nan_factors_for(monkeypatch, {2.0})
    settings = {**PLREC, "r_q": 2.0, "seed": 3}
    result = train_point("toy", split, "plrec", "baseline", settings, {"r_q": 2.0}, 3, progress=False)
    paths = [tmp_path / "p1.s3.json", tmp_path / "p1.s3.curve.csv", tmp_path / "p1.s3.per_user.parquet"]
    write_point(result, *paths)
    read = read_point(*paths)
    assert not read.ok and read.record["extra"]["reason"].startswith("plrec: item factors after ALS epoch 0 is not finite")
    assert read.record["extra"]["point"] == {"r_q": 2.0} and read.record["extra"]["seed"] == 3 and read.record["metrics"] == {}
    assert read.curve.empty and read.per_user.empty


# ------------------------------------------------------------------ ablation cells


def test_an_arm_grid_point_whose_cholesky_fails_is_recorded_and_the_cell_goes_on(split, caplog):
    with caplog.at_level(logging.WARNING, logger="islim.ablations"):
        (record,) = ablation_cell(
            "toy", split, EXPLICIT_ARM, 4, {"first_step": {"ease": {"lam": [1e-20, 100.0]}}}, {"mf": {"r_p": [1.0]}}
        ).records
    assert record["extra"]["status"] == "ok" and record["params"] == {"lam": 100.0, "r_p": 1.0, "d": 4}
    assert record["extra"]["failed"] == [{"lam": 1e-20, "reason": CHOLESKY}]
    assert f"ablation:all/ease/explicit {{'lam': 1e-20}} failed and is skipped: {CHOLESKY}" in caplog.text


def test_scorer_grid_points_fail_alone_and_a_scorer_none_of_whose_points_ran_is_skipped(split, monkeypatch):
    original = islim.ablations.scorer_functions

    def scorer(name, E, train, params):
        score = original(name, E, train, params)
        bad = name == "plrec" or params.get("r_p") == 2.0
        return (lambda batch: score(batch) * np.nan) if bad else score

    monkeypatch.setattr(islim.ablations, "scorer_functions", scorer)
    scorers = {"mf": {"r_p": [1.0, 2.0]}, "plrec": {"power": [0.5], "r_q": [1.0, 5.0]}}
    mf, plrec = ablation_cell("toy", split, EXPLICIT_ARM, 4, {"first_step": {"ease": {"lam": [100.0]}}}, scorers).records
    assert mf["extra"]["status"] == "ok" and mf["params"]["r_p"] == 1.0
    ((failed),) = mf["extra"]["failed"]
    assert failed["lam"] == 100.0 and failed["r_p"] == 2.0 and " is not finite " in failed["reason"]
    assert plrec["extra"]["status"] == "skipped" and plrec["metrics"] == {}
    assert plrec["extra"]["reason"].startswith(
        "ablation:all/ease/explicit scored by plrec: every grid point failed:\n  lam=100.0, power=0.5, r_q=1.0: "
    )
    assert [entry["r_q"] for entry in plrec["extra"]["failed"]] == [1.0, 5.0]


def test_a_cell_whose_every_point_fails_is_skipped_naming_each(split):
    records = ablation_cell(
        "toy", split, EXPLICIT_ARM, 4, {"first_step": {"ease": {"lam": [1e-20, 1e-21]}}}, {"mf": {"r_p": [1.0]}}
    ).records
    (record,) = records
    assert record["extra"]["status"] == "skipped"
    expected = f"ablation:all/ease/explicit: every grid point failed:\n  lam=1e-20: {CHOLESKY}\n  lam=1e-21: {CHOLESKY}\n{ADVICE}"
    assert record["extra"]["reason"] == expected
