"""Written findings of one dataset, generated from its numbers only.

:func:`findings` reads the dataset's paired comparisons (``comparisons.csv``, see
:func:`islim.comparisons.compare_runs`), its tidy metrics (``metrics.csv``) and the training
curves of its runs, and states

* per model, whether each variant (ImplicitSLIM) improves, hurts or makes no significant
  difference to the baseline's test score: the sign of Δ and its Holm-adjusted p-value at α;
* the convergence speed-up: the epochs and seconds each variant needs to reach its baseline's best
  validation score, beside the baseline's own, or that it never reaches it;
* each run's test score beside popularity's, with the paired comparison;
* every flag any run raised.

Every sentence is built from those numbers; nothing is written in advance about what they show.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import NamedTuple

import pandas as pd

from islim.comparisons import BASELINE_VARIANT, POPULARITY_RUN, split_run_name
from islim.document import Block, Bullets, Heading, Paragraph, Table, to_html, to_markdown
from islim.errors import ConfigError, DataFormatError
from islim.fileio import write_text
from islim.names import MODEL_NAMES, metric_title

#: The significance level of the verdicts (applied to Holm-adjusted p-values).
ALPHA = 0.05

#: The metric the findings are stated in by default (the one validation selects on).
METRIC = "ndcg@100"

#: Verdicts of a comparison of a run with its reference.
IMPROVES, HURTS, NO_DIFFERENCE = "improves", "hurts", "no significant difference"
VERDICTS = (IMPROVES, HURTS, NO_DIFFERENCE)

#: What each flag of a run record means, by kind (a flag ``kind:detail`` is of kind ``kind``):
#: how the flag is written and its meaning.
FLAG_MEANINGS = {
    "not_converged": (
        "not_converged",
        "the best epoch is within the last `patience` epochs of the epoch cap (early stopping never ended training)",
    ),
    "grid_edge": (
        "grid_edge:<param>",
        "the kept value of `<param>` is the smallest or largest of its grid (the optimum may lie outside it)",
    ),
    "below_popularity": ("below_popularity", "the test score is below popularity's (whether significantly: see the popularity section)"),
}


class Reach(NamedTuple):
    """Where a training curve first reaches a score: after how many ``epochs`` of training (its
    0-based ``epoch`` + 1) and ``seconds`` since the fit began (set-up included)."""

    epochs: int
    seconds: float


def verdict(delta: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """:data:`IMPROVES` or :data:`HURTS` (by the sign of ``delta``) when ``p_adjusted <= alpha``, else :data:`NO_DIFFERENCE`."""
    if p_adjusted <= alpha and delta != 0:
        return IMPROVES if delta > 0 else HURTS
    return NO_DIFFERENCE


def first_reach(curve: pd.DataFrame, target: float, column: str) -> Reach | None:
    """The first epoch of ``curve`` whose ``column`` is at least ``target``, or None if none is.

    Parameters
    ----------
    curve : pandas.DataFrame
        A training curve: ``epoch`` (0-based, as :class:`islim.models.base.EpochHistory` numbers
        them), ``wall_seconds`` (since the fit began) and ``column``, one row per validated epoch.
    target : float
        The score to reach.
    column : str
        The validation score column, ``val_<metric>``.
    """
    reached = curve[curve[column] >= target]
    if reached.empty:
        return None
    row = reached.sort_values("epoch").iloc[0]
    return Reach(int(row["epoch"]) + 1, float(row["wall_seconds"]))


def format_p(p: float) -> str:
    """A p-value with 4 decimals, ``< 0.0001`` below that."""
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def format_delta(row) -> str:
    """``Δ [ci_low, ci_high]`` of a comparison row, signed, 4 decimals."""
    return f"{row.delta:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"


def run_label(run: str) -> str:
    """A run as the tables name it: the model's display name and the variant in code (``MF `implicit_slim```)."""
    model, variant = split_run_name(run)
    name = MODEL_NAMES.get(model, model)
    return f"{name} `{variant}`" if variant else name


