"""Snakemake adapter: package versions, raw-data checksums and every setting of this run (CSV, and an
HTML page for the report)."""

import pandas as pd

from islim.fileio import write_csv, write_text
from islim.jobs import job
from islim.provenance import provenance_page, provenance_table, settings_table

with job(snakemake):
    table = pd.concat([provenance_table(list(snakemake.input.manifests)), settings_table(snakemake.params.settings)], ignore_index=True)
    write_csv(snakemake.output.csv, table)
    write_text(snakemake.output.html, provenance_page(table))
