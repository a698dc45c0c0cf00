# Shared helpers: config validation, target lists, code hashes. Nothing computes here and no
# heavy library is imported at DAG-construction time.
import functools
import itertools
import json
from pathlib import Path

from snakemake.logging import logger

import islim
from islim.catalog import check_registered_names
from islim.codehash import code_hash
from islim.config import (
    ablation_cell_grids,
    dataset_entry,
    ease_settings,
    point_settings,
    protocol_of,
    run_point_names,
    run_seeds,
    training_models,
    training_variant,
    validate_config,
)
from islim.embeddings.registry import PAPER_CELLS, arms_of
from islim.evaluate import dataset_metric_settings
from islim.memory import ease_mem_mb
from islim.resources import ablation_mem_mb, train_mem_mb
from islim.models.registry import model_spec, trained_by, uses_gpu
from islim.pipeline import fetch_parameters, file_stamp, local_files, split_parameters
from islim.plotting.registry import FIGURES

# islim's validation of islim/schemas/config.schema.yaml (as `islim check-config`): its messages
# name the key and what is allowed there, it fills the schema's defaults in (replacing the values
# in place, as snakemake.utils.validate would), and it reads the text Snakemake's --config passes on
# for nested values as the number, boolean or null it spells where the schema asks for one.
config.update(validate_config(config, command_line=workflow.config_settings.config))
check_registered_names(config)

DATASETS = config["run_datasets"]
# The islim package the jobs import (the installed one), whose code the `code` params hash.
ISLIM_DIR = Path(islim.__file__).parent
SPLIT_PARTS = ["train", "validation_tr", "validation_te", "test_tr", "test_te"]


wildcard_constraints:
    dataset="|".join(map(str, DATASETS)),
    neighbourhood="|".join(arms_of("neighbourhood")),
    first_step="|".join(arms_of("first_step")),
    second_step="|".join(arms_of("second_step")),
    reference="|".join(arms_of("reference")),
    model="|".join(trained_by("train")),
    variant="[A-Za-z0-9_]+",
    d=r"\d+",
    point=r"p\d+(\.s\d+)?",
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


def runs_ablations(dataset):
    """Whether the ablation grid runs on a dataset: `ablations.activate` and the dataset's protocol
    is strong (the grid's cells score held-out users from their fold-in rows)."""
    strong = protocol_of(dataset_entry(config, dataset)) == "strong"
    return ABLATIONS["activate"] and strong


# The datasets of the run the ablation grid runs on (skipped for per-user hold-out ones).
ABLATION_DATASETS = [d for d in DATASETS if runs_ablations(d)]
SKIPPED_ABLATIONS = [d for d in DATASETS if d not in ABLATION_DATASETS]
if ABLATIONS["activate"] and SKIPPED_ABLATIONS:
    logger.info(
        f"ablations: not run on {', '.join(SKIPPED_ABLATIONS)} (per-user hold-out protocol; "
        "the ablation grid is strong-protocol only)"
    )


def check_ablation_protocol(dataset):
    """Refuse, with a clear message, an ablation file of a dataset under the per-user hold-out
    protocol (named as a target: the default targets never ask for one)."""
    if protocol_of(dataset_entry(config, dataset)) != "strong":
        raise ValueError(
            f"the ablation grid runs under the strong protocol only, and dataset {dataset!r} "
            "is evaluated per user (protocol weak): ask for its metrics.csv or report "
            "instead, or run the grid on a strong-protocol dataset"
        )


def ablation_split_files(wildcards):
    """split_files of an ablation job's dataset (check_ablation_protocol)."""
    check_ablation_protocol(wildcards.dataset)
    return split_files(wildcards)


def ablation_stems(dataset):
    """File stems of the ablation jobs of a dataset (none where runs_ablations is false): every
    cell of the grid at `dims`; every reference arm, and each paper cell
    (islim.embeddings.registry.PAPER_CELLS) whose arms are configured, at `dims` and `curve_dims`
    (the curves of the dimension figure)."""
    if not runs_ablations(dataset):
        return []
    dims = ABLATIONS["dims"]
    curve = sorted({*dims, *ABLATIONS["curve_dims"]})
    axes = itertools.product(*ARMS.values())
    stems = [f"{n}.{f}.{s}.d{d}" for n, f, s in axes for d in dims]
    for cell in PAPER_CELLS:
        if all(value in ARMS[axis] for axis, value in cell.axes.items()):
            stems += [f"{'.'.join(cell.axes.values())}.d{d}" for d in curve]
    stems += [f"reference.{r}.d{d}" for r in ABLATIONS["references"] for d in curve]
    return list(dict.fromkeys(stems))


def ablation_cells(wildcards):
    """Run records of every ablation job of one dataset (ablation_stems)."""
    stems = ablation_stems(wildcards.dataset)
    return [f"results/{wildcards.dataset}/ablations/{s}.json" for s in stems]


