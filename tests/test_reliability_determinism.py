"""Determinism: two clean runs of the tiny pipeline — fetch (synthetic), split, EASE, MF and Mult-VAE
with and without ImplicitSLIM, one ablation cell and one reference arm — in separate processes
with different hash seeds give identical split files and identical run records and curves apart
from the fields named in :data:`islim.records.TIMING_FIELDS`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from islim.data.split import PARTS
from islim.records import TIMING_FIELDS, read_records, without_timing

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    from islim import pipeline
    from islim.ablations import ablation_cell, reference_cell
    from islim.config import validate_config
    from islim.data.split import load_split
    from islim.fileio import write_csv
    from islim.records import write_record, write_records
    from islim.training import train_run
    from tests.workflow_helpers import TINY_TRAINING

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    dataset = {"kind": "synthetic", "n_users": 300, "n_items": 80, "n_interactions": 6000, "heldout_users": 30, "seed": 7}
    entry = validate_config({"run_datasets": ["tiny"], "datasets": {"tiny": dataset}})["datasets"]["tiny"]
    pipeline.fetch("tiny", entry, out / "raw", progress=False)
    pipeline.prepare("tiny", entry, out / "raw" / "manifest.json", out / "processed")
    record, _ = pipeline.ease_sweep("tiny", out / "processed", [50.0, 200.0])
    write_record(out / "runs" / "ease.json", record)
    split = load_split(out / "processed")
    for model in ("mf", "multvae"):
        settings = TINY_TRAINING["models"][model]
        for variant, variant_settings in settings["variants"].items():
            record, curve = train_run("tiny", split, model, variant, settings["params"], variant_settings, settings.get("grid", {}),
                                      progress=False, checkpoint_dir=out / "checkpoints")
            write_record(out / "runs" / f"{model}-{variant}.json", record)
            write_csv(out / "curves" / f"{model}-{variant}.csv", curve)
    scorers = {"mf": {"r_p": [10.0]}, "plrec": {"power": [1.0], "r_q": [10.0]}}
    arm = {"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"}
    write_records(out / "ablations" / "cell.json", ablation_cell("tiny", split, arm, 8, {"first_step": {"ease": {"lam": [50.0, 200.0]}}}, scorers).records)
    write_records(out / "ablations" / "svd.json", reference_cell("tiny", split, "svd", 8, scorers).records)
    """
)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Run the script twice, concurrently, with hash seeds 1 and 2."""
    base = tmp_path_factory.mktemp("determinism")
    script = base / "pipeline_tiny.py"
    script.write_text(SCRIPT, encoding="utf-8")
    runs = []
    for hash_seed in ("1", "2"):
        out = base / f"run{hash_seed}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHONHASHSEED": hash_seed,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        runs.append((out, subprocess.Popen([sys.executable, str(script), str(out)], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)))
    for _, process in runs:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    return runs[0][0], runs[1][0]


def files(directory: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in directory.glob(pattern))


def test_raw_file_and_manifest_are_identical_but_for_the_location(two_runs):
    first, second = (run / "raw" for run in two_runs)
    assert (first / "interactions.parquet").read_bytes() == (second / "interactions.parquet").read_bytes()
    manifests = [json.loads((directory / "manifest.json").read_text()) for directory in (first, second)]
    assert manifests[0].pop("file") != manifests[1].pop("file")
    assert manifests[0] == manifests[1]


def test_split_files_are_identical(two_runs):
    first, second = (run / "processed" for run in two_runs)
    assert files(first, "*") == files(second, "*") == sorted([f"{part}.npz" for part in PARTS] + ["users.csv", "items.csv", "stats.json"])
    for name in ("users.csv", "items.csv", "stats.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    for part in PARTS:  # the .npz zip headers carry the write time: compare the stored arrays
        with np.load(first / f"{part}.npz") as a, np.load(second / f"{part}.npz") as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{part}.npz:{key}")


def test_run_records_are_identical_apart_from_timing_fields(two_runs):
    first, second = two_runs
    names = files(first / "runs", "*.json") + [f"../ablations/{n}" for n in files(first / "ablations", "*.json")]
    assert len(names) == 7 and names == files(second / "runs", "*.json") + [
        f"../ablations/{n}" for n in files(second / "ablations", "*.json")
    ]
    for name in names:
        a, b = (read_records(run / "runs" / name) for run in two_runs)
        assert [without_timing(r) for r in a] == [without_timing(r) for r in b], name
        assert all("wall_seconds" in r and "peak_memory_mb" in r for r in a + b)  # measured, then ignored


def test_training_curves_are_identical_apart_from_wall_time(two_runs):
    first, second = (run / "curves" for run in two_runs)
    assert files(first, "*.csv") == files(second, "*.csv") and len(files(first, "*.csv")) == 4
    for name in files(first, "*.csv"):
        a, b = (pd.read_csv(directory / name) for directory in (first, second))
        pd.testing.assert_frame_equal(
            a.drop(columns=list(set(TIMING_FIELDS) & set(a))), b.drop(columns=list(set(TIMING_FIELDS) & set(b))), check_exact=True
        )
    assert [list((run / "checkpoints").glob("*")) for run in two_runs] == [[], []]  # removed after success


def test_without_timing_drops_exactly_the_timing_fields_at_every_depth():
    record = {
        "model": "x",
        "wall_seconds": 1.5,
        "peak_memory_mb": 3.0,
        "metrics": {"test": {"ndcg@100": 0.5}},
        "extra": {"extraction_seconds": 0.1, "extraction_peak_mb": 2.0, "searched": [{"wall_seconds": 9, "lam": 1}]},
    }
    assert without_timing(record) == {"model": "x", "metrics": {"test": {"ndcg@100": 0.5}}, "extra": {"searched": [{"lam": 1}]}}
    assert set(TIMING_FIELDS) == {"wall_seconds", "peak_memory_mb", "extraction_seconds", "extraction_peak_mb"}
