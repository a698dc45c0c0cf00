"""The figures of the islim report: one function per figure, each taking the aggregated tables
(pandas DataFrames) and returning a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes
it as PNG and PDF, atomically and byte-reproducibly.

* :func:`dimension_figure` — test NDCG@100 against the embedding size d (paper Figure 1);
* :func:`convergence_figure` — validation NDCG@100 against epochs and seconds (paper Figure 2);
* :func:`ablation_grid_figure` — the ablation grid's quality beside its extraction cost;
* :func:`scaling_figure` — time and memory against the item count, with log-log slopes.
"""

from islim.plotting.ablation_grid import ablation_grid_figure
from islim.plotting.convergence import convergence_figure, read_curves
from islim.plotting.dimension import dimension_figure
from islim.plotting.scaling import scaling_figure
from islim.plotting.style import save_figure

__all__ = ["ablation_grid_figure", "convergence_figure", "dimension_figure", "read_curves", "save_figure", "scaling_figure"]
