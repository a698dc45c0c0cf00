rule ablation_cell:
    input:
        split=split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        "results/{dataset}/ablations/{neighbourhood}.{first_step}.{second_step}.d{d}.json",
    log:
        "logs/ablations/{dataset}/{neighbourhood}.{first_step}.{second_step}.d{d}.log",
    benchmark:
        "results/benchmarks/ablations/{dataset}/{neighbourhood}.{first_step}.{second_step}.d{d}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=ablation_mem,
        runtime=60,
    params:
        arm=lambda wildcards: {
            "neighbourhood": wildcards.neighbourhood,
            "first_step": wildcards.first_step,
            "second_step": wildcards.second_step,
        },
        axis_grids=lambda wildcards: ablation_cell_grids(
            ABLATIONS,
            {
                "neighbourhood": wildcards.neighbourhood,
                "first_step": wildcards.first_step,
                "second_step": wildcards.second_step,
            },
        ),
        scorers=ABLATIONS["scorers"],
        seed=ABLATIONS["seed"],
        batch_size=config["eval_batch_size"],
        code=code("ablation_cell"),
    script:
        "../workflow_scripts/ablation_cell.py"


rule ablation_reference:
    input:
        split=split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        "results/{dataset}/ablations/reference.{reference}.d{d}.json",
    log:
        "logs/ablations/{dataset}/reference.{reference}.d{d}.log",
    benchmark:
        "results/benchmarks/ablations/{dataset}/reference.{reference}.d{d}.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=ablation_mem,
        runtime=30,
    params:
        arm=lambda wildcards: {"reference": wildcards.reference},
        axis_grids={},
        scorers=ABLATIONS["scorers"],
        seed=ABLATIONS["seed"],
        batch_size=config["eval_batch_size"],
        code=code("ablation_cell"),
    script:
        "../workflow_scripts/ablation_cell.py"


rule ablation_table:
    input:
        ablation_cells,
    output:
        report(
            "results/{dataset}/ablations.csv",
            caption="../reports/captions/ablations.rst",
            category="{dataset}",
            subcategory="ablations",
            labels={"dataset": "{dataset}", "table": "ablation grid"},
        ),
    log:
        "logs/ablations/{dataset}/table.log",
    benchmark:
        "results/benchmarks/ablations/{dataset}/table.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        code=code("ablation_table"),
    script:
        "../workflow_scripts/ablation_table.py"
