# The report: figures and tables drawn from the aggregated results only (metrics.csv,
# ablations.csv, curves), so they can be redrawn without retraining (see README, "Report").


rule plot_dimension:
    input:
        ablations="results/{dataset}/ablations.csv",
        metrics="results/{dataset}/metrics.csv",
    output:
        png=report_png("dimension", "embedding dimension"),
        pdf="reports/{dataset}/dimension.pdf",
    log:
        "logs/report/{dataset}/dimension.log",
    benchmark:
        "results/benchmarks/report/{dataset}/dimension.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        code=code("plot_dimension"),
    script:
        "../workflow_scripts/plot_dimension.py"


rule plot_convergence:
    input:
        curves=training_curves,
    output:
        png=report_png("convergence", "convergence"),
        pdf="reports/{dataset}/convergence.pdf",
    log:
        "logs/report/{dataset}/convergence.log",
    benchmark:
        "results/benchmarks/report/{dataset}/convergence.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        code=code("plot_convergence"),
    script:
        "../workflow_scripts/plot_convergence.py"


rule plot_ablation_grid:
    input:
        ablations="results/{dataset}/ablations.csv",
    output:
        png=report_png("ablation_grid", "ablation grid"),
        pdf="reports/{dataset}/ablation_grid.pdf",
    log:
        "logs/report/{dataset}/ablation_grid.log",
    benchmark:
        "results/benchmarks/report/{dataset}/ablation_grid.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        code=code("plot_ablation_grid"),
    script:
        "../workflow_scripts/plot_ablation_grid.py"


# Only a target when config report.scaling exists (see report_targets in common.smk).
rule plot_scaling:
    input:
        scaling=SCALING,
    output:
        png=report_png("scaling", "cost scaling", scope="summary"),
        pdf="reports/summary/scaling.pdf",
    log:
        "logs/report/summary/scaling.log",
    benchmark:
        "results/benchmarks/report/summary/scaling.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        code=code("plot_scaling"),
    script:
        "../workflow_scripts/plot_scaling.py"


rule results_table:
    input:
        metrics=lambda wildcards: expand(
            "results/{dataset}/metrics.csv",
            dataset=DATASETS if wildcards.scope == "summary" else [wildcards.scope],
        ),
    output:
        csv=report(
            "reports/{scope}/results.csv",
            caption="../reports/captions/results.rst",
            category="{scope}",
            subcategory="results",
            labels={"dataset": "{scope}", "table": "results vs published"},
        ),
        md="reports/{scope}/results.md",
        tex="reports/{scope}/results.tex",
    log:
        "logs/report/{scope}/results.log",
    benchmark:
        "results/benchmarks/report/{scope}/results.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        code=code("results_table"),
    script:
        "../workflow_scripts/results_table.py"


rule provenance:
    input:
        manifests=expand("data/raw/{dataset}/manifest.json", dataset=DATASETS),
    output:
        report(
            "reports/summary/provenance.csv",
            caption="../reports/captions/provenance.rst",
            category="summary",
            subcategory="provenance",
            labels={"dataset": "summary", "table": "package versions, data checksums"},
        ),
    log:
        "logs/report/summary/provenance.log",
    benchmark:
        "results/benchmarks/report/summary/provenance.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        code=code("provenance"),
    script:
        "../workflow_scripts/provenance.py"


rule figures:
    input:
        report_targets(),
