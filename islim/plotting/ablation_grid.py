"""The ablation grid: neighbourhood x first step x second step, quality beside extraction cost."""

from __future__ import annotations

import os
import string
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from islim.comparisons import compare
from islim.embeddings.registry import PAPER_CELLS, cell_name, reference_name
from islim.names import MODEL_NAMES, metric_title
from islim.plotting.dimension import metric_rows
from islim.plotting.style import NEUTRAL, PAGE, new_figure, styled

#: The axes of the grid (columns of ``ablations.csv``).
AXES = ("neighbourhood", "first_step", "second_step")
HATCH = "////"
#: Family-wise error rate of the significance marks (Holm-adjusted paired tests).
ALPHA = 0.05
#: The cell the others are tested against and that is outlined: the paper's ImplicitSLIM.
REFERENCE_CELL = next(cell for cell in PAPER_CELLS if cell.reference)


def ordered(values) -> list[str]:
    """The distinct arms in ``values`` in their order of appearance: ``ablations.csv`` lists the
    arms in the arms registry's order (:func:`islim.ablations.ablation_table`)."""
    return list(dict.fromkeys(values))


def cell_of_stem(stem: str) -> tuple[str, int]:
    """``(arm, d)`` of an ablation job's file stem: ``"all.ease.implicit.d64"`` →
    ``("ablation:all/ease/implicit", 64)``, ``"reference.svd.d64"`` → ``("reference:svd", 64)``."""
    *names, dim = stem.split(".")
    if not dim.startswith("d") or not dim[1:].isdigit() or len(names) not in (2, 3) or (len(names) == 2) != (names[0] == "reference"):
        raise ValueError(f"{stem!r} is not an ablation job's file stem (<neighbourhood>.<first>.<second>.d<d> or reference.<name>.d<d>)")
    arm = reference_name(names[1]) if len(names) == 2 else cell_name(*names)
    return arm, int(dim[1:])


