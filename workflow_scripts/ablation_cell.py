"""Snakemake adapter: one cell of the ablation grid, or a reference arm -> one record per scorer (or skipped records)."""

from pathlib import Path

from islim.ablations import ablation_cell
from islim.data.split import load_split
from islim.jobs import job
from islim.records import write_records

with job(snakemake):
    split = load_split(Path(snakemake.input.split[0]).parent)
    records = ablation_cell(
        snakemake.wildcards.dataset,
        split,
        snakemake.params.arm,
        int(snakemake.wildcards.d),
        snakemake.params.axis_grids,
        snakemake.params.scorers,
        seed=snakemake.params.seed,
        batch_size=snakemake.params.batch_size,
    )
    write_records(snakemake.output[0], records)
