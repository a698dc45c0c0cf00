"""Snakemake adapter of rule scaling_slopes: the log-log slopes the scaling figure's legend shows,
as a table beside the figure."""

from islim.jobs import job
from islim.slopes import write_slopes

with job(snakemake):
    write_slopes(snakemake.input[0], snakemake.output[0])
