"""The results table: every model x dataset x metric on test, beside the published number.

Published numbers (``islim/reference/published.csv``: ``dataset``, ``model``, ``variant``,
``metric``, ``value``, ``source``) exist for the paper datasets (ML-20M, Netflix, MSD); each row
names the variant it was published for (``baseline``, ``implicit_slim``, or empty for a model
without variants such as EASE) and its source (paper and table), and is set beside the run of
that dataset, model, variant and metric only.

Beside each run's mean and standard error over test users the table gives the standard deviation
over seeds (where a run was repeated over several), the flags its record raised (e.g.
``not_converged``) and popularity's score on the same dataset and metric, the floor every model
must clear. Its metrics are those the records hold (the ``metrics`` of each dataset's protocol in
the config), ordered by family and cut-off (:func:`islim.names.metric_order`); a set-level metric
(``coverage@K``) has no standard error and is shown by its value alone. It is written as CSV
(numbers), Markdown, LaTeX and an HTML page (formatted).
"""

from __future__ import annotations

import os
from importlib.resources import files

import pandas as pd

from islim.comparisons import POPULARITY_RUN
from islim.document import Heading, Paragraph, Table, markdown_table, to_html
from islim.fileio import write_csv, write_text
from islim.names import MODEL_NAMES, metric_order, metric_title

COLUMNS = [
    "dataset",
    "model",
    "variant",
    "metric",
    "mean",
    "se",
    "n_users",
    "n_seeds",
    "seed_sd",
    "popularity",
    "flags",
    "published",
    "difference",
    "source",
]
HEADER = ["dataset", "model", "variant", "metric", "measured (mean ± s.e.)", "seed s.d.", "popularity", "published", "difference", "flags"]
#: Which :data:`HEADER` columns hold numbers (right-aligned).
NUMERIC = (False, False, False, False, True, True, True, True, True, False)
#: Columns of ``published.csv``; a row is matched to runs on all but ``value`` and ``source``.
PUBLISHED_COLUMNS = ["dataset", "model", "variant", "metric", "value", "source"]
LATEX_ESCAPES = str.maketrans({c: "\\" + c for c in "_%&#$"})

#: Package data this module reads (declared for :mod:`islim.codehash`).
PACKAGE_DATA = ("reference/published.csv",)


def load_published() -> pd.DataFrame:
    """The published numbers shipped with islim, one row per dataset x model x variant x metric.

    Returns
    -------
    pandas.DataFrame
        :data:`PUBLISHED_COLUMNS`; ``variant`` is ``""`` for a model without variants.
    """
    with files("islim").joinpath(PACKAGE_DATA[0]).open(encoding="utf-8") as stream:
        return pd.read_csv(stream, dtype={"variant": str}, keep_default_na=False)[PUBLISHED_COLUMNS]


