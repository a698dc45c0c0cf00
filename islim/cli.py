"""The ``islim`` command line: the workflow's steps outside Snakemake.

Each command runs the library call of the workflow rule it names (the same function its
``workflow_scripts/*.py`` adapter calls), on the paths the workflow uses, so that results made
here and by ``snakemake`` are interchangeable. The help texts are plain text (:data:`DESCRIPTION`).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

from islim.config import dataset_entry, ease_settings, load_config
from islim.errors import ConfigError, IslimError
from islim.jobs import quiet_libraries

DESCRIPTION = """\
The ImplicitSLIM benchmark's steps outside Snakemake. Each command runs the library
call of the workflow rule of the same name, on the paths the workflow uses (data/,
results/ and reports/ below the current directory unless --data-dir, --results-dir
or --reports-dir say otherwise), so its files and the workflow's are interchangeable.

examples:
  islim datasets                          the dataset registry of config.yaml
  islim fetch ml-100k                     download and verify into data/raw/ml-100k/
  islim prepare ml-100k                   split into data/processed/ml-100k/
  islim ease ml-100k                      EASE lambda sweep: results/ml-100k/runs/ease.json
  islim train ml-100k mf implicit_slim    one model variant: results/ml-100k/runs/mf-implicit_slim.json
  islim ablate ml-100k all ease implicit  one ablation cell at each configured d
  islim ablate ml-100k --reference svd    a reference arm
  islim aggregate ml-100k                 results/ml-100k/metrics.csv and ablations.csv
  islim report ml-100k                    figures and results table: reports/ml-100k/
  islim report summary                    the same over all run_datasets: reports/summary/
"""

#: Part names of a split's matrices, as the prepare summary shows them.
PART_NAMES = {
    "train": "train",
    "validation_tr": "validation fold-in",
    "validation_te": "validation held-out",
    "test_tr": "test fold-in",
    "test_te": "test held-out",
}
#: Per-user tables of ablation jobs: ``<neighbourhood>.<first>.<second>.d<d>`` or ``reference.<arm>.d<d>``.
ABLATION_PER_USER = re.compile(r"\.d\d+\.parquet$")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.yaml", help="workflow configuration (default: %(default)s)")
    parser.add_argument(
        "--configfile", action="append", default=[], metavar="FILE", help="extra config deep-merged over --config (repeatable)"
    )
    parser.add_argument("--data-dir", default="data", type=Path, help="root of raw/ and processed/ data (default: %(default)s)")
    parser.add_argument("--results-dir", default="results", type=Path, help="root of run records and tables (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: the threads setting of the config)")


def build_parser() -> argparse.ArgumentParser:
    """The ``islim`` parser and its subcommands (plain-text help throughout)."""
    parser = argparse.ArgumentParser(prog="islim", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        _common(sub)
        return sub

    command("datasets", "list the dataset registry and which datasets the default run uses")
    command("check-config", "validate the configuration against its JSON schema")
    fetch = command("fetch", "download (or generate) a dataset's raw file and verify its checksums")
    fetch.add_argument("dataset")
    fetch.add_argument(
        "--mirror", default=None, help="directory or file:// URL searched before the network (default: data_mirror of the config)"
    )
    command("prepare", "preprocess a fetched dataset into its split and print the split's sizes").add_argument("dataset")
    ease = command("ease", "EASE: choose lambda on validation NDCG@100, report test metrics, write a run record")
    ease.add_argument("dataset")
    ease.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=None, help="lambda grid (default: from the config)")
    train = command("train", "train one model variant on every grid point of the config, select one on validation, write its run")
    train.add_argument("dataset")
    train.add_argument("model", help="a model configured under training.models (e.g. mf, recvae)")
    train.add_argument("variant", help="one of the model's configured variants (e.g. baseline, implicit_slim)")
    ablate = command("ablate", "run one cell of the ablation grid (or a reference arm) at each embedding size d")
    ablate.add_argument("dataset")
    ablate.add_argument(
        "arm", nargs="*", metavar="AXIS", help="the cell's neighbourhood, first step and second step (e.g. all ease implicit)"
    )
    ablate.add_argument("--reference", default=None, help="run this reference arm (e.g. svd, random) instead of a cell")
    ablate.add_argument(
        "--d", dest="dims", type=int, nargs="+", default=None, help="embedding sizes (default: ablations.dims of the config)"
    )
    command("aggregate", "gather a dataset's run records into metrics.csv (and its ablation jobs into ablations.csv)").add_argument(
        "dataset"
    )
    report = command("report", "draw the report's figures and write its results table from the aggregated results")
    report.add_argument("scope", help="a dataset, or summary for every dataset of run_datasets")
    report.add_argument("--reports-dir", default="reports", type=Path, help="root of the report's files (default: %(default)s)")
    return parser


def split_summary(directory: Path, stats: dict[str, Any]) -> str:
    """Readable lines of a split's ``stats.json`` (:func:`islim.data.split.split_stats`)."""
    users, interactions = stats["users"], stats["interactions"]
    groups = ", ".join(f"{group} {count:,}" for group, count in users.items() if group != "total")
    parts = ", ".join(f"{PART_NAMES.get(part, part)} {count:,}" for part, count in interactions.items() if part in PART_NAMES)
    evaluated = ", ".join(f"{group} {count:,}" for group, count in stats["evaluated_users"].items())
    lines = [
        f"{directory} ({stats['protocol']} protocol)",
        f"  users:           {users['total']:,} ({groups})",
        f"  items:           {stats['items']:,}",
        f"  interactions:    {interactions['filtered_before_vocabulary_cut']:,} after filtering ({parts})",
        f"  evaluated users: {evaluated} (with held-out items)",
        f"  density:         {stats['density']:.4%} of the training matrix",
    ]
    if stats.get("dropped_users"):
        lines.append(f"  dropped users:   {stats['dropped_users']:,}")
    return "\n".join(lines)


