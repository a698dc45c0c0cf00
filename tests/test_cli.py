"""The ``islim`` command line on the tiny synthetic dataset: plain-text help, a readable prepare
summary, and train / ablate / aggregate / report running the functions the workflow's adapters run."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re

import pandas as pd
import pytest
import yaml

from islim import ablations, training
from islim.cli import build_parser, main
from islim.config import load_config
from islim.evaluate import dataset_metric_settings
from islim.plotting import registry
from islim.records import read_records
from tests.workflow_helpers import CONFIGS, REPO

DATASET = "synthetic-tiny"
#: reST / Markdown markup that must not reach a terminal.
MARKUP = re.compile(r"``|`|::|:func:|:class:|:mod:|\*\*")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with the tiny config, its run limited to one dataset."""
    directory = tmp_path_factory.mktemp("cli")
    config = yaml.safe_load((CONFIGS / "tiny.yaml").read_text(encoding="utf-8"))
    config["run_datasets"] = [DATASET]
    (directory / "tiny.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return directory


def islim(workdir, *args: str) -> int:
    paths = ["--config", str(REPO / "config.yaml"), "--configfile", str(workdir / "tiny.yaml")]
    paths += ["--data-dir", str(workdir / "data"), "--results-dir", str(workdir / "results")]
    command, rest = args[0], list(args[1:])
    if command == "report":
        paths += ["--reports-dir", str(workdir / "reports")]
    return main([command, *paths, *rest])


@pytest.fixture(scope="module")
def prepared(workdir):
    """``workdir`` with the dataset fetched and prepared, and what ``islim prepare`` printed."""
    assert islim(workdir, "fetch", DATASET) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert islim(workdir, "prepare", DATASET) == 0
    return workdir, out.getvalue()


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_help_text_is_plain_text(capsys):
    parser = build_parser()
    texts = {"islim": parser.format_help()} | {name: sub.format_help() for name, sub in subparsers(parser).items()}
    assert {"train", "ablate", "report", "fetch", "prepare", "ease", "aggregate"} <= set(texts)
    for name, text in texts.items():
        assert not MARKUP.search(text), f"islim {name} --help shows markup {MARKUP.search(text).group()!r}:\n{text}"
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: islim") and "examples:" in printed and "islim train ml-100k mf implicit_slim" in printed


def test_prepare_prints_the_split_sizes_readably(prepared):
    workdir, printed = prepared
    stats = json.loads((workdir / "data" / "processed" / DATASET / "stats.json").read_text())
    assert "{" not in printed and "}" not in printed and "'" not in printed  # no Python dicts
    users, interactions = stats["users"], stats["interactions"]
    assert (
        f"users:           {users['total']:,} (train {users['train']:,}, validation {users['validation']:,}, test {users['test']:,})"
        in printed
    )
    assert f"items:           {stats['items']:,}" in printed
    assert f"{interactions['filtered_before_vocabulary_cut']:,} after filtering (train {interactions['train']:,}, " in printed
    assert f"test held-out {interactions['test_te']:,})" in printed
    assert f"{stats['density']:.4%}" in printed


def spy(monkeypatch, module, name: str) -> list[tuple]:
    """Record the calls of ``module.name`` (still calling it)."""
    calls, real = [], getattr(module, name)

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)
    return calls


def test_train_runs_every_grid_point_and_selects_as_the_workflow(prepared, monkeypatch, capsys):
    workdir, _ = prepared
    points, selections = spy(monkeypatch, training, "train_point"), spy(monkeypatch, training, "select_run")
    assert islim(workdir, "train", DATASET, "mf", "implicit_slim") == 0
    config = load_config(REPO / "config.yaml", [workdir / "tiny.yaml"])
    mf = config["training"]["models"]["mf"]
    # MF is stochastic: every value of its grid (r_p) once per top-level seed, then one selection.
    expected = {(r_p, seed) for r_p in mf["grid"]["r_p"] for seed in config["seeds"]}
    assert {(call[0][5]["r_p"], call[0][6]) for call in points} == expected and len(points) == len(expected)
    assert len(selections) == 1
    for call in points:
        assert call[0][2:4] == ("mf", "implicit_slim")
        assert call[0][4]["init"] == "implicit_slim" and call[0][4]["n_factors"] == mf["params"]["n_factors"]
    results = workdir / "results" / DATASET
    record = json.loads((results / "runs" / "mf-implicit_slim.json").read_text())
    assert (record["model"], record["run"]) == ("mf", "mf|implicit_slim")
    assert record["params"]["r_p"] in mf["grid"]["r_p"] and record["extra"]["seeds"] == config["seeds"]
    curve = pd.read_csv(results / "curves" / "mf-implicit_slim.csv")
    assert len(curve) >= 1 and "val_ndcg@100" in curve.columns
    printed = capsys.readouterr().out
    assert "{" not in printed  # a readable summary, not the record's dicts
    ndcg, se = record["metrics"]["test"]["ndcg@100"], record["metrics"]["test"]["ndcg@100_se"]
    assert f"mf|implicit_slim on synthetic-tiny: r_p={record['params']['r_p']}" in printed
    assert f"NDCG@100 {ndcg:.4f} ± {se:.4f}" in printed


