"""Snakemake adapter: a reference arm (random or SVD embeddings) of the ablation grid."""

from pathlib import Path

from islim.ablations import reference_cell
from islim.data.split import load_split
from islim.jobs import job
from islim.records import write_records

with job(snakemake):
    split = load_split(Path(snakemake.input.split[0]).parent)
    records = reference_cell(
        snakemake.wildcards.dataset,
        split,
        snakemake.wildcards.reference,
        int(snakemake.wildcards.d),
        snakemake.params.scorers,
        seed=snakemake.params.seed,
        batch_size=snakemake.params.batch_size,
    )
    write_records(snakemake.output[0], records)