class Scores:
    """Test scores of the runs of one dataset, from its tidy ``metrics.csv``.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Rows ``run``, ``split``, ``metric``, ``value``, ``se``, ``n_users``; ``n_seeds`` and
        ``seed_sd`` where runs were repeated over seeds.
    """

    def __init__(self, metrics: pd.DataFrame):
        missing = [c for c in ("run", "split", "metric", "value", "se", "n_users") if c not in metrics.columns]
        if missing:
            raise DataFormatError(f"metrics lack the column(s) {', '.join(missing)}; pass the dataset's metrics.csv")
        self.metrics = metrics
        self.test = metrics[metrics["split"] == "test"].drop_duplicates(["run", "metric"]).set_index(["run", "metric"])

    def has(self, run: str, metric: str) -> bool:
        """Whether ``run`` has a test score of ``metric``."""
        return (run, metric) in self.test.index

    def text(self, run: str, metric: str) -> str:
        """``mean ± s.e.`` (over users) of ``run``'s test ``metric`` (the mean alone for a set-level
        metric, which has no standard error), ``—`` if it has none."""
        if not self.has(run, metric):
            return "—"
        row = self.test.loc[(run, metric)]
        return f"{row['value']:.4f}" + (f" ± {row['se']:.4f}" if pd.notna(row["se"]) else "")

    def seed_sd(self, run: str, metric: str) -> str:
        """The standard deviation over seeds of ``run``'s test ``metric``, ``—`` with one seed."""
        if not self.has(run, metric):
            return "—"
        row = self.test.loc[(run, metric)]
        repeated = pd.notna(row.get("seed_sd")) and row.get("n_seeds", 1) > 1
        return f"{row['seed_sd']:.4f}" if repeated else "—"

    def n_seeds(self) -> int:
        """The most seeds any run of the dataset ran over (1 without a ``n_seeds`` column)."""
        return int(self.test["n_seeds"].max()) if "n_seeds" in self.test.columns and len(self.test) else 1

    def n_users(self) -> int:
        """Test users of the dataset (the most any run evaluated)."""
        return int(self.test["n_users"].max()) if len(self.test) else 0

    def flags(self) -> dict[str, list[str]]:
        """Every run's flags, in metrics order: ``run -> [flag, ...]`` (runs without flags left out).

        The ``flags`` column holds a run's flags joined by ``;`` (empty or missing: none).
        """
        if "flags" not in self.metrics.columns:
            return {}
        flagged = {}
        for run, text in self.metrics[["run", "flags"]].itertuples(index=False):
            if isinstance(text, str) and text.strip():
                flags = flagged.setdefault(run, [])
                flags += [flag for flag in text.split(";") if flag and flag not in flags]
        return flagged


def ci_label(comparisons: pd.DataFrame) -> str:
    """``"95 % CI"``: the level of the bootstrap intervals of a comparisons table (its
    ``confidence`` column; 95 % for tables written without one)."""
    levels = set(comparisons["confidence"]) if "confidence" in comparisons.columns and len(comparisons) else {0.95}
    return " / ".join(f"{100 * level:g} %" for level in sorted(levels)) + " CI"


def variant_findings(comparisons: pd.DataFrame, scores: Scores, metric: str, alpha: float) -> list[Block]:
    """Each non-baseline variant against its model's baseline on the test ``metric``."""
    rows = comparisons[comparisons["reference"] == comparisons["model"] + f"|{BASELINE_VARIANT}"]
    blocks: list[Block] = [Heading(f"Variants against their baseline (test {metric_title(metric)})")]
    if rows.empty:
        return blocks + [Paragraph("No model ran a variant beside its `baseline`: nothing to compare.")]
    table, sentences = [], []
    by_variant: dict[str, dict[str, list[str]]] = {}
    for row in rows.itertuples(index=False):
        run = f"{row.model}|{row.variant}"
        name = MODEL_NAMES.get(row.model, row.model)
        outcome = verdict(row.delta, row.p_adjusted, alpha)
        by_variant.setdefault(row.variant, {}).setdefault(outcome, []).append(name)
        table.append(
            [
                name,
                f"`{row.variant}`",
                scores.text(row.reference, metric),
                scores.text(run, metric),
                format_delta(row),
                format_p(row.p_adjusted),
                outcome,
                f"{scores.seed_sd(row.reference, metric)} / {scores.seed_sd(run, metric)}",
            ]
        )
        sentence = f"{name}: `{row.variant}` {outcome if outcome != NO_DIFFERENCE else 'makes no significant difference to'} the test score"
        p_text = format_p(row.p_adjusted)
        sentence += f" (Δ = {format_delta(row)}, adjusted p {p_text if p_text.startswith('<') else '= ' + p_text})"
        if outcome != NO_DIFFERENCE and row.ci_low <= 0 <= row.ci_high:
            sentence += "; the bootstrap CI includes 0"
        sentences.append(sentence + ".")
    summary = []
    for variant, outcomes in by_variant.items():
        counts = [f"{outcome} {len(outcomes[outcome])} ({', '.join(outcomes[outcome])})" for outcome in VERDICTS if outcome in outcomes]
        total = sum(map(len, outcomes.values()))
        summary.append(f"`{variant}` vs `{BASELINE_VARIANT}` over {total} model(s): " + "; ".join(counts) + ".")
    header = [
        "model",
        "variant",
        f"`{BASELINE_VARIANT}`",
        "variant's score",
        f"Δ [{ci_label(comparisons)}]",
        "adjusted p",
        "verdict",
        "seed s.d. (baseline / variant)",
    ]
    numeric = (False, False, True, True, True, True, False, True)
    return blocks + [Bullets(summary), Table(header, table, numeric), Bullets(sentences)]


