"""Interrupted training: a crash or a SIGKILL leaves no final output, and the per-epoch checkpoint
lets the next run finish with exactly the weights, curve and record of an uninterrupted run (CPU).

The reference is always a separate, uninterrupted run with the same arguments.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import islim.models.deep.checkpoint as checkpoint_module
from islim.config import point_name
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.evaluate import holdout_validator
from islim.models.deep.hooks import ImplicitSLIMHook
from islim.models.deep.trainer import EpochRunner
from islim.models.registry import build_model
from islim.records import read_record, without_timing
from islim.training import checkpoint_path, train_run

REPO = Path(__file__).resolve().parents[1]
N_EPOCHS = 4

#: Tiny settings per model; Mult-VAE and RecVAE use ImplicitSLIM (replace, regularize) so that the
#: hook's state is exercised too.
SETTINGS = {
    "multvae": {"hidden_dim": 16, "latent_dim": 4, "batch_size": 50, "implicit_slim": {"mode": "replace", "step": 2, "lam": 20.0}},
    "recvae": {
        "hidden_dim": 16,
        "latent_dim": 4,
        "batch_size": 50,
        "implicit_slim": {"mode": "regularize", "step": 3, "lam": 20.0, "reg_weight": 0.1},
    },
    "hvamp": {"hidden_dim": 16, "z1_dim": 4, "z2_dim": 4, "n_components": 5, "warmup_epochs": 3, "batch_size": 50},
}


class Crash(Exception):
    """The simulated interruption."""


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def split():
    X = generate(150, 40, 2000, seed=11).tocoo()
    return make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=15, seed=2)


@pytest.fixture(scope="module")
def multvae_reference(split):
    """An uninterrupted Mult-VAE run without a checkpoint, shared by the tests that compare to it."""
    return train(split, "multvae")


def train(split, model, checkpoint=None, **overrides):
    """The fitted estimator of ``model`` (validated on the split's validation users) and its curve."""
    params = {**SETTINGS[model], "n_epochs": N_EPOCHS, "device": "cpu", **overrides}
    estimator = build_model(model, params)
    estimator.fit(split.train, holdout_validator(split.validation_tr, split.validation_te), progress=False, checkpoint=checkpoint)
    return estimator, pd.DataFrame(estimator.history_)


def crash_at(monkeypatch, epoch: int) -> None:
    """Make the next fit raise at the start of ``epoch`` (after epoch - 1 was checkpointed)."""
    original = ImplicitSLIMHook.on_epoch_start

    def on_epoch_start(self, model, optimizers, current):
        if current == epoch:
            raise Crash(f"simulated crash at epoch {epoch}")
        return original(self, model, optimizers, current)

    monkeypatch.setattr(ImplicitSLIMHook, "on_epoch_start", on_epoch_start)


def assert_same_run(first, second) -> None:
    (model_a, curve_a), (model_b, curve_b) = first, second
    state_a, state_b = model_a.module_.state_dict(), model_b.module_.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    pd.testing.assert_frame_equal(curve_a.drop(columns="wall_seconds"), curve_b.drop(columns="wall_seconds"), check_exact=True)
    assert model_a.best_epoch_ == model_b.best_epoch_


# ------------------------------------------------------------------ crash inside the process, resume


@pytest.mark.parametrize("model", sorted(SETTINGS))
def test_resume_after_a_crash_equals_the_uninterrupted_run(split, tmp_path, monkeypatch, model):
    reference = train(split, model)
    path = tmp_path / f"{model}.ckpt.pt"
    with monkeypatch.context() as patch:
        crash_at(patch, 2)
        with pytest.raises(Crash):
            train(split, model, checkpoint=path)
    assert torch.load(path, weights_only=True)["progress"]["epoch"] == 1
    resumed = train(split, model, checkpoint=path)
    assert resumed[0].resumed_from_epoch_ == 1 and reference[0].resumed_from_epoch_ is None
    assert_same_run(reference, resumed)


def test_a_finished_checkpoint_returns_the_result_without_training(split, tmp_path, monkeypatch, multvae_reference):
    path = tmp_path / "run.ckpt.pt"
    assert_same_run(multvae_reference, train(split, "multvae", checkpoint=path))
    monkeypatch.setattr(EpochRunner, "run", lambda *args: pytest.fail("trained again"))
    again = train(split, "multvae", checkpoint=path)
    assert again[0].resumed_from_epoch_ == N_EPOCHS - 1
    assert_same_run(multvae_reference, again)


def test_early_stopping_state_survives_the_resume(split, tmp_path, monkeypatch):
    reference = train(split, "multvae", patience=1, n_epochs=10)
    stop = len(reference[1])
    assert 2 <= stop < 10, "the reference should stop early"
    path = tmp_path / "run.ckpt.pt"
    with monkeypatch.context() as patch:
        crash_at(patch, stop - 1)
        with pytest.raises(Crash):
            train(split, "multvae", checkpoint=path, patience=1, n_epochs=10)
    assert_same_run(reference, train(split, "multvae", checkpoint=path, patience=1, n_epochs=10))


# ------------------------------------------------------------------ checkpoints that do not fit


@pytest.mark.parametrize("change", ["settings", "code"])
def test_a_checkpoint_of_other_settings_or_code_is_ignored_with_a_message(split, tmp_path, monkeypatch, caplog, multvae_reference, change):
    path = tmp_path / "run.ckpt.pt"
    with monkeypatch.context() as patch:
        crash_at(patch, 2)
        if change == "code":
            patch.setattr(checkpoint_module, "code_digest", lambda: "an older islim")
        with pytest.raises(Crash):
            train(split, "multvae", checkpoint=path, **({"lr": 3e-3} if change == "settings" else {}))
    with caplog.at_level(logging.WARNING, logger="islim.models.deep.checkpoint"):
        resumed = train(split, "multvae", checkpoint=path)
    assert f"ignoring checkpoint {path}" in caplog.text and "other settings, data or islim code" in caplog.text
    assert resumed[0].resumed_from_epoch_ is None
    assert_same_run(multvae_reference, resumed)


def test_an_unreadable_checkpoint_is_ignored_with_a_message(split, tmp_path, caplog, multvae_reference):
    path = tmp_path / "run.ckpt.pt"
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="islim.models.deep.checkpoint"):
        resumed = train(split, "multvae", checkpoint=path)
    assert "cannot be read" in caplog.text and resumed[0].resumed_from_epoch_ is None
    assert_same_run(multvae_reference, resumed)
    assert torch.load(path, weights_only=True)["progress"]["finished"] is True  # replaced by a good one


