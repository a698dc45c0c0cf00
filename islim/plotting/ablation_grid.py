"""The ablation grid: neighbourhood x first step x second step, quality beside extraction cost."""

from __future__ import annotations

import string
import textwrap
from dataclasses import dataclass

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from islim.names import METRIC_NAMES, MODEL_NAMES
from islim.plotting.dimension import metric_rows
from islim.plotting.style import NEUTRAL, PAGE, new_figure, styled

#: The axes of the grid (columns of ``ablations.csv``).
AXES = ("neighbourhood", "first_step", "second_step")
HATCH = "////"


def ordered(values) -> list[str]:
    """The distinct arms in ``values`` in their order of appearance: ``ablations.csv`` lists the
    arms in the arms registry's order (:func:`islim.ablations.ablation_table`)."""
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class Panel:
    """One column of heatmaps: its title, values indexed by the three axes, number format, colours."""

    title: str
    values: pd.Series
    fmt: str
    cmap: str
    vmin: float
    vmax: float

    def matrix(self, neighbourhood: str, rows: list[str], columns: list[str]) -> pd.DataFrame:
        """The ``rows`` (first step) x ``columns`` (second step) values of one neighbourhood (NaN: none)."""
        frame = self.values.rename("value").reset_index()
        frame = frame[frame["neighbourhood"] == neighbourhood]
        return frame.pivot(index="first_step", columns="second_step", values="value").reindex(index=rows, columns=columns)


def panels(cells: pd.DataFrame, metric: str) -> list[Panel]:
    """One quality panel per scorer (one shared colour scale), then extraction seconds and peak MB.

    The cost of a cell is averaged over the scorers, whose selected hyper-parameters may differ.
    """
    ok = cells[cells["status"] == "ok"]
    quality = metric_rows(ok, metric)
    name = METRIC_NAMES.get(metric, metric)
    result = [
        Panel(
            f"test {name}, {MODEL_NAMES.get(scorer, scorer)}",
            rows.set_index(list(AXES))["value"],
            ".3f",
            "viridis",
            quality["value"].min(),
            quality["value"].max(),
        )
        for scorer, rows in quality.groupby("scorer", sort=False)
    ]
    cost = ok.drop_duplicates([*AXES, "scorer"]).groupby(list(AXES))[["extraction_seconds", "extraction_peak_mb"]].mean()
    for column, title, fmt in (("extraction_seconds", "extraction time (s)", ".3g"), ("extraction_peak_mb", "peak memory (MB)", ".0f")):
        result.append(Panel(title, cost[column], fmt, "cividis", cost[column].min(), cost[column].max()))
    return result


@styled
def ablation_grid_figure(ablations: pd.DataFrame, d: int | None = None, metric: str = "ndcg@100") -> Figure:
    """Heatmaps of the grid at dimension ``d``: rows = neighbourhood, columns = panels.

    Each panel is first step (rows) x second step (columns), annotated with its values. The
    quality panels share one colour scale, each cost panel has its own. Skipped cells are hatched,
    marked ``(a)``, ``(b)``, ... and the legend gives each distinct reason.

    Parameters
    ----------
    ablations : pandas.DataFrame
        The tidy ``ablations.csv`` (columns ``arm``, the three axes, ``d``, ``scorer``,
        ``status``, ``reason``, ``extraction_seconds``, ``extraction_peak_mb``, ``split``,
        ``metric``, ``value``); reference arms are left out.
    d : int or None
        Embedding dimension shown (default: the largest in the table).
    metric : str
        The test metric of the quality panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    grid = ablations[ablations["arm"].str.startswith("ablation:")]
    d = grid["d"].max() if d is None else d
    grid = grid[grid["d"] == d]
    first_steps, second_steps = ordered(grid["first_step"]), ordered(grid["second_step"])
    neighbourhoods = ordered(grid["neighbourhood"])
    shown = panels(grid, metric)
    skipped = grid[grid["status"] == "skipped"].drop_duplicates(list(AXES))
    tags = {reason: string.ascii_lowercase[i] for i, reason in enumerate(dict.fromkeys(skipped["reason"]))}
    figure, axes = new_figure(PAGE, 0.8 + 1.25 * len(neighbourhoods), len(neighbourhoods), len(shown))
    for i, neighbourhood in enumerate(neighbourhoods):
        for ax, panel in zip(axes[i], shown):
            matrix = panel.matrix(neighbourhood, first_steps, second_steps)
            sns.heatmap(
                matrix,
                ax=ax,
                annot=True,
                fmt=panel.fmt,
                cmap=panel.cmap,
                vmin=panel.vmin,
                vmax=panel.vmax,
                cbar=False,
                annot_kws={"fontsize": 6},
            )
            for cell in skipped[skipped["neighbourhood"] == neighbourhood].itertuples():
                x, y = second_steps.index(cell.second_step), first_steps.index(cell.first_step)
                ax.add_patch(Rectangle((x, y), 1, 1, fill=False, hatch=HATCH, edgecolor=NEUTRAL, linewidth=0))
                ax.text(x + 0.5, y + 0.5, f"({tags[cell.reason]})", ha="center", va="center", fontsize=6)
            ax.set_title(panel.title if i == 0 else "")
            ax.set_xlabel("second step" if i == len(neighbourhoods) - 1 else "")
            ax.set_ylabel("")
            ax.tick_params(axis="x", labelrotation=30, labelbottom=i == len(neighbourhoods) - 1)
            ax.tick_params(axis="y", labelrotation=0, labelleft=ax is axes[i][0])
        axes[i][0].set_ylabel(f"{neighbourhood}: first step")
    notes = [
        Patch(facecolor="white", edgecolor=NEUTRAL, hatch=HATCH, label=f"({tag}) skipped: " + textwrap.fill(reason, 110))
        for reason, tag in tags.items()
    ]
    if notes:
        figure.legend(handles=notes, loc="outside lower center", frameon=False)
    figure.suptitle(f"ablation grid at d = {d}", fontsize=9)
    return figure
