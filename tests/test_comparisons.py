"""Paired comparisons: the user bootstrap against a direct loop and its coverage, the paired tests
against scipy called directly, Holm's adjustment against a hand-worked case, and the ``compare``
table on a constructed per-user frame."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from islim import comparisons
from islim.comparisons import (
    COMPARISON_COLUMNS,
    compare,
    compare_runs,
    comparison_pairs,
    holm_adjust,
    paired_bootstrap_ci,
    paired_test,
    read_per_user,
    run_of_file,
    split_run_name,
)
from islim.errors import ConfigError, DataFormatError

# --- the bootstrap ---------------------------------------------------------------------------------


def loop_bootstrap_ci(a, b, n_resamples, confidence, seed):
    """Reference: the same resampled users (one documented draw), one resample at a time."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    indices = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    means = []
    for row in indices:
        total = 0.0
        for i in row:
            total += a[i] - b[i]
        means.append(total / n)
    tail = (1 - confidence) / 2
    return float(np.mean(a - b)), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def test_bootstrap_of_three_users_matches_a_loop_over_the_same_resampled_users():
    a, b = [0.5, 0.25, 1.0], [0.25, 0.5, 0.0]  # differences 0.25, -0.25, 1.0
    delta, low, high = paired_bootstrap_ci(a, b, n_resamples=200, confidence=0.9, seed=7)
    ref_delta, ref_low, ref_high = loop_bootstrap_ci(a, b, 200, 0.9, 7)
    assert delta == 1.0 / 3.0 == ref_delta
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)
    # A resample mean of 3 users is a sum of 3 of {0.25, -0.25, 1.0} over 3: the ends lie in that
    # lattice's range and bracket the observed mean.
    assert -0.25 <= low <= delta <= high <= 1.0


def test_bootstrap_is_the_same_whatever_the_chunk_size(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.random(37), rng.random(37)
    expected = comparisons.bootstrap_means(a - b, 101, seed=5)
    for chunk in (1, 37 * 4, 37 * 7 + 3, 10**9):
        monkeypatch.setattr(comparisons, "BOOTSTRAP_CHUNK_ELEMENTS", chunk)
        np.testing.assert_array_equal(comparisons.bootstrap_means(a - b, 101, seed=5), expected)


def test_equal_differences_collapse_the_interval_to_that_value():
    b = np.array([0.0, 0.5, 0.25, 0.75, 1.0])
    assert paired_bootstrap_ci(b + 0.125, b, n_resamples=500) == (0.125, 0.125, 0.125)
    # Differences equal up to rounding (0.1 is not exact in binary).
    delta, low, high = paired_bootstrap_ci(b + 0.1, b, n_resamples=500)
    assert delta == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_bootstrap_is_deterministic_given_the_seed():
    rng = np.random.default_rng(11)
    a, b = rng.random(200), rng.random(200)
    first = paired_bootstrap_ci(a, b, n_resamples=1000, seed=42)
    assert paired_bootstrap_ci(a, b, n_resamples=1000, seed=42) == first
    assert paired_bootstrap_ci(a.copy(), b.copy(), n_resamples=1000, seed=42) == first
    other = paired_bootstrap_ci(a, b, n_resamples=1000, seed=43)
    assert other.delta == first.delta and (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_95_percent_interval_covers_the_true_difference_about_95_percent_of_the_time():
    true_difference, covered, repetitions = 0.3, 0, 200
    for rep in range(repetitions):
        rng = np.random.default_rng(1000 + rep)
        b = rng.normal(0.0, 1.0, size=100)
        a = b + rng.normal(true_difference, 1.0, size=100)
        _, low, high = paired_bootstrap_ci(a, b, n_resamples=400, confidence=0.95, seed=rep)
        covered += low <= true_difference <= high
    # Binomial(200, 0.95) has standard deviation 0.015; the percentile bootstrap slightly
    # under-covers at n = 100. Seeded, so the count is fixed (it is 192).
    assert 0.90 <= covered / repetitions <= 0.99


def test_wider_confidence_gives_a_wider_interval():
    rng = np.random.default_rng(2)
    a, b = rng.random(300), rng.random(300)
    _, low90, high90 = paired_bootstrap_ci(a, b, n_resamples=2000, confidence=0.90)
    _, low99, high99 = paired_bootstrap_ci(a, b, n_resamples=2000, confidence=0.99)
    assert low99 < low90 < high90 < high99


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "same users"),
        ([1.0], [2.0], "at least 2 users"),
        ([1.0, np.nan], [1.0, 2.0], "NaN or infinite"),
        ([1.0, 2.0], [1.0, np.inf], "NaN or infinite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
        (["x", "y"], [1.0, 2.0], "must be numbers"),
    ],
    ids=["length", "too-few", "nan", "inf", "2-d", "text"],
)
def test_invalid_scores_are_refused(a, b, message):
    with pytest.raises(DataFormatError, match=message):
        paired_bootstrap_ci(a, b)
    with pytest.raises(DataFormatError, match=message):
        paired_test(a, b)


