"""The report's figures: one entry per figure, from which the workflow derives everything else.

An entry (:class:`ReportFigure`) names the figure, the function drawing it, the aggregated results
it reads (:data:`SOURCES`), whether it is drawn per dataset or once for the summary, and its label
in the report. From :data:`FIGURES` the workflow derives its targets (``report_targets`` in
``rules/common.smk``), the inputs, log, benchmark and report marking of its one generic rule
(``rule figure`` in ``rules/report.smk``) and the wildcard values that rule accepts;
``workflow_scripts/figure.py`` calls :func:`draw`.

Files of a figure ``name`` (all derived from the entry):

* ``reports/<dataset>/<name>.png`` and ``.pdf`` (scope ``"dataset"``) or
  ``reports/summary/<name>.png`` and ``.pdf`` (scope ``"summary"``);
* its report caption ``reports/captions/<name>.rst`` (written by hand, required);
* ``logs/report/<scope>/<name>.log`` and ``results/benchmarks/report/<scope>/<name>.tsv``.

A figure is drawn only when the workflow stages producing its inputs run (:attr:`ReportFigure.stages`):
``ablations`` (config ``ablations.activate``), ``training`` (config ``training.activate``) and
``scaling`` (never in the default run: the opt-in target ``snakemake scaling`` measures this
machine and draws it, see ``rules/scaling.smk``).

This module imports no plotting library: the workflow reads it at DAG-construction time. The
figure modules (matplotlib, seaborn, pandas) are imported by :func:`drawing_function` only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Workflow stages a figure's inputs can depend on (see the module docstring).
STAGES = ("ablations", "training", "scaling")
#: ``dataset``: one figure per dataset in ``reports/<dataset>/``; ``summary``: one in ``reports/summary/``.
SCOPES = ("dataset", "summary")


@dataclass(frozen=True)
class Source:
    """An aggregated result that figures read, passed to the figure function as one DataFrame.

    Attributes
    ----------
    description : str
        The file(s), as the workflow writes them.
    stage : str or None
        The workflow stage producing it (one of :data:`STAGES`); ``None``: always produced.
    reader : {"table", "curves", "cells"}
        ``"table"``: CSV file(s), concatenated; ``"curves"``: training-curve CSVs, read by
        :func:`islim.plotting.convergence.read_curves` (adds ``model`` and ``variant``);
        ``"cells"``: per-user parquet tables of ablation jobs, read by
        :func:`islim.plotting.ablation_grid.read_cell_scores` (adds ``arm`` and ``d``).
    """

    description: str
    stage: str | None
    reader: Literal["table", "curves", "cells"] = "table"


#: The inputs a figure can read, by the name of the figure function's keyword argument. For a
#: ``summary`` figure, a per-dataset source is the concatenation over the run's datasets.
SOURCES: dict[str, Source] = {
    "metrics": Source("results/<dataset>/metrics.csv: every run's validation and test metrics (tidy)", None),
    "ablations": Source("results/<dataset>/ablations.csv: every ablation cell and reference arm (tidy)", "ablations"),
    "curves": Source("results/<dataset>/curves/<model>-<variant>.csv: one training curve per run", "training", "curves"),
    "ablation_per_user": Source(
        "results/<dataset>/per_user/<cell>.parquet: per-user validation and test scores of every ablation job", "ablations", "cells"
    ),
    "scaling": Source("results/summary/scaling.csv: cost against the item count on this machine (islim.scaling)", "scaling"),
}


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report.

    Attributes
    ----------
    name : str
        File stem of the figure and of its caption ``reports/captions/<name>.rst`` (letters,
        digits and ``_``).
    draw : str
        ``"<module>.<function>"`` under :mod:`islim.plotting`; the function takes one keyword
        argument per input (a DataFrame, see :data:`SOURCES`) and returns a matplotlib Figure.
    inputs : tuple of str
        Names of :data:`SOURCES` the figure reads.
    label : str
        The figure's report subcategory and ``figure`` label.
    scope : {"dataset", "summary"}
        See :data:`SCOPES`.
    needs : tuple of str
        Stages the figure needs beyond those of its inputs (rarely needed).
    metric : bool
        The figure function also takes ``metric``: the selection metric of the scope's dataset
        (its protocol's ``select``, e.g. ``ndcg@100`` for held-out users, ``ndcg@20`` per-user).
    """

    name: str
    draw: str
    inputs: tuple[str, ...]
    label: str
    scope: Literal["dataset", "summary"] = "dataset"
    needs: tuple[str, ...] = ()
    metric: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.isascii():
            raise ValueError(f"figure name {self.name!r}: expected letters, digits and '_' (it is a file name and a wildcard value)")
        if self.scope not in SCOPES:
            raise ValueError(f"figure {self.name}: scope {self.scope!r}, expected one of {SCOPES}")
        unknown = [name for name in self.inputs if name not in SOURCES]
        if unknown or not self.inputs:
            raise ValueError(f"figure {self.name}: inputs {list(self.inputs)}; expected one or more of {list(SOURCES)}")
        if bad := [stage for stage in self.needs if stage not in STAGES]:
            raise ValueError(f"figure {self.name}: needs {bad}, expected stages among {STAGES}")
        module, _, function = self.draw.partition(".")
        if not module or not function or "." in function:
            raise ValueError(f"figure {self.name}: draw {self.draw!r}, expected '<module>.<function>' under islim.plotting")

    @property
    def stages(self) -> tuple[str, ...]:
        """The workflow stages that must run for the figure to be drawn (its inputs' and :attr:`needs`)."""
        stages = [SOURCES[name].stage for name in self.inputs] + list(self.needs)
        return tuple(stage for stage in STAGES if stage in stages)


