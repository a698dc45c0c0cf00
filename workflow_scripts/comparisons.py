"""Snakemake adapter: paired comparisons of a dataset's runs on its test users (comparisons.csv), with
the config's `comparisons` settings (bootstrap resamples, confidence, seed, paired test)."""

from islim.comparisons import compare_runs, read_per_user
from islim.fileio import write_csv
from islim.jobs import job

with job(snakemake):
    settings = snakemake.params.settings
    per_user = read_per_user(snakemake.input.per_user)
    table = compare_runs(
        per_user,
        n_resamples=settings["n_resamples"],
        confidence=settings["confidence"],
        seed=settings["seed"],
        method=settings["test"],
    )
    write_csv(snakemake.output[0], table)