def record_summary(record: dict[str, Any]) -> str:
    """Readable lines of a run record: the chosen grid point and how, the test metrics (± s.e.
    over users where the metric has one), and the run's flags."""
    from islim.names import metric_title

    extra, params = record["extra"], record["params"]
    grid = list(extra.get("grid") or {}) or [key for key in ("lambda",) if key in params]
    chosen = ", ".join(f"{key}={params[key]}" for key in grid) or "no grid"
    seeds = f", {len(extra['seeds'])} seeds" if len(extra.get("seeds") or []) > 1 else ""
    test = record["metrics"]["test"]
    metrics = [
        f"{metric_title(key)} {value:.4f}" + (f" ± {test[f'{key}_se']:.4f}" if f"{key}_se" in test else "")
        for key, value in test.items()
        if not key.endswith(("_se", "_seed_sd"))
    ]
    lines = [
        f"{record.get('run', record['model'])} on {record['dataset']}: {chosen} (selected by {extra.get('selected_by', 'validation')}{seeds})"
    ]
    lines.append(f"  test ({record['n_users']['test']:,} users): {', '.join(metrics)}")
    if record.get("flags"):
        lines.append(f"  flags: {', '.join(record['flags'])}")
    return "\n".join(lines)


def _training_run(config: dict[str, Any], name: str, model: str, variant: str) -> dict[str, Any]:
    """The run's ``{"params", "grid", "variants"}`` (:func:`islim.config.training_variant`), or a
    :class:`ConfigError` naming the configured models or variants."""
    from islim.config import training_models, training_variant

    models = training_models(config, name)
    if model not in models:
        raise ConfigError(f"model {model!r} is not configured for {name} (training.models has {sorted(models)})")
    variants = models[model].get("variants") or {}
    if variant not in variants:
        raise ConfigError(f"{model} has no variant {variant!r} configured for {name} (its variants: {sorted(variants)})")
    return training_variant(config, name, model, variant)


def _train(config: dict[str, Any], name: str, args: argparse.Namespace, processed_dir: Path, results: Path) -> None:
    from islim.data.split import load_split
    from islim.evaluate import dataset_metric_settings, settings_metrics
    from islim.fileio import write_csv
    from islim.records import read_record, write_record
    from islim.training import train_run

    run = _training_run(config, name, args.model, args.variant)
    metric_settings = dataset_metric_settings(config, name)  # the protocol's metrics, as rules train_point and train
    popularity_path = results / "runs" / "popularity-baseline.json"
    popularity = read_record(popularity_path) if popularity_path.is_file() else None
    record, curve = train_run(
        name,
        load_split(processed_dir),
        args.model,
        args.variant,
        run["params"],
        run["variants"][args.variant],
        run["grid"],
        batch_size=config["eval_batch_size"],
        checkpoint_dir=results / "checkpoints",
        seeds=config["seeds"],
        popularity=popularity,
        metrics=settings_metrics(metric_settings),
        monitor=metric_settings["select"],
    )
    stem = f"{args.model}-{args.variant}"
    write_csv(results / "curves" / f"{stem}.csv", curve)
    write_record(results / "runs" / f"{stem}.json", record)
    print(record_summary(record))
    print(f"written {results / 'runs' / f'{stem}.json'} and {results / 'curves' / f'{stem}.csv'}")


