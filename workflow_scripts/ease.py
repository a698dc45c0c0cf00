"""Snakemake adapter: EASE lambda sweep on validation, test metrics for the selected lambda."""

from pathlib import Path

from islim.fileio import write_csv
from islim.jobs import job
from islim.pipeline import ease_sweep
from islim.records import write_record

with job(snakemake):
    settings = snakemake.params.settings
    record, sweep = ease_sweep(
        snakemake.wildcards.dataset,
        Path(snakemake.input.stats).parent,
        settings["lambda_grid"],
        settings["dtype"],
        snakemake.params.batch_size,
    )
    write_csv(snakemake.output.sweep, sweep)
    write_record(snakemake.output.record, record)
