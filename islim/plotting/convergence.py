"""Paper Figure 2: validation quality during training, against epochs and against wall-clock time."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from islim.names import METRIC_NAMES, MODEL_NAMES
from islim.plotting.style import PAGE, model_style, new_figure, styled

#: Line style of a variant (the config's variant names); other variants take the remaining styles.
VARIANT_STYLES = {"baseline": "-", "implicit_slim": "--"}
OTHER_STYLES = (":", "-.")


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


def variant_styles(variants: list[str]) -> dict[str, str]:
    """A line style per variant: :data:`VARIANT_STYLES` first, then the others in order."""
    others = iter(OTHER_STYLES * len(variants))
    return {variant: VARIANT_STYLES.get(variant) or next(others) for variant in variants}


@styled
def convergence_figure(curves: pd.DataFrame, column: str = "val_ndcg@100") -> Figure:
    """Validation quality against epoch (left) and wall-clock seconds (right, log scale).

    One colour per model (in the paper's order) and one line style per variant, so each model's
    runs with and without ImplicitSLIM sit side by side; the legend lists models and variants
    separately.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`read_curves` output: ``model``, ``variant``, ``epoch``, ``wall_seconds`` (since
        training began) and ``column``.
    column : str
        The curve column on the y axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    present = set(curves["model"])
    models = [m for m in MODEL_NAMES if m in present] + sorted(present - set(MODEL_NAMES))
    colours = {model: model_style(model)["color"] for model in models}
    styles = variant_styles(list(dict.fromkeys(curves["variant"])))
    figure, axes = new_figure(PAGE, 2.6, 1, 2, sharey=True)
    for (model, variant), curve in curves.groupby(["model", "variant"], sort=False):
        for ax, x in zip(axes[0], ("epoch", "wall_seconds")):
            ax.plot(
                curve[x],
                curve[column],
                color=colours[model],
                linestyle=styles[variant],
                marker=model_style(model)["marker"],
                markersize=2.5,
            )
    axes[0][0].set_xlabel("epoch")
    axes[0][1].set_xlabel("wall-clock time (s)")
    axes[0][1].set_xscale("log")
    metric = column.removeprefix("val_")
    axes[0][0].set_ylabel(f"validation {METRIC_NAMES.get(metric, metric)}")
    handles = [Line2D([], [], color=colours[m], label=MODEL_NAMES.get(m, m)) for m in models]
    handles += [Line2D([], [], color="black", linestyle=s, label=v) for v, s in styles.items()]
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    return figure
