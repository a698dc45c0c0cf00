from islim.embeddings.registry import stochastic_arms
from islim.evaluate import dataset_metric_settings

# Reference arms run once (deterministic) or once per top-level `seeds`, then averaged (stochastic:
# the arms registry's `stochastic` flag).
SEEDED_REFERENCES = stochastic_arms("reference")
UNSEEDED_REFERENCES = [r for r in arms_of("reference") if r not in SEEDED_REFERENCES]


rule ablation_cell:
    input:
        split=ablation_split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        records="results/{dataset}/ablations/{neighbourhood}.{first_step}.{second_step}.d{d}.json",
        per_user="results/{dataset}/per_user/{neighbourhood}.{first_step}.{second_step}.d{d}.parquet",
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
        arm=lambda wildcards: cell_arm(wildcards),
        axis_grids=lambda wildcards: ablation_cell_grids(ABLATIONS, cell_arm(wildcards)),
        scorers=ABLATIONS["scorers"],
        seed=ABLATIONS["seed"],
        batch_size=config["eval_batch_size"],
        # The dataset's metrics and selection metric (config `metrics`), as every run's.
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("ablation_cell"),
    script:
        "../workflow_scripts/ablation_cell.py"


rule ablation_reference:
    input:
        split=ablation_split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        records="results/{dataset}/ablations/reference.{reference}.d{d}.json",
        per_user="results/{dataset}/per_user/reference.{reference}.d{d}.parquet",
    log:
        "logs/ablations/{dataset}/reference.{reference}.d{d}.log",
    benchmark:
        "results/benchmarks/ablations/{dataset}/reference.{reference}.d{d}.tsv"
    wildcard_constraints:
        reference="|".join(UNSEEDED_REFERENCES),
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
        # The dataset's metrics and selection metric (config `metrics`), as every run's.
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("ablation_cell"),
    script:
        "../workflow_scripts/ablation_cell.py"


# One seed of a stochastic reference arm; ablation_seed_mean averages the seeds.
rule ablation_reference_seed:
    input:
        split=ablation_split_files,
        stats="data/processed/{dataset}/stats.json",
    output:
        records="results/{dataset}/ablations/seeds/reference.{reference}.d{d}.s{seed}.json",
        per_user="results/{dataset}/ablations/seeds/reference.{reference}.d{d}.s{seed}.parquet",
    log:
        "logs/ablations/{dataset}/reference.{reference}.d{d}.s{seed}.log",
    benchmark:
        "results/benchmarks/ablations/{dataset}/reference.{reference}.d{d}.s{seed}.tsv"
    wildcard_constraints:
        reference="|".join(SEEDED_REFERENCES),
        seed=r"\d+",
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
        seed=lambda wildcards: int(wildcards.seed),
        batch_size=config["eval_batch_size"],
        # The dataset's metrics and selection metric (config `metrics`), as every run's.
        metrics=lambda wildcards: dataset_metric_settings(config, wildcards.dataset),
        code=code("ablation_cell"),
    script:
        "../workflow_scripts/ablation_cell.py"


rule ablation_seed_mean:
    input:
        records=expand(
            "results/{{dataset}}/ablations/seeds/reference.{{reference}}.d{{d}}.s{seed}.json",
            seed=config["seeds"],
        ),
        per_user=expand(
            "results/{{dataset}}/ablations/seeds/reference.{{reference}}.d{{d}}.s{seed}.parquet",
            seed=config["seeds"],
        ),
    output:
        records="results/{dataset}/ablations/reference.{reference}.d{d}.json",
        per_user="results/{dataset}/per_user/reference.{reference}.d{d}.parquet",
    log:
        "logs/ablations/{dataset}/reference.{reference}.d{d}.log",
    benchmark:
        "results/benchmarks/ablations/{dataset}/reference.{reference}.d{d}.tsv"
    wildcard_constraints:
        reference="|".join(SEEDED_REFERENCES),
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        seeds=config["seeds"],
        code=code("ablation_seed_mean"),
    script:
        "../workflow_scripts/ablation_seed_mean.py"


rule ablation_table:
    input:
        ablation_table_cells,
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
