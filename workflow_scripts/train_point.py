"""Snakemake adapter: train one grid point x seed of a model variant, write its record, curve and
per-user scores (a point that fails numerically is written as failed, not raised).

Deep models checkpoint every epoch at ``params.checkpoint``; a rerun after a crash resumes, and the
checkpoint is deleted once the outputs are written.
"""

from pathlib import Path

from islim.data.split import load_split
from islim.evaluate import settings_metrics
from islim.jobs import job
from islim.training import train_point, write_point

with job(snakemake):
    point = snakemake.params.job
    result = train_point(
        snakemake.wildcards.dataset,
        load_split(Path(snakemake.input.split[0]).parent),
        snakemake.wildcards.model,
        snakemake.wildcards.variant,
        point["settings"],
        point["point"],
        point["seed"],
        batch_size=snakemake.params.batch_size,
        checkpoint=snakemake.params.checkpoint,
        metrics=settings_metrics(snakemake.params.metrics),
        monitor=snakemake.params.metrics["select"],
    )
    write_point(result, snakemake.output.record, snakemake.output.curve, snakemake.output.per_user)
    Path(snakemake.params.checkpoint).unlink(missing_ok=True)
