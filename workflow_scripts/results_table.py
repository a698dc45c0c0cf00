"""Snakemake adapter: test metrics of every model beside popularity's and the published numbers
(CSV, Markdown, LaTeX, and an HTML page for the report)."""

from pathlib import Path

import pandas as pd

from islim.jobs import job
from islim.results_table import results_table, write_results_table

with job(snakemake):
    metrics = pd.concat([pd.read_csv(path) for path in snakemake.input.metrics], ignore_index=True)
    scope = snakemake.wildcards.scope
    title = "Test results: all datasets" if scope == "summary" else f"Test results: {scope}"
    write_results_table(results_table(metrics), Path(snakemake.output.csv).with_suffix(""), title=title)
