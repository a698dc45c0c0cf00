"""Snakemake adapter: select a model variant's grid point on validation (mean over seeds), write its
record, curve and per-user scores."""

from islim.fileio import write_csv, write_parquet
from islim.jobs import job
from islim.records import read_record, write_record
from islim.training import read_point, select_run

with job(snakemake):
    inputs = snakemake.input
    results = [read_point(*paths) for paths in zip(inputs.records, inputs.curves, inputs.per_user)]
    popularity = read_record(inputs.popularity[0]) if inputs.popularity else None
    record, curve, per_user = select_run(
        snakemake.wildcards.dataset,
        snakemake.wildcards.model,
        snakemake.wildcards.variant,
        snakemake.params.grid,
        results,
        popularity,
        monitor=snakemake.params.metrics["select"],
    )
    write_csv(snakemake.output.curve, curve)
    write_parquet(snakemake.output.per_user, per_user)
    write_record(snakemake.output.record, record)
