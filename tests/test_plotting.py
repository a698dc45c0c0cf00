"""Report figures and tables on small hand-made results tables: what is drawn, and what is written."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats
import yaml
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from islim.codehash import reachable_modules
from islim.embeddings.registry import ARMS, STYLED_ARMS
from islim.models.registry import MODELS
from islim.plotting import ablation_grid_figure, convergence_figure, dimension_figure, read_curves, save_figure, scaling_figure
from islim.plotting.ablation_grid import cell_of_stem
from islim.plotting.registry import FIGURES, SOURCES, ReportFigure, draw, drawing_function, read_source
from islim.plotting.style import NEUTRAL, PALETTE, TOL_MUTED, arm_style, model_style
from islim.provenance import provenance_table
from islim.results_table import results_table, write_results_table
from islim.slopes import loglog_slope

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
                "se": np.nan,
            }
        ]
    cost = {"status": "ok", "reason": "", "extraction_seconds": d / 8, "extraction_peak_mb": 10.0 * d}
    return [
        {**base, **cost, "split": split, "metric": "ndcg@100", "value": ndcg + offset, "se": SE}
        for split, offset in (("test", 0.0), ("validation", 0.01))
    ]


SE = 0.01  # the standard error over users of every ok cell of the fixture
GRID_DIMS, CURVE_DIMS = (8, 16), (4, 32)


def implicit_slim_ndcg(d: int, shift: float) -> float:
    """The fixture's ImplicitSLIM test NDCG@100: rising with d."""
    return 0.40 + shift + d / 1000


@pytest.fixture
def ablations() -> pd.DataFrame:
    """The grid at d = 8, 16 (all/lle/explicit skipped at d = 16, identity x explicit skipped
    always) and the dimension figure's arms at d = 4 and 32 too; PLRec scores 0.1 above MF."""
    rows = []
    for scorer, shift in (("mf", 0.0), ("plrec", 0.1)):
        for d in sorted(GRID_DIMS + CURVE_DIMS):
            rows += ablation_rows("reference:random", d, scorer, 0.10 + shift)
            rows += ablation_rows("reference:svd", d, scorer, 0.30 + shift)
            rows += ablation_rows("ablation:all/ease/implicit", d, scorer, implicit_slim_ndcg(d, shift))
            rows += ablation_rows("ablation:all/ease/explicit", d, scorer, 0.38 + shift)
            if d in GRID_DIMS:
                rows += ablation_rows("ablation:knn/ease/implicit", d, scorer, 0.35 + shift)
                rows += ablation_rows("ablation:all/lle/explicit", d, scorer, 0.20 + shift if d == 8 else None, MEMORY_REASON)
                rows += ablation_rows("ablation:all/identity/explicit", d, scorer, None, SKIP_REASON)
                rows += ablation_rows("ablation:knn/identity/explicit", d, scorer, None, SKIP_REASON)
    return pd.DataFrame(rows)


N_TEST_USERS = 30