def ablation_table_cells(wildcards):
    """ablation_cells of the ablation table's dataset (check_ablation_protocol)."""
    check_ablation_protocol(wildcards.dataset)
    return ablation_cells(wildcards)


def ablation_per_user(dataset):
    """Per-user tables of every ablation job of a dataset (ablation_stems)."""
    return [f"results/{dataset}/per_user/{s}.parquet" for s in ablation_stems(dataset)]


def custom_file(wildcards):
    """The local files of a dataset read in place (`path` of a `kind: custom` dataset, of the
    `train`/`test` files of a `kind: lightgcn` one), else nothing: inputs of fetch, so that
    editing a file fetches it again (and the split reruns if its content changed).
    """
    return local_files(config["datasets"][wildcards.dataset])


def custom_file_stamp(wildcards):
    """Size and mtime of those files (a param of fetch): an older copy put in place refetches too."""
    entry = config["datasets"][wildcards.dataset]
    return [file_stamp(path) for path in local_files(entry)]


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


def run_points(dataset, model, variant):
    """Point names (islim.config.point_name) of every grid point x seed of a training run: the
    top-level `seeds` for a stochastic model (model registry), one unseeded run otherwise.
    """
    grid = training_variant(config, dataset, model, variant)["grid"]
    seeds = run_seeds(config["seeds"], model_spec(model).stochastic)
    return run_point_names(grid, seeds)


def point_files(ext):
    """Input function: results/<dataset>/points/<model>-<variant>/<point>.<ext> of every point of the run."""

    def files(wildcards):
        w = wildcards
        folder = f"results/{w.dataset}/points/{w.model}-{w.variant}"
        return [
            f"{folder}/{name}.{ext}"
            for name in run_points(w.dataset, w.model, w.variant)
        ]

    return files


def training_point(wildcards):
    """What one train_point job trains: {point, seed, settings} (islim.config.point_settings)."""
    w = wildcards
    run = training_variant(config, w.dataset, w.model, w.variant)
    return point_settings(run, w.variant, w.point)


def ease_grid(dataset):
    """EASE's sweep as a grid: {"lambda": [...]}, its points in the order of `lambda_grid`."""
    return {"lambda": ease_settings(config, dataset)["lambda_grid"]}


def ease_point_files(ext):
    """Input function: results/<dataset>/points/ease/<point>.<ext> of every lambda of the sweep."""

    def files(wildcards):
        names = run_point_names(ease_grid(wildcards.dataset), [None])
        return [
            f"results/{wildcards.dataset}/points/ease/{name}.{ext}" for name in names
        ]

    return files


def ease_lambda(wildcards):
    """The lambda of one ease_point job."""
    run = {"grid": ease_grid(wildcards.dataset), "variants": {"ease": {}}}
    return point_settings(run, "ease", wildcards.point)["point"]["lambda"]


def popularity_record(wildcards):
    """The popularity run's record of the dataset (an input of the other selections, for their
    below_popularity flag) when popularity is trained on it; nothing for popularity's own runs.
    """
    if (
        not config["training"]["activate"]
        or getattr(wildcards, "model", None) == "popularity"
    ):
        return []
    variants = (
        training_models(config, wildcards.dataset).get("popularity", {}).get("variants")
        or {}
    )
    if not variants:
        return []
    variant = "baseline" if "baseline" in variants else next(iter(variants))
    return [f"results/{wildcards.dataset}/runs/popularity-{variant}.json"]


def run_per_user(wildcards):
    """Per-user tables of EASE and of every training run of the dataset."""
    runs = [f"results/{wildcards.dataset}/per_user/ease.parquet"]
    return runs + training_files(wildcards.dataset, "per_user", "parquet")


def run_records(wildcards):
    return (
        [f"results/{wildcards.dataset}/runs/ease.json"]
        + ablation_cells(wildcards)
        + training_runs(wildcards)
    )


# Memory requests (MB) from the split's stats.json and the job's settings, times the attempt:
# the estimators of islim/memory.py.
def read_stats(input):
    return json.loads(Path(input.stats).read_text())


def cell_arm(wildcards):
    """The ablation cell's arm, from its wildcards."""
    axes = ("neighbourhood", "first_step", "second_step")
    return {axis: getattr(wildcards, axis) for axis in axes}


def ease_mem(wildcards, input, attempt):
    dtype = ease_settings(config, wildcards.dataset)["dtype"]
    return ease_mem_mb(read_stats(input), dtype, config["eval_batch_size"], attempt)


def train_point_mem(wildcards, input, attempt):
    settings = {"params": training_point(wildcards)["settings"]}
    stats = read_stats(input)
    return train_mem_mb(
        stats, wildcards.model, settings, config["eval_batch_size"], attempt
    )


