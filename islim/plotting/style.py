"""The one style of every islim figure, and deterministic, atomic saving.

Figures are sized for a two-column paper (``COLUMN`` = 3.4 in, ``PAGE`` = 7.0 in wide) with
7-9 pt text, seaborn's colour-blind-safe ``colorblind`` palette and a white grid. Figure
functions build a :class:`matplotlib.figure.Figure` directly (no pyplot state) inside
:func:`styled`; :func:`save_figure` writes files whose bytes depend only on the figure.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import matplotlib as mpl
import seaborn as sns
from matplotlib.figure import Figure

from islim.fileio import atomic_path
from islim.models.registry import MODELS

COLUMN = 3.4  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the full text width
PALETTE = sns.color_palette("colorblind")
NEUTRAL = "0.6"  # grey of context lines (e.g. arms not singled out)


def model_style(name: str) -> dict[str, object]:
    """Colour and marker of model ``name`` from the model registry (unknown models: grey circles)."""
    spec = MODELS.get(name)
    if spec is None:
        return {"color": NEUTRAL, "marker": "o"}
    return {"color": PALETTE[spec.colour % len(PALETTE)], "marker": spec.marker}


RC = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper"),
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "figure.dpi": 100,
    "savefig.dpi": 300,
    "savefig.bbox": None,
    "pdf.fonttype": 42,  # TrueType: text stays editable and searchable in the PDF
    "svg.hashsalt": "islim",
}

#: Per-format ``savefig(metadata=...)``: no dates and no creator/producer naming a version.
METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    "svg": {"Creator": None, "Date": None},
}


def styled(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a figure function with the islim style (``RC``) in force."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs) -> Figure:
        with mpl.rc_context(RC):
            return plot(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **subplot_kw):
    """A constrained-layout figure of ``width`` x ``height`` inches and its ``(nrows, ncols)`` axes array."""
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return figure, axes


def save_figure(figure: Figure, stem: str | os.PathLike, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write ``<stem>.<format>`` for each format, atomically; reruns give byte-identical files.

    Metadata that would vary (dates, library versions) is left out and SVG ids use a fixed salt.
    Returns the written paths.
    """
    paths = []
    with mpl.rc_context(RC):
        for fmt in formats:
            path = Path(f"{os.fspath(stem)}.{fmt}")
            with atomic_path(path, suffix=f".{fmt}") as tmp:
                figure.savefig(tmp, format=fmt, metadata=METADATA[fmt])
            paths.append(path)
    return paths
