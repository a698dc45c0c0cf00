"""Written findings: verdicts, convergence speed-ups, popularity and flags stated from constructed
numbers (improves / hurts / no difference / never reaches / flags), checked against hand-worked values."""

from __future__ import annotations

import pandas as pd
import pytest

from islim.document import Bullets, Heading, Paragraph, Table, to_markdown
from islim.errors import ConfigError, DataFormatError
from islim.findings import HURTS, IMPROVES, NO_DIFFERENCE, Reach, findings, first_reach, verdict, write_findings


@pytest.mark.parametrize(
    ("delta", "p_adjusted", "expected"),
    [
        (0.02, 0.001, IMPROVES),
        (-0.02, 0.01, HURTS),
        (0.02, 0.2, NO_DIFFERENCE),
        (-0.05, 0.0501, NO_DIFFERENCE),
        (0.01, 0.05, IMPROVES),  # at alpha: significant
        (0.0, 0.0, NO_DIFFERENCE),  # no difference has no direction
    ],
)
def test_verdict_is_the_sign_of_delta_when_the_adjusted_p_is_at_most_alpha(delta, p_adjusted, expected):
    assert verdict(delta, p_adjusted, alpha=0.05) == expected


def curve(scores, seconds_per_epoch=2.0):
    """A training curve: epochs numbered 0..n-1 (as the models number them), ``seconds_per_epoch``
    each, the given validation NDCG@100."""
    n = len(scores)
    return pd.DataFrame(
        {
            "epoch": range(n),
            "wall_seconds": [seconds_per_epoch * (e + 1) for e in range(n)],
            "train_loss": 0.0,
            "val_ndcg@100": scores,
        }
    )


def test_first_reach_counts_the_epochs_trained_until_the_target_is_reached():
    scores = curve([0.1, 0.3, 0.25, 0.4])
    assert first_reach(scores, 0.3, "val_ndcg@100") == Reach(2, 4.0)
    assert first_reach(scores, 0.05, "val_ndcg@100") == Reach(1, 2.0)
    assert first_reach(scores, 0.41, "val_ndcg@100") is None
    assert first_reach(scores.iloc[::-1], 0.3, "val_ndcg@100") == Reach(2, 4.0)  # row order does not matter


def comparison(model, variant, reference, delta, ci, p_adjusted):
    return {
        "model": model,
        "variant": variant,
        "reference": reference,
        "metric": "ndcg@100",
        "delta": delta,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "p_value": p_adjusted / 2,
        "p_adjusted": p_adjusted,
        "n_users": 100,
        "test": "Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method=wilcox)",
    }


def constructed_comparisons(popularity=True):
    """MF improves, PLRec hurts, Mult-VAE no difference; everything vs EASE and popularity."""
    rows = [
        comparison("mf", "implicit_slim", "mf|baseline", 0.02, (0.01, 0.03), 0.001),
        comparison("plrec", "implicit_slim", "plrec|baseline", -0.047, (-0.06, -0.03), 0.0000123),
        comparison("multvae", "implicit_slim", "multvae|baseline", 0.004, (-0.002, 0.011), 0.3156),
        comparison("mf", "baseline", "ease", -0.1, (-0.12, -0.08), 0.0),
        # a recall row of the same table is not about the findings' metric
        {**comparison("mf", "implicit_slim", "mf|baseline", -0.5, (-0.6, -0.4), 0.0), "metric": "recall@20"},
    ]
    if popularity:
        rows += [
            comparison("ease", "", "popularity|baseline", 0.2, (0.18, 0.22), 0.0),
            comparison("mf", "baseline", "popularity|baseline", 0.01, (-0.01, 0.03), 0.5),
            comparison("plrec", "implicit_slim", "popularity|baseline", -0.03, (-0.05, -0.01), 0.02),
        ]
    return pd.DataFrame(rows)


def constructed_metrics(flags=True, popularity=True):
    rows = []
    scores = {
        "ease": 0.46,
        "mf|baseline": 0.36,
        "mf|implicit_slim": 0.38,
        "plrec|baseline": 0.456,
        "plrec|implicit_slim": 0.409,
        "multvae|baseline": 0.40,
        "multvae|implicit_slim": 0.404,
    }
    if popularity:
        scores["popularity|baseline"] = 0.26
    for run, value in scores.items():
        for split in ("validation", "test"):
            rows.append(
                {
                    "dataset": "toy",
                    "model": run.partition("|")[0],
                    "run": run,
                    "split": split,
                    "metric": "ndcg@100",
                    "value": value,
                    "se": 0.02,
                    "n_users": 100,
                    "n_seeds": 2 if run.startswith("multvae") else 1,
                    "seed_sd": 0.003 if run.startswith("multvae") else float("nan"),
                    "flags": "",
                }
            )
    table = pd.DataFrame(rows)
    if flags:
        table.loc[table["run"] == "multvae|baseline", "flags"] = "not_converged;grid_edge:lam"
        table = pd.concat(
            [table, table.iloc[[0]].assign(run="mf|d=16|mf", model="mf:arm", flags="grid_edge:r_p;mystery")], ignore_index=True
        )
    return table


