"""Snakemake adapter: time and memory against the item count (log-log, fitted slopes)."""

from pathlib import Path

import pandas as pd

from islim.jobs import job
from islim.plotting import save_figure, scaling_figure

with job(snakemake):
    figure = scaling_figure(pd.read_csv(snakemake.input.scaling))
    save_figure(figure, Path(snakemake.output.png).with_suffix(""))
