"""Snakemake adapter: test NDCG@100 against the embedding dimension d (paper Figure 1)."""

from pathlib import Path

import pandas as pd

from islim.jobs import job
from islim.plotting import dimension_figure, save_figure

with job(snakemake):
    figure = dimension_figure(pd.read_csv(snakemake.input.ablations), pd.read_csv(snakemake.input.metrics))
    save_figure(figure, Path(snakemake.output.png).with_suffix(""))