def constructed_curves():
    return {
        "mf|baseline": curve([0.10, 0.20, 0.30, 0.29], seconds_per_epoch=1.0),
        "mf|implicit_slim": curve([0.25, 0.31, 0.33], seconds_per_epoch=1.5),
        "plrec|baseline": curve([0.45]),
        "plrec|implicit_slim": curve([0.40]),
        "popularity|baseline": curve([0.26]),
    }


def markdown(**changes):
    arguments = {"comparisons": constructed_comparisons(), "metrics": constructed_metrics(), "curves": constructed_curves(), **changes}
    return to_markdown(findings("toy", **arguments))


def test_findings_state_improves_hurts_and_no_difference_with_delta_ci_and_adjusted_p():
    text = markdown()
    assert text.startswith("# Findings: toy\n")
    assert "Test split (100 users;" in text and "Holm-adjusted over the 7 comparisons of this dataset on NDCG@100" in text
    assert (
        "from the Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method=wilcox), Holm-adjusted" in text
        and "adjusted p ≤ 0.05" in text
    )
    assert "- MF: `implicit_slim` improves the test score (Δ = +0.0200 [+0.0100, +0.0300], adjusted p = 0.0010).\n" in text
    assert "- PLRec: `implicit_slim` hurts the test score (Δ = -0.0470 [-0.0600, -0.0300], adjusted p < 0.0001).\n" in text
    assert (
        "- Mult-VAE: `implicit_slim` makes no significant difference to the test score (Δ = +0.0040 [-0.0020, +0.0110], adjusted p = 0.3156).\n"
        in text
    )
    assert (
        "- `implicit_slim` vs `baseline` over 3 model(s): improves 1 (MF); hurts 1 (PLRec); no significant difference 1 (Mult-VAE).\n"
        in text
    )
    # the table: both scores, the verdict, and the seed s.d. of a model run over seeds
    assert "| MF | `implicit_slim` | 0.3600 ± 0.0200 | 0.3800 ± 0.0200 | +0.0200 [+0.0100, +0.0300] | 0.0010 | improves | — / — |" in text
    assert "| Mult-VAE | `implicit_slim` | 0.4000 ± 0.0200 | 0.4040 ± 0.0200 | +0.0040 [-0.0020, +0.0110] | 0.3156 |" in text
    assert "| no significant difference | 0.0030 / 0.0030 |" in text
    assert "averaged over the 2 seeds of the stochastic models" in text and "one training seed" not in text
    assert "-0.5000" not in text  # the recall row


def test_findings_say_that_one_seed_leaves_seed_variation_out():
    metrics = constructed_metrics().assign(n_seeds=1, seed_sd=float("nan"))
    text = markdown(metrics=metrics)
    assert "users, one training seed per run: the tests count the users as the only source of chance" in text
    assert "averaged over the" not in text


def test_findings_convergence_speed_up_and_never_reached():
    text = markdown()
    # MF baseline: best 0.30, first after 3 epochs (3.0 s); ImplicitSLIM passes 0.30 after 2 (3.0 s): 1.5x epochs, 1x seconds.
    assert "| MF | `implicit_slim` | 0.3000 | 3 epoch(s), 3.0 s | 2 epoch(s), 3.0 s | 1.50× in epochs, 1.00× in seconds |" in text
    # PLRec with ImplicitSLIM peaks at 0.40 < 0.45.
    assert "| PLRec | `implicit_slim` | 0.4500 | 1 epoch(s), 2.0 s | never reached (best 0.4000 after 1 of 1 epoch(s)) | — |" in text
    assert "Popularity | " not in text.split("## Convergence")[1].split("##")[0]  # no variant, no row


