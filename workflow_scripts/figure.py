"""Snakemake adapter of rule figure: draw the report figure named by the wildcard (an entry of
islim/plotting/registry.py) from its inputs, and write it as PNG and PDF."""

from pathlib import Path

from islim.jobs import job
from islim.plotting.registry import FIGURES, draw
from islim.plotting.style import save_figure

with job(snakemake):
    figure = FIGURES[snakemake.wildcards.figure]
    drawn = draw(figure, {name: getattr(snakemake.input, name) for name in figure.inputs}, snakemake.params.metric)
    save_figure(drawn, Path(snakemake.output.png).with_suffix(""))
