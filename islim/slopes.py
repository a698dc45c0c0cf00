"""Log-log slopes of cost against the item count: the numbers the scaling figure's legend shows and
``reports/summary/scaling_slopes.csv`` lists (outside :mod:`islim.plotting`, so that the rule writing
that table does not depend on plotting code)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from islim.fileio import write_csv

#: Columns of :func:`fitted_slopes`.
SLOPE_COLUMNS = [
    "method",
    "d",
    "n_points",
    "n_items_min",
    "n_items_max",
    "time_slope",
    "memory_slope",
    "time_slope_largest",
    "memory_slope_largest",
]


def loglog_slope(x, y) -> float:
    """Least-squares slope of log(y) on log(x): the exponent b of y ~ a x^b (NaN below two distinct x)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def measurement_series(scaling: pd.DataFrame) -> list[tuple[tuple[str, float], pd.DataFrame]]:
    """One measurement series per method x d, each sorted by item count, in a fixed order."""
    return [(key, rows.sort_values("n_items")) for key, rows in scaling.groupby(["method", "d"], dropna=False, sort=True)]


def fitted_slopes(scaling: pd.DataFrame) -> pd.DataFrame:
    """Log-log slopes of time and memory against the item count, per method x d.

    Parameters
    ----------
    scaling : pandas.DataFrame
        Rows of ``method``, ``n_items``, ``d`` (empty for methods without one), ``seconds`` and
        ``peak_mb`` (:data:`islim.scaling.SCALING_COLUMNS`).

    Returns
    -------
    pandas.DataFrame
        :data:`SLOPE_COLUMNS`: the least-squares slope over all sizes (``time_slope``,
        ``memory_slope``: the figure's legend) and between the two largest sizes
        (``*_largest``: nearer the asymptotic exponent when fixed costs dominate small sizes);
        NaN where fewer than two sizes were measured.
    """
    rows = []
    for (method, d), series in measurement_series(scaling):
        largest = series.tail(2)
        rows.append(
            {
                "method": method,
                "d": d,
                "n_points": len(series),
                "n_items_min": series["n_items"].min(),
                "n_items_max": series["n_items"].max(),
                "time_slope": loglog_slope(series["n_items"], series["seconds"]),
                "memory_slope": loglog_slope(series["n_items"], series["peak_mb"]),
                "time_slope_largest": loglog_slope(largest["n_items"], largest["seconds"]),
                "memory_slope_largest": loglog_slope(largest["n_items"], largest["peak_mb"]),
            }
        )
    return pd.DataFrame(rows, columns=SLOPE_COLUMNS)


def write_slopes(scaling_path: str | os.PathLike, slopes_path: str | os.PathLike) -> pd.DataFrame:
    """Read the measurements at ``scaling_path`` (CSV) and write their :func:`fitted_slopes` to
    ``slopes_path`` (CSV, atomically); returns the slopes."""
    slopes = fitted_slopes(pd.read_csv(scaling_path))
    write_csv(slopes_path, slopes)
    return slopes
