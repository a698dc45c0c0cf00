"""Report figures and tables on small hand-made results tables: what is drawn, and what is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from islim.codehash import reachable_modules
from islim.plotting import ablation_grid_figure, convergence_figure, dimension_figure, read_curves, save_figure, scaling_figure
from islim.plotting.registry import FIGURES, SOURCES, ReportFigure, draw, drawing_function, read_source
from islim.plotting.scaling import loglog_slope
from islim.provenance import provenance_table
from islim.results_table import results_table, write_results_table

REPO = Path(__file__).resolve().parents[1]
SKIP_REASON = "first_step='identity' with second_step='explicit' is undefined"
MEMORY_REASON = "dense I x I work over the memory budget"


def ablation_rows(arm: str, d: int, scorer: str, ndcg: float | None, reason: str = "") -> list[dict]:
    """``ablations.csv`` rows of one cell x scorer: test and validation NDCG@100, or one skipped row."""
    kind, _, axes = arm.partition(":")
    neighbourhood, first_step, second_step = axes.split("/") if kind == "ablation" else ("-", axes, "-")
    base = {
        "dataset": "toy",
        "arm": arm,
        "neighbourhood": neighbourhood,
        "first_step": first_step,
        "second_step": second_step,
        "d": d,
        "scorer": scorer,
    }
    if ndcg is None:
        return [
            {
                **base,
                "status": "skipped",
                "reason": reason,
                "extraction_seconds": np.nan,
                "extraction_peak_mb": np.nan,
                "split": None,
                "metric": None,
                "value": np.nan,
            }
        ]
    cost = {"status": "ok", "reason": "", "extraction_seconds": d / 8, "extraction_peak_mb": 10.0 * d}
    return [
        {**base, **cost, "split": split, "metric": "ndcg@100", "value": ndcg + offset}
        for split, offset in (("test", 0.0), ("validation", 0.01))
    ]


@pytest.fixture
def ablations() -> pd.DataFrame:
    """Two dims x two scorers; all/lle/explicit skipped at d = 16, identity x explicit skipped always."""
    rows = []
    for scorer in ("mf", "plrec"):
        for d in (8, 16):
            rows += ablation_rows("reference:random", d, scorer, 0.10)
            rows += ablation_rows("reference:svd", d, scorer, 0.30)
            rows += ablation_rows("ablation:all/ease/implicit", d, scorer, 0.40)
            rows += ablation_rows("ablation:knn/ease/implicit", d, scorer, 0.35)
            rows += ablation_rows("ablation:all/lle/explicit", d, scorer, 0.20 if d == 8 else None, MEMORY_REASON)
            rows += ablation_rows("ablation:all/identity/explicit", d, scorer, None, SKIP_REASON)
            rows += ablation_rows("ablation:knn/identity/explicit", d, scorer, None, SKIP_REASON)
    return pd.DataFrame(rows)


def metric_row(dataset: str, model: str, run: str, split: str, metric: str, value: float, se: float = 0.002) -> dict:
    return {"dataset": dataset, "model": model, "run": run, "split": split, "metric": metric, "value": value, "se": se, "n_users": 100}


@pytest.fixture
def metrics() -> pd.DataFrame:
    """EASE, MF in two variants and one ablation arm on ml-20m, test and validation NDCG@100."""
    rows = []
    for split in ("test", "validation"):
        rows.append(metric_row("ml-20m", "ease", "ease", split, "ndcg@100", 0.4123))
        rows.append(metric_row("ml-20m", "recvae", "recvae|baseline", split, "ndcg@100", 0.4500))
        rows.append(metric_row("ml-20m", "recvae", "recvae|implicit_slim", split, "ndcg@100", 0.4600))
        rows.append(metric_row("ml-20m", "ablation:all/ease/implicit", "ablation:all/ease/implicit|d=8|mf", split, "ndcg@100", 0.3))
    return pd.DataFrame(rows)


@pytest.fixture
def curves(tmp_path) -> pd.DataFrame:
    """Three-epoch curves of MF and Mult-VAE, each with and without ImplicitSLIM, read back from CSV files."""
    paths = []
    for model in ("mf", "multvae"):
        for offset, variant in enumerate(("baseline", "implicit_slim")):
            curve = pd.DataFrame(
                {"epoch": [0, 1, 2], "wall_seconds": [0.5, 1.0, 1.5], "train_loss": np.nan, "val_ndcg@100": [0.1 + offset / 10, 0.2, 0.25]}
            )
            paths.append(tmp_path / f"{model}-{variant}.csv")
            curve.to_csv(paths[-1], index=False)
    return read_curves(paths)


@pytest.fixture
def scaling() -> pd.DataFrame:
    """EASE time ~ I³ and memory ~ I², ImplicitSLIM (d = 64) time and memory ~ I."""
    items = np.array([1000, 2000, 4000])
    ease = pd.DataFrame({"method": "EASE", "n_items": items, "d": np.nan, "seconds": 1e-9 * items**3, "peak_mb": 1e-5 * items**2})
    islim = pd.DataFrame({"method": "ImplicitSLIM", "n_items": items, "d": 64, "seconds": 1e-3 * items, "peak_mb": 0.01 * items})
    return pd.concat([ease, islim], ignore_index=True)


def legend_texts(figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_dimension_figure_has_a_panel_per_scorer_a_line_per_arm_and_ease(ablations, metrics):
    figure = dimension_figure(ablations, metrics)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["MF", "PLRec"]
    assert axes[0].get_ylabel() == "test NDCG@100" and all(ax.get_xlabel() == "embedding dimension d" for ax in axes)
    for ax in axes:
        assert len(ax.get_lines()) == 5 + 1  # arms that ran at some d (identity x explicit never did) + EASE
    assert legend_texts(figure) == [
        "other arms (1)",
        "random",
        "svd",
        "SLIM-LLE (all/lle/explicit)",
        "ImplicitSLIM (all/ease/implicit)",
        "EASE",
    ]
    ydata = [list(np.nan_to_num(line.get_ydata())) for line in axes[0].get_lines()]
    assert [0.4123, 0.4123] in ydata  # EASE's test NDCG@100, horizontal
    assert [0.2, 0.0] in ydata  # SLIM-LLE, skipped at d = 16, is drawn at d = 8 only


def test_convergence_figure_pairs_variants_of_a_model_by_colour(curves):
    figure = convergence_figure(curves)
    by_epoch, by_time = figure.axes
    assert by_epoch.get_xlabel() == "epoch" and by_time.get_xlabel() == "wall-clock time (s)"
    assert by_epoch.get_ylabel() == "validation NDCG@100" and by_time.get_xscale() == "log"
    for ax in (by_epoch, by_time):
        lines = ax.get_lines()
        assert len(lines) == 4
        assert len({tuple(line.get_color()) for line in lines}) == 2 and {line.get_linestyle() for line in lines} == {"-", "--"}
    assert legend_texts(figure) == ["MF", "Mult-VAE", "baseline", "implicit_slim"]


def test_ablation_grid_figure_shows_quality_beside_cost_and_marks_skipped_cells(ablations):
    figure = ablation_grid_figure(ablations)
    assert figure.get_suptitle() == "ablation grid at d = 16"
    axes = np.array(figure.axes).reshape(2, 4)  # neighbourhood all/knn x (MF, PLRec, seconds, MB)
    titles = [ax.get_title() for ax in axes[0]]
    assert titles == ["test NDCG@100, MF", "test NDCG@100, PLRec", "extraction time (s)", "peak memory (MB)"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["all: first step", "knn: first step"]
    assert all(len(ax.collections) == 1 for ax in axes.flat)  # one heatmap mesh per panel
    hatched = [[sum(bool(patch.get_hatch()) for patch in ax.patches) for ax in row] for row in axes]
    assert hatched == [[2] * 4, [1] * 4]  # all: identity x explicit and lle x explicit at d = 16; knn: identity x explicit
    assert {text.get_text() for text in axes[0][0].texts} >= {"(a)", "(b)", "0.400"}
    notes = legend_texts(figure)
    assert len(notes) == 2 and any(SKIP_REASON in note for note in notes) and any(MEMORY_REASON in note for note in notes)


def test_ablation_grid_figure_at_the_smaller_dimension_has_only_the_undefined_cells_skipped(ablations):
    figure = ablation_grid_figure(ablations, d=8)
    hatched = sum(bool(patch.get_hatch()) for ax in figure.axes for patch in ax.patches)
    assert hatched == 2 * 4  # identity x explicit in both neighbourhoods, in every panel
    assert {text.get_text() for text in figure.axes[2].texts} >= {"1", "(a)"}  # extraction seconds d / 8 = 1


def test_scaling_figure_prints_the_fitted_log_log_slopes(scaling):
    assert loglog_slope([10, 100, 1000], [1, 100, 10000]) == pytest.approx(2.0)
    assert np.isnan(loglog_slope([10, 10], [1, 2]))
    figure = scaling_figure(scaling)
    seconds, memory = figure.axes
    assert seconds.get_ylabel() == "time (s)" and memory.get_ylabel() == "peak memory (MB)"
    assert all(ax.get_xscale() == ax.get_yscale() == "log" and ax.get_xlabel() == "number of items I" for ax in figure.axes)
    assert [t.get_text() for t in seconds.get_legend().get_texts()] == ["EASE: slope 3.00", "ImplicitSLIM (d=64): slope 1.00"]
    assert [t.get_text() for t in memory.get_legend().get_texts()] == ["EASE: slope 2.00", "ImplicitSLIM (d=64): slope 1.00"]
    assert all(len(ax.get_lines()) == 2 for ax in figure.axes)


def test_save_figure_writes_decodable_png_and_pdf_that_are_identical_on_rerun(tmp_path, scaling):
    figure = scaling_figure(scaling)
    png, pdf = save_figure(figure, tmp_path / "scaling")
    assert (png.name, pdf.name) == ("scaling.png", "scaling.pdf")
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    first = {path: path.read_bytes() for path in (png, pdf)}
    assert first[pdf].startswith(b"%PDF") and b"CreationDate" not in first[pdf] and b"Matplotlib" not in first[pdf]
    save_figure(scaling_figure(scaling), tmp_path / "scaling")
    assert {path: path.read_bytes() for path in (png, pdf)} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scaling.pdf", "scaling.png"]  # no temporary files left


def test_save_figure_svg_has_no_date_and_is_identical_on_rerun(tmp_path, curves):
    (svg,) = save_figure(convergence_figure(curves), tmp_path / "a", formats=("svg",))
    (again,) = save_figure(convergence_figure(curves), tmp_path / "b", formats=("svg",))
    assert svg.read_bytes() == again.read_bytes() and b"<dc:date>" not in svg.read_bytes()


def test_every_figure_source_has_a_test_table_here(request):
    """The registry tests below draw each figure from the fixtures named like its inputs."""
    for name in SOURCES:
        assert isinstance(request.getfixturevalue(name), pd.DataFrame), f"add a fixture {name!r} to tests/test_plotting.py"


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_registered_figure_draws_from_the_tables_of_its_inputs(request, name):
    figure = FIGURES[name]
    drawn = drawing_function(figure)(**{source: request.getfixturevalue(source) for source in figure.inputs})
    assert isinstance(drawn, Figure) and drawn.axes
    assert any(ax.has_data() for ax in drawn.axes)  # lines, bars, heatmap cells, ...


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_registered_figure_has_its_report_caption(name):
    caption = REPO / "reports" / "captions" / f"{name}.rst"
    assert caption.is_file() and caption.read_text(encoding="utf-8").strip(), f"write {caption.relative_to(REPO)}"


def test_the_figure_rule_code_hash_covers_every_registered_figure_module():
    reached = set(reachable_modules(REPO / "workflow_scripts" / "figure.py", REPO / "islim"))
    for figure in FIGURES.values():
        assert (REPO / "islim" / "plotting" / f"{figure.draw.split('.')[0]}.py").resolve() in reached, figure.name


def test_importing_the_registry_loads_no_plotting_library():
    """The workflow reads the registry while building the DAG; matplotlib and seaborn load only in jobs."""
    code = "import sys, islim.plotting.registry; print(sorted({'matplotlib', 'seaborn'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_figure_stages_follow_from_its_inputs_and_needs():
    stages = {name: FIGURES[name].stages for name in ("dimension", "convergence", "ablation_grid", "scaling")}
    assert stages == {"dimension": ("ablations",), "convergence": ("training",), "ablation_grid": ("ablations",), "scaling": ("scaling",)}
    assert ReportFigure("f", "dimension.dimension_figure", ("metrics",), "f", needs=("training",)).stages == ("training",)
    assert ReportFigure("f", "dimension.dimension_figure", ("metrics",), "f").stages == ()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"inputs": ("metrics", "ratings")}, "expected one or more of"),
        ({"scope": "dataset-wide"}, "scope 'dataset-wide'"),
        ({"name": "ablation-grid"}, "letters, digits"),
        ({"draw": "dimension_figure"}, "'<module>.<function>'"),
        ({"needs": ("ease",)}, "expected stages among"),
    ],
)
def test_registry_entry_with_an_unknown_input_scope_name_draw_or_stage_is_refused(fields, message):
    entry = {"name": "f", "draw": "dimension.dimension_figure", "inputs": ("metrics",), "label": "f", **fields}
    with pytest.raises(ValueError, match=message):
        ReportFigure(**entry)


def test_drawing_function_names_the_missing_module_or_function():
    with pytest.raises(LookupError, match="islim.plotting.dimensions is not imported"):
        drawing_function(ReportFigure("f", "dimensions.dimension_figure", ("metrics",), "f"))
    with pytest.raises(LookupError, match="has no function 'dimension_plot'"):
        drawing_function(ReportFigure("f", "dimension.dimension_plot", ("metrics",), "f"))


def test_draw_reads_each_input_from_its_files_as_the_workflow_passes_them(tmp_path, ablations, metrics, curves):
    ablations.to_csv(tmp_path / "ablations.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    drawn = draw("dimension", {"ablations": str(tmp_path / "ablations.csv"), "metrics": [str(tmp_path / "metrics.csv")]})
    assert legend_texts(drawn) == legend_texts(dimension_figure(ablations, metrics))
    paths = sorted(str(path) for path in tmp_path.glob("*-*.csv"))  # the curves fixture's files
    assert legend_texts(draw("convergence", {"curves": paths})) == legend_texts(convergence_figure(curves))
    with pytest.raises(KeyError, match=r"no files given for inputs \['metrics'\]"):
        draw("dimension", {"ablations": str(tmp_path / "ablations.csv")})


def test_a_per_dataset_source_of_a_summary_figure_is_the_concatenation_over_datasets(tmp_path, metrics):
    metrics.to_csv(tmp_path / "a.csv", index=False)
    metrics.assign(dataset="msd").to_csv(tmp_path / "b.csv", index=False)
    table = read_source("metrics", [tmp_path / "a.csv", tmp_path / "b.csv"])
    assert len(table) == 2 * len(metrics) and list(table["dataset"].unique()) == ["ml-20m", "msd"]
    with pytest.raises(FileNotFoundError, match="no files"):
        read_source("curves", [])


def test_results_table_sets_the_published_number_beside_the_baseline_only(metrics):
    table = results_table(metrics)
    assert list(table["model"]) == ["ease", "recvae", "recvae"]  # test split, no ablation arm, paper order
    ease = table.iloc[0]
    assert ease["published"] == 0.420 and ease["difference"] == pytest.approx(0.4123 - 0.420)
    baseline, implicit = table.iloc[1], table.iloc[2]
    assert baseline["published"] == 0.442 and baseline["difference"] == pytest.approx(0.008)
    assert implicit["variant"] == "implicit_slim" and np.isnan(implicit["published"]) and np.isnan(implicit["difference"])


def test_results_table_files_carry_the_hand_worked_row(tmp_path, metrics):
    write_results_table(results_table(metrics), tmp_path / "results")
    csv = pd.read_csv(tmp_path / "results.csv")
    assert csv.loc[0, ["mean", "se", "published"]].tolist() == [0.4123, 0.002, 0.420]
    assert csv.loc[0, "difference"] == pytest.approx(-0.0077)
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8").splitlines()
    assert markdown[0] == "| dataset | model | variant | metric | measured (mean ± s.e.) | published | difference |"
    assert markdown[2] == "| ml-20m | EASE | — | NDCG@100 | 0.4123 ± 0.0020 | 0.420 | -0.0077 |"
    assert markdown[4] == "| ml-20m | RecVAE | implicit_slim | NDCG@100 | 0.4600 ± 0.0020 | — | — |"
    latex = (tmp_path / "results.tex").read_text(encoding="utf-8")
    assert "ml-20m & EASE & -- & NDCG@100 & 0.4123 $\\pm$ 0.0020 & 0.420 & -0.0077 \\\\" in latex
    assert "implicit\\_slim" in latex and latex.startswith("\\begin{tabular}") and latex.rstrip().endswith("\\end{tabular}")


def test_provenance_lists_package_versions_and_data_checksums(tmp_path):
    manifest = {"dataset": "toy", "kind": "synthetic", "file": "/data/raw/toy/toy.csv", "size": 123, "sha256": "ab" * 32}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    table = provenance_table([tmp_path / "manifest.json"])
    packages = table[table["kind"] == "package"].set_index("name")["value"]
    assert {"python", "islim", "numpy", "matplotlib", "snakemake"} <= set(packages.index)
    assert packages["islim"] != "not installed"
    data = table[table["kind"] == "data"].iloc[0]
    assert (data["name"], data["value"], data["detail"]) == ("toy", "ab" * 32, "synthetic, 123 bytes, toy.csv")
