"""Bad configuration: unknown keys are rejected at every level of the schema with the allowed keys
listed, other violations name the key and what is allowed, model settings the schema leaves open
are checked when a run starts, and an explicit arm that cannot fit the memory budget is refused
before allocating.
"""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate as snakemake_validate

from islim.ablations import ablation_cell
from islim.config import SCHEMA_PATH, load_schema, validate_config
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.embeddings import arm_embeddings
from islim.errors import ConfigError, MemoryBudgetError
from islim.memory import BUDGET_ENV
from islim.training import train_run
from tests.test_config import minimal_config

# ------------------------------------------------------------------ the schema itself


def open_mappings(node, path=""):
    """Paths of object schemas declaring ``properties`` without closing them to other keys (by
    ``additionalProperties: false``, ``unevaluatedProperties: false`` or an enum of property names).

    Exempt (not what they contain): the ``preprocessing`` definition and the ``then`` branches of
    ``dataset``, which the dataset schema closes with ``unevaluatedProperties: false``, the
    ``if`` conditions, which describe no mapping, and the ablation axes, whose arm names are
    closed by the arms registry (:func:`islim.catalog.check_registered_names`, tested in
    tests/test_registries.py).
    """
    if isinstance(node, dict):
        closed = (
            node.get("additionalProperties") is False
            or node.get("unevaluatedProperties") is False
            or "enum" in node.get("propertyNames", {})
        )
        exempt = (
            path == "/$defs/preprocessing"
            or re.fullmatch(r"/\$defs/dataset/allOf/\d+/(if|then)", path)
            or re.fullmatch(r"/properties/ablations/properties/(neighbourhood|first_step|second_step)", path)
        )
        if "properties" in node and not closed and not exempt:
            yield path or "/"
        for key, value in node.items():
            yield from open_mappings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from open_mappings(value, f"{path}/{index}")


def test_every_mapping_of_the_schema_rejects_unknown_keys():
    schema = load_schema()
    assert list(open_mappings(schema)) == []
    assert schema["$defs"]["dataset"]["unevaluatedProperties"] is False


# ------------------------------------------------------------------ typos at every level


def _set(path: list, value):
    def mutate(config):
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[path[-1]] = value

    return mutate


TYPOS = [
    # (mutation, error path, unexpected key, a key the message must list as allowed)
    (_set(["colour"], "red"), "<top level>", "colour", "run_datasets"),
    (_set(["ease", "lamda_grid"], [1]), "ease", "lamda_grid", "lambda_grid"),
    (_set(["ablations", "dim"], [8]), "ablations", "dim", "dims"),
    (_set(["ablations", "first_step", "ease", "lambda"], [1]), "ablations/first_step/ease", "lambda", "lam"),
    (_set(["ablations", "scorers", "plrec"], {"power": [1], "r_q": [1], "rq": [1]}), "ablations/scorers/plrec", "rq", "r_q"),
    (_set(["training", "model"], {}), "training", "model", "models"),
    (_set(["training", "models", "mf", "param"], {}), "training/models/mf", "param", "params"),
    (_set(["datasets", "d", "treshold"], 3), "datasets/d", "treshold", "threshold"),
    (_set(["datasets", "d", "training", "model"], {}), "datasets/d/training", "model", "models"),
    (_set(["datasets", "d", "ease", "lambda"], [1]), "datasets/d/ease", "lambda", "lambda_grid"),
    (_set(["datasets", "d", "expected", "user"], 1), "datasets/d/expected", "user", "users"),
    (_set(["datasets", "d", "sources", 0, "sha265"], "0"), "datasets/d/sources/0", "sha265", "sha256"),
]


@pytest.mark.parametrize("mutate, where, unexpected, allowed", TYPOS, ids=[t[1] + ":" + t[2] for t in TYPOS])
def test_a_typo_at_any_level_names_the_place_the_key_and_the_allowed_keys(mutate, where, unexpected, allowed):
    config = minimal_config()
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    (line,) = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert line.startswith(f"  - {where}: ") and f"'{unexpected}' was unexpected" in line
    listed = line.split("allowed keys here: ")[1]
    assert f"'{allowed}'" in listed and f"'{unexpected}'" not in listed
    with pytest.raises(WorkflowError):  # the Snakefile's validation agrees
        snakemake_validate(config, str(SCHEMA_PATH))


