"""Cost scaling: time and peak memory of EASE, SLIM-LLE and ImplicitSLIM against the item count.

The figure and the slopes table beside it (:func:`fitted_slopes`, ``reports/summary/
scaling_slopes.csv``) are computed from the same measurements by the same code, so the legend's
slopes are the table's.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from islim.fileio import write_csv
from islim.plotting.style import NEUTRAL, PAGE, PALETTE, new_figure, styled

MARKERS = ("o", "s", "^", "D", "v", "P")
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
#: The panels: measured column, axis label, and the exponent of a dense I x I method's cost
#: (inverse or eigenproblem: I³ flops; I² numbers stored), drawn as a dashed reference line.
PANELS = (("seconds", "time (s)", 3), ("peak_mb", "peak memory (MB)", 2))
#: The dense method the reference lines pass through (at its largest I), when it was measured.
DENSE_REFERENCE = "EASE"
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def loglog_slope(x, y) -> float:
    """Least-squares slope of log(y) on log(x): the exponent b of y ~ a x^b (NaN below two distinct x)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def series_label(method: str, d: float) -> str:
    """``method`` with its embedding size when it has one (EASE has none)."""
    return method if pd.isna(d) else f"{method} (d={int(d)})"


def _series(scaling: pd.DataFrame) -> list[tuple[tuple[str, float], pd.DataFrame]]:
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
    for (method, d), series in _series(scaling):
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


def _reference_line(ax, series: pd.DataFrame, column: str, exponent: int) -> None:
    """A dashed ``∝ I^exponent`` line over the range of ``series``, through its last point."""
    last = series.iloc[-1]
    x = np.array([series["n_items"].min(), last["n_items"]], dtype=float)
    ax.plot(x, last[column] * (x / x[-1]) ** exponent, color=NEUTRAL, linestyle="--", label=f"∝ I{str(exponent).translate(SUPERSCRIPTS)}")


@styled
def scaling_figure(scaling: pd.DataFrame) -> Figure:
    """Seconds (left) and peak MB (right) against the number of items I, log-log.

    One line per method x d, labelled with its fitted log-log slope (:func:`fitted_slopes`), and a
    dashed reference line of the dense methods' asymptotic exponent (I³ time, I² memory) through
    the largest measurement of :data:`DENSE_REFERENCE` (of the costliest series without it).

    Parameters
    ----------
    scaling : pandas.DataFrame
        Rows of ``method``, ``n_items``, ``d`` (empty for methods without one), ``seconds`` and
        ``peak_mb``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, axes = new_figure(PAGE, 2.7, 1, 2)
    series = _series(scaling)
    slopes = fitted_slopes(scaling)
    for ax, (column, label, exponent) in zip(axes[0], PANELS):
        slope_column = "time_slope" if column == "seconds" else "memory_slope"
        for i, (((method, d), rows), slope) in enumerate(zip(series, slopes[slope_column])):
            name = series_label(method, d) + (f": slope {slope:.2f}" if np.isfinite(slope) else "")
            ax.plot(rows["n_items"], rows[column], color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)], label=name)
        dense = [rows for (method, _), rows in series if method == DENSE_REFERENCE]
        anchor = dense[0] if dense else max((rows for _, rows in series), key=lambda rows: rows[column].iloc[-1])
        _reference_line(ax, anchor, column, exponent)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of items I")
        ax.set_ylabel(label)
        ax.legend(loc="best", frameon=False)
    return figure
