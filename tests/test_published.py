"""Published numbers shipped with islim (islim/reference/published.csv) and where the results table sets them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from islim.metrics import parse_metric
from islim.names import MODEL_NAMES
from islim.results_table import PUBLISHED_COLUMNS, load_published, results_table

#: A source names a paper (authors, venue and year) and the table the number is printed in.
SOURCE = re.compile(r"^[A-Z][A-Za-z&. ]+ et al\. [A-Z]+ 20\d\d \([^)]+\) Table \d+\b")


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load_published()


def test_every_published_number_has_its_paper_and_table(published):
    assert list(published.columns) == PUBLISHED_COLUMNS
    for row in published.itertuples(index=False):
        assert SOURCE.match(row.source), f"{row}: source should read '<Authors> et al. <VENUE> <year> (<paper>) Table <n>'"
    assert not published.duplicated(["dataset", "model", "variant", "metric"]).any()
    assert published["value"].between(0, 1, inclusive="neither").all()


def test_published_rows_name_known_datasets_models_variants_and_metrics(published):
    assert set(published["dataset"]) == {"ml-20m", "netflix", "msd", "gowalla", "yelp2018", "amazon-book"}
    assert set(published["model"]) <= set(MODEL_NAMES)
    assert all(parse_metric(metric).per_user for metric in set(published["metric"]))  # an unknown family raises
    assert set(published["variant"]) <= {"", "baseline", "implicit_slim"}
    assert set(published.loc[published["model"] == "ease", "variant"]) == {""}  # EASE has no variants


def test_msd_has_the_deep_models_of_liang_et_al_and_recvae(published):
    msd = published[published["dataset"] == "msd"].set_index(["model", "metric"])["value"]
    assert msd["multvae"].to_dict() == {"recall@20": 0.266, "recall@50": 0.364, "ndcg@100": 0.316}
    assert msd["multdae"].to_dict() == {"recall@20": 0.266, "recall@50": 0.363, "ndcg@100": 0.313}
    assert msd[("recvae", "ndcg@100")] == 0.326
    assert all("Liang et al." in source for source in published.loc[published["model"].isin(["multvae", "multdae"]), "source"])


def test_the_graph_models_have_their_papers_numbers_on_the_lightgcn_splits(published):
    """LightGCN (He et al. 2020, Table 3) and UltraGCN (Mao et al. 2021): test Recall@20 / NDCG@20
    on the splits of the LightGCN authors, which the registry's gowalla, yelp2018 and amazon-book read."""
    expected = {
        ("lightgcn", "gowalla"): (0.1830, 0.1554),
        ("lightgcn", "yelp2018"): (0.0649, 0.0530),
        ("lightgcn", "amazon-book"): (0.0411, 0.0315),
        ("ultragcn", "gowalla"): (0.1862, 0.1580),
        ("ultragcn", "yelp2018"): (0.0683, 0.0561),
        ("ultragcn", "amazon-book"): (0.0681, 0.0556),
    }
    graph = published[published["model"].isin(["lightgcn", "ultragcn"])].set_index(["model", "dataset", "metric"])
    assert len(graph) == 2 * len(expected) and set(graph["variant"]) == {"baseline"}
    for (model, dataset), (recall, ndcg) in expected.items():
        assert graph.loc[(model, dataset, "recall@20"), "value"] == recall
        assert graph.loc[(model, dataset, "ndcg@20"), "value"] == ndcg
        assert graph.loc[(model, dataset, "recall@20"), "source"].startswith({"lightgcn": "He et al.", "ultragcn": "Mao et al."}[model])


def metric_rows(variants: dict[str, float]) -> pd.DataFrame:
    """Test NDCG@100 on msd of EASE and of RecVAE in the given variants (run ``recvae|<variant>``)."""
    rows = [("ease", "ease", 0.38)] + [("recvae", f"recvae|{variant}", value) for variant, value in variants.items()]
    return pd.DataFrame(
        [
            {
                "dataset": "msd",
                "model": model,
                "run": run,
                "split": "test",
                "metric": "ndcg@100",
                "value": value,
                "se": 0.001,
                "n_users": 50,
            }
            for model, run, value in rows
        ]
    )


def test_a_published_number_goes_beside_the_variant_it_was_published_for():
    """An implicit_slim number beside the implicit_slim run (never the baseline), a baseline number
    beside the baseline (never the implicit_slim run)."""
    published = pd.DataFrame(
        [
            ["msd", "recvae", "baseline", "ndcg@100", 0.326, "Paper A Table 1"],
            ["msd", "recvae", "implicit_slim", "ndcg@100", 0.333, "Paper B Table 2"],
            ["msd", "ease", "", "ndcg@100", 0.389, "Paper A Table 1"],
        ],
        columns=PUBLISHED_COLUMNS,
    )
    table = results_table(metric_rows({"baseline": 0.32, "implicit_slim": 0.34}), published).set_index(["model", "variant"])
    assert table.loc[("recvae", "implicit_slim"), ["published", "source"]].tolist() == [0.333, "Paper B Table 2"]
    assert table.loc[("recvae", "implicit_slim"), "difference"] == pytest.approx(0.34 - 0.333)
    assert table.loc[("recvae", "baseline"), ["published", "source"]].tolist() == [0.326, "Paper A Table 1"]
    assert table.loc[("ease", ""), "published"] == 0.389


def test_a_variant_without_a_published_number_gets_none():
    published = pd.DataFrame([["msd", "recvae", "implicit_slim", "ndcg@100", 0.333, "Paper B Table 2"]], columns=PUBLISHED_COLUMNS)
    table = results_table(metric_rows({"baseline": 0.32, "multistep": 0.35}), published).set_index(["model", "variant"])
    assert table[["published", "difference", "source"]].isna().all().all()


def test_the_shipped_numbers_reach_the_results_table():
    table = results_table(metric_rows({"baseline": 0.32, "implicit_slim": 0.34})).set_index(["model", "variant"])
    assert table.loc[("ease", ""), "published"] == 0.389
    assert table.loc[("recvae", "baseline"), "published"] == 0.326
    assert np.isnan(table.loc[("recvae", "implicit_slim"), "published"])  # no ImplicitSLIM number is shipped for MSD
