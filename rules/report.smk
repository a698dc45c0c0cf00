# The report: figures and tables drawn from the aggregated results only (metrics.csv,
# ablations.csv, curves), so they can be redrawn without retraining (see README, "Report").


# Every figure of islim/plotting/registry.py: reports/<dataset>/<figure>.png|pdf (scope "dataset")
# or reports/summary/<figure>.png|pdf (scope "summary"), captioned by reports/captions/<figure>.rst.
rule figure:
    input:
        unpack(figure_inputs),
    output:
        png=report_png(),
        pdf="reports/{scope}/{figure}.pdf",
    log:
        "logs/report/{scope}/{figure}.log",
    benchmark:
        "results/benchmarks/report/{scope}/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(FIGURES),
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        code=code("figure"),
        caption=figure_caption,
    script:
        "../workflow_scripts/figure.py"


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