def test_a_crash_while_saving_keeps_the_previous_checkpoint(split, tmp_path, monkeypatch, multvae_reference):
    path = tmp_path / "run.ckpt.pt"
    original = torch.save
    calls = []

    def save_then_die(obj, target):
        calls.append(target)
        if len(calls) == 3:  # the third epoch's checkpoint: half written, then the process "dies"
            Path(target).write_bytes(b"\x80partial")
            raise Crash("killed while saving")
        original(obj, target)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_then_die)
    with pytest.raises(Crash):
        train(split, "multvae", checkpoint=path)
    monkeypatch.setattr(checkpoint_module.torch, "save", original)
    assert torch.load(path, weights_only=True)["progress"]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    assert_same_run(multvae_reference, train(split, "multvae", checkpoint=path))


# ------------------------------------------------------------------ train_run: grid points and clean-up


def test_train_run_resumes_each_grid_point_and_removes_its_checkpoints(split, tmp_path, monkeypatch):
    params = {**SETTINGS["multvae"], "n_epochs": 3, "device": "cpu"}
    grid = {"lr": [1e-3, 3e-3]}
    reference, reference_curve = train_run("toy", split, "multvae", "baseline", params, {}, grid, progress=False)
    directory = tmp_path / "checkpoints"
    runs = []
    original = EpochRunner.run

    def run_then_crash(self, state, rng):  # crash in the second point's second epoch
        runs.append(state.epoch)
        if len(runs) == 5:
            raise Crash("simulated crash in grid point 2")
        return original(self, state, rng)

    with monkeypatch.context() as patch:
        patch.setattr(EpochRunner, "run", run_then_crash)
        with pytest.raises(Crash):
            train_run("toy", split, "multvae", "baseline", params, {}, grid, progress=False, checkpoint_dir=directory)
    first, second = (checkpoint_path(directory, "multvae", "baseline", point_name(index)) for index in range(2))
    assert torch.load(first, weights_only=True)["progress"]["finished"] and torch.load(second, weights_only=True)["progress"]["epoch"] == 0
    record, curve = train_run("toy", split, "multvae", "baseline", params, {}, grid, progress=False, checkpoint_dir=directory)
    assert without_timing(record) == without_timing(reference)
    pd.testing.assert_frame_equal(curve.drop(columns="wall_seconds"), reference_curve.drop(columns="wall_seconds"), check_exact=True)
    assert list(directory.iterdir()) == []


