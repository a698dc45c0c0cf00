"""The figures of the islim report: one function per figure, each taking the aggregated tables
(pandas DataFrames) and returning a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes
it as PNG and PDF, atomically and byte-reproducibly.

* :func:`dimension_figure` — test NDCG@100 against the embedding size d (paper Figure 1);
* :func:`convergence_figure` — validation NDCG@100 against epochs and seconds (paper Figure 2);
* :func:`ablation_grid_figure` — the ablation grid's quality beside its extraction cost;
* :func:`scaling_figure` — time and memory against the item count, with log-log slopes.

:mod:`islim.plotting.registry` lists the report's figures (what each reads, where it goes); the
workflow reads it at DAG-construction time, so this package imports its figure modules (and with
them matplotlib and seaborn) only when one of the names below is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from islim.plotting.ablation_grid import ablation_grid_figure
    from islim.plotting.convergence import convergence_figure, read_curves
    from islim.plotting.dimension import dimension_figure
    from islim.plotting.scaling import scaling_figure
    from islim.plotting.style import save_figure

#: Public name -> the submodule defining it.
_EXPORTS = {
    "ablation_grid_figure": "ablation_grid",
    "convergence_figure": "convergence",
    "dimension_figure": "dimension",
    "read_curves": "convergence",
    "save_figure": "style",
    "scaling_figure": "scaling",
}

__all__ = ["ablation_grid_figure", "convergence_figure", "dimension_figure", "read_curves", "save_figure", "scaling_figure"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
