"""Snakemake adapter: package versions and raw-data checksums of this run."""

from islim.fileio import write_csv
from islim.jobs import job
from islim.provenance import provenance_table

with job(snakemake):
    write_csv(snakemake.output[0], provenance_table(list(snakemake.input.manifests)))