# ------------------------------------------------------------------ a real process killed with SIGKILL

SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    from pathlib import Path

    import pandas as pd
    import torch

    from islim.data.split import make_split
    from islim.data.synthetic import generate
    from islim.fileio import write_csv
    from islim.models.deep import trainer
    from islim.records import write_record
    from islim.training import train_run

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    torch.set_num_threads(1)
    out, delay = Path(sys.argv[1]), float(sys.argv[2])
    if delay:  # a slow machine: every epoch takes at least `delay` seconds
        run = trainer.EpochRunner.run
        trainer.EpochRunner.run = lambda self, state, rng: (time.sleep(delay), run(self, state, rng))[1]
    X = generate(150, 40, 2000, seed=11).tocoo()
    split = make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=15, seed=2)
    params = {"hidden_dim": 16, "latent_dim": 4, "batch_size": 50, "n_epochs": 6, "device": "cpu",
              "implicit_slim": {"mode": "replace", "step": 2, "lam": 20.0}}
    record, curve = train_run("toy", split, "multvae", "implicit_slim", params, {}, {}, progress=False,
                              checkpoint_dir=out / "checkpoints")
    write_csv(out / "curve.csv", curve)
    write_record(out / "record.json", record)
    """
)


def start(script: Path, out: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(delay)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def test_sigkill_mid_run_leaves_no_output_and_the_rerun_finishes_identically(tmp_path):
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT, encoding="utf-8")
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    checkpoint = killed / "checkpoints" / "multvae-implicit_slim.p0.ckpt.pt"
    reference_run = start(script, reference, 0.0)
    victim = start(script, killed, 0.5)
    deadline = time.monotonic() + 90
    while not (checkpoint.exists() and torch.load(checkpoint, weights_only=True)["progress"]["epoch"] >= 1):
        assert victim.poll() is None, victim.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 90 s"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    saved = torch.load(checkpoint, weights_only=True)["progress"]
    assert not saved["finished"] and saved["epoch"] < 5
    assert not (killed / "record.json").exists() and not (killed / "curve.csv").exists()

    log = finish(start(script, killed, 0.0))
    assert f"resuming from {checkpoint} after epoch {saved['epoch']}" in log
    assert not checkpoint.exists()
    finish(reference_run)
    assert without_timing(read_record(killed / "record.json")) == without_timing(read_record(reference / "record.json"))
    curves = [pd.read_csv(directory / "curve.csv").drop(columns="wall_seconds") for directory in (killed, reference)]
    pd.testing.assert_frame_equal(*curves, check_exact=True)
    assert len(curves[0]) == 6
