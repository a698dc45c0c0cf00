"""Snakemake adapter: train one model variant (grid searched on validation), write record + curve.

Deep models checkpoint every epoch under ``params.checkpoint_dir``; a rerun after a crash resumes.
"""

from pathlib import Path

from islim.data.split import load_split
from islim.fileio import write_csv
from islim.jobs import job
from islim.records import write_record
from islim.training import train_run

with job(snakemake):
    model_config = snakemake.params.model_config
    variant = snakemake.wildcards.variant
    record, curve = train_run(
        snakemake.wildcards.dataset,
        load_split(Path(snakemake.input.split[0]).parent),
        snakemake.wildcards.model,
        variant,
        model_config.get("params", {}),
        model_config["variants"][variant],
        model_config.get("grid", {}),
        batch_size=snakemake.params.batch_size,
        checkpoint_dir=snakemake.params.checkpoint_dir,
    )
    write_csv(snakemake.output.curve, curve)
    write_record(snakemake.output.record, record)