def results_table(metrics: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test metrics of every model run (ablation and reference arms left out) with the published number.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy ``metrics.csv`` rows of one or more datasets (``dataset``, ``model``, ``run`` such as
        ``mf|baseline``, ``split``, ``metric``, ``value``, ``se``, ``n_users``; ``n_seeds``,
        ``seed_sd`` and ``flags`` (``;``-separated) where the records carry them, else one seed and
        no flags).
    published : pandas.DataFrame or None
        :func:`load_published` (the default) or a table of the same columns; a number is set
        beside the run of its dataset, model, variant and metric.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`: ``mean`` and ``se`` over test users, ``n_seeds`` and ``seed_sd`` (NaN
        with one seed), ``popularity`` (the test score of :data:`~islim.comparisons.POPULARITY_RUN`
        on the same dataset and metric; NaN where popularity did not run), ``flags``, ``published``
        and ``difference = mean - published`` (NaN where nothing was published), in dataset order,
        then model, variant and metric order.
    """
    published = load_published() if published is None else published
    test = metrics[(metrics["split"] == "test") & ~metrics["model"].str.contains(":")]
    table = pd.DataFrame(
        {
            "dataset": test["dataset"],
            "model": test["model"],
            "variant": test["run"].str.partition("|")[2],
            "metric": test["metric"],
            "mean": test["value"],
            "se": test["se"],
            "n_users": test["n_users"],
            "n_seeds": test["n_seeds"] if "n_seeds" in test.columns else 1,
            "seed_sd": test["seed_sd"] if "seed_sd" in test.columns else float("nan"),
            "flags": test["flags"].fillna("") if "flags" in test.columns else "",
        }
    )
    popularity = test.loc[test["run"] == POPULARITY_RUN, ["dataset", "metric", "value"]].rename(columns={"value": "popularity"})
    table = table.merge(popularity, on=["dataset", "metric"], how="left", validate="many_to_one")
    keys = [column for column in PUBLISHED_COLUMNS if column not in ("value", "source")]
    table = table.merge(published.rename(columns={"value": "published"}), on=keys, how="left", validate="many_to_one")
    table["difference"] = table["mean"] - table["published"]
    order = {
        "dataset": list(dict.fromkeys(metrics["dataset"])),
        "model": list(MODEL_NAMES) + sorted(set(table["model"]) - set(MODEL_NAMES)),
        "metric": sorted(set(table["metric"]), key=metric_order),
    }
    rank = {column: {name: i for i, name in enumerate(names)} for column, names in order.items()}
    table = table.sort_values(
        ["dataset", "model", "variant", "metric"], key=lambda col: col.map(rank[col.name]) if col.name in rank else col, kind="stable"
    )
    return table[COLUMNS].reset_index(drop=True)


def formatted_rows(table: pd.DataFrame, missing: str = "—") -> list[list[str]]:
    """:data:`HEADER` cells of each row: display names, 4 decimals (the published value's 3), the
    seed s.d. with the number of seeds (``missing`` with one seed), signed difference, flags
    separated by commas."""
    rows = []
    for row in table.itertuples(index=False):
        has_published = pd.notna(row.published)
        repeated = pd.notna(row.seed_sd) and row.n_seeds > 1
        rows.append(
            [
                row.dataset,
                MODEL_NAMES.get(row.model, row.model),
                row.variant or missing,
                metric_title(row.metric),
                f"{row.mean:.4f} ± {row.se:.4f}" if pd.notna(row.se) else f"{row.mean:.4f}",
                f"{row.seed_sd:.4f} ({int(row.n_seeds)} seeds)" if repeated else missing,
                f"{row.popularity:.4f}" if pd.notna(row.popularity) else missing,
                f"{row.published:.3f}" if has_published else missing,
                f"{row.difference:+.4f}" if has_published else missing,
                ", ".join(flag for flag in str(row.flags).split(";") if flag) or missing,
            ]
        )
    return rows


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of :func:`formatted_rows` (numbers right-aligned)."""
    return markdown_table(Table(HEADER, formatted_rows(table), NUMERIC))


def to_html_page(table: pd.DataFrame, title: str = "Test results") -> str:
    """A standalone HTML page of :func:`formatted_rows` (for the report), titled ``title``; the
    dataset column is left out when the table holds one dataset (the title names it)."""
    note = (
        "Mean ± standard error over test users; seed s.d.: standard deviation of the mean over seeds; "
        "popularity: the popularity ranking's score on the same dataset and metric; difference: measured minus published."
    )
    skip = 1 if table["dataset"].nunique() == 1 else 0
    rows = [row[skip:] for row in formatted_rows(table)]
    return to_html([Heading(title, level=1), Paragraph(note), Table(HEADER[skip:], rows, NUMERIC[skip:])], title)


def latex_cell(cell: str) -> str:
    """``cell`` with LaTeX's special characters escaped and ± in math mode."""
    return cell.translate(LATEX_ESCAPES).replace("±", "$\\pm$")


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs ``tabular`` of :func:`formatted_rows`."""
    lines = [
        "\\begin{tabular}{" + "".join("r" if numeric else "l" for numeric in NUMERIC) + "}",
        "\\toprule",
        " & ".join(map(latex_cell, HEADER)) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(map(latex_cell, cells)) + " \\\\" for cells in formatted_rows(table, missing="--")]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_results_table(table: pd.DataFrame, stem: str | os.PathLike, title: str = "Test results") -> None:
    """Write ``<stem>.csv`` (all columns, full precision), ``<stem>.md``, ``<stem>.tex`` and
    ``<stem>.html`` (titled ``title``), atomically."""
    write_csv(f"{os.fspath(stem)}.csv", table)
    write_text(f"{os.fspath(stem)}.md", to_markdown(table))
    write_text(f"{os.fspath(stem)}.tex", to_latex(table))
    write_text(f"{os.fspath(stem)}.html", to_html_page(table, title))
