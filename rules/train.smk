# Training runs (model x variant): one job per grid point x seed, then a selection on validation.
from islim.evaluate import dataset_metric_settings


rule train_point:
    input:
        split=split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        record="results/{dataset}/points/{model}-{variant}/{point}.json",
        curve="results/{dataset}/points/{model}-{variant}/{point}.curve.csv",
        per_user="results/{dataset}/points/{model}-{variant}/{point}.per_user.parquet",
    log:
        "logs/train_point/{dataset}/{model}-{variant}/{point}.log",
    benchmark:
        "results/benchmarks/train_point/{dataset}/{model}-{variant}/{point}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: config["threads"]
    resources:
        mem_mb=train_point_mem,
        runtime=240,
        # GPUs from the model registry: 1 for models that train on one (SLURM: --gpus=1).
        gpu=lambda wildcards: int(uses_gpu(wildcards.model)),
    params:
        # The point's settings, grid values and seed only (islim.config.point_settings).
        job=training_point,
        batch_size=config["eval_batch_size"],
        # Per-epoch checkpoint of the deep models (not an output): a rerun after a crash resumes.
        checkpoint="results/{dataset}/checkpoints/{model}-{variant}.{point}.ckpt.pt",
        # The metrics of the dataset's protocol and the selection metric (config `metrics`).
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("train_point"),
    script:
        "../workflow_scripts/train_point.py"


rule train:
    input:
        records=point_files("json"),
        curves=point_files("curve.csv"),
        per_user=point_files("per_user.parquet"),
        popularity=popularity_record,
    output:
        record="results/{dataset}/runs/{model}-{variant}.json",
        curve="results/{dataset}/curves/{model}-{variant}.csv",
        per_user="results/{dataset}/per_user/{model}-{variant}.parquet",
    log:
        "logs/train/{dataset}/{model}-{variant}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{model}-{variant}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        grid=lambda wildcards: training_variant(
            config, wildcards.dataset, wildcards.model, wildcards.variant
        )["grid"],
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("train"),
    script:
        "../workflow_scripts/train.py"
