"""Snakemake adapter: average a stochastic reference arm's runs over the seeds (records and per-user scores)."""

from islim.ablations import read_cell, seed_mean, write_cell
from islim.jobs import job

with job(snakemake):
    runs = [read_cell(records, per_user) for records, per_user in zip(snakemake.input.records, snakemake.input.per_user, strict=True)]
    write_cell(seed_mean(runs, snakemake.params.seeds), snakemake.output.records, snakemake.output.per_user)
