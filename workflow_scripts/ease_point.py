"""Snakemake adapter: fit EASE for one lambda, write its record and per-user scores (a lambda that
fails numerically is written as failed, not raised)."""

from pathlib import Path

from islim.data.split import load_split
from islim.jobs import job
from islim.pipeline import ease_point
from islim.training import write_point

with job(snakemake):
    params = snakemake.params
    split = load_split(Path(snakemake.input.split[0]).parent)
    result = ease_point(snakemake.wildcards.dataset, split, params.lam, params.dtype, params.batch_size, metric_settings=params.metrics)
    write_point(result, snakemake.output.record, None, snakemake.output.per_user)
