"""Snakemake adapter: the ablation grid's quality beside its extraction time and memory."""

from pathlib import Path

import pandas as pd

from islim.jobs import job
from islim.plotting import ablation_grid_figure, save_figure

with job(snakemake):
    figure = ablation_grid_figure(pd.read_csv(snakemake.input.ablations))
    save_figure(figure, Path(snakemake.output.png).with_suffix(""))
