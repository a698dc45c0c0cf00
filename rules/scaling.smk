# The cost-scaling measurement, an opt-in target (never part of the default run: it measures the
# machine it runs on; config report.scaling sets the sizes):
#
#   snakemake scaling --cores 2
#
# results/summary/scaling.csv (time and memory of EASE, SLIM-LLE, ImplicitSLIM per item count)
# and scaling.json (machine, BLAS libraries, date), then the figure reports/summary/scaling.{png,pdf}
# (rule figure) and the slopes of its legend, reports/summary/scaling_slopes.csv.
from islim.scaling import scaling_mem_mb

SCALING = config["report"]["scaling"]


rule scaling_measure:
    output:
        csv="results/summary/scaling.csv",
        machine=report(
            "results/summary/scaling.json",
            caption="../reports/captions/scaling_machine.rst",
            category="summary",
            subcategory="cost scaling",
            labels={
                "dataset": "summary",
                "table": "machine of the scaling measurement",
            },
        ),
    log:
        "logs/scaling/measure.log",
    benchmark:
        "results/benchmarks/scaling/measure.tsv"
    conda:
        "../envs/islim.yaml"
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: scaling_mem_mb(SCALING, attempt),
        runtime=30,
    params:
        settings=SCALING,
        code=code("scaling_measure"),
    script:
        "../workflow_scripts/scaling_measure.py"


rule scaling_slopes:
    input:
        "results/summary/scaling.csv",
    output:
        report(
            "reports/summary/scaling_slopes.csv",
            caption="../reports/captions/scaling_slopes.rst",
            category="summary",
            subcategory="cost scaling",
            labels={"dataset": "summary", "table": "fitted log-log slopes"},
        ),
    log:
        "logs/report/summary/scaling_slopes.log",
    benchmark:
        "results/benchmarks/report/summary/scaling_slopes.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        code=code("scaling_slopes"),
    script:
        "../workflow_scripts/scaling_slopes.py"


rule scaling:
    input:
        "results/summary/scaling.json",
        expand("reports/summary/scaling.{ext}", ext=["png", "pdf"]),
        "reports/summary/scaling_slopes.csv",