def ablation_mem(wildcards, input, attempt):
    if hasattr(wildcards, "reference"):
        arm, grids = {"reference": wildcards.reference}, {}
    else:
        arm = cell_arm(wildcards)
        grids = ablation_cell_grids(ABLATIONS, arm)
    stats, d = read_stats(input), int(wildcards.d)
    return ablation_mem_mb(stats, arm, d, grids, config["eval_batch_size"], attempt)


# Whether each workflow stage a report figure can need (islim/plotting/registry.py) runs, and why not.
FIGURE_STAGES = {
    "ablations": (ABLATIONS["activate"], "config ablations.activate is false"),
    "training": (config["training"]["activate"], "config training.activate is false"),
    "scaling": (
        False,
        "it measures this machine, so only the opt-in target draws it "
        "(`snakemake scaling --cores 2`, rules/scaling.smk)",
    ),
}
# The files of each figure input (registry SOURCES) for a list of datasets.
FIGURE_SOURCES = {
    "metrics": lambda datasets: expand("results/{d}/metrics.csv", d=datasets),
    "ablations": lambda datasets: [
        f"results/{d}/ablations.csv" for d in datasets if runs_ablations(d)
    ],
    "ablation_per_user": lambda datasets: [
        path for d in datasets for path in ablation_per_user(d)
    ],
    "curves": lambda datasets: [
        path for d in datasets for path in training_files(d, "curves", "csv")
    ],
    "scaling": lambda datasets: ["results/summary/scaling.csv"],
}


def figure_scopes(figure):
    """The <scope> folders of reports/ a registered figure is drawn into: summary, or every
    dataset of the run (those the ablation grid runs on, for a figure of ablation results).
    """
    if figure.scope == "summary":
        return ["summary"]
    return ABLATION_DATASETS if "ablations" in figure.stages else DATASETS


def figure_skipped_because(figure):
    """Why a registered figure is not drawn under this config (empty: it is drawn)."""
    return [FIGURE_STAGES[s][1] for s in figure.stages if not FIGURE_STAGES[s][0]]


def report_figures():
    """The registered figures whose workflow stages all run under this config."""
    return [f for f in FIGURES.values() if not figure_skipped_because(f)]


def log_skipped_figures():
    for figure in FIGURES.values():
        if reasons := figure_skipped_because(figure):
            logger.info(
                f"report: the {figure.label} figure is skipped: {'; '.join(reasons)}"
            )


log_skipped_figures()


def figure_inputs(wildcards):
    """The files of each input of {figure}, by input name (input function of the figure rule)."""
    figure = FIGURES[wildcards.figure]
    if wildcards.scope not in figure_scopes(figure):
        raise ValueError(
            f"figure {figure.name} is drawn per {figure.scope}, "
            f"not into reports/{wildcards.scope}/ (see islim/plotting/registry.py)"
        )
    datasets = DATASETS if wildcards.scope == "summary" else [wildcards.scope]
    return {name: FIGURE_SOURCES[name](datasets) for name in figure.inputs}


def figure_caption(wildcards):
    """The text of reports/captions/{figure}.rst, which reports/figure.rst shows."""
    captions = Path(workflow.basedir) / "reports" / "captions"
    return (captions / f"{wildcards.figure}.rst").read_text(encoding="utf-8")


def report_png():
    """reports/{scope}/{figure}.png marked for the report: caption reports/captions/{figure}.rst,
    subcategory and "figure" label from the registry."""
    return report(
        "reports/{scope}/{figure}.png",
        caption="../reports/figure.rst",
        category="{scope}",
        subcategory=lambda wildcards: FIGURES[wildcards.figure].label,
        labels=lambda wildcards: {
            "dataset": wildcards.scope,
            "figure": FIGURES[wildcards.figure].label,
        },
    )


def report_targets():
    """Figures (PNG + PDF) and tables of the report, drawn from the aggregated results only."""
    targets = [
        f"reports/{scope}/{figure.name}.{ext}"
        for figure in report_figures()
        for scope in figure_scopes(figure)
        for ext in ("png", "pdf")
    ]
    targets += expand(
        "reports/{scope}/results.{ext}",
        scope=["summary", *DATASETS],
        ext=["csv", "md", "tex"],
    )
    targets += expand("reports/{dataset}/findings.md", dataset=DATASETS)
    targets.append("reports/summary/provenance.csv")
    return targets


def selection_metric(dataset):
    """A dataset's selection metric: its protocol's `select` (config `metrics`)."""
    return dataset_metric_settings(config, dataset)["select"]


def findings_metric(wildcards):
    """The metric a dataset's findings are stated in: its selection metric."""
    return selection_metric(wildcards.dataset)


def figure_metric(wildcards):
    """The metric of a figure drawn for a dataset: its selection metric (None for summary)."""
    return None if wildcards.scope == "summary" else selection_metric(wildcards.scope)


def final_targets():
    targets = expand("results/{dataset}/metrics.csv", dataset=DATASETS)
    targets += expand("results/{dataset}/ablations.csv", dataset=ABLATION_DATASETS)
    return targets + report_targets()