def read_cell_scores(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate the per-user tables ``results/<dataset>/per_user/<cell stem>.parquet`` of
    ablation jobs, adding each file's ``arm`` and ``d`` (:func:`cell_of_stem`)."""
    frames = []
    for path in sorted(map(Path, paths)):
        arm, d = cell_of_stem(path.stem)
        frames.append(pd.read_parquet(path).assign(arm=arm, d=d))
    return pd.concat(frames, ignore_index=True)


def significant_cells(scores: pd.DataFrame, d: int, scorer: str, metric: str, alpha: float = ALPHA) -> set[str]:
    """Grid cells whose test ``metric`` differs from :data:`REFERENCE_CELL`'s at dimension ``d``.

    Each cell's per-user test scores are paired with the reference cell's (the same test users)
    and compared by the two-sided Wilcoxon signed-rank test (:func:`islim.comparisons.compare`);
    the p-values of the cells of one panel (``d`` × ``scorer``) are Holm-adjusted together, and
    a cell is significant when its adjusted p-value is at most ``alpha``.

    Parameters
    ----------
    scores : pandas.DataFrame
        :func:`read_cell_scores` output (``arm``, ``d``, ``scorer``, ``split``, ``user``, metrics).
    d : int
        Embedding dimension.
    scorer : str
        ``mf`` or ``plrec``.
    metric : str
        A per-user metric column.
    alpha : float
        Family-wise error rate.

    Returns
    -------
    set of str
        Arm names (``"ablation:<n>/<f>/<s>"``); empty when the reference cell has no scores.
    """
    rows = scores[(scores["d"] == d) & (scores["scorer"] == scorer) & (scores["split"] == "test")]
    rows = rows[rows["arm"].str.startswith("ablation:")].rename(columns={"arm": "run"})
    reference = REFERENCE_CELL.run_name
    others = [arm for arm in ordered(rows["run"]) if arm != reference]
    if reference not in set(rows["run"]) or not others:
        return set()
    table = compare(rows, [(arm, reference) for arm in others], metric)
    return {arm for arm, p in zip(others, table["p_adjusted"]) if p <= alpha}


@dataclass(frozen=True)
class Panel:
    """One column of heatmaps: its title, values indexed by the three axes, number format,
    colours and colour range (its own), and the cells to mark as significant."""

    title: str
    values: pd.Series
    fmt: str
    cmap: str
    significant: frozenset[str] = frozenset()

    def matrix(self, neighbourhood: str, rows: list[str], columns: list[str]) -> pd.DataFrame:
        """The ``rows`` (first step) x ``columns`` (second step) values of one neighbourhood (NaN: none)."""
        frame = self.values.rename("value").reset_index()
        frame = frame[frame["neighbourhood"] == neighbourhood]
        return frame.pivot(index="first_step", columns="second_step", values="value").reindex(index=rows, columns=columns)

    def labels(self, neighbourhood: str, rows: list[str], columns: list[str]) -> np.ndarray:
        """Cell annotations: the value, ``*`` appended to significant cells (empty where no value)."""
        matrix = self.matrix(neighbourhood, rows, columns)
        labels = np.full(matrix.shape, "", dtype=object)
        for i, first in enumerate(rows):
            for j, second in enumerate(columns):
                value = matrix.iloc[i, j]
                if not np.isnan(value):
                    mark = "*" if cell_name(neighbourhood, first, second) in self.significant else ""
                    labels[i, j] = f"{value:{self.fmt}}{mark}"
        return labels


def panels(cells: pd.DataFrame, metric: str, scores: pd.DataFrame | None = None, alpha: float = ALPHA) -> list[Panel]:
    """One quality panel per scorer, then extraction seconds and peak MB; each its own colour range.

    The cost of a cell is averaged over the scorers, whose selected hyper-parameters may differ.
    With ``scores`` (per-user tables), each quality panel marks the cells significantly different
    from :data:`REFERENCE_CELL` (:func:`significant_cells`).
    """
    ok = cells[cells["status"] == "ok"]
    quality = metric_rows(ok, metric)
    name = metric_title(metric)
    result = []
    for scorer, rows in quality.groupby("scorer", sort=False):
        marked = significant_cells(scores, rows["d"].iloc[0], scorer, metric, alpha) if scores is not None else set()
        title = f"test {name}, {MODEL_NAMES.get(scorer, scorer)}"
        result.append(Panel(title, rows.set_index(list(AXES))["value"], ".3f", "viridis", frozenset(marked)))
    cost = ok.drop_duplicates([*AXES, "scorer"]).groupby(list(AXES))[["extraction_seconds", "extraction_peak_mb"]].mean()
    for column, title, fmt in (("extraction_seconds", "extraction time (s)", ".3g"), ("extraction_peak_mb", "peak memory (MB)", ".0f")):
        result.append(Panel(title, cost[column], fmt, "cividis"))
    return result


def grid_dimension(grid: pd.DataFrame) -> int:
    """The largest d at which the most grid cells ran (the whole grid's largest size, not a size
    at which only the dimension figure's arms ran)."""
    counts = grid.drop_duplicates([*AXES, "d"]).groupby("d").size()
    return int(counts[counts == counts.max()].index.max())


@styled
def ablation_grid_figure(
    ablations: pd.DataFrame, ablation_per_user: pd.DataFrame | None = None, d: int | None = None, metric: str = "ndcg@100"
) -> Figure:
    """Heatmaps of the grid at dimension ``d``: rows = neighbourhood, columns = panels.

    Each panel is first step (rows) x second step (columns), annotated with its values, and has
    its own colour scale (a colour bar under its column). The paper's ImplicitSLIM cell
    (:data:`REFERENCE_CELL`) is outlined in black; with per-user scores, a ``*`` marks the cells
    whose test metric differs from it significantly (:func:`significant_cells`: Wilcoxon
    signed-rank over test users, Holm-adjusted per panel, α = :data:`ALPHA`). Skipped cells are
    hatched, marked ``(a)``, ``(b)``, ... and the legend gives each distinct reason.

    Parameters
    ----------
    ablations : pandas.DataFrame
        The tidy ``ablations.csv`` (columns ``arm``, the three axes, ``d``, ``scorer``,
        ``status``, ``reason``, ``extraction_seconds``, ``extraction_peak_mb``, ``split``,
        ``metric``, ``value``); reference arms are left out.
    ablation_per_user : pandas.DataFrame, optional
        Per-user scores of the cells (:func:`read_cell_scores`); without them nothing is marked.
    d : int or None
        Embedding dimension shown (default: :func:`grid_dimension`).
    metric : str
        The test metric of the quality panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    grid = ablations[ablations["arm"].str.startswith("ablation:")]
    d = grid_dimension(grid) if d is None else d
    grid = grid[grid["d"] == d]
    first_steps, second_steps = ordered(grid["first_step"]), ordered(grid["second_step"])
    neighbourhoods = ordered(grid["neighbourhood"])
    shown = panels(grid, metric, ablation_per_user)
    skipped = grid[grid["status"] == "skipped"].drop_duplicates(list(AXES))
    tags = {reason: string.ascii_lowercase[i] for i, reason in enumerate(dict.fromkeys(skipped["reason"]))}
    reference = REFERENCE_CELL
    ran = reference.first_step in first_steps and reference.second_step in second_steps
    outlined = (second_steps.index(reference.second_step), first_steps.index(reference.first_step)) if ran else None
    figure, axes = new_figure(PAGE, 1.3 + 1.25 * len(neighbourhoods), len(neighbourhoods), len(shown))
    for j, panel in enumerate(shown):
        vmin, vmax = panel.values.min(), panel.values.max()
        for i, neighbourhood in enumerate(neighbourhoods):
            ax = axes[i][j]
            sns.heatmap(
                panel.matrix(neighbourhood, first_steps, second_steps),
                ax=ax,
                annot=panel.labels(neighbourhood, first_steps, second_steps),
                fmt="",
                cmap=panel.cmap,
                vmin=vmin,
                vmax=vmax,
                cbar=False,
                annot_kws={"fontsize": 6},
            )
            for cell in skipped[skipped["neighbourhood"] == neighbourhood].itertuples():
                x, y = second_steps.index(cell.second_step), first_steps.index(cell.first_step)
                ax.add_patch(Rectangle((x, y), 1, 1, fill=False, hatch=HATCH, edgecolor=NEUTRAL, linewidth=0))
                ax.text(x + 0.5, y + 0.5, f"({tags[cell.reason]})", ha="center", va="center", fontsize=6)
            if neighbourhood == REFERENCE_CELL.neighbourhood and outlined is not None:
                ax.add_patch(Rectangle(outlined, 1, 1, fill=False, edgecolor="black", linewidth=2.0, clip_on=False))
            ax.set_title(panel.title if i == 0 else "")
            ax.set_xlabel("second step" if i == len(neighbourhoods) - 1 else "")
            ax.set_ylabel("")
            ax.tick_params(axis="x", labelrotation=30, labelbottom=i == len(neighbourhoods) - 1)
            ax.tick_params(axis="y", labelrotation=0, labelleft=j == 0)
        figure.colorbar(axes[0][j].collections[0], ax=list(axes[:, j]), location="bottom", shrink=0.9, aspect=25)
    for i, neighbourhood in enumerate(neighbourhoods):
        axes[i][0].set_ylabel(f"{neighbourhood}: first step")
    notes = [
        Patch(facecolor="white", edgecolor=NEUTRAL, hatch=HATCH, label=f"({tag}) skipped: " + textwrap.fill(reason, 110))
        for reason, tag in tags.items()
    ]
    if notes:
        figure.legend(handles=notes, loc="outside lower center", frameon=False)
    figure.suptitle(f"ablation grid at d = {d}", fontsize=9)
    return figure
