"""The Snakemake workflow end to end: dry run, lint, a tiny real run, and an idempotent rerun."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml

from islim.config import run_point_names
from islim.models.registry import model_spec
from islim.plotting.registry import FIGURES
from tests.workflow_helpers import REPO, snakemake, write_tiny_config

pytestmark = pytest.mark.workflow

METRICS = ["recall@20", "recall@50", "ndcg@100"]
REPORT_RULES = ["figure", "results_table", "findings", "provenance", "figures"]
#: Registered figures drawn once per dataset (the others go to reports/summary/).
DATASET_FIGURES = [name for name, figure in FIGURES.items() if figure.scope == "dataset"]
#: Figures only the opt-in target `snakemake scaling` draws (it measures the machine).
OPT_IN_FIGURES = ["scaling"]
#: A scaling measurement of a few seconds (config report.scaling).
TINY_SCALING = {"items": [100, 200], "explicit_max_items": 100, "d": 8, "users_per_item": 3, "interactions_per_item": 20}
FIGURES_PROFILE = REPO / "profiles" / "figures"


def test_dry_run_of_the_default_config_plans_the_whole_chain(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "2")
    assert result.returncode == 0, result.stderr
    for rule in ("fetch", "split", "ease", "aggregate", "all", *REPORT_RULES[:3]):
        assert f"rule {rule}:" in result.stdout
    assert "results/ml-100k/metrics.csv" in result.stdout
    for name in DATASET_FIGURES:
        assert f"reports/ml-100k/{name}.pdf" in result.stdout
    # The scaling measurement is opt-in (`snakemake scaling`): no scaling job, and a message.
    assert "reports/summary/scaling.png" not in result.stdout
    assert "the cost scaling figure is skipped" in result.stdout + result.stderr


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


SNAKEFMT = Path(sys.executable).with_name("snakefmt")


@pytest.mark.skipif(not SNAKEFMT.exists(), reason="snakefmt is not installed beside this Python")
def test_snakefmt_is_clean():
    result = subprocess.run([str(SNAKEFMT), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_invalid_config_fails_before_any_job_with_the_key_named(tmp_path):
    config = write_tiny_config(tmp_path, {"threads": 0})
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configfile=config)
    assert result.returncode != 0
    assert "threads" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_run")
    config = write_tiny_config(directory, {"report": {"scaling": TINY_SCALING}})
    result = snakemake(directory, "--cores", "2", "all", "scaling", configfile=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return directory, config


@pytest.mark.parametrize("dataset", ["synthetic-tiny", "ml-latest-small"])
def test_tiny_run_writes_run_records_with_every_required_field(tiny_run, dataset):
    directory, _ = tiny_run
    record = json.loads((directory / "results" / dataset / "runs" / "ease.json").read_text())
    assert record["dataset"] == dataset and record["model"] == "ease"
    assert record["params"]["lambda"] in (100, 300)
    for split in ("validation", "test"):
        for metric in METRICS:
            assert 0 < record["metrics"][split][metric] <= 1
            assert record["metrics"][split][f"{metric}_se"] > 0
        assert record["n_users"][split] > 0
    assert record["wall_seconds"] > 0 and record["peak_memory_mb"] > 0
    sweep = pd.read_csv(directory / "results" / dataset / "ease_sweep.csv")
    validation = sweep[sweep["split"] == "validation"]
    assert validation.loc[validation["ndcg@100"].idxmax(), "lambda"] == record["params"]["lambda"]


@pytest.mark.parametrize("dataset", ["synthetic-tiny", "ml-latest-small"])
def test_tiny_run_metrics_table_is_tidy(tiny_run, dataset):
    directory, _ = tiny_run
    table = pd.read_csv(directory / "results" / dataset / "metrics.csv")
    assert set(table["split"]) == {"validation", "test"} and set(table["metric"]) == set(METRICS)
    assert not table.duplicated(["run", "split", "metric"]).any()
    assert (table.groupby("run").size() == 2 * len(METRICS)).all()  # each run: two splits x three metrics
    record = json.loads((directory / "results" / dataset / "runs" / "ease.json").read_text())
    row = table[(table["run"] == "ease") & (table["split"] == "test") & (table["metric"] == "ndcg@100")].iloc[0]
    assert row["value"] == pytest.approx(record["metrics"]["test"]["ndcg@100"])


TRAINED = [(model, variant) for model in ("mf", "plrec", "multvae", "recvae", "hvamp") for variant in ("baseline", "implicit_slim")]
TRAINED += [("popularity", "baseline"), ("itemknn", "baseline")]  # the sanity baselines


@pytest.mark.parametrize("dataset", ["synthetic-tiny", "ml-latest-small"])
def test_tiny_run_trains_every_model_with_and_without_implicit_slim(tiny_run, dataset):
    directory, _ = tiny_run
    table = pd.read_csv(directory / "results" / dataset / "metrics.csv")
    for model, variant in TRAINED:
        record = json.loads((directory / "results" / dataset / "runs" / f"{model}-{variant}.json").read_text())
        assert record["model"] == model and record["extra"]["variant"] == variant
        assert 0 < record["metrics"]["test"]["ndcg@100"] <= 1
        curve = pd.read_csv(directory / "results" / dataset / "curves" / f"{model}-{variant}.csv")
        assert list(curve.columns) == ["epoch", "wall_seconds", "train_loss", "val_recall@20", "val_recall@50", "val_ndcg@100"]
        assert len(curve) >= 1 and curve["wall_seconds"].is_monotonic_increasing
        assert f"{model}|{variant}" in set(table["run"])


@pytest.mark.parametrize("dataset", ["synthetic-tiny", "ml-latest-small"])
def test_tiny_run_trains_each_grid_point_and_seed_as_its_own_job(tiny_run, dataset):
    """Two seeds (tests/configs/tiny.yaml): every grid point of a stochastic model is two jobs, of a
    deterministic one a single job; the selection keeps the best mean-over-seeds point, and the
    run's per-user file holds the seed-averaged scores whose means are the record's metrics."""
    directory, _ = tiny_run
    results = directory / "results" / dataset
    users = pd.read_csv(directory / "data" / "processed" / dataset / "users.csv").astype({"user_id": str})
    for model, variant in TRAINED:
        record = json.loads((results / "runs" / f"{model}-{variant}.json").read_text())
        seeds = [0, 1] if model_spec(model).stochastic else [None]
        names = run_point_names(record["extra"]["grid"], seeds)
        points = {}
        for name in names:
            folder = results / "points" / f"{model}-{variant}"
            points[name] = json.loads((folder / f"{name}.json").read_text())
            assert (folder / f"{name}.curve.csv").is_file() and (folder / f"{name}.per_user.parquet").is_file()
            assert (directory / "results" / "benchmarks" / "train_point" / dataset / f"{model}-{variant}" / f"{name}.tsv").is_file()
        searched = {
            json.dumps({k: v for k, v in entry.items() if not k.startswith("val_")}, sort_keys=True)
            for entry in record["extra"]["searched"]
        }
        assert len(searched) == len(names) // len(seeds)  # no point failed
        kept = [
            p
            for p in points.values()
            if {k: p["params"][k] for k in record["extra"]["grid"]} == {k: record["params"][k] for k in record["extra"]["grid"]}
        ]
        assert [p["extra"]["seed"] for p in kept] == seeds
        kept_validation = sum(p["metrics"]["validation"]["ndcg@100"] for p in kept) / len(kept)
        assert record["metrics"]["validation"]["ndcg@100"] == pytest.approx(kept_validation, rel=1e-9)
        assert kept_validation == pytest.approx(max(entry["val_ndcg@100"] for entry in record["extra"]["searched"]), rel=1e-9)
        if model_spec(model).stochastic:
            assert record["extra"]["seeds"] == [0, 1] and "ndcg@100_seed_sd" in record["metrics"]["test"]
        else:
            assert "seeds" not in record["extra"] and "ndcg@100_seed_sd" not in record["metrics"]["test"]
        per_user = pd.read_parquet(results / "per_user" / f"{model}-{variant}.parquet")
        for split in ("validation", "test"):
            rows = per_user[per_user["split"] == split]
            assert len(rows) == record["n_users"][split] and set(rows["user"]) <= set(users.loc[users["group"] == split, "user_id"])
            for metric in METRICS:
                assert rows[metric].mean() == pytest.approx(record["metrics"][split][metric], rel=1e-9)
        assert isinstance(record["flags"], list)
    ease = json.loads((results / "runs" / "ease.json").read_text())
    assert [json.loads((results / "points" / "ease" / f"p{i}.json").read_text())["extra"]["point"]["lambda"] for i in (0, 1)] == [100, 300]
    per_user = pd.read_parquet(results / "per_user" / "ease.parquet")
    assert per_user.loc[per_user["split"] == "test", "ndcg@100"].mean() == pytest.approx(ease["metrics"]["test"]["ndcg@100"], rel=1e-9)
    table = pd.read_csv(results / "metrics.csv", keep_default_na=False)
    assert {"flags", "n_seeds", "seed_sd"} <= set(table.columns)
    assert set(table.loc[table["model"] == "mf", "n_seeds"]) == {2} and set(table.loc[table["model"] == "ease", "n_seeds"]) == {1}
    assert set(table.loc[table["run"] == "ease", "flags"]) == {";".join(ease["flags"])}


def test_one_more_seed_plans_the_new_seeds_point_jobs_only(tiny_run):
    directory, _ = tiny_run
    (directory / "three_seeds").mkdir(exist_ok=True)
    config = write_tiny_config(directory / "three_seeds", {"seeds": [0, 1, 2]})
    result = snakemake(directory, "--dry-run", "--cores", "2", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = re.findall(r"output: results/[^/]+/points/[^/]+/(p\d+(?:\.s\d+)?)\.json", result.stdout)
    assert planned and all(name.endswith(".s2") for name in planned)
    assert "rule ease_point:" not in result.stdout  # EASE is deterministic: its jobs stay done


def test_tiny_run_ablation_grid_is_complete_with_skips_explained(tiny_run):
    directory, _ = tiny_run
    for dataset in ("synthetic-tiny", "ml-latest-small"):
        table = pd.read_csv(directory / "results" / dataset / "ablations.csv")
        cells = table.drop_duplicates(["arm", "d", "scorer"])
        # (grid + references) x scorers at d = 16, plus the dimension curve's arms at curve_dims' d = 8:
        # both references and both paper cells (SLIM-LLE and ImplicitSLIM), none missing
        assert len(cells[cells["d"] == 16]) == (2 * 3 * 2 + 2) * 2
        curve = cells[cells["d"] == 8]
        assert set(curve["arm"]) == {
            "reference:random",
            "reference:svd",
            "ablation:all/ease/explicit",
            "ablation:all/ease/implicit",
        }
        assert len(curve) == 4 * 2 and len(cells) == 28 + 8
        skipped = cells[cells["status"] == "skipped"]
        assert skipped["reason"].str.len().gt(0).all()
        assert {"ablation:all/identity/explicit", "ablation:knn/identity/explicit"} <= set(skipped["arm"])
        assert len(skipped) == 2 * 2  # only identity x explicit (undefined), for both neighbourhoods
        ok = table[(table["status"] == "ok") & (table["split"] == "test") & (table["metric"] == "ndcg@100")]
        assert ok["value"].between(0, 1).all() and ok["extraction_seconds"].ge(0).all()
        assert "ablation:all/ease/implicit" in set(ok["arm"]) and "ablation:knn/ease/implicit" in set(ok["arm"])


def test_tiny_run_uses_the_mirror_and_verifies_the_member(tiny_run):
    directory, _ = tiny_run
    manifest = json.loads((directory / "data" / "raw" / "ml-latest-small" / "manifest.json").read_text())
    assert manifest["sha256"] == "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"
    stats = json.loads((directory / "data" / "processed" / "ml-latest-small" / "stats.json").read_text())
    assert stats["users"] == {"train": 483, "validation": 60, "test": 60, "total": 603}


def test_every_rule_wrote_its_log_and_benchmark(tiny_run):
    directory, _ = tiny_run
    for rule in ("fetch", "split", "ease", "aggregate"):  # one log and benchmark per dataset
        for dataset in ("synthetic-tiny", "ml-latest-small"):
            assert "done in" in (directory / "logs" / rule / f"{dataset}.log").read_text()
            assert (directory / "results" / "benchmarks" / rule / f"{dataset}.tsv").is_file()


@pytest.mark.parametrize("dataset", ["synthetic-tiny", "ml-latest-small"])
def test_tiny_run_draws_every_figure_as_png_and_pdf(tiny_run, dataset):
    directory, _ = tiny_run
    for figure in DATASET_FIGURES:
        image = mpimg.imread(directory / "reports" / dataset / f"{figure}.png")
        assert image.ndim == 3 and min(image.shape[:2]) > 100
        assert (directory / "reports" / dataset / f"{figure}.pdf").read_bytes().startswith(b"%PDF")
        assert "done in" in (directory / "logs" / "report" / dataset / f"{figure}.log").read_text()


def test_tiny_run_writes_the_results_tables_provenance_and_scaling_figure(tiny_run):
    directory, _ = tiny_run
    summary = pd.read_csv(directory / "reports" / "summary" / "results.csv")
    assert list(summary["dataset"].unique()) == ["synthetic-tiny", "ml-latest-small"]
    for dataset in ("synthetic-tiny", "ml-latest-small"):
        table = pd.read_csv(directory / "reports" / dataset / "results.csv")
        assert set(table["model"]) == {"ease", "mf", "plrec", "multvae", "recvae", "hvamp", "popularity", "itemknn"}
        assert len(table) == 13 * 3  # EASE, five models x two variants, two sanity baselines; three metrics each
        assert table["published"].isna().all()  # no published numbers for these datasets
        assert (directory / "reports" / dataset / "results.md").read_text().startswith("| dataset | model |")
        assert "\\begin{tabular}" in (directory / "reports" / dataset / "results.tex").read_text()
    provenance = pd.read_csv(directory / "reports" / "summary" / "provenance.csv")
    checksums = provenance[provenance["kind"] == "data"].set_index("name")["value"]
    assert checksums["ml-latest-small"] == "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"
    assert (directory / "reports" / "summary" / "scaling.pdf").read_bytes().startswith(b"%PDF")


def test_tiny_run_compares_runs_on_test_users_and_writes_findings(tiny_run):
    directory, _ = tiny_run
    for dataset in ("synthetic-tiny", "ml-latest-small"):
        comparisons = pd.read_csv(directory / "results" / dataset / "comparisons.csv", keep_default_na=False)
        # 13 runs: 5 variants vs baseline, 11 vs EASE (not popularity), 12 vs popularity (EASE too); 3 metrics
        assert len(comparisons) == (5 + 11 + 12) * 3
        assert set(comparisons["reference"]) == {f"{m}|baseline" for m in ("mf", "plrec", "multvae", "recvae", "hvamp")} | {
            "ease",
            "popularity|baseline",
        }
        # delta by hand from the per-user files: MF with ImplicitSLIM minus its baseline on test users
        scores = {
            variant: pd.read_parquet(directory / "results" / dataset / "per_user" / f"mf-{variant}.parquet").query("split == 'test'")
            for variant in ("baseline", "implicit_slim")
        }
        joined = scores["implicit_slim"].merge(scores["baseline"], on="user", suffixes=("", "_base"))
        row = comparisons.query("model == 'mf' and variant == 'implicit_slim' and reference == 'mf|baseline' and metric == 'ndcg@100'")
        assert row["delta"].item() == pytest.approx((joined["ndcg@100"] - joined["ndcg@100_base"]).mean(), abs=1e-12)
        assert row["n_users"].item() == len(joined) and row["ci_low"].item() <= row["delta"].item() <= row["ci_high"].item()
        for _, family in comparisons.groupby("metric"):  # Holm within each metric
            assert (family["p_adjusted"] >= family["p_value"]).all() and (family["p_adjusted"] <= 1).all()
        findings = (directory / "reports" / dataset / "findings.md").read_text(encoding="utf-8")
        assert findings.startswith(f"# Findings: {dataset}\n")
        for section in ("## Variants against their baseline", "## Convergence", "## Beside popularity", "## Flags"):
            assert section in findings
        assert "<table>" in (directory / "reports" / dataset / "findings.html").read_text(encoding="utf-8")


def test_report_of_the_tiny_run_holds_every_figure_and_table(tiny_run):
    directory, config = tiny_run
    report = directory / "report.zip"
    result = snakemake(directory, "--report", str(report), "all", "scaling", configfile=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = [Path(name).name for name in zipfile.ZipFile(report).namelist()]
    for name in ("report.html", *(f"{figure}.png" for figure in FIGURES), "provenance.html"):
        assert name in names
    assert names.count("results.html") == 3  # two datasets and the summary, as formatted pages
    assert names.count("findings.html") == 2 and names.count("comparisons.csv") == 2
    assert all(names.count(f"{figure}.png") == 2 for figure in DATASET_FIGURES)
    html = next(zipfile.ZipFile(report).read(name) for name in zipfile.ZipFile(report).namelist() if name.endswith("report.html")).decode()
    for figure in FIGURES.values():  # each figure carries its label and its own caption (reports/captions/<name>.rst)
        assert f'"figure": "{figure.label}"' in html
        caption = (REPO / "reports" / "captions" / f"{figure.name}.rst").read_text(encoding="utf-8")
        assert re.match(r"[^\\`*\n]{8,}", caption).group() in html
    # The landing page: its top stays in reach when it is taller than the window, settings read as text.
    assert "align-items: safe center" in html
    assert "{100, 300}, float32" in html  # EASE's lambda grid as a set, not a Python list


def test_figures_profile_redraws_the_report_only(tiny_run):
    directory, config = tiny_run
    result = snakemake(directory, "--profile", str(FIGURES_PROFILE), "--dry-run", "figures", configfile=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    planned = re.findall(r"^(?:local)?rule (\w+):$", result.stdout, re.MULTILINE)
    assert set(planned) == set(REPORT_RULES)
    assert planned.count("figure") == 2 * len(DATASET_FIGURES) + len(FIGURES) - len(DATASET_FIGURES) - len(OPT_IN_FIGURES)
    assert planned.count("results_table") == 3


def test_figures_profile_and_localrules_name_every_report_rule():
    rules = re.findall(r"^rule (\w+):$", (REPO / "rules" / "report.smk").read_text(), re.MULTILINE)
    assert sorted(rules) == sorted(REPORT_RULES)
    assert sorted(yaml.safe_load((FIGURES_PROFILE / "config.yaml").read_text())["allowed-rules"]) == sorted(REPORT_RULES)
    localrules = (REPO / "Snakefile").read_text().split("localrules:")[1].split("rule all")[0]
    assert all(f"    {rule},\n" in localrules for rule in REPORT_RULES)


def test_second_invocation_does_nothing(tiny_run):
    directory, config = tiny_run
    result = snakemake(directory, "--cores", "2", configfile=config)
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr
