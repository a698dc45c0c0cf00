"""The cost-scaling measurement (islim.scaling), its slopes and figure, and the opt-in workflow target."""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import time

import numpy as np
import pandas as pd
import pytest

from islim.config import load_config
from islim.errors import ConfigError
from islim.plotting.scaling import scaling_figure
from islim.scaling import SCALING_COLUMNS, check_settings, default_settings, measure_call, scaling_mem_mb, write_scaling
from islim.slopes import fitted_slopes, loglog_slope, write_slopes
from tests.workflow_helpers import REPO, snakemake

#: A measurement small enough for a unit test (a second or two).
TINY = {"items": [60, 120], "explicit_max_items": 60, "d": 4, "users_per_item": 3, "interactions_per_item": 20}


@pytest.fixture
def fixed_cost_table() -> pd.DataFrame:
    """EASE: 1 s of fixed cost plus I³ work; ImplicitSLIM (d = 8): exactly linear. Memory: 50 MB + I²/10⁴ MB, and linear."""
    items = np.array([1000, 2000, 4000, 8000])
    ease = pd.DataFrame({"method": "EASE", "n_items": items, "d": np.nan, "seconds": 1.0 + 1e-9 * items**3, "peak_mb": 50 + items**2 / 1e4})
    implicit = pd.DataFrame({"method": "ImplicitSLIM", "n_items": items, "d": 8, "seconds": 1e-3 * items, "peak_mb": 0.01 * items})
    return pd.concat([ease, implicit], ignore_index=True)


def test_slopes_of_a_power_law_with_a_fixed_cost_against_their_closed_form(fixed_cost_table):
    slopes = fitted_slopes(fixed_cost_table).set_index("method")
    ease, implicit = slopes.loc["EASE"], slopes.loc["ImplicitSLIM"]
    seconds = 1.0 + 1e-9 * np.array([1000, 2000, 4000, 8000.0]) ** 3  # 2, 9, 65, 513
    # Least squares on log2(I) = 0, 1, 2, 3 (centred: -1.5, -0.5, 0.5, 1.5; sum of squares 5).
    by_hand = sum(c * math.log2(y) for c, y in zip((-1.5, -0.5, 0.5, 1.5), seconds)) / 5
    assert ease["time_slope"] == pytest.approx(by_hand)
    assert ease["time_slope_largest"] == pytest.approx(math.log2(513 / 65))
    assert by_hand < ease["time_slope_largest"] < 3  # the fixed cost pulls the fit below the asymptotic 3
    assert ease["memory_slope_largest"] == pytest.approx(math.log2((50 + 6400) / (50 + 1600)))
    assert implicit[["time_slope", "memory_slope", "time_slope_largest", "memory_slope_largest"]].tolist() == pytest.approx([1, 1, 1, 1])
    assert (implicit["d"], implicit["n_points"], implicit["n_items_min"], implicit["n_items_max"]) == (8, 4, 1000, 8000)
    assert np.isnan(ease["d"])
    assert np.isnan(loglog_slope([10, 10], [1, 2]))


def test_the_figure_legend_shows_the_slopes_of_the_table_and_the_asymptotic_references(fixed_cost_table):
    figure = scaling_figure(fixed_cost_table)
    slopes = fitted_slopes(fixed_cost_table)
    seconds, memory = figure.axes
    for ax, column, reference in ((seconds, "time_slope", "∝ I³"), (memory, "memory_slope", "∝ I²")):
        texts = [text.get_text() for text in ax.get_legend().get_texts()]
        assert texts[:2] == [f"EASE: slope {slopes[column][0]:.2f}", f"ImplicitSLIM (d=8): slope {slopes[column][1]:.2f}"]
        assert texts[2] == reference
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1
    # The I³ line passes through EASE's costliest point and falls by 8³ over the measured range.
    x, y = (np.asarray(v, dtype=float) for v in [line for line in seconds.get_lines() if line.get_linestyle() == "--"][0].get_data())
    assert x.tolist() == [1000, 8000] and y[1] == pytest.approx(513) and y[0] == pytest.approx(513 / 512)


def test_the_reference_lines_pass_through_ease_even_where_another_method_costs_more(fixed_cost_table):
    table = fixed_cost_table.copy()
    table.loc[table["method"] == "ImplicitSLIM", "peak_mb"] = 1e5  # a large fixed cost (e.g. a library's buffers)
    memory = scaling_figure(table).axes[1]
    (reference,) = [line for line in memory.get_lines() if line.get_linestyle() == "--"]
    x, y = (np.asarray(v, dtype=float) for v in reference.get_data())
    assert x.tolist() == [1000, 8000] and y[1] == pytest.approx(50 + 6400) and y[0] == pytest.approx((50 + 6400) / 64)


