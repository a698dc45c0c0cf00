# Shared helpers: config validation, target lists, code hashes. Nothing computes here and no
# heavy library is imported at DAG-construction time.
import hashlib
from pathlib import Path

from snakemake.utils import validate

from islim.config import check_cross_fields, ease_settings, training_models
from islim.pipeline import fetch_parameters

validate(config, schema="../islim/schemas/config.schema.yaml")
check_cross_fields(config)

DATASETS = config["run_datasets"]
ISLIM_DIR = Path(workflow.basedir) / "islim"
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


def code_hash(*patterns):
    """sha256 over the islim sources a rule depends on, passed as a param so code changes rerun it."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(ISLIM_DIR.glob(pattern)):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CODE = {
    "fetch": code_hash("download.py", "data/synthetic.py", "pipeline.py"),
    "split": code_hash("data/*.py", "pipeline.py"),
    "ease": code_hash(
        "models/ease.py",
        "gram.py",
        "evaluate.py",
        "metrics.py",
        "records.py",
        "pipeline.py",
    ),
    "aggregate": code_hash("records.py", "evaluate.py"),
    "ablation": code_hash(
        "ablations.py",
        "embeddings/*.py",
        "models/ridge.py",
        "evaluate.py",
        "metrics.py",
        "records.py",
    ),
    "train": code_hash(
        "training.py",
        "models/linear.py",
        "models/ridge.py",
        "models/deep/*.py",
        "embeddings/*.py",
        "evaluate.py",
        "metrics.py",
        "records.py",
    ),
}

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


def training_runs(wildcards):
    """Run records of every model x variant configured for the dataset."""
    if not config["training"]["activate"]:
        return []
    models = training_models(config, wildcards.dataset)
    return [
        f"results/{wildcards.dataset}/runs/{model}-{variant}.json"
        for model, settings in models.items()
        for variant in settings.get("variants", {})
    ]


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


def final_targets():
    targets = expand("results/{dataset}/metrics.csv", dataset=DATASETS)
    if ABLATIONS["activate"]:
        targets += expand("results/{dataset}/ablations.csv", dataset=DATASETS)
    return targets
