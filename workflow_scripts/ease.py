"""Snakemake adapter: select EASE's lambda on validation, write its record, the sweep table and the
per-user scores of the kept lambda."""

from islim.fileio import write_csv, write_parquet
from islim.jobs import job
from islim.pipeline import select_ease
from islim.records import read_record, write_record
from islim.training import read_point

with job(snakemake):
    inputs = snakemake.input
    results = [read_point(record, None, per_user) for record, per_user in zip(inputs.records, inputs.per_user)]
    popularity = read_record(inputs.popularity[0]) if inputs.popularity else None
    record, sweep, per_user = select_ease(
        snakemake.wildcards.dataset, snakemake.params.lambda_grid, results, popularity, monitor=snakemake.params.metrics["select"]
    )
    write_csv(snakemake.output.sweep, sweep)
    write_parquet(snakemake.output.per_user, per_user)
    write_record(snakemake.output.record, record)
