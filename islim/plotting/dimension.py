"""Paper Figure 1: test quality against the embedding dimension d, one panel per scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from islim.names import METRIC_NAMES, MODEL_NAMES
from islim.plotting.style import COLUMN, NEUTRAL, PAGE, PALETTE, new_figure, styled

#: The arms of the paper, singled out in colour, with their legend labels (config names kept).
PAPER_ARMS = {
    "reference:random": "random",
    "reference:svd": "svd",
    "ablation:all/lle/explicit": "SLIM-LLE (all/lle/explicit)",
    "ablation:all/ease/implicit": "ImplicitSLIM (all/ease/implicit)",
}


def metric_rows(table: pd.DataFrame, metric: str, split: str = "test") -> pd.DataFrame:
    """Rows of an ablations or metrics table for one ``split`` and ``metric``."""
    return table[(table["split"] == split) & (table["metric"] == metric)]


@styled
def dimension_figure(ablations: pd.DataFrame, metrics: pd.DataFrame, metric: str = "ndcg@100") -> Figure:
    """Test ``metric`` against d for every arm of ``ablations``, one panel per scorer (MF, PLRec).

    The arms of :data:`PAPER_ARMS` get a colour and a legend entry each; every other arm is a thin
    grey line under one legend entry. The d axis is logarithmic (base 2).

    Parameters
    ----------
    ablations : pandas.DataFrame
        The tidy ``ablations.csv`` (columns ``arm``, ``d``, ``scorer``, ``status``, ``split``,
        ``metric``, ``value``). Only ``ok`` cells are drawn, so an arm skipped at some d has no
        point there (and its line is broken).
    metrics : pandas.DataFrame
        The tidy ``metrics.csv``; EASE's test ``metric`` (model ``ease``) is drawn as a horizontal
        reference line when present.
    metric : str
        ``ndcg@100``, ``recall@20`` or ``recall@50``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ok = metric_rows(ablations[ablations["status"] == "ok"], metric)
    dims = np.sort(ablations["d"].dropna().unique())
    scorers = [s for s in ("mf", "plrec") if s in set(ok["scorer"])] or sorted(set(ok["scorer"]))
    ease = metric_rows(metrics[metrics["model"] == "ease"], metric)["value"]
    figure, axes = new_figure(PAGE if len(scorers) > 1 else COLUMN, 2.6, 1, max(len(scorers), 1), sharey=True)
    handles: dict[str, Line2D] = {}
    for ax, scorer in zip(axes[0], scorers):
        values = ok[ok["scorer"] == scorer].pivot_table(index="d", columns="arm", values="value").reindex(dims)
        others = [arm for arm in values.columns if arm not in PAPER_ARMS]
        for arm in others:
            (line,) = ax.plot(values.index, values[arm], color=NEUTRAL, linewidth=0.7, marker=".", alpha=0.7)
            handles[f"other arms ({len(others)})"] = line
        for colour, (arm, label) in zip(PALETTE, PAPER_ARMS.items()):
            if arm in values.columns:
                handles[label] = ax.plot(values.index, values[arm], color=colour, marker="o")[0]
        if len(ease):
            handles["EASE"] = ax.axhline(ease.iloc[0], color="black", linestyle="--", linewidth=1.0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(int(d)) for d in dims])
        ax.minorticks_off()
        ax.set_title(MODEL_NAMES.get(scorer, scorer))
        ax.set_xlabel("embedding dimension d")
    axes[0][0].set_ylabel(f"test {METRIC_NAMES.get(metric, metric)}")
    figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=3, frameon=False)
    return figure
