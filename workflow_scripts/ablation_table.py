"""Snakemake adapter: gather the ablation grid's records into ablations.csv."""

from islim.ablations import write_ablation_table
from islim.jobs import job

with job(snakemake):
    write_ablation_table(list(snakemake.input), snakemake.output[0])