def test_findings_put_every_run_beside_popularity():
    text = markdown()
    section = text.split("## Beside popularity (test NDCG@100)")[1].split("##")[0]
    assert "Significantly below popularity: PLRec `implicit_slim`." in section
    assert "| EASE | 0.4600 ± 0.0200 | 0.2600 ± 0.0200 | +0.2000 [+0.1800, +0.2200] | < 0.0001 | above | — |" in section
    assert (
        "| MF `baseline` | 0.3600 ± 0.0200 | 0.2600 ± 0.0200 | +0.0100 [-0.0100, +0.0300] | 0.5000 | no significant difference | — |"
        in section
    )
    assert "| PLRec `implicit_slim` | 0.4090 ± 0.0200 | 0.2600 ± 0.0200 | -0.0300 [-0.0500, -0.0100] | 0.0200 | below | — |" in section
    without = markdown(comparisons=constructed_comparisons(popularity=False), metrics=constructed_metrics(popularity=False))
    assert "Popularity did not run on this dataset" in without


def test_findings_list_every_flag_of_every_run():
    text = markdown()
    section = text.split("## Flags")[1]
    assert "2 run(s) raised flags:" in section
    assert "- `multvae|baseline`: `not_converged`, `grid_edge:lam`\n- `mf|d=16|mf`: `grid_edge:r_p`, `mystery`\n" in section
    meanings = section.split("What they mean:")[1]
    assert meanings.index("- `not_converged`: the best epoch is within the last `patience` epochs") < meanings.index(
        "- `grid_edge:<param>`: the kept value of `<param>` is the smallest or largest of its grid"
    )
    assert "mystery" not in meanings and "below_popularity" not in meanings  # only the kinds raised, known ones explained
    assert "No run raised a flag." in markdown(metrics=constructed_metrics(flags=False))
    assert "No run raised a flag." in markdown(metrics=constructed_metrics(flags=False).drop(columns="flags"))


def test_a_score_without_standard_error_is_shown_alone():
    metrics = constructed_metrics()
    metrics.loc[metrics["run"] == "ease", "se"] = float("nan")
    assert "| EASE | 0.4600 | 0.2600 ± 0.0200 |" in markdown(metrics=metrics)


def test_findings_without_variants_or_curves_say_so():
    only_baselines = constructed_comparisons()
    only_baselines = only_baselines[only_baselines["variant"] != "implicit_slim"]
    text = markdown(comparisons=only_baselines, curves={})
    assert "No model ran a variant beside its `baseline`: nothing to compare." in text
    assert "No model has training curves of a variant beside its `baseline`'s." in text


def test_findings_refuse_bad_input():
    with pytest.raises(DataFormatError, match="comparisons lack the column.s. p_adjusted"):
        markdown(comparisons=constructed_comparisons().drop(columns="p_adjusted"))
    with pytest.raises(DataFormatError, match="metrics lack the column.s. se"):
        markdown(metrics=constructed_metrics().drop(columns="se"))
    with pytest.raises(ConfigError, match="alpha must lie strictly between 0 and 1"):
        markdown(alpha=1.5)


def test_findings_document_shape_and_files(tmp_path):
    blocks = findings("toy", constructed_comparisons(), constructed_metrics(), constructed_curves())
    assert [block.text for block in blocks if isinstance(block, Heading)] == [
        "Findings: toy",
        "Variants against their baseline (test NDCG@100)",
        "Convergence",
        "Beside popularity (test NDCG@100)",
        "Flags",
    ]
    assert all(isinstance(block, (Heading, Paragraph, Bullets, Table)) for block in blocks)
    write_findings(blocks, tmp_path / "findings.md", tmp_path / "findings.html")
    assert (tmp_path / "findings.md").read_text(encoding="utf-8") == to_markdown(blocks)
    page = (tmp_path / "findings.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>Findings: toy</title>" in page
    assert "<td>MF</td><td><code>implicit_slim</code></td>" in page


def test_findings_name_the_intervals_level_and_alpha_they_were_given():
    default = markdown()
    assert "Δ [95 % CI]" in default and "with its 95 % CI from a seeded paired bootstrap" in default
    comparisons = constructed_comparisons().assign(confidence=0.9)
    text = to_markdown(findings("toy", comparisons, constructed_metrics(), constructed_curves(), alpha=0.001))
    assert "Δ [90 % CI]" in text and "Δ vs popularity [90 % CI]" in text and "95 %" not in text
    assert "adjusted p ≤ 0.001" in text
    # MF's adjusted p = 0.0010 is still significant at 0.001; PLRec's (< 0.0001) too; Mult-VAE's is not
    assert "- MF: `implicit_slim` improves the test score" in text
