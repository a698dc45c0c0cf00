# islim: the ImplicitSLIM benchmark workflow.
# download -> preprocess/split -> EASE lambda sweep, ablation grid, model training -> evaluation ->
# aggregation -> report (figures and tables).
from snakemake.utils import min_version

min_version("9.27")


configfile: "config.yaml"


include: "rules/common.smk"


report: "reports/workflow.rst"


include: "rules/data.smk"
include: "rules/ease.smk"
include: "rules/ablations.smk"
include: "rules/train.smk"
include: "rules/aggregate.smk"
include: "rules/verdicts.smk"
include: "rules/report.smk"
include: "rules/scaling.smk"


# Cheap rules (and downloads: compute nodes often lack internet) run on the submitting host.
localrules:
    all,
    fetch,
    ease,
    train,
    ablation_table,
    aggregate,
    figure,
    results_table,
    findings,
    provenance,
    figures,
    scaling_slopes,
    scaling,


rule all:
    default_target: True
    input:
        final_targets(),