@pytest.fixture
def ablation_per_user() -> pd.DataFrame:
    """Per-user NDCG@100 at d = 16 (read_cell_scores layout): knn/ease/implicit below ImplicitSLIM
    for every test user, all/ease/explicit above or below it by turns (no consistent difference)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, N_TEST_USERS)
    alternating = np.where(np.arange(N_TEST_USERS) % 2, 1.0, -1.0) * rng.uniform(0.005, 0.01, N_TEST_USERS)
    scores = {
        "ablation:all/ease/implicit": base,
        "ablation:knn/ease/implicit": base - rng.uniform(0.03, 0.06, N_TEST_USERS),
        "ablation:all/ease/explicit": base + alternating,
        "reference:svd": base - 0.1,
    }
    frames = [
        pd.DataFrame({"scorer": scorer, "split": split, "user": np.arange(N_TEST_USERS), "ndcg@100": values, "arm": arm, "d": 16})
        for scorer in ("mf", "plrec")
        for split in ("validation", "test")
        for arm, values in scores.items()
    ]
    return pd.concat(frames, ignore_index=True)


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
    """Three-epoch curves of MF and Mult-VAE, each with and without ImplicitSLIM, and popularity's
    one-epoch curve, read back from CSV files."""
    paths = []
    for model in ("mf", "multvae"):
        for offset, variant in enumerate(("baseline", "implicit_slim")):
            curve = pd.DataFrame(
                {"epoch": [0, 1, 2], "wall_seconds": [0.5, 1.0, 1.5], "train_loss": np.nan, "val_ndcg@100": [0.1 + offset / 10, 0.2, 0.25]}
            )
            paths.append(tmp_path / f"{model}-{variant}.csv")
            curve.to_csv(paths[-1], index=False)
    paths.append(tmp_path / "popularity-baseline.csv")
    pd.DataFrame({"epoch": [0], "wall_seconds": [0.1], "train_loss": np.nan, "val_ndcg@100": [0.15]}).to_csv(paths[-1], index=False)
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


#: Machado, Oliveira & Fernandes (2009) dichromacy simulation matrices (severity 1), on linear sRGB.
DICHROMACY = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
#: The published hex codes of the Tol schemes the palette draws from (https://personal.sron.nl/~pault/).
TOL_SCHEMES = {
    "muted": ("#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499"),
    "high contrast": ("#004488", "#DDAA33", "#BB5566"),
    "light": ("#77AADD", "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF", "#44BB99", "#BBCC33", "#AAAA00", "#DDDDDD"),
}


def cielab(colour: str, vision: str | None = None) -> np.ndarray:
    """CIELAB (D65) of an sRGB hex colour as seen in normal vision or a simulated dichromacy."""
    srgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    if vision is not None:
        linear = np.clip(np.array(DICHROMACY[vision]) @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_model_reference_arm_and_paper_cell_owns_a_distinct_colour_blind_safe_colour():
    assert TOL_MUTED == TOL_SCHEMES["muted"]
    assert all(arm.colour is not None for arm in ARMS if arm.axis == "reference"), "give every reference arm a colour"
    owners = {**{f"model {name}": spec.colour for name, spec in MODELS.items()}, **{arm: s.colour for arm, s in STYLED_ARMS.items()}}
    colours = {owner: PALETTE[index] for owner, index in owners.items()}
    assert len(set(colours.values())) == len(owners), f"two owners share a colour: {colours}"
    assert set(colours.values()) <= {"#000000", *(c for scheme in TOL_SCHEMES.values() for c in scheme)}
    assert NEUTRAL not in colours.values()
    for (a, x), (b, y) in itertools.combinations(colours.items(), 2):
        assert np.linalg.norm(cielab(x) - cielab(y)) >= 20, f"{a} {x} and {b} {y} look alike"
        for vision in DICHROMACY:
            distance = np.linalg.norm(cielab(x, vision) - cielab(y, vision))
            assert distance >= 10, f"{a} {x} and {b} {y} look alike in {vision} (ΔE {distance:.1f})"


def test_the_default_dimension_curve_covers_16_to_512():
    ablations = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))["ablations"]
    assert {16, 32, 64, 128, 256, 512} <= set(ablations["dims"]) | set(ablations["curve_dims"])


def test_dimension_figure_draws_curves_with_standard_error_bars_and_reference_lines(ablations, metrics):
    sanity = [metric_row("ml-20m", "popularity", "popularity|baseline", "test", "ndcg@100", 0.25)]
    sanity.append(metric_row("ml-20m", "itemknn", "itemknn|baseline", "test", "ndcg@100", 0.33))
    figure = dimension_figure(ablations, pd.concat([metrics, pd.DataFrame(sanity)], ignore_index=True))
    mf, plrec = figure.axes
    assert [ax.get_title() for ax in (mf, plrec)] == ["MF", "PLRec"]
    assert all(ax.get_ylabel() == "test NDCG@100" and ax.get_xlabel() == "embedding dimension d" for ax in (mf, plrec))
    assert not mf.get_shared_y_axes().joined(mf, plrec) and mf.get_ylim() != plrec.get_ylim()  # each panel its own y-range
    for ax, shift in ((mf, 0.0), (plrec, 0.1)):
        assert list(ax.get_xticks()) == [4, 8, 16, 32]
        bars = {container.get_label(): container for container in ax.containers}
        assert list(bars) == ["random", "svd", "SLIM-LLE", "ImplicitSLIM"]
        line, _, (vertical,) = bars["ImplicitSLIM"].lines
        assert list(line.get_xdata()) == [4, 8, 16, 32]
        np.testing.assert_allclose(line.get_ydata(), [implicit_slim_ndcg(d, shift) for d in (4, 8, 16, 32)])
        np.testing.assert_allclose([segment[1, 1] - segment[0, 1] for segment in vertical.get_segments()], 2 * SE)  # ±1 s.e.
        assert to_hex(line.get_color()) == to_hex(arm_style("ablation:all/ease/implicit")["color"])
        dotted = {round(line.get_ydata()[0], 4): to_hex(line.get_color()) for line in ax.get_lines() if line.get_linestyle() == ":"}
        assert dotted == {
            value: to_hex(model_style(model)["color"]) for value, model in ((0.4123, "ease"), (0.33, "itemknn"), (0.25, "popularity"))
        }
        grey = [line for line in ax.get_lines() if to_hex(line.get_color()) == to_hex(NEUTRAL)]
        assert len(grey) == 2  # knn/ease/implicit and all/lle/explicit, at d = 8 and 16 (all/lle/explicit skipped at 16)
        assert all(list(line.get_xdata()) == [8, 16] for line in grey)  # the grid's sizes: no gap at the curve-only sizes
        assert sorted(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).sum() for line in grey) == [1, 2]
    assert legend_texts(figure) == [
        "other arms (2)",
        "random",
        "svd",
        "SLIM-LLE",
        "ImplicitSLIM",
        "EASE (test)",
        "ItemKNN (test)",
        "Popularity (test)",
    ]


def test_convergence_figure_pairs_variants_by_colour_and_draws_one_step_models_as_reference_lines(curves):
    figure = convergence_figure(curves)
    by_epoch, by_time = figure.axes
    assert by_epoch.get_xlabel() == "epoch" and by_time.get_xlabel() == "wall-clock time since fit began (s)"
    assert by_epoch.get_ylabel() == "validation NDCG@100" and by_time.get_xscale() == "log"
    for ax in (by_epoch, by_time):
        curves_drawn = [line for line in ax.get_lines() if line.get_linestyle() != ":"]
        assert len(curves_drawn) == 4
        assert {to_hex(line.get_color()) for line in curves_drawn} == {
            model_style("mf")["color"].lower(),
            model_style("multvae")["color"].lower(),
        }
        assert {line.get_linestyle() for line in curves_drawn} == {"-", "--"}
        (popularity,) = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert list(popularity.get_ydata()) == [0.15, 0.15] and to_hex(popularity.get_color()) == model_style("popularity")["color"].lower()
    assert legend_texts(figure) == ["MF", "Mult-VAE", "baseline", "implicit_slim", "Popularity (validation)"]
    formatters = (by_time.xaxis.get_major_formatter(), by_time.xaxis.get_minor_formatter())
    assert all(type(formatter) is LogFormatter for formatter in formatters)  # seconds as "2", "30", not "2 x 10^0"


def test_convergence_figure_shows_the_selection_metric_given_and_a_style_per_variant(tmp_path):
    """Per-user hold-out curves (validation NDCG@20) of the graph models in three variants: the y
    axis is the metric passed (as the workflow passes the dataset's), each variant its own line
    style, none dotted like the one-step reference lines; a metric the curves lack is named."""
    paths = []
    for model in ("lightgcn", "ultragcn"):
        for variant in ("baseline", "implicit_slim", "implicit_slim_items"):
            paths.append(str(tmp_path / f"{model}-{variant}.csv"))
            pd.DataFrame({"epoch": [0, 1], "wall_seconds": [1.0, 2.0], "train_loss": 0.5, "val_ndcg@20": [0.1, 0.2]}).to_csv(
                paths[-1], index=False
            )
    figure = draw("convergence", {"curves": paths}, metric="ndcg@20")
    assert figure.axes[0].get_ylabel() == "validation NDCG@20"
    styles = {line.get_linestyle() for line in figure.axes[0].get_lines()}
    assert len(styles) == 3 and ":" not in styles
    assert legend_texts(figure)[-3:] == ["baseline", "implicit_slim", "implicit_slim_items"]
    with pytest.raises(KeyError, match="no column 'val_ndcg@100'"):
        draw("convergence", {"curves": paths})


class SetUpClock:
    """``time.perf_counter`` that jumps by ``SET_UP`` seconds while a wrapped set-up step runs."""

    SET_UP = 100.0

    def __init__(self, monkeypatch, module, name: str):
        self.offset = 0.0
        real_clock, step = time.perf_counter, getattr(module, name)
        monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + self.offset)

        def slow_step(*args, **kwargs):
            self.offset += self.SET_UP
            return step(*args, **kwargs)

        monkeypatch.setattr(module, name, slow_step)


def test_the_time_axis_of_figure_2_counts_a_linear_models_set_up(monkeypatch):
    """MF/PLRec histories are timed from the start of fit: the input conversion before the first
    step counts (as does the initial ImplicitSLIM extraction inside the loop)."""
    import islim.models.linear as linear

    SetUpClock(monkeypatch, linear, "_training_matrix")
    X = sp.random(60, 40, density=0.2, format="csr", random_state=0, data_rvs=np.ones)
    model = linear.PLRec(n_factors=4, n_epochs=1, init="implicit_slim", regularizer="none").fit(X, lambda m: {"ndcg@100": 0.0})
    assert model.history_[0]["wall_seconds"] >= SetUpClock.SET_UP


def test_the_time_axis_of_figure_2_counts_a_deep_models_set_up(monkeypatch):
    """A deep model's history is timed from the start of fit: building the network counts."""
    import islim.models.deep.estimator as estimator

    SetUpClock(monkeypatch, estimator, "build_model")
    X = sp.random(60, 40, density=0.2, format="csr", random_state=0, data_rvs=np.ones)
    model = estimator.MultVAEModel(n_epochs=1, hidden_dim=8, latent_dim=4).fit(X, lambda m: {"ndcg@100": 0.0})
    assert model.history_[0]["wall_seconds"] >= SetUpClock.SET_UP


def panel_axes(figure) -> np.ndarray:
    """The heatmap axes of an ablation grid figure (2 neighbourhoods x 4 panels); colour bars follow."""
    return np.array(figure.axes[:8]).reshape(2, 4)


def test_ablation_grid_figure_shows_quality_beside_cost_and_marks_skipped_cells(ablations):
    figure = ablation_grid_figure(ablations)
    assert figure.get_suptitle() == "ablation grid at d = 16"  # the grid's largest d, not 32 (the curve arms only)
    axes = panel_axes(figure)  # neighbourhood all/knn x (MF, PLRec, seconds, MB)
    titles = [ax.get_title() for ax in axes[0]]
    assert titles == ["test NDCG@100, MF", "test NDCG@100, PLRec", "extraction time (s)", "peak memory (MB)"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["all: first step", "knn: first step"]
    assert all(len(ax.collections) == 1 for ax in axes.flat)  # one heatmap mesh per panel
    hatched = [[sum(bool(patch.get_hatch()) for patch in ax.patches) for ax in row] for row in axes]
    assert hatched == [[2] * 4, [1] * 4]  # all: identity x explicit and lle x explicit at d = 16; knn: identity x explicit
    assert {text.get_text() for text in axes[0][0].texts} >= {"(a)", "(b)", "0.416"}
    notes = legend_texts(figure)
    assert len(notes) == 2 and any(SKIP_REASON in note for note in notes) and any(MEMORY_REASON in note for note in notes)


def test_ablation_grid_gives_each_panel_its_own_colour_scale_and_outlines_the_paper_cell(ablations):
    figure = ablation_grid_figure(ablations)
    axes = panel_axes(figure)
    clims = [axes[0][j].collections[0].get_clim() for j in range(4)]
    assert clims[0] == pytest.approx((0.35, 0.416)) and clims[1] == pytest.approx((0.45, 0.516))  # MF, PLRec at d = 16
    assert all(axes[1][j].collections[0].get_clim() == pytest.approx(clims[j]) for j in (0, 1))  # one scale per column
    assert len(figure.axes) == 8 + 4  # a colour bar per column
    for row, expected in zip(axes, ([(0.0, 0.0)], [])):  # all/ease/implicit: first row (ease), first column (implicit)
        for ax in row:
            outlined = [patch.get_xy() for patch in ax.patches if patch.get_linewidth() == 2.0 and not patch.get_hatch()]
            assert outlined == expected


def test_ablation_grid_marks_cells_that_differ_significantly_from_implicit_slim(ablations, ablation_per_user):
    test = ablation_per_user[(ablation_per_user["split"] == "test") & (ablation_per_user["scorer"] == "mf")]
    by_arm = {arm: rows.sort_values("user")["ndcg@100"].to_numpy() for arm, rows in test.groupby("arm")}
    reference = by_arm["ablation:all/ease/implicit"]
    raw = {arm: scipy.stats.wilcoxon(by_arm[arm], reference).pvalue for arm in ("ablation:all/ease/explicit", "ablation:knn/ease/implicit")}
    low, high = sorted(raw.values())
    holm = {arm: max(2 * low, min(1.0, high)) if p == high else min(1.0, 2 * low) for arm, p in raw.items()}  # Holm with m = 2
    assert holm["ablation:knn/ease/implicit"] <= 0.05 < holm["ablation:all/ease/explicit"]  # the fixture's design
    axes = panel_axes(ablation_grid_figure(ablations, ablation_per_user))
    for j, shift in ((0, 0.0), (1, 0.1)):  # the MF and PLRec panels (the same per-user scores)
        assert {t.get_text() for t in axes[0][j].texts} >= {f"{0.38 + shift:.3f}", f"{0.416 + shift:.3f}"}  # unmarked
        assert f"{0.35 + shift:.3f}*" in {t.get_text() for t in axes[1][j].texts}  # knn/ease/implicit
    assert not any(t.get_text().endswith("*") for ax in axes[:, 2:].flat for t in ax.texts)  # cost panels: never


def test_ablation_grid_figure_at_the_smaller_dimension_has_only_the_undefined_cells_skipped(ablations):
    figure = ablation_grid_figure(ablations, d=8)
    hatched = sum(bool(patch.get_hatch()) for ax in figure.axes for patch in ax.patches)
    assert hatched == 2 * 4  # identity x explicit in both neighbourhoods, in every panel
    assert {text.get_text() for text in figure.axes[2].texts} >= {"1", "(a)"}  # extraction seconds d / 8 = 1


def test_per_user_files_of_ablation_jobs_are_read_with_their_arm_and_dimension(tmp_path, ablation_per_user):
    assert cell_of_stem("all.ease.implicit.d64") == ("ablation:all/ease/implicit", 64)
    assert cell_of_stem("reference.random.d512") == ("reference:random", 512)
    for stem in ("mf-baseline", "all.ease.d64", "reference.svd.x64", "ease"):
        with pytest.raises(ValueError, match="not an ablation job's file stem"):
            cell_of_stem(stem)
    paths = []
    for (arm, d), rows in ablation_per_user.groupby(["arm", "d"]):
        kind, _, name = arm.partition(":")
        paths.append(tmp_path / f"{name.replace('/', '.') if kind == 'ablation' else 'reference.' + name}.d{d}.parquet")
        rows.drop(columns=["arm", "d"]).to_parquet(paths[-1], index=False)
    read = read_source("ablation_per_user", paths)
    key = ["arm", "scorer", "split", "user"]
    expected = ablation_per_user.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(read.sort_values(key).reset_index(drop=True)[expected.columns], expected, check_dtype=False)


def test_scaling_figure_prints_the_fitted_log_log_slopes(scaling):
    assert loglog_slope([10, 100, 1000], [1, 100, 10000]) == pytest.approx(2.0)
    assert np.isnan(loglog_slope([10, 10], [1, 2]))
    figure = scaling_figure(scaling)
    seconds, memory = figure.axes
    assert seconds.get_ylabel() == "time (s)" and memory.get_ylabel() == "peak memory (MB)"
    assert all(ax.get_xscale() == ax.get_yscale() == "log" and ax.get_xlabel() == "number of items I" for ax in figure.axes)
    assert [t.get_text() for t in seconds.get_legend().get_texts()] == ["EASE: slope 3.00", "ImplicitSLIM (d=64): slope 1.00", "∝ I³"]
    assert [t.get_text() for t in memory.get_legend().get_texts()] == ["EASE: slope 2.00", "ImplicitSLIM (d=64): slope 1.00", "∝ I²"]
    assert all(len(ax.get_lines()) == 3 for ax in figure.axes)  # two measured lines and the asymptotic reference


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


def test_draw_reads_each_input_from_its_files_as_the_workflow_passes_them(tmp_path, ablations, metrics, curves, ablation_per_user):
    ablations.to_csv(tmp_path / "ablations.csv", index=False)
    cells = []
    for (arm, d), rows in ablation_per_user[ablation_per_user["arm"].str.startswith("ablation:")].groupby(["arm", "d"]):
        cells.append(str(tmp_path / f"{arm.removeprefix('ablation:').replace('/', '.')}.d{d}.parquet"))
        rows.drop(columns=["arm", "d"]).to_parquet(cells[-1], index=False)
    grid = draw("ablation_grid", {"ablations": str(tmp_path / "ablations.csv"), "ablation_per_user": cells})
    assert "0.350*" in {t.get_text() for t in grid.axes[4].texts}  # knn row, MF panel
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    drawn = draw("dimension", {"ablations": str(tmp_path / "ablations.csv"), "metrics": [str(tmp_path / "metrics.csv")]})
    assert legend_texts(drawn) == legend_texts(dimension_figure(ablations, metrics))
    paths = sorted(str(path) for path in tmp_path.glob("*-*.csv"))  # the curves fixture's files
    assert legend_texts(draw("convergence", {"curves": paths})) == legend_texts(convergence_figure(curves))
    with pytest.raises(KeyError, match=r"no files given for inputs \['metrics'\]"):
        draw("dimension", {"ablations": str(tmp_path / "ablations.csv")})


def test_the_ablation_figures_draw_the_selection_metric_given(tmp_path, ablations, metrics, ablation_per_user):
    """As the workflow passes a dataset's selection metric (here NDCG@50, configured instead of
    NDCG@100), the dimension and grid figures draw it (the tables hold no other metric) and label it
    by its display name, as the default metrics."""
    ablations.replace({"metric": {"ndcg@100": "ndcg@50"}}).to_csv(tmp_path / "ablations.csv", index=False)
    metrics.replace({"metric": {"ndcg@100": "ndcg@50"}}).to_csv(tmp_path / "metrics.csv", index=False)
    cells = []
    for (arm, d), rows in ablation_per_user[ablation_per_user["arm"].str.startswith("ablation:")].groupby(["arm", "d"]):
        cells.append(str(tmp_path / f"{arm.removeprefix('ablation:').replace('/', '.')}.d{d}.parquet"))
        rows.drop(columns=["arm", "d"]).rename(columns={"ndcg@100": "ndcg@50"}).to_parquet(cells[-1], index=False)
    assert FIGURES["dimension"].metric and FIGURES["ablation_grid"].metric
    grid = draw("ablation_grid", {"ablations": str(tmp_path / "ablations.csv"), "ablation_per_user": cells}, metric="ndcg@50")
    assert [ax.get_title() for ax in panel_axes(grid)[0][:2]] == ["test NDCG@50, MF", "test NDCG@50, PLRec"]
    assert "0.350*" in {t.get_text() for t in grid.axes[4].texts}  # the per-user test on the metric given
    sources = {"ablations": str(tmp_path / "ablations.csv"), "metrics": [str(tmp_path / "metrics.csv")]}
    dimension = draw("dimension", sources, metric="ndcg@50")
    assert {ax.get_ylabel() for ax in dimension.axes if ax.get_ylabel()} == {"test NDCG@50"}
    assert legend_texts(dimension) == legend_texts(dimension_figure(ablations, metrics))


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
    assert (
        markdown[0]
        == "| dataset | model | variant | metric | measured (mean ± s.e.) | seed s.d. | popularity | published | difference | flags |"
    )
    assert markdown[2] == "| ml-20m | EASE | — | NDCG@100 | 0.4123 ± 0.0020 | — | — | 0.420 | -0.0077 | — |"
    assert markdown[4] == "| ml-20m | RecVAE | implicit_slim | NDCG@100 | 0.4600 ± 0.0020 | — | — | — | — | — |"
    latex = (tmp_path / "results.tex").read_text(encoding="utf-8")
    assert "ml-20m & EASE & -- & NDCG@100 & 0.4123 $\\pm$ 0.0020 & -- & -- & 0.420 & -0.0077 & -- \\\\" in latex
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