def convergence_findings(curves: Mapping[str, pd.DataFrame], metric: str) -> list[Block]:
    """Epochs and seconds each variant needs to reach its baseline's best validation ``metric``."""
    column = f"val_{metric}"
    blocks: list[Block] = [Heading("Convergence")]
    rows = []
    for run, curve in curves.items():
        model, variant = split_run_name(run)
        baseline = curves.get(f"{model}|{BASELINE_VARIANT}")
        if not variant or variant == BASELINE_VARIANT or baseline is None or baseline.empty or curve.empty:
            continue
        best = float(baseline[column].max())
        own = first_reach(baseline, best, column)
        reach = first_reach(curve, best, column)
        name = MODEL_NAMES.get(model, model)
        base_text = f"{own.epochs} epoch(s), {own.seconds:.1f} s"
        if reach is None:
            variant_best = curve.loc[curve[column].idxmax()]
            reach_text = f"never reached (best {variant_best[column]:.4f} after {int(variant_best['epoch']) + 1} of {len(curve)} epoch(s))"
            speedup = "—"
        else:
            reach_text = f"{reach.epochs} epoch(s), {reach.seconds:.1f} s"
            seconds = f"{own.seconds / reach.seconds:.2f}×" if reach.seconds > 0 else "—"
            speedup = f"{own.epochs / reach.epochs:.2f}× in epochs, {seconds} in seconds"
        rows.append([name, f"`{variant}`", f"{best:.4f}", base_text, reach_text, speedup])
    if not rows:
        return blocks + [Paragraph("No model has training curves of a variant beside its `baseline`'s.")]
    name = metric_title(metric)
    text = (
        f"The target is the baseline's best validation {name}: how many epochs of training, and seconds from the start of the fit, "
        "its set-up (an initial SVD or ImplicitSLIM extraction) included, each run needs to reach it (from the training curves). "
        "A speed-up above 1 means the variant gets there sooner."
    )
    header = [
        "model",
        "variant",
        f"target (best `{BASELINE_VARIANT}` validation {name})",
        "`baseline` first reaches it",
        "variant reaches it",
        "speed-up",
    ]
    return blocks + [Paragraph(text), Table(header, rows, (False, False, True, False, False, False))]


def popularity_findings(comparisons: pd.DataFrame, scores: Scores, metric: str, alpha: float) -> list[Block]:
    """Every run's test ``metric`` beside popularity's, with the paired comparison."""
    name = metric_title(metric)
    blocks: list[Block] = [Heading(f"Beside popularity (test {name})")]
    if not scores.has(POPULARITY_RUN, metric):
        return blocks + [Paragraph("Popularity did not run on this dataset (`popularity` is not among the trained models).")]
    rows = comparisons[comparisons["reference"] == POPULARITY_RUN]
    table = []
    below = []
    for row in rows.itertuples(index=False):
        run = f"{row.model}|{row.variant}" if row.variant else row.model
        outcome = {IMPROVES: "above", HURTS: "below", NO_DIFFERENCE: "no significant difference"}[verdict(row.delta, row.p_adjusted, alpha)]
        if outcome == "below":
            below.append(run_label(run))
        table.append(
            [
                run_label(run),
                scores.text(run, metric),
                scores.text(POPULARITY_RUN, metric),
                format_delta(row),
                format_p(row.p_adjusted),
                outcome,
                scores.seed_sd(run, metric),
            ]
        )
    header = ["run", f"test {name}", "popularity", f"Δ vs popularity [{ci_label(comparisons)}]", "adjusted p", "verdict", "seed s.d."]
    text = f"Significantly below popularity: {', '.join(below)}." if below else "No run is significantly below popularity."
    return blocks + [Paragraph(text), Table(header, table, (False, True, True, True, True, False, True))]