def test_allowed_keys_of_a_dataset_depend_on_its_kind():
    config = minimal_config()
    config["datasets"]["s"] = {"kind": "synthetic", "n_users": 9, "n_items": 9, "n_interactions": 9, "heldout_users": 1, "rnk": 3}
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    listed = str(caught.value).split("allowed keys here: ")[1]
    assert "'rank'" in listed and "'threshold'" in listed and "'user_col'" not in listed and "'sources'" not in listed


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (["datasets", "d", "kind"], "movielens-xls", ["datasets/d/kind", "'movielens-xls' is not one of", "'movielens-csv'"]),
        (["ease", "dtype"], "float16", ["ease/dtype", "'float32', 'float64'"]),
        (["datasets", "d", "heldout_users"], 0.7, ["datasets/d/heldout_users", "fraction of all users in (0, 0.5)"]),
        (["threads"], 0, ["threads", "less than the minimum of 1"]),
        (["eval_batch_size"], "big", ["eval_batch_size", "is not of type 'integer'"]),
    ],
)
def test_other_violations_name_the_key_and_what_is_allowed(path, value, expected):
    config = minimal_config()
    _set(path, value)(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    for text in expected:
        assert text in str(caught.value)


def test_a_source_without_location_lists_both_alternatives():
    config = minimal_config()
    del config["datasets"]["d"]["sources"][0]["url"]
    with pytest.raises(ConfigError, match=r"datasets/d/sources/0: .*'pypi' is a required property \| 'url' is a required property"):
        validate_config(config)


# ------------------------------------------------------------------ model settings the schema leaves open


@pytest.fixture(scope="module")
def split():
    X = generate(120, 40, 1500, seed=4).tocoo()
    return make_split(pd.DataFrame({"user": X.row, "item": X.col}), heldout_users=15, seed=1)


@pytest.mark.parametrize("model, typo", [("multvae", "hiden_dim"), ("plrec", "n_factor")])
def test_a_typo_in_model_params_fails_the_run_before_training(split, model, typo):
    with pytest.raises(ConfigError, match=typo):
        train_run("toy", split, model, "baseline", {typo: 8}, {}, {}, progress=False)


def test_a_typo_in_implicit_slim_settings_lists_the_allowed_ones(split):
    with pytest.raises(ConfigError, match=r"unknown implicit_slim keys \['lamda'\]; allowed: .*'lam'"):
        train_run("toy", split, "multvae", "implicit_slim", {}, {"implicit_slim": {"lamda": 1.0}}, {}, progress=False)


# ------------------------------------------------------------------ an arm that cannot fit memory


def wide_matrix(n_items: int = 3000) -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    return sp.random(200, n_items, density=0.01, format="csr", dtype=np.float32, random_state=rng).sign()


@pytest.mark.parametrize("first_step", ["ease", "lle", "cooccurrence"])
def test_explicit_arm_over_the_environment_budget_is_refused_before_allocating(monkeypatch, first_step):
    X = wide_matrix()
    dense = X.shape[1] ** 2 * 8  # one I x I float64 matrix: 72 MB
    monkeypatch.setenv(BUDGET_ENV, "0.01")  # 10 MiB
    tracemalloc.start()
    try:
        with pytest.raises(MemoryBudgetError) as caught:
            arm_embeddings(X, 8, "all", first_step, "explicit")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < dense / 4, f"{peak:,} bytes were allocated before the refusal"
    message = str(caught.value)
    assert "3,000 x 3,000" in message and "memory budget is 0.01 GiB" in message and BUDGET_ENV in message


def test_the_ablation_cell_records_the_memory_refusal_as_skipped(monkeypatch, split):
    monkeypatch.setenv(BUDGET_ENV, "1e-6")
    records = ablation_cell(
        "toy", split, {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}, 4, {}, {"mf": {"r_p": [1.0]}}
    )
    (record,) = records
    assert record["extra"]["status"] == "skipped"
    assert "needs an estimated" in record["extra"]["reason"] and BUDGET_ENV in record["extra"]["reason"]
    monkeypatch.delenv(BUDGET_ENV)
    (ran,) = ablation_cell(
        "toy", split, {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}, 4, {}, {"mf": {"r_p": [1.0]}}
    )
    assert ran["extra"]["status"] == "ok"  # the same cell fits the default budget
