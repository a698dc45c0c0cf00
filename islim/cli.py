"""The ``islim`` command line: the workflow's steps for use outside Snakemake.

Examples::

    islim datasets                      # the registry in config.yaml
    islim fetch ml-100k                 # download + verify into data/raw/ml-100k/
    islim prepare ml-100k               # split into data/processed/ml-100k/
    islim ease ml-100k                  # lambda sweep, run record in results/ml-100k/runs/
    islim aggregate ml-100k             # results/ml-100k/metrics.csv
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from islim.config import dataset_entry, ease_settings, load_config
from islim.errors import IslimError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.yaml", help="workflow configuration (default: %(default)s)")
    parser.add_argument(
        "--configfile", action="append", default=[], metavar="FILE", help="extra config deep-merged over --config (repeatable)"
    )
    parser.add_argument("--data-dir", default="data", type=Path, help="root of raw/ and processed/ data (default: %(default)s)")
    parser.add_argument("--results-dir", default="results", type=Path, help="root of run records and tables (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: the config's `threads`)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="islim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("datasets", help="list the dataset registry and which datasets the default run uses")
    _common(listing)

    check = commands.add_parser("check-config", help="validate the configuration against its JSON schema")
    _common(check)

    fetch = commands.add_parser("fetch", help="download (or generate) a dataset's raw file and verify its checksums")
    _common(fetch)
    fetch.add_argument("dataset")
    fetch.add_argument("--mirror", default=None, help="directory or file:// URL searched before the network (default: config data_mirror)")

    prepare = commands.add_parser("prepare", help="preprocess a fetched dataset into the strong-generalisation split")
    _common(prepare)
    prepare.add_argument("dataset")

    ease = commands.add_parser("ease", help="EASE: choose lambda on validation NDCG@100, report test metrics, write a run record")
    _common(ease)
    ease.add_argument("dataset")
    ease.add_argument("--lambda", dest="lambdas", type=float, nargs="+", default=None, help="lambda grid (default: from the config)")

    aggregate = commands.add_parser("aggregate", help="gather a dataset's run records into metrics.csv")
    _common(aggregate)
    aggregate.add_argument("dataset")
    return parser


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
    name = args.dataset
    entry = dataset_entry(config, name)
    raw_dir, processed_dir, results = args.data_dir / "raw" / name, args.data_dir / "processed" / name, args.results_dir / name
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
        stats = pipeline.prepare(name, entry, manifest, processed_dir)
        print(f"{processed_dir}: {stats['users']} users, {stats['items']} items, interactions {stats['interactions']}")
    elif args.command == "ease":
        from islim.fileio import write_csv
        from islim.records import write_record

        settings = ease_settings(config, name)
        record, sweep = pipeline.ease_sweep(
            name, processed_dir, args.lambdas or settings["lambda_grid"], settings["dtype"], config["eval_batch_size"]
        )
        write_csv(results / "ease_sweep.csv", sweep)
        write_record(results / "runs" / "ease.json", record)
        print(f"EASE lambda={record['params']['lambda']}: test {record['metrics']['test']}")
    elif args.command == "aggregate":
        from islim.records import aggregate

        table = aggregate(sorted((results / "runs").glob("*.json")), results / "metrics.csv")
        print(f"{results / 'metrics.csv'}: {len(table)} rows")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``islim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except IslimError as exc:
        print(f"islim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
