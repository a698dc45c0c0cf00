"""Snakemake adapter: the written findings of a dataset (Markdown and HTML) from its numbers, at the
config's `comparisons.alpha`."""

import pandas as pd

from islim.comparisons import run_of_file
from islim.findings import findings, write_findings
from islim.jobs import job

with job(snakemake):
    curves = {run_of_file(path): pd.read_csv(path) for path in snakemake.input.curves}
    comparisons = pd.read_csv(snakemake.input.comparisons)
    metrics = pd.read_csv(snakemake.input.metrics)
    blocks = findings(
        snakemake.wildcards.dataset, comparisons, metrics, curves, metric=snakemake.params.metric, alpha=snakemake.params.alpha
    )
    write_findings(blocks, snakemake.output.md, snakemake.output.html)
