"""Paper Figure 2: validation quality during training, against epochs and against wall-clock time."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from islim.names import MODEL_NAMES, metric_title
from islim.plotting.dimension import draw_reference_lines
from islim.plotting.style import PAGE, REFERENCE_MODELS, model_style, new_figure, styled

#: Line style of a variant (the config's variant names); other variants (e.g. the graph models'
#: ``implicit_slim_items``, MF's ``implicit_slim_users``) take the remaining styles: dash-dot, then
#: dash-dot-dot. Dotted is left to the reference lines of the one-step models.
VARIANT_STYLES = {"baseline": "-", "implicit_slim": "--"}
OTHER_STYLES = ("-.", (0, (3, 1, 1, 1, 1, 1)))


def read_curves(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate training curves ``curves/<model>-<variant>.csv`` into one table.

    Each file has one row per epoch (``epoch``, ``wall_seconds``, ``train_loss``,
    ``val_ndcg@100``, ...); the result adds the ``model`` and ``variant`` columns from the file name.
    """
    frames = []
    for path in sorted(map(Path, paths)):
        model, variant = path.stem.split("-", 1)
        frames.append(pd.read_csv(path).assign(model=model, variant=variant))
    return pd.concat(frames, ignore_index=True)


def variant_styles(variants: list[str]) -> dict[str, str | tuple]:
    """A line style per variant: :data:`VARIANT_STYLES` first, then the others in order."""
    others = iter(OTHER_STYLES * len(variants))
    return {variant: VARIANT_STYLES.get(variant) or next(others) for variant in variants}


@styled
def convergence_figure(curves: pd.DataFrame, metric: str = "ndcg@100") -> Figure:
    """Validation quality against epoch (left) and wall-clock seconds since ``fit`` began (right,
    log scale).

    One colour per model (in the paper's order) and one line style per variant, so each model's
    runs with and without ImplicitSLIM sit side by side; the legend lists models and variants
    separately. The seconds count each run's set-up before its first epoch (an initial SVD or
    ImplicitSLIM extraction included, :class:`islim.models.base.EpochHistory`), so variants
    compare by total cost. The models of :data:`~islim.plotting.style.REFERENCE_MODELS` fitted
    in one step (a curve of one epoch) are dotted horizontal lines at their validation score.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`read_curves` output: ``model``, ``variant``, ``epoch``, ``wall_seconds`` (since
        ``fit`` began) and ``val_<metric>``.
    metric : str
        The validation metric on the y axis: the dataset's selection metric (the workflow passes
        its protocol's ``select``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    column = f"val_{metric}"
    if column not in curves.columns:
        raise KeyError(f"the training curves have no column {column!r} (validation {metric}); they have {list(curves.columns)}")
    one_step = curves.groupby("model")["epoch"].transform("nunique") == 1
    reference = curves[curves["model"].isin(REFERENCE_MODELS) & one_step]
    trained = curves.drop(reference.index)
    present = set(trained["model"])
    models = [m for m in MODEL_NAMES if m in present] + sorted(present - set(MODEL_NAMES))
    styles = variant_styles(list(dict.fromkeys(trained["variant"])))
    figure, axes = new_figure(PAGE, 2.6, 1, 2, sharey=True)
    for (model, variant), curve in trained.groupby(["model", "variant"], sort=False):
        for ax, x in zip(axes[0], ("epoch", "wall_seconds")):
            ax.plot(
                curve[x],
                curve[column],
                color=model_style(model)["color"],
                linestyle=styles[variant],
                marker=model_style(model)["marker"],
                markersize=2.5,
            )
    handles: dict[str, Line2D] = {}
    scores = {model: float(rows[column].max()) for model, rows in reference.groupby("model", sort=False)}
    for ax in axes[0]:
        draw_reference_lines(ax, {m: scores[m] for m in REFERENCE_MODELS if m in scores}, handles, "validation")
    axes[0][0].set_xlabel("epoch")
    axes[0][1].set_xlabel("wall-clock time since fit began (s)")
    axes[0][1].set_xscale("log")
    axes[0][1].xaxis.set_major_formatter(LogFormatter())  # plain numbers ("2", "30"), not 2 x 10^0
    axes[0][1].xaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.4)))
    axes[0][0].set_ylabel(f"validation {metric_title(metric)}")
    legend = [Line2D([], [], color=model_style(m)["color"], marker=model_style(m)["marker"], label=MODEL_NAMES.get(m, m)) for m in models]
    legend += [Line2D([], [], color="black", linestyle=s, label=v) for v, s in styles.items()]
    figure.legend(handles=legend + list(handles.values()), loc="outside right center", frameon=False)
    return figure
