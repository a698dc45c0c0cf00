"""Snakemake adapter: one cell of the ablation grid, or a reference arm (at one seed) -> one record
per scorer (or skipped records) and the selected points' per-user scores."""

from pathlib import Path

from islim.ablations import ablation_cell, write_cell
from islim.data.split import load_split
from islim.jobs import job

with job(snakemake):
    split = load_split(Path(snakemake.input.split[0]).parent)
    result = ablation_cell(
        snakemake.wildcards.dataset,
        split,
        snakemake.params.arm,
        int(snakemake.wildcards.d),
        snakemake.params.axis_grids,
        snakemake.params.scorers,
        seed=snakemake.params.seed,
        batch_size=snakemake.params.batch_size,
        metric_settings=snakemake.params.metrics,
    )
    write_cell(result, snakemake.output.records, snakemake.output.per_user)
