rule aggregate:
    input:
        run_records,
    output:
        report(
            "results/{dataset}/metrics.csv",
            caption="../reports/captions/metrics.rst",
            category="{dataset}",
            subcategory="metrics",
            labels={"dataset": "{dataset}", "table": "all runs"},
        ),
    log:
        "logs/aggregate/{dataset}.log",
    benchmark:
        "results/benchmarks/aggregate/{dataset}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        code=code("aggregate"),
    script:
        "../workflow_scripts/aggregate.py"
