# Shared helpers: config validation, target lists, code hashes. Nothing computes here and no
# heavy library is imported at DAG-construction time.
import functools
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

import islim
from islim.codehash import code_hash
from islim.config import check_cross_fields, ease_settings, training_models
from islim.pipeline import fetch_parameters

validate(config, schema="../islim/schemas/config.schema.yaml")
check_cross_fields(config)

DATASETS = config["run_datasets"]
# The islim package the jobs import (the installed one), whose code the `code` params hash.
ISLIM_DIR = Path(islim.__file__).parent
SPLIT_PARTS = ["train", "validation_tr", "validation_te", "test_tr", "test_te"]


wildcard_constraints:
    dataset="|".join(map(str, DATASETS)),
    neighbourhood="all|knn",
    first_step="ease|lle|cooccurrence|identity",
    second_step="explicit|implicit|implicit_iterated",
    reference="random|svd",
    model="mf|plrec|multvae|recvae|hvamp",
    variant="[A-Za-z0-9_]+",
    d=r"\d+",
    scope="|".join(["summary", *map(str, DATASETS)]),


@functools.cache
def code(script):
    """Hash of the islim code that workflow_scripts/<script>.py can run (its import
    graph, see islim.codehash); passed as `params: code=` so that a change reruns it."""
    return code_hash(
        Path(workflow.basedir) / "workflow_scripts" / f"{script}.py", ISLIM_DIR
    )


ABLATIONS = config["ablations"]
ARMS = {
    axis: [arm for arm, grid in ABLATIONS.get(axis, {}).items() if grid is not None]
    for axis in ("neighbourhood", "first_step", "second_step")
}


def ablation_cells(wildcards):
    """Every cell of the ablation grid and every reference arm, for one dataset."""
    if not ABLATIONS["activate"]:
        return []
    cells = expand(
        "results/{dataset}/ablations/{neighbourhood}.{first_step}.{second_step}.d{d}.json",
        dataset=wildcards.dataset,
        neighbourhood=ARMS["neighbourhood"],
        first_step=ARMS["first_step"],
        second_step=ARMS["second_step"],
        d=ABLATIONS["dims"],
    )
    references = expand(
        "results/{dataset}/ablations/reference.{reference}.d{d}.json",
        dataset=wildcards.dataset,
        reference=ABLATIONS["references"],
        d=ABLATIONS["dims"],
    )
    return cells + references


def split_files(wildcards):
    return expand(
        "data/processed/{dataset}/{part}.npz",
        dataset=wildcards.dataset,
        part=SPLIT_PARTS,
    )


def training_files(dataset, folder, ext):
    """results/<dataset>/<folder>/<model>-<variant>.<ext> of every configured model x variant."""
    if not config["training"]["activate"]:
        return []
    models = training_models(config, dataset)
    return [
        f"results/{dataset}/{folder}/{model}-{variant}.{ext}"
        for model, settings in models.items()
        for variant in settings.get("variants", {})
    ]


def training_runs(wildcards):
    """Run records of every model x variant configured for the dataset."""
    return training_files(wildcards.dataset, "runs", "json")


def training_curves(wildcards):
    """Training curves of every model x variant configured for the dataset."""
    return training_files(wildcards.dataset, "curves", "csv")


def run_records(wildcards):
    return (
        [f"results/{wildcards.dataset}/runs/ease.json"]
        + ablation_cells(wildcards)
        + training_runs(wildcards)
    )


def dense_items_mem_mb(wildcards, input, attempt):
    """Memory for three dense float32 n_items x n_items arrays (from the split's stats), scaled by the attempt."""
    import json

    n_items = json.loads(Path(input.stats).read_text())["items"]
    return int((3 * 4 * n_items**2 / 2**20 + 1024) * attempt)


def report_png(name, kind, scope="{dataset}"):
    """reports/<scope>/<name>.png, marked for the report with reports/captions/<name>.rst."""
    return report(
        f"reports/{scope}/{name}.png",
        caption=f"../reports/captions/{name}.rst",
        category=scope,
        subcategory=kind,
        labels={"dataset": scope, "figure": kind},
    )


SCALING = config["report"]["scaling"]
if not Path(SCALING).is_file():
    logger.info(
        f"report: {SCALING} (config report.scaling) does not exist; the cost-scaling figure is skipped"
    )


def report_targets():
    """Figures (PNG + PDF) and tables of the report, drawn from the aggregated results only."""
    figures = ["dimension", "ablation_grid"] if ABLATIONS["activate"] else []
    if config["training"]["activate"]:
        figures.append("convergence")
    targets = expand(
        "reports/{dataset}/{figure}.{ext}",
        dataset=DATASETS,
        figure=figures,
        ext=["png", "pdf"],
    )
    targets += expand(
        "reports/{scope}/results.{ext}",
        scope=["summary", *DATASETS],
        ext=["csv", "md", "tex"],
    )
    targets.append("reports/summary/provenance.csv")
    if Path(SCALING).is_file():
        targets += ["reports/summary/scaling.png", "reports/summary/scaling.pdf"]
    return targets


def final_targets():
    targets = expand("results/{dataset}/metrics.csv", dataset=DATASETS)
    if ABLATIONS["activate"]:
        targets += expand("results/{dataset}/ablations.csv", dataset=DATASETS)
    return targets + report_targets()