def _ablate(config: dict[str, Any], name: str, args: argparse.Namespace, processed_dir: Path, results: Path) -> None:
    from islim.ablations import ablation_cell, seed_mean, write_cell
    from islim.config import ablation_cell_grids
    from islim.data.split import load_split
    from islim.embeddings.registry import stochastic_arms
    from islim.evaluate import dataset_metric_settings
    from islim.names import metric_title

    ablations = config["ablations"]
    if bool(args.reference) == bool(args.arm) or (args.arm and len(args.arm) != 3):
        raise ConfigError(
            "give either the cell's three axes (NEIGHBOURHOOD FIRST_STEP SECOND_STEP, e.g. all ease implicit) or --reference NAME"
        )
    if args.reference:
        arm, grids, stem = {"reference": args.reference}, {}, f"reference.{args.reference}"
    else:
        arm = dict(zip(("neighbourhood", "first_step", "second_step"), args.arm))
        grids, stem = ablation_cell_grids(ablations, arm), ".".join(args.arm)
    seeds = config["seeds"] if args.reference in stochastic_arms("reference") else [ablations["seed"]]
    metric_settings = dataset_metric_settings(config, name)  # the protocol's metrics, as rules ablation_cell and ablation_reference
    select = metric_settings["select"]
    split = load_split(processed_dir)
    for d in args.dims or ablations["dims"]:
        runs = [
            ablation_cell(
                name,
                split,
                arm,
                d,
                grids,
                ablations["scorers"],
                seed=seed,
                batch_size=config["eval_batch_size"],
                metric_settings=metric_settings,
            )
            for seed in seeds
        ]
        result = seed_mean(runs, seeds) if len(runs) > 1 else runs[0]
        records_path, per_user_path = results / "ablations" / f"{stem}.d{d}.json", results / "per_user" / f"{stem}.d{d}.parquet"
        write_cell(result, records_path, per_user_path)
        for record in result.records:
            extra = record["extra"]
            if extra["status"] == "ok":
                outcome = f"test {metric_title(select)} {record['metrics']['test'][select]:.4f}"
            else:
                outcome = f"{extra['status']}: {extra['reason']}"
            print(f"{record['model']} d={d} {extra['scorer']}: {outcome}")
        print(f"written {records_path}")


def source_files(name: str, results_dir: Path, datasets: list[str]) -> list[Path]:
    """The existing files of a figure input (:data:`islim.plotting.registry.SOURCES`) for ``datasets``."""
    if name == "scaling":
        return [path for path in [results_dir / "summary" / "scaling.csv"] if path.is_file()]
    files: list[Path] = []
    for dataset in datasets:
        folder = results_dir / dataset
        if name in ("metrics", "ablations"):
            files += [path for path in [folder / f"{name}.csv"] if path.is_file()]
        elif name == "curves":
            files += sorted((folder / "curves").glob("*.csv"))
        elif name == "ablation_per_user":
            files += sorted(path for path in (folder / "per_user").glob("*.parquet") if ABLATION_PER_USER.search(path.name))
        else:
            raise LookupError(f"figure input {name!r}: the islim report command does not know its files; add it to islim.cli.source_files")
    return files


def _report(config: dict[str, Any], args: argparse.Namespace) -> None:
    import pandas as pd

    from islim.evaluate import dataset_metric_settings
    from islim.plotting.registry import FIGURES, draw
    from islim.plotting.style import save_figure
    from islim.results_table import results_table, write_results_table

    scope = args.scope
    if scope == "summary":
        datasets, metric = list(config["run_datasets"]), None
    else:
        dataset_entry(config, scope)
        # The dataset's selection metric, for the figures that take one (as rule figure's figure_metric).
        datasets, metric = [scope], dataset_metric_settings(config, scope)["select"]
    out = args.reports_dir / scope
    for figure in FIGURES.values():
        if (figure.scope == "summary") != (scope == "summary"):
            continue
        inputs = {name: source_files(name, args.results_dir, datasets) for name in figure.inputs}
        if missing := [name for name, files in inputs.items() if not files]:
            print(f"skipped the {figure.label} figure: no {', '.join(missing)} results under {args.results_dir} for {', '.join(datasets)}")
            continue
        save_figure(draw(figure, inputs, metric), out / figure.name)
        print(f"written {out / figure.name}.png and .pdf")
    metrics = source_files("metrics", args.results_dir, datasets)
    if len(metrics) < len(datasets):
        print(
            f"skipped the results table: {len(metrics)} of {len(datasets)} datasets have {args.results_dir}/<dataset>/metrics.csv (islim aggregate)"
        )
        return
    table = results_table(pd.concat([pd.read_csv(path) for path in metrics], ignore_index=True))
    title = "Test results: all datasets" if scope == "summary" else f"Test results: {scope}"
    write_results_table(table, out / "results", title=title)
    print(f"written {out / 'results'}.csv, .md, .tex and .html ({len(table)} rows)")


