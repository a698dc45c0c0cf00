"""Paper Figure 1: test quality against the embedding dimension d, one panel per scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from islim.embeddings.registry import STYLED_ARMS
from islim.names import MODEL_NAMES, metric_title
from islim.plotting.style import COLUMN, NEUTRAL, PAGE, REFERENCE_MODELS, arm_style, model_style, new_figure, styled


def metric_rows(table: pd.DataFrame, metric: str, split: str = "test") -> pd.DataFrame:
    """Rows of an ablations or metrics table for one ``split`` and ``metric``."""
    return table[(table["split"] == split) & (table["metric"] == metric)]


def reference_scores(metrics: pd.DataFrame, metric: str, split: str = "test") -> dict[str, float]:
    """``split`` ``metric`` of each model of :data:`~islim.plotting.style.REFERENCE_MODELS` in the
    tidy ``metrics.csv`` (its first run, e.g. ``itemknn|baseline``); models without rows are left out."""
    rows = metric_rows(metrics, metric, split)
    scores = {}
    for model in REFERENCE_MODELS:
        values = rows.loc[rows["model"] == model, "value"]
        if len(values):
            scores[model] = float(values.iloc[0])
    return scores


def draw_reference_lines(ax: Axes, scores: dict[str, float], handles: dict[str, Line2D], suffix: str) -> None:
    """One dotted horizontal line per reference model, in its registry colour; legend label
    ``"<model> (<suffix>)"`` added to ``handles``."""
    for model, value in scores.items():
        label = f"{MODEL_NAMES.get(model, model)} ({suffix})"
        handles[label] = ax.axhline(value, color=model_style(model)["color"], linestyle=":", linewidth=1.2, label=label)


@styled
def dimension_figure(ablations: pd.DataFrame, metrics: pd.DataFrame, metric: str = "ndcg@100") -> Figure:
    """Test ``metric`` against d, one panel per scorer (MF, PLRec), each with its own y-range.

    The arms singled out by the arms registry (:data:`~islim.embeddings.registry.STYLED_ARMS`:
    the reference arms and the paper's cells) are drawn in their colours with error bars of
    ±1 standard error over the test users (the ``se`` column); every other arm is a thin grey
    line without bars, under one legend entry. The test scores of EASE, ItemKNN and popularity
    from ``metrics`` are dotted horizontal lines. The d axis is logarithmic (base 2).

    Parameters
    ----------
    ablations : pandas.DataFrame
        The tidy ``ablations.csv`` (columns ``arm``, ``d``, ``scorer``, ``status``, ``split``,
        ``metric``, ``value``, ``se``). Each arm is drawn over the sizes it ran at; only ``ok``
        cells have points, so an arm skipped at some d has a gap there.
    metrics : pandas.DataFrame
        The tidy ``metrics.csv``; rows of the reference models (:func:`reference_scores`) give the
        horizontal lines, when present.
    metric : str
        A metric of both tables, e.g. ``ndcg@100``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ok = metric_rows(ablations[ablations["status"] == "ok"], metric).astype({"value": float, "se": float})
    dims = np.sort(ok["d"].dropna().unique())
    ran_at = {arm: np.sort(rows["d"].unique()) for arm, rows in ablations.groupby("arm")}  # skipped cells included
    scorers = [s for s in ("mf", "plrec") if s in set(ok["scorer"])] or sorted(set(ok["scorer"]))
    references = reference_scores(metrics, metric)
    figure, axes = new_figure(PAGE if len(scorers) > 1 else COLUMN, 2.8, 1, max(len(scorers), 1))
    handles: dict[str, Line2D] = {}
    for ax, scorer in zip(axes[0], scorers):
        rows = ok[ok["scorer"] == scorer]
        values = rows.pivot_table(index="d", columns="arm", values="value")
        errors = rows.pivot_table(index="d", columns="arm", values="se", dropna=False).reindex(columns=values.columns)
        others = [arm for arm in values.columns if arm not in STYLED_ARMS]
        for arm in others:  # over the sizes the arm ran at (gaps where it was skipped)
            (line,) = ax.plot(ran_at[arm], values[arm].reindex(ran_at[arm]), color=NEUTRAL, linewidth=0.7, marker=".", markersize=3)
            handles[f"other arms ({len(others)})"] = line
        for arm in (arm for arm in STYLED_ARMS if arm in values.columns):
            style = arm_style(arm)
            bars = ax.errorbar(
                ran_at[arm].astype(float),
                values[arm].reindex(ran_at[arm]).to_numpy(dtype=float),
                yerr=errors[arm].reindex(ran_at[arm]).to_numpy(dtype=float),
                color=style["color"],
                marker=style["marker"],
                capsize=2,
                elinewidth=0.8,
                label=style["label"],
            )
            handles[style["label"]] = bars
        draw_reference_lines(ax, references, handles, "test")
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(int(d)) for d in dims])
        ax.minorticks_off()
        ax.set_title(MODEL_NAMES.get(scorer, scorer))
        ax.set_xlabel("embedding dimension d")
        ax.set_ylabel(f"test {metric_title(metric)}")
    figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=4, frameon=False)
    return figure
