# EASE's lambda sweep: one job per lambda, then the selection on validation.
from islim.evaluate import dataset_metric_settings


rule ease_point:
    input:
        split=split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        record="results/{dataset}/points/ease/{point}.json",
        per_user="results/{dataset}/points/ease/{point}.per_user.parquet",
    log:
        "logs/ease_point/{dataset}/{point}.log",
    benchmark:
        "results/benchmarks/ease_point/{dataset}/{point}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: config["threads"]
    resources:
        mem_mb=ease_mem,
        runtime=120,
    params:
        lam=ease_lambda,
        dtype=lambda wildcards: ease_settings(config, wildcards.dataset)["dtype"],
        batch_size=config["eval_batch_size"],
        # The metrics of the dataset's protocol and the selection metric (config `metrics`).
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("ease_point"),
    script:
        "../workflow_scripts/ease_point.py"


rule ease:
    input:
        records=ease_point_files("json"),
        per_user=ease_point_files("per_user.parquet"),
        popularity=popularity_record,
    output:
        record="results/{dataset}/runs/ease.json",
        sweep=report(
            "results/{dataset}/ease_sweep.csv",
            caption="../reports/captions/ease_sweep.rst",
            category="{dataset}",
            subcategory="EASE",
            labels={"dataset": "{dataset}", "table": "EASE lambda sweep"},
        ),
        per_user="results/{dataset}/per_user/ease.parquet",
    log:
        "logs/ease/{dataset}.log",
    benchmark:
        "results/benchmarks/ease/{dataset}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        lambda_grid=lambda wildcards: ease_settings(config, wildcards.dataset)[
            "lambda_grid"
        ],
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("ease"),
    script:
        "../workflow_scripts/ease.py"
