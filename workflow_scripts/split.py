"""Snakemake adapter: preprocess one dataset and write its strong-generalisation split."""

from pathlib import Path

from islim.jobs import job
from islim.pipeline import prepare

with job(snakemake):
    prepare(snakemake.wildcards.dataset, snakemake.params.entry, snakemake.input.manifest, Path(snakemake.output.stats).parent)
