"""Cost scaling: time and peak memory of EASE, SLIM-LLE and ImplicitSLIM against the item count.

The figure and the slopes table beside it (:func:`islim.slopes.fitted_slopes`, ``reports/summary/
scaling_slopes.csv``) are computed from the same measurements by the same code, so the legend's
slopes are the table's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from islim.plotting.style import NEUTRAL, PAGE, PALETTE, new_figure, styled
from islim.slopes import fitted_slopes, measurement_series

MARKERS = ("o", "s", "^", "D", "v", "P")
#: The panels: measured column, axis label, and the exponent of a dense I x I method's cost
#: (inverse or eigenproblem: I³ flops; I² numbers stored), drawn as a dashed reference line.
PANELS = (("seconds", "time (s)", 3), ("peak_mb", "peak memory (MB)", 2))
#: The dense method the reference lines pass through (at its largest I), when it was measured.
DENSE_REFERENCE = "EASE"
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def series_label(method: str, d: float) -> str:
    """``method`` with its embedding size when it has one (EASE has none)."""
    return method if pd.isna(d) else f"{method} (d={int(d)})"


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
    series = measurement_series(scaling)
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
