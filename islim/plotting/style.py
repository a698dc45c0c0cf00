"""The one style of every islim figure, and deterministic, atomic saving.

Figures are sized for a two-column paper (``COLUMN`` = 3.4 in, ``PAGE`` = 7.0 in wide) with
7-9 pt text, the colour-blind-safe :data:`PALETTE` and a white grid. Every model (model registry)
and every reference arm and paper cell (arms registry) owns one entry of the palette, the same in
every figure (:func:`model_style`, :func:`arm_style`). Figure
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

from islim.embeddings.registry import STYLED_ARMS
from islim.fileio import atomic_path
from islim.models.registry import MODELS

COLUMN = 3.4  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the full text width
#: Paul Tol's "muted" qualitative scheme (P. Tol, "Colour Schemes", SRON/EPS/TN/09-002, and
#: https://personal.sron.nl/~pault/): nine hues that stay distinct in normal and colour-blind
#: vision, in Tol's order.
TOL_MUTED = ("#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499")
#: Black and four colours of Tol's other schemes (high contrast: blue, yellow; light: orange,
#: pink) that keep every pair of the palette at least 10 CIELAB ΔE apart in simulated protanopia,
#: deuteranopia and tritanopia (Machado et al. 2009) and 20 in normal vision (checked by
#: tests/test_plotting.py): nine hues do not cover every model and arm.
TOL_EXTRA = ("#000000", "#004488", "#DDAA33", "#EE8866", "#FFAABB")
#: The figures' palette: a registry ``colour`` is an index into it; each model, reference arm and
#: paper cell owns a distinct entry (a new one extends ``TOL_EXTRA`` with a Tol colour that keeps
#: the distances above).
PALETTE = TOL_MUTED + TOL_EXTRA
NEUTRAL = "#BBBBBB"  # Tol's grey, for context lines (arms not singled out); owned by nothing
#: Models drawn as horizontal reference lines (EASE and the sanity baselines).
REFERENCE_MODELS = ("ease", "itemknn", "popularity")


def model_style(name: str) -> dict[str, object]:
    """Colour and marker of model ``name`` from the model registry (unknown models: grey circles)."""
    spec = MODELS.get(name)
    if spec is None:
        return {"color": NEUTRAL, "marker": "o"}
    return {"color": PALETTE[spec.colour], "marker": spec.marker}


def arm_style(name: str) -> dict[str, object] | None:
    """Colour, marker and label of a reference arm (``"reference:svd"``) or a paper cell
    (``"ablation:all/ease/implicit"``) from the arms registry; ``None`` for any other arm."""
    entry = STYLED_ARMS.get(name)
    if entry is None:
        return None
    return {"color": PALETTE[entry.colour], "marker": entry.marker, "label": entry.label}


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