def flag_findings(scores: Scores) -> list[Block]:
    """Every flag raised by any run."""
    flagged = scores.flags()
    blocks: list[Block] = [Heading("Flags")]
    if not flagged:
        return blocks + [Paragraph("No run raised a flag.")]
    items = [f"`{run}`: " + ", ".join(f"`{flag}`" for flag in flags) for run, flags in flagged.items()]
    kinds = dict.fromkeys(flag.partition(":")[0] for flags in flagged.values() for flag in flags)
    meanings = [f"`{FLAG_MEANINGS[kind][0]}`: {FLAG_MEANINGS[kind][1]}" for kind in kinds if kind in FLAG_MEANINGS]
    blocks += [Paragraph(f"{len(flagged)} run(s) raised flags:"), Bullets(items)]
    return blocks + ([Paragraph("What they mean:"), Bullets(meanings)] if meanings else [])


def method_text(comparisons: pd.DataFrame, scores: Scores, metric: str, alpha: float) -> str:
    """How the comparisons were made, from the tables themselves."""
    family = int((comparisons["metric"] == metric).sum())
    n_seeds = scores.n_seeds()
    seeds = (
        f", per-user scores averaged over the {n_seeds} seeds of the stochastic models (seed s.d.: spread of the score over seeds)"
        if n_seeds > 1
        else ", one training seed per run: the tests count the users as the only source of chance, so a verdict does not "
        "cover how much a model's score moves with its training seed (list two or more `seeds` in the config to measure that)"
    )
    tests = " / ".join(sorted(set(comparisons["test"]))) if "test" in comparisons.columns and len(comparisons) else "a paired test"
    return (
        f"Test split ({scores.n_users()} users; validation chose every hyper-parameter). Scores are mean ± standard error over "
        f"users{seeds}. Δ is the mean per-user difference "
        f"(run minus reference) with its {ci_label(comparisons)} from a seeded paired bootstrap over users; p is two-sided, from the {tests}, "
        f"Holm-adjusted over the {family} comparisons of this dataset on {metric_title(metric)}; "
        f"significant means adjusted p ≤ {alpha:g} (the CIs are not adjusted for the number of comparisons)."
    )


def findings(
    dataset: str,
    comparisons: pd.DataFrame,
    metrics: pd.DataFrame,
    curves: Mapping[str, pd.DataFrame],
    metric: str = METRIC,
    alpha: float = ALPHA,
) -> list[Block]:
    """The findings of one dataset as a document (:mod:`islim.document`).

    Parameters
    ----------
    dataset : str
        The dataset's name (the title).
    comparisons : pandas.DataFrame
        The dataset's ``comparisons.csv`` (:func:`islim.comparisons.compare_runs`); only the rows
        of ``metric`` are used.
    metrics : pandas.DataFrame
        The dataset's ``metrics.csv`` (see :class:`Scores`).
    curves : mapping of str to pandas.DataFrame
        Training curve of each run, by run name (``"mf|implicit_slim"``): ``epoch``,
        ``wall_seconds``, ``val_<metric>``.
    metric : str, default :data:`METRIC`
        The metric the findings are stated in (the dataset's selection metric).
    alpha : float, default :data:`ALPHA`
        Significance level of the Holm-adjusted p-values.

    Returns
    -------
    list of Block
        Title, method, then the sections variants / convergence / popularity / flags.
    """
    missing = [
        c for c in ("model", "variant", "reference", "metric", "delta", "ci_low", "ci_high", "p_adjusted") if c not in comparisons.columns
    ]
    if missing:
        raise DataFormatError(f"comparisons lack the column(s) {', '.join(missing)}; pass the dataset's comparisons.csv")
    if not 0 < alpha < 1 or math.isnan(alpha):
        raise ConfigError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05), got {alpha}")
    comparisons = comparisons[comparisons["metric"] == metric].assign(variant=lambda t: t["variant"].fillna("").astype(str))
    scores = Scores(metrics)
    return [
        Heading(f"Findings: {dataset}", level=1),
        Paragraph(method_text(comparisons, scores, metric, alpha)),
        *variant_findings(comparisons, scores, metric, alpha),
        *convergence_findings(curves, metric),
        *popularity_findings(comparisons, scores, metric, alpha),
        *flag_findings(scores),
    ]


def write_findings(blocks: list[Block], markdown_path: str | os.PathLike, html_path: str | os.PathLike) -> None:
    """Write the findings as Markdown and as a standalone HTML page (for the report), atomically."""
    title = next((block.text for block in blocks if isinstance(block, Heading)), "Findings")
    write_text(markdown_path, to_markdown(blocks))
    write_text(html_path, to_html(blocks, title))