def _run(args: argparse.Namespace) -> None:
    from islim import pipeline
    from islim.catalog import check_registered_names
    from islim.threads import limit_threads

    config = load_config(args.config, args.configfile)
    check_registered_names(config)
    if args.command == "check-config":
        print(f"{args.config}: valid ({len(config['datasets'])} datasets, run_datasets={config['run_datasets']})")
        return
    if args.command == "datasets":
        for name, entry in config["datasets"].items():
            marker = "*" if name in config["run_datasets"] else " "
            print(f"{marker} {name:<20} {entry['kind']:<14} {entry.get('description', '')}")
        print("(* = in run_datasets)")
        return
    limit_threads(args.threads or config["threads"])
    if args.command == "report":
        _report(config, args)
        return
    name = args.dataset
    entry = dataset_entry(config, name)
    raw_dir, processed_dir, results = args.data_dir / "raw" / name, args.data_dir / "processed" / name, args.results_dir / name
    if args.command not in ("fetch", "prepare", "aggregate") and not (processed_dir / "stats.json").is_file():
        raise IslimError(
            f"{processed_dir}/stats.json does not exist: {name} has not been prepared; "
            f"run `islim fetch {name}` and `islim prepare {name}` first (with the same --data-dir and --config)"
        )
    if args.command == "fetch":
        manifest = pipeline.fetch(name, pipeline.fetch_parameters(entry), raw_dir, mirror=args.mirror or config["data_mirror"])
        for record in pipeline.manifest_files(manifest).values():
            print(f"{record['file']} sha256={record['sha256']}")
    elif args.command == "prepare":
        manifest = raw_dir / "manifest.json"
        if not manifest.is_file():
            raise IslimError(
                f"{manifest} does not exist: {name} has not been fetched into {raw_dir}; "
                f"run `islim fetch {name}` first (with the same --data-dir and --config), then `islim prepare {name}`"
            )
        print(split_summary(processed_dir, pipeline.prepare(name, entry, manifest, processed_dir)))
    elif args.command == "ease":
        from islim.evaluate import dataset_metric_settings
        from islim.fileio import write_csv
        from islim.records import write_record

        settings = ease_settings(config, name)
        lambdas = args.lambdas or settings["lambda_grid"]
        metrics = dataset_metric_settings(config, name)  # as rules ease_point and ease
        record, sweep = pipeline.ease_sweep(name, processed_dir, lambdas, settings["dtype"], config["eval_batch_size"], metrics)
        write_csv(results / "ease_sweep.csv", sweep)
        write_record(results / "runs" / "ease.json", record)
        print(record_summary(record))
    elif args.command == "train":
        _train(config, name, args, processed_dir, results)
    elif args.command == "ablate":
        _ablate(config, name, args, processed_dir, results)
    elif args.command == "aggregate":
        from islim.ablations import write_ablation_table
        from islim.records import aggregate

        # As the workflow's rules ablation_table and aggregate: EASE, the ablation cells, then the training runs.
        cells = sorted((results / "ablations").glob("*.json"))
        if cells:
            write_ablation_table([str(path) for path in cells], results / "ablations.csv")
            print(f"{results / 'ablations.csv'}: {len(cells)} ablation jobs")
        ease = [path for path in [results / "runs" / "ease.json"] if path.is_file()]
        trained = sorted(path for path in (results / "runs").glob("*.json") if path.name != "ease.json")
        table = aggregate(ease + cells + trained, results / "metrics.csv")
        print(f"{results / 'metrics.csv'}: {len(table)} rows")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``islim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    try:
        _run(args)
    except IslimError as exc:
        print(f"islim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
