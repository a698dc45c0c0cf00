"""Snakemake adapter: validation NDCG@100 against epochs and seconds, with and without ImplicitSLIM."""

from pathlib import Path

from islim.jobs import job
from islim.plotting import convergence_figure, read_curves, save_figure

with job(snakemake):
    figure = convergence_figure(read_curves(list(snakemake.input.curves)))
    save_figure(figure, Path(snakemake.output.png).with_suffix(""))
