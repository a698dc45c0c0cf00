# Shared helpers: config validation, target lists, code hashes. Nothing computes here and no
# heavy library is imported at DAG-construction time.
import hashlib
from pathlib import Path

from snakemake.utils import validate

from islim.config import check_cross_fields, ease_settings
from islim.pipeline import fetch_parameters

validate(config, schema="../islim/schemas/config.schema.yaml")
check_cross_fields(config)

DATASETS = config["run_datasets"]
ISLIM_DIR = Path(workflow.basedir) / "islim"
SPLIT_PARTS = ["train", "validation_tr", "validation_te", "test_tr", "test_te"]


wildcard_constraints:
    dataset="|".join(map(str, DATASETS)),


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
}


def split_files(wildcards):
    return expand(
        "data/processed/{dataset}/{part}.npz",
        dataset=wildcards.dataset,
        part=SPLIT_PARTS,
    )


def run_records(wildcards):
    return [f"results/{wildcards.dataset}/runs/ease.json"]


def dense_items_mem_mb(wildcards, input, attempt):
    """Memory for three dense float32 n_items x n_items arrays (from the split's stats), scaled by the attempt."""
    import json

    n_items = json.loads(Path(input.stats).read_text())["items"]
    return int((3 * 4 * n_items**2 / 2**20 + 1024) * attempt)


def final_targets():
    return expand("results/{dataset}/metrics.csv", dataset=DATASETS)
