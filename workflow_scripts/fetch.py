"""Snakemake adapter: fetch (download, generate or locate) one dataset's raw file."""

from pathlib import Path

from islim.jobs import job
from islim.pipeline import fetch

with job(snakemake):
    fetch(snakemake.wildcards.dataset, snakemake.params.entry, Path(snakemake.output[0]).parent, mirror=snakemake.params.mirror)
