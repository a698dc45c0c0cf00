"""Paired comparisons of runs on the same held-out users: effect size, confidence interval, p-value.

Two runs evaluated on the same test users give paired per-user scores ``a`` and ``b`` (for
instance the ``ndcg@100`` column of :func:`islim.evaluate.per_user_metrics` for each run). For
every comparison this module reports

* the mean per-user difference ``delta = mean(a - b)``,
* its percentile bootstrap confidence interval, from resampling *users* with replacement
  (:func:`paired_bootstrap_ci`; seeded, deterministic),
* the p-value of a two-sided paired test (:func:`paired_test`: Wilcoxon signed-rank by default,
  or the paired t-test),
* the Holm–Bonferroni adjusted p-value over all the comparisons made together
  (:func:`holm_adjust`), which controls the family-wise error rate without assuming independence.

:func:`compare` does all of it for a long table of per-user scores and a list of
``(run, reference)`` pairs; :func:`comparison_pairs` names the comparisons a dataset's results
are judged by and :func:`compare_runs` makes all of them, one Holm family per metric, from the
per-user files of the runs (:func:`read_per_user`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats

from islim.errors import ConfigError, DataFormatError

#: Resample indices drawn at once by :func:`paired_bootstrap_ci` (bounds its memory: one chunk
#: holds this many int64 indices and as many gathered float64 differences, 16 MiB in all).
BOOTSTRAP_CHUNK_ELEMENTS = 2**20

#: The tests :func:`paired_test` knows.
TEST_METHODS = ("wilcoxon", "t")

#: The run every other run is compared with: EASE (it has no variants).
EASE_RUN = "ease"

#: The popularity ranking, the sanity floor every run is compared with when it is configured.
POPULARITY_RUN = "popularity|baseline"

#: The variant each model's other variants are compared with.
BASELINE_VARIANT = "baseline"

#: Bootstrap resamples of the comparisons the workflow writes (``comparisons.csv``).
N_RESAMPLES = 10_000

#: Columns of the table :func:`compare` returns, in order.
COMPARISON_COLUMNS = ("model", "variant", "reference", "metric", "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "n_users")


class BootstrapCI(NamedTuple):
    """Mean paired difference and the ends of its bootstrap confidence interval."""

    delta: float
    ci_low: float
    ci_high: float


class PairedTestResult(NamedTuple):
    """Two-sided p-value of a paired test and the name of the test (one of :data:`TEST_METHODS`)."""

    p_value: float
    method: str


def paired_differences(a, b) -> np.ndarray:
    """Per-user differences ``a - b`` of two paired score vectors, validated.

    Parameters
    ----------
    a, b : array_like of float, shape (n_users,)
        Scores of the same users in the same order, e.g. one metric of two runs.

    Returns
    -------
    ndarray of float64, shape (n_users,)
        ``a - b``.

    Raises
    ------
    DataFormatError
        ``a`` or ``b`` is not 1-D or not numeric, their lengths differ, fewer than 2 users are
        given, or an entry is NaN or infinite.
    """
    arrays = []
    for name, values in (("a", a), ("b", b)):
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataFormatError(f"paired scores {name} must be numbers, got {type(values).__name__}: {error}") from None
        if array.ndim != 1:
            raise DataFormatError(f"paired scores {name} must be a 1-D array (one score per user), got shape {array.shape}")
        arrays.append(array)
    a, b = arrays
    if len(a) != len(b):
        raise DataFormatError(f"paired scores must cover the same users: a has {len(a)} entries, b has {len(b)}")
    if len(a) < 2:
        raise DataFormatError(f"a paired comparison needs at least 2 users, got {len(a)}")
    for name, array in (("a", a), ("b", b)):
        bad = int(np.size(array) - np.isfinite(array).sum())
        if bad:
            first = int(np.flatnonzero(~np.isfinite(array))[0])
            raise DataFormatError(
                f"paired scores {name} hold {bad} NaN or infinite entries (first at position {first}: {array[first]}); "
                "drop the users without a score from both runs first"
            )
    return a - b


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return float(confidence)


def _check_n_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer (e.g. 10000), got {n_resamples!r}")
    return int(n_resamples)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer (the bootstrap is deterministic given it), got {seed!r}")
    return int(seed)


def _check_test(method: str, zero_method: str) -> None:
    if method not in TEST_METHODS:
        raise ConfigError(f"unknown paired test {method!r}; choose one of {', '.join(TEST_METHODS)}")
    if zero_method not in ("wilcox", "pratt", "zsplit"):
        raise ConfigError(f"unknown zero_method {zero_method!r} for the Wilcoxon test; choose wilcox, pratt or zsplit")


def bootstrap_means(differences: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``differences`` over users resampled with replacement.

    Parameters
    ----------
    differences : ndarray of float, shape (n_users,)
        Per-user paired differences.
    n_resamples : int
        Number of bootstrap resamples.
    seed : int
        Seed of the ``numpy.random.Generator`` (``numpy.random.default_rng(seed)``).

    Returns
    -------
    ndarray of float64, shape (n_resamples,)
        Entry ``r`` is ``differences[idx[r]].mean()`` with
        ``idx = numpy.random.default_rng(seed).integers(0, n_users, size=(n_resamples, n_users))``:
        resample ``r`` draws ``n_users`` users uniformly with replacement. The indices are drawn
        in chunks of about :data:`BOOTSTRAP_CHUNK_ELEMENTS` row by row from the same generator,
        which yields exactly the same indices as the single draw above (and so the same result
        whatever the chunk size) while holding one chunk in memory at a time.
    """
    differences = np.asarray(differences, dtype=np.float64)
    n_users = len(differences)
    rng = np.random.default_rng(seed)
    rows = max(1, BOOTSTRAP_CHUNK_ELEMENTS // n_users)
    means = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        indices = rng.integers(0, n_users, size=(stop - start, n_users))
        means[start:stop] = differences[indices].mean(axis=1)
    return means


def paired_bootstrap_ci(a, b, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Mean paired difference ``mean(a - b)`` and its percentile bootstrap confidence interval.

    Users are the resampling unit: each of ``n_resamples`` resamples draws ``n_users`` users
    uniformly with replacement, keeping each user's pair ``(a[i], b[i])`` together, and takes the
    mean difference over them (:func:`bootstrap_means`). The interval's ends are the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of these means
    (``numpy.quantile``, linear interpolation). Memory stays bounded (indices are drawn in chunks
    of :data:`BOOTSTRAP_CHUNK_ELEMENTS`); 10,000 resamples of 10,000 users take well under a second.

    Parameters
    ----------
    a, b : array_like of float, shape (n_users,)
        Per-user scores of two runs on the same users, in the same order (at least 2 users, all
        finite).
    n_resamples : int, default 10000
        Number of bootstrap resamples.
    confidence : float, default 0.95
        Coverage of the interval, strictly between 0 and 1.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` that draws the resampled users; the same inputs and
        seed always give the same interval.

    Returns
    -------
    BootstrapCI
        ``(delta, ci_low, ci_high)``: ``delta = mean(a - b)`` over all users (not the mean of the
        resamples) and the interval's ends. If every user has the same difference, the interval
        collapses to that value.

    Raises
    ------
    DataFormatError
        Invalid scores (see :func:`paired_differences`).
    ConfigError
        ``n_resamples``, ``confidence`` or ``seed`` is out of range.
    """
    differences = paired_differences(a, b)
    n_resamples = _check_n_resamples(n_resamples)
    confidence = _check_confidence(confidence)
    seed = _check_seed(seed)
    means = bootstrap_means(differences, n_resamples, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return BootstrapCI(float(differences.mean()), float(low), float(high))


def paired_test(a, b, method: str = "wilcoxon", zero_method: str = "wilcox") -> PairedTestResult:
    """Two-sided p-value of a paired test of ``a`` against ``b`` (same users, same order).

    ``method="wilcoxon"`` (the default): the Wilcoxon signed-rank test,
    ``scipy.stats.wilcoxon(a, b, zero_method=zero_method, alternative="two-sided")`` with scipy's
    default ``method="auto"`` (exact null distribution for up to 50 differences without ties or
    zeros, else the normal approximation, tie-corrected, without continuity correction). With
    ``zero_method="wilcox"`` (the default) users whose two scores are equal (zero differences) are
    dropped before ranking, so the test is about the users on whom the runs differ;
    ``"pratt"`` ranks them and then drops their ranks (more conservative); ``"zsplit"`` splits them
    between the signs. It tests whether the differences are symmetric about zero, robust to the
    skewed, zero-heavy per-user distributions of ranking metrics.

    ``method="t"``: the paired t-test, ``scipy.stats.ttest_rel(a, b)``, which tests
    ``mean(a - b) == 0`` assuming roughly normal mean differences (reasonable for thousands of
    users).

    Degenerate cases are decided here, not left to scipy's warnings: when every difference is
    zero the p-value is 1.0 for both tests; for the t-test, when every difference equals the same
    non-zero value (zero variance, infinite t) it is 0.0.

    Parameters
    ----------
    a, b : array_like of float, shape (n_users,)
        Per-user scores of two runs on the same users (at least 2, all finite).
    method : {"wilcoxon", "t"}, default "wilcoxon"
        The test.
    zero_method : {"wilcox", "pratt", "zsplit"}, default "wilcox"
        How the Wilcoxon test treats zero differences (ignored by the t-test).

    Returns
    -------
    PairedTestResult
        ``(p_value, method)``, ``method`` being ``"wilcoxon"`` or ``"t"``.

    Raises
    ------
    DataFormatError
        Invalid scores (see :func:`paired_differences`).
    ConfigError
        Unknown ``method`` or ``zero_method``.
    """
    _check_test(method, zero_method)
    differences = paired_differences(a, b)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not differences.any():
        return PairedTestResult(1.0, method)
    if method == "wilcoxon":
        p_value = scipy.stats.wilcoxon(a, b, zero_method=zero_method, alternative="two-sided").pvalue
    elif np.all(differences == differences[0]):
        p_value = 0.0
    else:
        p_value = scipy.stats.ttest_rel(a, b, alternative="two-sided").pvalue
    return PairedTestResult(float(p_value), method)


def describe_test(method: str = "wilcoxon", zero_method: str = "wilcox") -> str:
    """How :func:`paired_test` with these settings is named in tables and captions."""
    _check_test(method, zero_method)
    return (
        "paired t-test (scipy.stats.ttest_rel)"
        if method == "t"
        else f"Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method={zero_method})"
    )


def holm_adjust(p_values) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values, in the input order.

    With the ``m`` p-values sorted ascending, ``p_(1) <= … <= p_(m)``, the adjusted value of the
    ``i``-th smallest is ``max_{j <= i} min(1, (m - j + 1) p_(j))``: non-decreasing in the
    p-value's rank, never below the raw p-value and capped at 1. Rejecting every hypothesis whose
    adjusted p-value is at most ``alpha`` controls the family-wise error rate at ``alpha``.
    Equal p-values get equal adjusted values.

    Parameters
    ----------
    p_values : array_like of float, shape (m,)
        Raw p-values, each in [0, 1]; NaN is not allowed (drop or decide those comparisons first).

    Returns
    -------
    ndarray of float64, shape (m,)
        Adjusted p-values, ``result[k]`` belonging to ``p_values[k]``. Empty for empty input.

    Raises
    ------
    DataFormatError
        ``p_values`` is not 1-D, holds NaN, or a value outside [0, 1].
    """
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataFormatError(f"p-values must be numbers: {error}") from None
    if p.ndim != 1:
        raise DataFormatError(f"p-values must be a 1-D array, got shape {p.shape}")
    if np.isnan(p).any():
        raise DataFormatError(f"p-values hold {int(np.isnan(p).sum())} NaN entries; Holm's adjustment needs every p-value")
    if ((p < 0) | (p > 1)).any():
        bad = p[(p < 0) | (p > 1)][0]
        raise DataFormatError(f"p-values must lie in [0, 1], got {bad}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def split_run_name(run: str) -> tuple[str, str]:
    """``"<model>|<variant>"`` → ``(model, variant)``, split at the first ``|``.

    A name without ``|`` is all model, with an empty variant (``"ease"`` → ``("ease", "")``);
    everything after the first ``|`` is the variant (``"mf|d=64|dot"`` → ``("mf", "d=64|dot")``),
    as :mod:`islim.training` and :mod:`islim.ablations` name their runs.
    """
    model, _, variant = str(run).partition("|")
    return model, variant


def compare(
    per_user: pd.DataFrame,
    pairs: Iterable[tuple[str, str]],
    metric: str,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "wilcoxon",
    zero_method: str = "wilcox",
) -> pd.DataFrame:
    """Paired comparisons of runs against references on one metric of one dataset, Holm-adjusted.

    For each ``(run, reference)`` pair the two runs' per-user scores are joined on ``user``
    (inner join: only users scored by both count; sorted by user, so the table's row order does
    not matter), then ``delta = mean(run - reference)`` with its bootstrap interval (:func:`paired_bootstrap_ci`, users resampled, the same ``seed`` for every
    pair) and the two-sided p-value of the paired test (:func:`paired_test`: Wilcoxon signed-rank
    by default, zero differences handled by ``zero_method``; or ``method="t"``). The p-values of
    all the pairs passed form one family and are adjusted together (:func:`holm_adjust`); call
    once per dataset × metric.

    Parameters
    ----------
    per_user : pandas.DataFrame
        Long table, one row per run × user: columns ``run`` (``"<model>|<variant>"``), ``user``
        and ``metric`` (plus any others, ignored). Each (run, user) appears at most once.
    pairs : iterable of (str, str)
        ``(run, reference)``: a positive ``delta`` means ``run`` scores higher than ``reference``.
    metric : str
        The score column compared, e.g. ``"ndcg@100"``.
    n_resamples, confidence, seed
        Of the bootstrap (see :func:`paired_bootstrap_ci`).
    method, zero_method
        Of the test (see :func:`paired_test`).

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, one row per pair in the order given: ``model`` and ``variant``
        of the run (:func:`split_run_name`), ``reference`` (the full run name), ``metric``,
        ``delta``, ``ci_low``, ``ci_high``, ``p_value``, ``p_adjusted`` (Holm over the rows) and
        ``n_users`` (the users both runs scored). The test used is stored in ``attrs["test"]``
        and the bootstrap's settings in ``attrs["bootstrap"]``.

    Raises
    ------
    DataFormatError
        A column is missing, a (run, user) is repeated, a run is not in the table, a pair shares
        fewer than 2 users, or a score is not finite.
    ConfigError
        A bootstrap or test setting is out of range.
    """
    _check_test(method, zero_method)
    n_resamples = _check_n_resamples(n_resamples)
    confidence = _check_confidence(confidence)
    seed = _check_seed(seed)
    missing = [column for column in ("run", "user", metric) if column not in per_user.columns]
    if missing:
        raise DataFormatError(f"per-user scores lack the column(s) {', '.join(missing)}; they have {', '.join(map(str, per_user.columns))}")
    scores = per_user[["run", "user", metric]]
    repeated = scores.duplicated(["run", "user"])
    if repeated.any():
        first = scores[repeated].iloc[0]
        raise DataFormatError(
            f"per-user scores repeat {int(repeated.sum())} (run, user) pairs, e.g. run {first['run']!r} user {first['user']!r}; "
            "give one row per run and user (one dataset and split at a time)"
        )
    pairs = [tuple(pair) for pair in pairs]
    by_run = {run: group.set_index("user")[metric] for run, group in scores.groupby("run", sort=False)}
    rows = []
    for pair in pairs:
        if len(pair) != 2:
            raise ConfigError(f"each comparison must be a (run, reference) pair, got {pair!r}")
        run, reference = pair
        for name in (run, reference):
            if name not in by_run:
                raise DataFormatError(f"run {name!r} has no per-user scores; known runs: {', '.join(map(str, by_run))}")
        joined = pd.concat({"run": by_run[run], "reference": by_run[reference]}, axis=1, join="inner").sort_index()
        if len(joined) < 2:
            raise DataFormatError(f"runs {run!r} and {reference!r} share {len(joined)} user(s); a paired comparison needs at least 2")
        a = joined["run"].to_numpy(dtype=np.float64)
        b = joined["reference"].to_numpy(dtype=np.float64)
        try:
            ci = paired_bootstrap_ci(a, b, n_resamples, confidence, seed)
        except DataFormatError as error:
            raise DataFormatError(f"{metric} of {run!r} vs {reference!r}: {error}") from None
        test = paired_test(a, b, method, zero_method)
        model, variant = split_run_name(run)
        rows.append(
            {
                "model": model,
                "variant": variant,
                "reference": reference,
                "metric": metric,
                "delta": ci.delta,
                "ci_low": ci.ci_low,
                "ci_high": ci.ci_high,
                "p_value": test.p_value,
                "n_users": len(joined),
            }
        )
    table = pd.DataFrame(rows, columns=[column for column in COMPARISON_COLUMNS if column != "p_adjusted"])
    table.insert(COMPARISON_COLUMNS.index("p_adjusted"), "p_adjusted", holm_adjust(table["p_value"].to_numpy(dtype=np.float64)))
    table["n_users"] = table["n_users"].astype(np.int64)
    table.attrs["test"] = describe_test(method, zero_method)
    table.attrs["bootstrap"] = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed, "resampled": "users"}
    return table


def comparison_pairs(runs: Iterable[str]) -> list[tuple[str, str]]:
    """The ``(run, reference)`` pairs a dataset's results are judged by, among ``runs``.

    In this order, each pair at most once (a reference is never compared with itself):

    1. every variant of a model against that model's :data:`BASELINE_VARIANT`
       (``"mf|implicit_slim"`` vs ``"mf|baseline"``), models and variants in the order given;
    2. every run except :data:`POPULARITY_RUN` against :data:`EASE_RUN`;
    3. every run, EASE included, against :data:`POPULARITY_RUN`.

    Popularity and EASE are compared once, as EASE vs popularity. A reference missing from
    ``runs`` (no popularity configured, say) drops its pairs.

    Parameters
    ----------
    runs : iterable of str
        Run names ``"<model>|<variant>"`` (:func:`split_run_name`), EASE as ``"ease"``.

    Returns
    -------
    list of (str, str)
        ``(run, reference)`` pairs for :func:`compare`.
    """
    runs = list(dict.fromkeys(runs))
    pairs = []
    for run in runs:
        model, variant = split_run_name(run)
        baseline = f"{model}|{BASELINE_VARIANT}"
        if variant and variant != BASELINE_VARIANT and baseline in runs:
            pairs.append((run, baseline))
    for reference, skipped in ((EASE_RUN, POPULARITY_RUN), (POPULARITY_RUN, None)):
        if reference in runs:
            pairs += [(run, reference) for run in runs if run not in (reference, skipped)]
    return pairs


def run_of_file(path: str | os.PathLike) -> str:
    """The run name of a per-user or record file: its stem with the first ``-`` read as ``|``.

    ``results/<dataset>/per_user/mf-implicit_slim.parquet`` → ``"mf|implicit_slim"``,
    ``.../ease.parquet`` → ``"ease"`` (model names hold no ``-``).
    """
    return Path(path).stem.replace("-", "|", 1)


def read_per_user(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The per-user scores of several runs as one long table with a ``run`` column.

    Parameters
    ----------
    paths : iterable of path-like
        ``results/<dataset>/per_user/<run>.parquet`` files: columns ``split``, ``user`` and one
        per metric, one row per split × user (seed-averaged scores for stochastic models).

    Returns
    -------
    pandas.DataFrame
        The files' rows, ``run`` (:func:`run_of_file`) first, in the order of ``paths``.

    Raises
    ------
    DataFormatError
        Two files name the same run, or a file lacks ``split`` or ``user``.
    """
    frames = {}
    for path in paths:
        run = run_of_file(path)
        if run in frames:
            raise DataFormatError(f"{path}: a second per-user file of run {run!r}; give each run once")
        frame = pd.read_parquet(path)
        missing = [column for column in ("split", "user") if column not in frame.columns]
        if missing:
            raise DataFormatError(f"{path}: per-user scores lack the column(s) {', '.join(missing)}; rerun the job that wrote it")
        frames[run] = frame
    if not frames:
        return pd.DataFrame(columns=["run", "split", "user"])
    return pd.concat(frames, names=["run", None]).reset_index(level=0).reset_index(drop=True)


def score_columns(per_user: pd.DataFrame) -> list[str]:
    """The metric columns of a :func:`read_per_user` table: every column but ``run``, ``split`` and ``user``."""
    return [column for column in per_user.columns if column not in ("run", "split", "user")]


def compare_runs(
    per_user: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    split: str = "test",
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "wilcoxon",
) -> pd.DataFrame:
    """Every comparison of :func:`comparison_pairs` on each metric, on one split of one dataset.

    Parameters
    ----------
    per_user : pandas.DataFrame
        :func:`read_per_user` of the dataset's runs (``run``, ``split``, ``user``, metrics).
    metrics : sequence of str or None
        Score columns compared (e.g. ``["ndcg@100"]``); None: all of them (:func:`score_columns`).
    split : str, default "test"
        The split compared (test: validation chose the hyper-parameters).
    n_resamples, confidence, seed, method
        Of :func:`compare`.

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, ``test`` (the paired test's name) and ``confidence`` (the
        bootstrap intervals' level), one :func:`compare`
        table per metric (each its own Holm family), metrics in the order given.

    Raises
    ------
    DataFormatError
        No row of ``split``, or :func:`compare`'s errors.
    ConfigError
        No metric, or a setting out of range.
    """
    metrics = score_columns(per_user) if metrics is None else list(metrics)
    if not metrics:
        raise ConfigError("compare_runs needs at least one metric to compare; the per-user scores hold none")
    rows = per_user[per_user["split"] == split]
    if not len(rows):
        splits = ", ".join(map(str, per_user["split"].unique())) or "none"
        raise DataFormatError(f"per-user scores hold no {split!r} rows (splits present: {splits})")
    pairs = comparison_pairs(rows["run"])
    tables = [compare(rows, pairs, metric, n_resamples=n_resamples, confidence=confidence, seed=seed, method=method) for metric in metrics]
    table = pd.concat(tables, ignore_index=True)
    table["test"] = describe_test(method)
    table["confidence"] = confidence
    return table