def test_write_slopes_reads_the_measurements_and_writes_the_table(tmp_path, fixed_cost_table):
    fixed_cost_table.to_csv(tmp_path / "scaling.csv", index=False)
    written = write_slopes(tmp_path / "scaling.csv", tmp_path / "slopes.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "slopes.csv"), written, check_dtype=False)
    pd.testing.assert_frame_equal(written, fitted_slopes(fixed_cost_table))


def allocate_and_touch(megabytes: int) -> int:
    block = np.ones(megabytes * 2**20, dtype=np.uint8)
    return int(block[::4096].sum())


def test_measure_call_reports_the_time_memory_and_result_of_the_child():
    outcome = measure_call(allocate_and_touch, 200, threads=1)
    assert outcome["result"] == 200 * 2**20 // 4096
    assert 195 <= outcome["extra_peak_mb"] <= 260 and outcome["peak_mb"] >= outcome["extra_peak_mb"]
    slept = measure_call(time.sleep, 0.3, threads=1)
    assert 0.29 <= slept["seconds"] < 3 and slept["result"] is None


def test_measure_call_names_a_child_that_died():
    with pytest.raises(RuntimeError, match="died with exit code 3"):
        measure_call(os._exit, 3, threads=1)


def test_settings_default_from_the_schema_and_bad_ones_are_refused():
    assert default_settings() == {
        "items": [1000, 2000, 4000, 8000],
        "explicit_max_items": 4000,
        "d": 64,
        "lam": 500,
        "users_per_item": 7,
        "interactions_per_item": 500,
    }
    assert check_settings({"items": [400, 100, 400]})["items"] == [100, 400]
    assert load_config(REPO / "config.yaml")["report"]["scaling"] == default_settings()
    with pytest.raises(ConfigError, match="two or more distinct item counts"):
        check_settings({"items": [500, 500]})
    with pytest.raises(ConfigError, match=r"unknown settings \['n_items'\]"):
        check_settings({"n_items": [100, 200]})
    with pytest.raises(ConfigError, match="lower interactions_per_item"):
        check_settings({"items": [10, 20], "users_per_item": 2, "interactions_per_item": 30})


def test_memory_request_is_the_larger_dense_method_plus_the_sparse_matrix():
    settings = {"items": [1000, 3000], "explicit_max_items": 2000, "interactions_per_item": 100}
    ease = 3 * 4 * 3000**2  # float32, three copies at the largest I: 108,000,000 B
    lle = 6 * 8 * 2000**2  # float64, six copies at explicit_max_items: 192,000,000 B
    sparse = 2 * 8 * 100 * 3000
    assert scaling_mem_mb(settings) == 600 + math.ceil((max(ease, lle) + sparse) / 2**20)
    assert scaling_mem_mb(settings, attempt=2) == 2 * scaling_mem_mb(settings)


def test_write_scaling_measures_every_method_and_records_the_machine(tmp_path):
    table = write_scaling(TINY, 1, tmp_path / "scaling.csv", tmp_path / "scaling.json")
    assert list(table.columns) == SCALING_COLUMNS
    assert list(zip(table["method"], table["n_items"])) == [
        ("EASE", 60),
        ("SLIM-LLE", 60),
        ("ImplicitSLIM", 60),
        ("EASE", 120),
        ("ImplicitSLIM", 120),
    ]  # SLIM-LLE only up to explicit_max_items
    assert (table["seconds"] > 0).all() and table["d"].isna().tolist() == [True, False, False, True, False]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "scaling.csv"), table, check_dtype=False)
    machine = json.loads((tmp_path / "scaling.json").read_text())
    assert machine["cpu"] and machine["logical_cores"] == os.cpu_count() and 1 <= machine["usable_cores"] <= os.cpu_count()
    assert machine["threads"] == 1 and machine["settings"] == check_settings(TINY)
    assert machine["blas"] and {"internal_api", "version", "num_threads"} <= set(machine["blas"][0])
    when = datetime.datetime.fromisoformat(machine["date"])
    assert when.tzinfo is not None and abs(datetime.datetime.now(datetime.UTC) - when).total_seconds() < 600


@pytest.mark.workflow
def test_the_measurement_is_an_opt_in_target(tmp_path):
    default = snakemake(tmp_path, "--dry-run", "--cores", "2")
    assert default.returncode == 0, default.stderr
    assert "scaling_measure" not in default.stdout and "reports/summary/scaling.png" not in default.stdout
    assert "the cost scaling figure is skipped: it measures this machine" in default.stdout + default.stderr
    opt_in = snakemake(tmp_path, "--dry-run", "--cores", "2", "scaling")
    assert opt_in.returncode == 0, opt_in.stderr
    planned = re.findall(r"^(?:local)?rule (\w+):$", opt_in.stdout, re.MULTILINE)
    assert sorted(planned) == ["figure", "scaling", "scaling_measure", "scaling_slopes"]  # nothing of the default run
    for path in (
        "results/summary/scaling.csv",
        "results/summary/scaling.json",
        "reports/summary/scaling.pdf",
        "reports/summary/scaling_slopes.csv",
    ):
        assert path in opt_in.stdout
    assert not (REPO / "benchmarks" / "results" / "scaling.csv").exists()  # no measurement of another machine is shipped
