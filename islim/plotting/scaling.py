"""Cost scaling: time and peak memory of EASE, SLIM-LLE and ImplicitSLIM against the item count."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from islim.plotting.style import PAGE, PALETTE, new_figure, styled

#: Columns of the scaling CSV (one row per method x n_items x d measurement).
SCALING_COLUMNS = ("method", "n_items", "d", "seconds", "peak_mb")
MARKERS = ("o", "s", "^", "D", "v", "P")


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


@styled
def scaling_figure(scaling: pd.DataFrame) -> Figure:
    """Seconds (left) and peak MB (right) against the number of items I, log-log.

    One line per method x d; each panel's legend gives the fitted log-log slope of every line
    (e.g. about 2 for work growing as I², 3 for I³).

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
    series = list(scaling.groupby(["method", "d"], dropna=False, sort=True))
    for ax, column, label in zip(axes[0], ("seconds", "peak_mb"), ("time (s)", "peak memory (MB)")):
        for i, ((method, d), rows) in enumerate(series):
            rows = rows.sort_values("n_items")
            slope = loglog_slope(rows["n_items"], rows[column])
            name = series_label(method, d) + (f": slope {slope:.2f}" if np.isfinite(slope) else "")
            ax.plot(rows["n_items"], rows[column], color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)], label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of items I")
        ax.set_ylabel(label)
        ax.legend(loc="upper left", frameon=False)
    return figure