#: Every figure of the report, in report order.
FIGURES: dict[str, ReportFigure] = {
    figure.name: figure
    for figure in (
        ReportFigure("dimension", "dimension.dimension_figure", ("ablations", "metrics"), "embedding dimension", metric=True),
        ReportFigure("convergence", "convergence.convergence_figure", ("curves",), "convergence", metric=True),
        ReportFigure(
            "ablation_grid", "ablation_grid.ablation_grid_figure", ("ablations", "ablation_per_user"), "ablation grid", metric=True
        ),
        ReportFigure("scaling", "scaling.scaling_figure", ("scaling",), "cost scaling", scope="summary"),
    )
}


def drawing_function(figure: ReportFigure) -> Callable[..., Figure]:
    """The function drawing ``figure`` (imports the figure modules, hence matplotlib and seaborn).

    Every figure module is imported here by a literal statement: :mod:`islim.codehash` follows it,
    so the workflow's ``code`` param of rule ``figure`` covers every figure's code.
    """
    import islim.plotting
    from islim.plotting import ablation_grid, convergence, dimension, scaling  # noqa: F401  (one name per figure module)

    module_name, _, function_name = figure.draw.partition(".")
    module = getattr(islim.plotting, module_name, None)
    if module is None:
        raise LookupError(
            f"figure {figure.name}: module islim.plotting.{module_name} is not imported by drawing_function; add it to its import line"
        )
    function = getattr(module, function_name, None)
    if function is None:
        raise LookupError(f"figure {figure.name}: islim.plotting.{module_name} has no function {function_name!r}")
    return function


def read_source(name: str, paths: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The DataFrame of source ``name`` (:data:`SOURCES`) from its file(s) ``paths``."""
    import pandas as pd

    from islim.plotting.ablation_grid import read_cell_scores
    from islim.plotting.convergence import read_curves

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise FileNotFoundError(f"figure input {name!r}: no files (is its workflow stage active?)")
    if SOURCES[name].reader == "curves":
        return read_curves(paths)
    if SOURCES[name].reader == "cells":
        return read_cell_scores(paths)
    frames = [pd.read_csv(path) for path in paths]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def draw(
    figure: ReportFigure | str, paths: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]], metric: str | None = None
) -> Figure:
    """Draw ``figure`` (an entry or its name) from the files of each of its inputs.

    Parameters
    ----------
    figure : ReportFigure or str
        An entry or a key of :data:`FIGURES`.
    paths : mapping
        For each name in ``figure.inputs``, its file or files (several for the curves, or for a
        summary figure reading a per-dataset source).
    metric : str, optional
        The selection metric passed to a figure that takes one (:attr:`ReportFigure.metric`);
        ``None``: the figure function's default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = FIGURES[figure] if isinstance(figure, str) else figure
    missing = [name for name in figure.inputs if name not in paths]
    if missing:
        raise KeyError(f"figure {figure.name}: no files given for inputs {missing}")
    options = {"metric": metric} if figure.metric and metric is not None else {}
    return drawing_function(figure)(**{name: read_source(name, paths[name]) for name in figure.inputs}, **options)
