# Verdicts: paired comparisons of each dataset's runs on its test users, from their per-user
# scores (islim/comparisons.py); reports/<dataset>/findings.md is written from them (rules/report.smk).


rule comparisons:
    input:
        per_user=run_per_user,
    output:
        report(
            "results/{dataset}/comparisons.csv",
            caption="../reports/captions/comparisons.rst",
            category="{dataset}",
            subcategory="comparisons",
            labels={"dataset": "{dataset}", "table": "paired comparisons"},
        ),
    log:
        "logs/comparisons/{dataset}.log",
    benchmark:
        "results/benchmarks/comparisons/{dataset}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=60,
    params:
        settings=config["comparisons"],
        code=code("comparisons"),
    script:
        "../workflow_scripts/comparisons.py"
