rule ease:
    input:
        split=split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        record="results/{dataset}/runs/ease.json",
        sweep=report(
            "results/{dataset}/ease_sweep.csv",
            caption="../reports/captions/ease_sweep.rst",
            category="{dataset}",
            subcategory="EASE",
            labels={"dataset": "{dataset}", "table": "EASE lambda sweep"},
        ),
    log:
        "logs/ease/{dataset}.log",
    benchmark:
        "results/benchmarks/ease/{dataset}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: config["threads"]
    resources:
        mem_mb=ease_mem,
        runtime=120,
    params:
        settings=lambda wildcards: ease_settings(config, wildcards.dataset),
        batch_size=config["eval_batch_size"],
        code=code("ease"),
    script:
        "../workflow_scripts/ease.py"
