"""Snakemake adapter of rule scaling_measure: time and memory of EASE, SLIM-LLE and ImplicitSLIM
against the item count on this machine, with the machine, BLAS libraries and date beside."""

from islim.jobs import job
from islim.scaling import write_scaling

with job(snakemake) as logger:
    write_scaling(snakemake.params.settings, snakemake.threads, snakemake.output.csv, snakemake.output.machine, log=logger.info)