def test_train_names_the_configured_variants_of_an_unknown_one(prepared, capsys):
    workdir, _ = prepared
    assert islim(workdir, "train", DATASET, "mf", "multistep") == 2
    assert (
        "mf has no variant 'multistep' configured for synthetic-tiny (its variants: ['baseline', 'implicit_slim'])"
        in capsys.readouterr().err
    )


def test_ablate_runs_the_cell_at_each_requested_d(prepared, monkeypatch, capsys):
    workdir, _ = prepared
    cells = spy(monkeypatch, ablations, "ablation_cell")
    assert islim(workdir, "ablate", DATASET, "all", "ease", "implicit", "--d", "8", "12") == 0
    assert [call[0][2:4] for call in cells] == [
        ({"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"}, 8),
        ({"neighbourhood": "all", "first_step": "ease", "second_step": "implicit"}, 12),
    ]
    assert cells[0][0][4] == {
        "neighbourhood": {"all": {}},
        "first_step": {"ease": {"lam": [100]}},
        "second_step": {"implicit": {"alpha": [1.0], "threshold": [0]}},
    }
    folder = workdir / "results" / DATASET
    for d in (8, 12):
        records = read_records(folder / "ablations" / f"all.ease.implicit.d{d}.json")
        assert {record["extra"]["scorer"] for record in records} == {"mf", "plrec"}
        assert all(record["params"]["d"] == d for record in records)
        assert (folder / "per_user" / f"all.ease.implicit.d{d}.parquet").is_file()
    assert "written" in capsys.readouterr().out


def test_ablate_runs_a_reference_arm_once_per_seed_where_it_is_random(prepared, monkeypatch):
    workdir, _ = prepared
    cells, means = spy(monkeypatch, ablations, "ablation_cell"), spy(monkeypatch, ablations, "seed_mean")
    assert islim(workdir, "ablate", DATASET, "--reference", "svd", "--d", "8") == 0
    assert [call[1]["seed"] for call in cells] == [0] and not means  # deterministic: once, at ablations.seed
    records = read_records(workdir / "results" / DATASET / "ablations" / "reference.svd.d8.json")
    assert {record["model"] for record in records} == {"reference:svd"}
    cells.clear()
    assert islim(workdir, "ablate", DATASET, "--reference", "random", "--d", "8") == 0
    seeds = load_config(REPO / "config.yaml", [workdir / "tiny.yaml"])["seeds"]
    assert [call[1]["seed"] for call in cells] == seeds and len(seeds) > 1  # as rules ablation_reference_seed
    assert len(means) == 1 and means[0][0][1] == seeds  # and ablation_seed_mean
    assert (workdir / "results" / DATASET / "per_user" / "reference.random.d8.parquet").is_file()


@pytest.mark.parametrize("arm", [["all", "ease"], ["all", "ease", "implicit", "--reference", "svd"], []])
def test_ablate_wants_three_axes_or_a_reference(prepared, capsys, arm):
    workdir, _ = prepared
    assert islim(workdir, "ablate", DATASET, *arm) == 2
    assert "give either the cell's three axes" in capsys.readouterr().err


