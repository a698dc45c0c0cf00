"""Snakemake adapter: gather one dataset's run records into a tidy metrics.csv."""

from islim.jobs import job
from islim.records import aggregate

with job(snakemake):
    aggregate(list(snakemake.input), snakemake.output[0])