@pytest.mark.parametrize(
    "settings",
    [{"n_resamples": 0}, {"n_resamples": 2.5}, {"confidence": 1.0}, {"confidence": 0}, {"seed": -1}, {"seed": None}],
    ids=["no-resamples", "fractional-resamples", "confidence-1", "confidence-0", "negative-seed", "no-seed"],
)
def test_invalid_bootstrap_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        paired_bootstrap_ci([1.0, 2.0, 3.0], [0.0, 1.0, 1.0], **settings)


# --- the paired tests ------------------------------------------------------------------------------


def scores_with_ties_and_zeros(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user scores like a ranking metric's: many zeros and ties, some equal pairs."""
    rng = np.random.default_rng(seed)
    b = np.round(rng.random(n), 1) * (rng.random(n) < 0.7)
    a = np.where(rng.random(n) < 0.3, b, np.round(b + rng.normal(0.05, 0.2, n), 1))
    return a, b


@pytest.mark.parametrize("n", [8, 40, 500])
@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_p_value_is_scipys(n, zero_method):
    a, b = scores_with_ties_and_zeros(n, seed=n)
    result = paired_test(a, b, zero_method=zero_method)
    expected = scipy.stats.wilcoxon(a, b, zero_method=zero_method, alternative="two-sided").pvalue
    assert result.method == "wilcoxon"
    assert result.p_value == pytest.approx(float(expected), rel=1e-12)


def test_wilcoxon_without_ties_uses_scipys_exact_distribution():
    a = np.arange(1.0, 11.0)
    b = a - np.array([0.5, -0.25, 1.5, 2.5, 3.5, -4.5, 5.5, 6.5, 7.5, 8.5])
    expected = scipy.stats.wilcoxon(a, b, method="exact").pvalue
    assert paired_test(a, b).p_value == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("n", [5, 300])
def test_t_p_value_is_scipys(n):
    rng = np.random.default_rng(n)
    b = rng.random(n)
    a = b + rng.normal(0.02, 0.1, n)
    result = paired_test(a, b, method="t")
    assert result.method == "t"
    assert result.p_value == pytest.approx(float(scipy.stats.ttest_rel(a, b).pvalue), rel=1e-12)


@pytest.mark.parametrize("method", ["wilcoxon", "t"])
def test_all_zero_differences_give_p_one_without_warnings(method):
    a = np.array([0.0, 0.5, 0.5, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_test(a, a.copy(), method=method) == (1.0, method)


def test_t_test_of_a_constant_nonzero_difference_gives_p_zero_without_warnings():
    b = np.array([0.0, 0.5, 0.25, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_test(b + 0.25, b, method="t") == (0.0, "t")


def test_unknown_test_settings_are_refused():
    with pytest.raises(ConfigError, match="unknown paired test"):
        paired_test([1.0, 2.0], [0.0, 1.0], method="sign")
    with pytest.raises(ConfigError, match="zero_method"):
        paired_test([1.0, 2.0], [0.0, 1.0], zero_method="drop")


# --- Holm ------------------------------------------------------------------------------------------


def test_holm_hand_worked_example():
    # Sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 → max so far 0.06.
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)


def test_holm_caps_at_one_and_keeps_single_and_empty_families():
    adjusted = holm_adjust([0.5, 0.6, 0.2])  # 0.2×3 = 0.6, then 0.5×2 and 0.6×1 capped at 1
    assert adjusted[0] == adjusted[1] == 1.0 and adjusted[2] == pytest.approx(0.6, rel=1e-12)
    np.testing.assert_array_equal(holm_adjust([0.03]), [0.03])
    assert holm_adjust([]).shape == (0,)


def test_holm_gives_ties_equal_values():
    np.testing.assert_allclose(holm_adjust([0.02, 0.01, 0.02]), [0.04, 0.03, 0.04], rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_holm_is_monotone_capped_and_matches_the_step_down_definition(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(12) ** 3
    adjusted = holm_adjust(p)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    # Step-down definition, written out: the i-th smallest gets max over j <= i of min(1, (m - j) p_(j)).
    m = len(p)
    for rank, index in enumerate(order):
        assert adjusted[index] == pytest.approx(max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1)), rel=1e-12)


@pytest.mark.parametrize(("p", "message"), [([0.1, np.nan], "NaN"), ([0.1, 1.5], r"\[0, 1\]"), ([[0.1]], "1-D")])
def test_holm_refuses_invalid_p_values(p, message):
    with pytest.raises(DataFormatError, match=message):
        holm_adjust(p)


# --- compare ---------------------------------------------------------------------------------------


def per_user_frame() -> pd.DataFrame:
    """Four runs on up to 30 users; ``mf|islim`` beats ``mf|baseline`` on every user."""
    rng = np.random.default_rng(0)
    users = np.arange(30)
    base = rng.random(30) * 0.5
    rows = {
        "mf|baseline": (users, base),
        "mf|islim": (users, base + 0.01 + rng.random(30) * 0.05),
        "ease": (users, base + rng.normal(0.0, 0.05, 30)),
        "mf|d=64|dot": (users[5:], base[5:] + rng.normal(0.0, 0.05, 25)),  # users 0-4 missing
    }
    return pd.concat(
        [pd.DataFrame({"run": run, "user": u, "ndcg@100": v, "recall@20": v / 2}) for run, (u, v) in rows.items()], ignore_index=True
    )


PAIRS = [("mf|islim", "mf|baseline"), ("ease", "mf|baseline"), ("mf|d=64|dot", "mf|baseline")]


def test_compare_table_columns_names_and_users():
    table = compare(per_user_frame(), PAIRS, "ndcg@100", n_resamples=2000)
    assert tuple(table.columns) == COMPARISON_COLUMNS
    assert list(table["model"]) == ["mf", "ease", "mf"]
    assert list(table["variant"]) == ["islim", "", "d=64|dot"]
    assert list(table["reference"]) == ["mf|baseline"] * 3
    assert set(table["metric"]) == {"ndcg@100"}
    assert list(table["n_users"]) == [30, 30, 25]
    assert table.attrs["test"] == "Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method=wilcox)"


def test_compare_a_run_better_for_every_user_is_significantly_better():
    frame = per_user_frame()
    table = compare(frame, PAIRS, "ndcg@100", n_resamples=2000)
    better = table.iloc[0]
    gain = frame.loc[frame["run"] == "mf|islim", "ndcg@100"].to_numpy() - frame.loc[frame["run"] == "mf|baseline", "ndcg@100"].to_numpy()
    assert better["delta"] == pytest.approx(gain.mean(), rel=1e-12) and better["delta"] > 0
    assert 0 < gain.min() <= better["ci_low"] <= better["delta"] <= better["ci_high"] <= gain.max()
    # Exact Wilcoxon, all 30 differences positive: p = 2 / 2^30.
    assert better["p_value"] == pytest.approx(2.0 / 2**30, rel=1e-9)
    assert better["p_value"] < 1e-6 and better["p_adjusted"] < 1e-6


def test_compare_matches_the_building_blocks_and_holm_over_the_family():
    frame = per_user_frame()
    table = compare(frame, PAIRS, "recall@20", n_resamples=500, seed=3, method="t")
    scores = frame.pivot(index="user", columns="run", values="recall@20")
    for row, (run, reference) in zip(table.itertuples(), PAIRS):
        both = scores[[run, reference]].dropna()
        ci = paired_bootstrap_ci(both[run], both[reference], n_resamples=500, seed=3)
        assert (row.delta, row.ci_low, row.ci_high) == pytest.approx(tuple(ci), rel=1e-12)
        assert row.p_value == pytest.approx(paired_test(both[run], both[reference], method="t").p_value, rel=1e-12)
    np.testing.assert_allclose(table["p_adjusted"], holm_adjust(table["p_value"]), rtol=1e-12)
    assert table.attrs["test"] == "paired t-test (scipy.stats.ttest_rel)"


def test_compare_is_deterministic_and_ignores_row_order():
    frame = per_user_frame()
    first = compare(frame, PAIRS, "ndcg@100", n_resamples=1000, seed=9)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    pd.testing.assert_frame_equal(compare(shuffled, PAIRS, "ndcg@100", n_resamples=1000, seed=9), first)
    pd.testing.assert_frame_equal(compare(frame, PAIRS, "ndcg@100", n_resamples=1000, seed=9), first)


def test_compare_with_no_pairs_is_an_empty_table():
    table = compare(per_user_frame(), [], "ndcg@100")
    assert tuple(table.columns) == COMPARISON_COLUMNS and len(table) == 0


def test_compare_refuses_bad_input():
    frame = per_user_frame()
    with pytest.raises(DataFormatError, match="lack the column"):
        compare(frame, PAIRS, "ndcg@10")
    with pytest.raises(DataFormatError, match="repeat 1"):
        compare(pd.concat([frame, frame.iloc[[0]]]), PAIRS, "ndcg@100")
    with pytest.raises(DataFormatError, match="'vae' has no per-user scores"):
        compare(frame, [("vae", "mf|baseline")], "ndcg@100")
    disjoint = pd.DataFrame({"run": ["x", "y", "y"], "user": [1, 1, 2], "m": [0.1, 0.2, 0.3]})
    with pytest.raises(DataFormatError, match="share 1 user"):
        compare(disjoint, [("x", "y")], "m")
    with_nan = frame.copy()
    with_nan.loc[3, "ndcg@100"] = np.nan
    with pytest.raises(DataFormatError, match="NaN or infinite"):
        compare(with_nan, PAIRS, "ndcg@100")
    with pytest.raises(ConfigError, match="unknown paired test"):
        compare(frame, [], "ndcg@100", method="mannwhitney")


@pytest.mark.parametrize(
    ("run", "expected"), [("mf|islim", ("mf", "islim")), ("ease", ("ease", "")), ("mf|d=64|dot", ("mf", "d=64|dot")), ("x|", ("x", ""))]
)
def test_split_run_name(run, expected):
    assert split_run_name(run) == expected


# --- the comparisons of a dataset --------------------------------------------------------------------


def test_comparison_pairs_variants_vs_baseline_then_ease_then_popularity():
    runs = ["ease", "mf|baseline", "mf|implicit_slim", "mf|other", "popularity|baseline", "itemknn|baseline", "vae|implicit_slim"]
    assert comparison_pairs(runs) == [
        ("mf|implicit_slim", "mf|baseline"),
        ("mf|other", "mf|baseline"),
        # vae has no baseline run: no variant comparison
        ("mf|baseline", "ease"),
        ("mf|implicit_slim", "ease"),
        ("mf|other", "ease"),
        ("itemknn|baseline", "ease"),
        ("vae|implicit_slim", "ease"),
        # popularity vs EASE is made once, as EASE vs popularity
        ("ease", "popularity|baseline"),
        ("mf|baseline", "popularity|baseline"),
        ("mf|implicit_slim", "popularity|baseline"),
        ("mf|other", "popularity|baseline"),
        ("itemknn|baseline", "popularity|baseline"),
        ("vae|implicit_slim", "popularity|baseline"),
    ]


def test_comparison_pairs_without_popularity_or_ease_drop_their_pairs():
    assert comparison_pairs(["mf|baseline", "mf|implicit_slim", "mf|baseline"]) == [("mf|implicit_slim", "mf|baseline")]
    assert comparison_pairs(["ease", "mf|baseline"]) == [("mf|baseline", "ease")]
    assert comparison_pairs([]) == []


@pytest.mark.parametrize(
    ("path", "run"),
    [
        ("results/x/per_user/mf-implicit_slim.parquet", "mf|implicit_slim"),
        ("ease.parquet", "ease"),
        ("a/popularity-baseline.json", "popularity|baseline"),
    ],
)
def test_run_of_file(path, run):
    assert run_of_file(path) == run


def write_per_user_files(directory, frame):
    """One parquet file per run of ``frame`` (columns run, split, user, metrics), as the workflow writes them."""
    paths = []
    for run, group in frame.groupby("run", sort=False):
        path = directory / f"{run.replace('|', '-')}.parquet"
        group.drop(columns="run").to_parquet(path, index=False)
        paths.append(path)
    return paths


def dataset_frame():
    """Test and validation scores of EASE, popularity and MF with and without ImplicitSLIM."""
    rng = np.random.default_rng(11)
    users = np.arange(40)
    base = rng.random(40)
    runs = {
        "ease": base + 0.1,
        "popularity|baseline": base * 0.5,
        "mf|baseline": base,
        "mf|implicit_slim": base + rng.normal(0.02, 0.05, 40),
    }
    frames = []
    for split, shift in (("test", 0.0), ("validation", 0.3)):
        for run, scores in runs.items():
            frames.append(
                pd.DataFrame({"run": run, "split": split, "user": users, "ndcg@100": scores + shift, "recall@20": scores / 2 + shift})
            )
    return pd.concat(frames, ignore_index=True)


def test_read_per_user_gathers_the_files_with_their_run_names(tmp_path):
    frame = dataset_frame()
    table = read_per_user(write_per_user_files(tmp_path, frame))
    assert list(table.columns) == ["run", "split", "user", "ndcg@100", "recall@20"]
    order = ["run", "split", "user"]
    pd.testing.assert_frame_equal(table.sort_values(order, ignore_index=True), frame.sort_values(order, ignore_index=True))
    assert list(dict.fromkeys(table["run"])) == list(dict.fromkeys(frame["run"]))  # the files' order
    with pytest.raises(DataFormatError, match="second per-user file of run 'ease'"):
        read_per_user([tmp_path / "ease.parquet", tmp_path / "ease.parquet"])
    pd.DataFrame({"user": [1, 2], "ndcg@100": [0.1, 0.2]}).to_parquet(tmp_path / "bad-baseline.parquet")
    with pytest.raises(DataFormatError, match="lack the column.s. split"):
        read_per_user([tmp_path / "bad-baseline.parquet"])


def test_compare_runs_compares_test_users_only_one_holm_family_per_metric():
    frame = dataset_frame()
    table = compare_runs(frame, n_resamples=500, seed=2)  # every score column: ndcg@100, recall@20
    test = frame[frame["split"] == "test"]
    pairs = comparison_pairs(test["run"])
    assert len(pairs) == 6
    for metric, rows in table.groupby("metric", sort=False):
        expected = compare(test, pairs, metric, n_resamples=500, seed=2)
        pd.testing.assert_frame_equal(rows.drop(columns=["test", "confidence"]).reset_index(drop=True), expected)
    assert list(table["metric"]) == ["ndcg@100"] * 6 + ["recall@20"] * 6
    assert set(table["test"]) == {"Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method=wilcox)"}
    # EASE is the test scores + 0.1 for every user: the validation rows (+ 0.3) are not used.
    ease = table[(table["model"] == "ease") & (table["metric"] == "ndcg@100")].iloc[0]
    assert ease["delta"] == pytest.approx(0.1 + 0.5 * test.loc[test["run"] == "mf|baseline", "ndcg@100"].mean())


def test_compare_runs_passes_the_confidence_level_and_test_through():
    frame = dataset_frame()
    wide = compare_runs(frame, ["ndcg@100"], n_resamples=500, confidence=0.99, seed=2, method="t")
    narrow = compare_runs(frame, ["ndcg@100"], n_resamples=500, confidence=0.5, seed=2, method="t")
    test = frame[frame["split"] == "test"]
    expected = compare(test, comparison_pairs(test["run"]), "ndcg@100", n_resamples=500, confidence=0.99, seed=2, method="t")
    pd.testing.assert_frame_equal(wide.drop(columns=["test", "confidence"]), expected)
    assert set(wide["confidence"]) == {0.99} and set(narrow["confidence"]) == {0.5}
    assert set(wide["test"]) == {"paired t-test (scipy.stats.ttest_rel)"}
    spread = (wide["ci_high"] - wide["ci_low"]) - (narrow["ci_high"] - narrow["ci_low"])
    varies = wide["ci_high"] - wide["ci_low"] > 1e-9  # not the pair whose difference is the same for every user
    assert varies.sum() == 5 and (spread[varies] > 0).all()


def test_compare_runs_refuses_a_missing_split_or_no_metric():
    frame = dataset_frame()
    with pytest.raises(DataFormatError, match="no 'test' rows .splits present: validation"):
        compare_runs(frame[frame["split"] == "validation"], ["ndcg@100"])
    with pytest.raises(ConfigError, match="at least one metric"):
        compare_runs(frame, [])
    with pytest.raises(ConfigError, match="the per-user scores hold none"):
        compare_runs(frame[["run", "split", "user"]])
