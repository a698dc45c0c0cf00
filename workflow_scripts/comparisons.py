"""Snakemake adapter: paired comparisons of a dataset's runs on its test users (comparisons.csv), with
islim.comparisons' defaults: 10,000 bootstrap resamples (seed 0), Wilcoxon signed-rank, Holm per metric."""

from islim.comparisons import compare_runs, read_per_user
from islim.fileio import write_csv
from islim.jobs import job

with job(snakemake):
    per_user = read_per_user(snakemake.input.per_user)
    table = compare_runs(per_user)
    write_csv(snakemake.output[0], table)
