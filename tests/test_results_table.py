"""The results table's seed spread, flags and popularity column, in every format it is written."""

from __future__ import annotations

import numpy as np
import pandas as pd

from islim.results_table import HEADER, results_table, to_html_page, to_markdown, write_results_table

NO_PUBLISHED = pd.DataFrame(columns=["dataset", "model", "variant", "metric", "value", "source"])


def metric_rows() -> pd.DataFrame:
    """Two datasets: on `a` popularity, MF over 3 seeds with a flag, EASE; on `b` no popularity."""
    runs = [
        # dataset, model, run, ndcg@100, n_seeds, seed_sd, flags
        ("a", "popularity", "popularity|baseline", 0.25, 1, np.nan, ""),
        ("a", "mf", "mf|baseline", 0.31, 3, 0.004, "not_converged;grid_edge:r_p"),
        ("a", "ease", "ease", 0.42, 1, np.nan, np.nan),
        ("b", "mf", "mf|baseline", 0.2, 1, np.nan, ""),
    ]
    rows = []
    for dataset, model, run, value, seeds, seed_sd, flags in runs:
        for split, shift in (("test", 0.0), ("validation", 0.1)):
            for metric, scale in (("ndcg@100", 1.0), ("recall@20", 0.5)):
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "run": run,
                        "split": split,
                        "metric": metric,
                        "value": value * scale + shift,
                        "se": 0.01,
                        "n_users": 100,
                        "n_seeds": seeds,
                        "seed_sd": seed_sd,
                        "flags": flags,
                    }
                )
    return pd.DataFrame(rows)


def test_every_run_has_popularitys_test_score_of_its_dataset_and_metric_beside_it():
    table = results_table(metric_rows(), NO_PUBLISHED).set_index(["dataset", "model", "metric"])
    for model in ("popularity", "mf", "ease"):
        assert table.loc[("a", model, "ndcg@100"), "popularity"] == 0.25
        assert table.loc[("a", model, "recall@20"), "popularity"] == 0.125
    assert np.isnan(table.loc[("b", "mf", "ndcg@100"), "popularity"])  # no popularity run on b


def test_seed_spread_and_flags_come_from_the_test_rows():
    table = results_table(metric_rows(), NO_PUBLISHED).set_index(["dataset", "model", "metric"])
    mf = table.loc[("a", "mf", "ndcg@100")]
    assert (mf["n_seeds"], mf["seed_sd"], mf["flags"]) == (3, 0.004, "not_converged;grid_edge:r_p")
    assert table.loc[("a", "ease", "ndcg@100"), "flags"] == ""  # NaN (no flags) read as none


def test_formatted_tables_show_seed_sd_popularity_and_flags():
    table = results_table(metric_rows(), NO_PUBLISHED)
    lines = to_markdown(table).splitlines()
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    assert lines[1] == "|---|---|---|---|---:|---:|---:|---:|---:|---|"
    assert "| a | MF | baseline | NDCG@100 | 0.3100 ± 0.0100 | 0.0040 (3 seeds) | 0.2500 | — | — | not_converged, grid_edge:r_p |" in lines
    assert "| a | EASE | — | NDCG@100 | 0.4200 ± 0.0100 | — | 0.2500 | — | — | — |" in lines
    assert "| b | MF | baseline | NDCG@100 | 0.2000 ± 0.0100 | — | — | — | — | — |" in lines
    page = to_html_page(table, "Test results: a, b")
    assert "<title>Test results: a, b</title>" in page and "<h1>Test results: a, b</h1>" in page
    row = '<td>MF</td><td>baseline</td><td>NDCG@100</td><td class="number">0.3100 ± 0.0100</td><td class="number">0.0040 (3 seeds)</td>'
    assert f"<tr><td>a</td>{row}" in page
    one = to_html_page(table[table["dataset"] == "a"], "Test results: a")  # the title names the one dataset
    assert "<th>dataset</th>" not in one and f"<tr>{row}" in one


def test_results_table_without_seed_or_flag_columns_reads_one_seed_and_no_flags():
    table = results_table(metric_rows().drop(columns=["n_seeds", "seed_sd", "flags"]), NO_PUBLISHED)
    assert (table["n_seeds"] == 1).all() and table["seed_sd"].isna().all() and (table["flags"] == "").all()


def test_write_results_table_writes_every_format(tmp_path):
    table = results_table(metric_rows(), NO_PUBLISHED)
    write_results_table(table, tmp_path / "results", title="Test results: a, b")
    assert pd.read_csv(tmp_path / "results.csv", keep_default_na=False)["flags"].tolist() == list(table["flags"])
    assert (tmp_path / "results.md").read_text(encoding="utf-8") == to_markdown(table)
    latex = (tmp_path / "results.tex").read_text(encoding="utf-8")
    assert latex.startswith("\\begin{tabular}{llllrrrrrl}") and "not\\_converged, grid\\_edge:r\\_p" in latex
    assert (tmp_path / "results.html").read_text(encoding="utf-8") == to_html_page(table, "Test results: a, b")