def test_ablate_evaluates_the_configured_metrics_and_prints_why_a_cell_was_skipped(prepared, tmp_path, capsys):
    """As rules ablation_cell/ablation_reference: the protocol's metric settings of the config; the
    summary shows the selection metric, and the reason of a cell that cannot run."""
    workdir, _ = prepared
    override = tmp_path / "metrics.yaml"
    strong = {"names": ["recall@20"], "cutoffs": [10], "select": "ndcg@50"}
    override.write_text(yaml.safe_dump({"metrics": {"strong": strong}}), encoding="utf-8")
    common = ["--config", str(REPO / "config.yaml"), "--configfile", str(workdir / "tiny.yaml"), "--configfile", str(override)]
    common += ["--data-dir", str(workdir / "data"), "--results-dir", str(tmp_path / "results")]
    capsys.readouterr()
    assert main(["ablate", *common, DATASET, "all", "ease", "implicit", "--d", "8"]) == 0
    folder = tmp_path / "results" / DATASET / "ablations"
    records = read_records(folder / "all.ease.implicit.d8.json")
    assert {record["extra"]["status"] for record in records} == {"ok"}
    printed = capsys.readouterr().out
    for record in records:
        test = record["metrics"]["test"]
        assert {"recall@20", "recall@10", "ndcg@10", "hitrate@10", "ndcg@50"} <= set(test) and "ndcg@100" not in test
        assert f"{record['model']} d=8 {record['extra']['scorer']}: test NDCG@50 {test['ndcg@50']:.4f}" in printed
    assert main(["ablate", *common, DATASET, "all", "identity", "explicit", "--d", "8"]) == 0
    records = read_records(folder / "all.identity.explicit.d8.json")
    assert {record["extra"]["status"] for record in records} == {"skipped"}
    printed = capsys.readouterr().out
    for record in records:
        assert f"{record['model']} d=8 {record['extra']['scorer']}: skipped: {record['extra']['reason']}" in printed
    assert "first_step='identity' with second_step='explicit' is undefined" in printed


def test_aggregate_then_report_write_the_tables_and_the_figures_their_results_allow(prepared, monkeypatch, capsys):
    workdir, _ = prepared
    assert islim(workdir, "ease", DATASET) == 0
    assert islim(workdir, "train", DATASET, "mf", "implicit_slim") == 0
    assert islim(workdir, "ablate", DATASET, "all", "ease", "implicit", "--d", "8") == 0
    assert islim(workdir, "aggregate", DATASET) == 0
    results = workdir / "results" / DATASET
    metrics = pd.read_csv(results / "metrics.csv")
    assert {"ease", "mf", "ablation:all/ease/implicit"} <= set(metrics["model"])
    assert set(pd.read_csv(results / "ablations.csv")["d"]) >= {8}
    capsys.readouterr()
    draws = spy(monkeypatch, registry, "draw")
    assert islim(workdir, "report", DATASET) == 0
    printed = capsys.readouterr().out
    # The dataset's selection metric, as rule figure's figure_metric (the figures without one ignore it).
    select = dataset_metric_settings(load_config(REPO / "config.yaml", [workdir / "tiny.yaml"]), DATASET)["select"]
    assert draws and {call[0][2] for call in draws} == {select}
    reports = workdir / "reports" / DATASET
    table = pd.read_csv(reports / "results.csv")
    assert {"ease", "mf"} <= set(table["model"]) and table["published"].isna().all()
    for suffix in ("md", "tex", "html"):
        assert (reports / f"results.{suffix}").is_file()
    for figure in ("convergence", "dimension"):
        assert (reports / f"{figure}.pdf").read_bytes().startswith(b"%PDF"), printed
    assert islim(workdir, "report", "summary") == 0
    printed = capsys.readouterr().out
    assert (workdir / "reports" / "summary" / "results.csv").is_file()
    assert "skipped the cost scaling figure: no scaling results" in printed  # snakemake scaling measures it


def test_commands_on_a_dataset_not_prepared_say_what_to_run_first(workdir, capsys):
    assert islim(workdir, "train", "ml-100k", "mf", "baseline") == 2
    assert "run `islim fetch ml-100k` and `islim prepare ml-100k` first" in capsys.readouterr().err


def test_train_and_ease_evaluate_and_select_on_the_configured_metrics(prepared, tmp_path):
    """As rules train_point/train and ease_point/ease: the protocol's metric settings of the config."""
    workdir, _ = prepared
    override = tmp_path / "metrics.yaml"
    override.write_text(yaml.safe_dump({"metrics": {"strong": {"cutoffs": [10], "select": "recall@50"}}}), encoding="utf-8")
    common = ["--config", str(REPO / "config.yaml"), "--configfile", str(workdir / "tiny.yaml"), "--configfile", str(override)]
    common += ["--data-dir", str(workdir / "data"), "--results-dir", str(tmp_path / "results")]
    assert main(["ease", *common, DATASET]) == 0
    assert main(["train", *common, DATASET, "mf", "baseline"]) == 0
    for run in ("ease", "mf-baseline"):
        record = json.loads((tmp_path / "results" / DATASET / "runs" / f"{run}.json").read_text())
        assert {"recall@10", "ndcg@10", "hitrate@10", "recall@50"} <= set(record["metrics"]["test"])
        assert "recall@50" in record["extra"]["selected_by"]
