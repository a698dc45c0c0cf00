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
        # The selection metric of the scope's dataset (figures that take one, e.g. Figure 2).
        metric=figure_metric,
    script:
        "../workflow_scripts/figure.py"


rule results_table:
    input:
        metrics=lambda wildcards: expand(
            "results/{dataset}/metrics.csv",
            dataset=DATASETS if wildcards.scope == "summary" else [wildcards.scope],
        ),
    output:
        csv="reports/{scope}/results.csv",
        md="reports/{scope}/results.md",
        tex="reports/{scope}/results.tex",
        html=report(
            "reports/{scope}/results.html",
            caption="../reports/captions/results.rst",
            category="{scope}",
            subcategory="results",
            labels={"dataset": "{scope}", "table": "results"},
        ),
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


# The written findings of a dataset (islim/findings.py): Markdown, and HTML for the report.
rule findings:
    input:
        comparisons="results/{dataset}/comparisons.csv",
        metrics="results/{dataset}/metrics.csv",
        curves=lambda wildcards: training_files(wildcards.dataset, "curves", "csv"),
    output:
        md="reports/{dataset}/findings.md",
        html=report(
            "reports/{dataset}/findings.html",
            caption="../reports/captions/findings.rst",
            category="{dataset}",
            subcategory="findings",
            labels={"dataset": "{dataset}", "table": "findings"},
        ),
    log:
        "logs/report/{dataset}/findings.log",
    benchmark:
        "results/benchmarks/report/{dataset}/findings.tsv"
    conda:
        "../envs/islim.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        metric=findings_metric,
        alpha=config["comparisons"]["alpha"],
        code=code("findings"),
    script:
        "../workflow_scripts/findings.py"


rule provenance:
    input:
        manifests=expand("data/raw/{dataset}/manifest.json", dataset=DATASETS),
    output:
        csv="reports/summary/provenance.csv",
        html=report(
            "reports/summary/provenance.html",
            caption="../reports/captions/provenance.rst",
            category="summary",
            subcategory="provenance",
            labels={"dataset": "summary", "table": "what was run"},
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
        # The configuration the run used (defaults filled in), listed setting by setting.
        settings=config,
        code=code("provenance"),
    script:
        "../workflow_scripts/provenance.py"


rule figures:
    input:
        report_targets(),
