"""Bad configuration: unknown keys are rejected at every level of the schema with the allowed keys
listed, other violations name the key and what is allowed, NaN and infinities are refused where a
number is meant, Snakemake reports islim's messages and reads the text its ``--config`` passes on
for nested numbers, model settings the schema leaves open are checked (names and types) when a
run starts or its memory is sized, a device the machine lacks is named, the CLI says what to do
about a missing or unreadable file, and an explicit arm that cannot fit the memory budget is
refused before allocating.
"""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate as snakemake_validate

from islim.ablations import ablation_cell
from islim.cli import main as cli_main
from islim.config import SCHEMA_PATH, deep_merge, load_schema, validate_config
from islim.data.split import make_split
from islim.data.synthetic import generate
from islim.embeddings import arm_embeddings
from islim.errors import ConfigError, MemoryBudgetError
from islim.memory import BUDGET_ENV, memory_budget
from islim.models.deep.trainer import resolve_device
from islim.resources import train_mem_mb
from islim.training import train_run
from tests.test_config import minimal_config
from tests.workflow_helpers import snakemake

# ------------------------------------------------------------------ the schema itself


def open_mappings(node, path=""):
    """Paths of object schemas declaring ``properties`` without closing them to other keys (by
    ``additionalProperties: false``, ``unevaluatedProperties: false`` or an enum of property names).

    Exempt (not what they contain): the ``preprocessing``, ``filters`` and ``strong_split``
    definitions and the ``then`` branches of ``dataset`` (also those nested in a branch's
    ``allOf``), which the dataset schema closes with ``unevaluatedProperties: false``, the ``if``
    conditions, which describe no mapping, a protocol's metric settings, whose ``properties`` only
    give defaults to the closed ``metric_settings`` they refer to, and the ablation axes, whose arm names are
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
            path in ("/$defs/preprocessing", "/$defs/filters", "/$defs/strong_split")
            or re.fullmatch(r"/\$defs/dataset/allOf/\d+(/then/allOf/\d+)?/(if(/.*)?|then)", path)
            or node.get("$ref") == "#/$defs/metric_settings"
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
    ).records
    (record,) = records
    assert record["extra"]["status"] == "skipped"
    assert "needs an estimated" in record["extra"]["reason"] and BUDGET_ENV in record["extra"]["reason"]
    monkeypatch.delenv(BUDGET_ENV)
    (ran,) = ablation_cell(
        "toy", split, {"neighbourhood": "all", "first_step": "ease", "second_step": "explicit"}, 4, {}, {"mf": {"r_p": [1.0]}}
    ).records
    assert ran["extra"]["status"] == "ok"  # the same cell fits the default budget


# ------------------------------------------------------------------ NaN and infinities where a finite number is meant

NON_FINITE = [float("nan"), float("inf"), float("-inf")]
NUMBER_FIELDS = [
    # (place, what kind of number it is)
    (["ease", "lambda_grid", 0], "lambda"),
    (["datasets", "d", "ease", "lambda_grid", 0], "lambda"),
    (["ablations", "first_step", "ease", "lam", 0], "lambda"),
    (["ablations", "second_step", "implicit", "alpha", 0], "alpha"),
    (["ablations", "second_step", "implicit", "threshold", 0], "threshold"),
    (["datasets", "d", "threshold"], "rating threshold"),
    (["datasets", "d", "heldout_users"], "held-out fraction"),
    (["datasets", "d", "target_fraction"], "fraction"),
    (["memory_budget_gb"], "memory budget"),
]


def _set_path(config: dict, path: list, value) -> dict:
    """``config`` with ``value`` at ``path`` (keys and list indices), creating what is missing."""
    node = config
    for key, after in zip(path[:-1], path[1:]):
        if isinstance(node, dict) and key not in node:
            node[key] = [None] if isinstance(after, int) else {}
        node = node[key]
    node[path[-1]] = value
    return config


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("path, kind", NUMBER_FIELDS, ids=["/".join(map(str, p)) for p, _ in NUMBER_FIELDS])
def test_a_non_finite_number_is_refused_with_the_key_named(path, kind, value):
    config = _set_path(minimal_config(), path, value)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    where = "/".join(map(str, path))
    lines = [line for line in str(caught.value).splitlines() if line.startswith(f"  - {where}: ")]
    assert any(f"{value!r} is not a finite number" in line and "write a finite number" in line for line in lines), (kind, lines)
    validate_config(_set_path(config, path, 0.25 if path[-1] in ("heldout_users", "target_fraction") else 4.0))  # a finite one is fine


@pytest.mark.parametrize("text", [".inf", ".nan", "-.inf"])
def test_cli_check_config_refuses_a_non_finite_memory_budget(tmp_path, capsys, text):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(minimal_config()) + f"memory_budget_gb: {text}\n", encoding="utf-8")
    assert cli_main(["check-config", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "memory_budget_gb: " in error and "is not a finite number; write a finite number or null here" in error


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "0", "-2"])
def test_a_memory_budget_variable_that_is_not_a_positive_finite_number_is_refused(monkeypatch, value):
    monkeypatch.setenv(BUDGET_ENV, value)
    with pytest.raises(MemoryBudgetError, match=rf"{BUDGET_ENV}='{re.escape(value)}' is not a positive, finite number of GiB"):
        memory_budget()


# ------------------------------------------------------------------ Snakemake's --config: nested values arrive as text


def _with_command_line(command_line: dict) -> dict:
    """The validated config after ``command_line`` (as Snakemake's --config parses it) is merged in."""
    return validate_config(deep_merge(minimal_config(), command_line), command_line=command_line)


def test_command_line_text_that_spells_a_number_boolean_or_null_is_read_as_that_value():
    command_line = {
        "ease": {"lambda_grid": ["100", "1e-3"]},
        "ablations": {"activate": "false", "dims": ["8"]},
        "memory_budget_gb": "null",
        "datasets": {"d": {"heldout_users": "0.1", "threshold": "4"}},
        "training": {"models": {"multvae": {"params": {"hidden_dim": "32", "device": "cpu"}, "grid": {"lr": ["1e-3"]}}}},
    }
    config = _with_command_line(command_line)
    assert config["ease"]["lambda_grid"] == [100, 0.001]
    assert config["ablations"]["activate"] is False and config["ablations"]["dims"] == [8]
    assert config["memory_budget_gb"] is None
    assert config["datasets"]["d"]["heldout_users"] == 0.1 and config["datasets"]["d"]["threshold"] == 4
    multvae = config["training"]["models"]["multvae"]
    # The schema leaves model settings open: what they spell, as in a YAML file; text stays text.
    assert multvae["params"] == {"hidden_dim": 32, "device": "cpu"} and multvae["grid"] == {"lr": [0.001]}


def test_command_line_text_stays_text_where_the_schema_wants_text():
    command_line = {
        "run_datasets": ["7"],
        "datasets": {"7": {"kind": "custom", "path": "1", "user_col": "0", "item_col": "1", "heldout_users": "5"}},
    }
    config = _with_command_line(command_line)
    assert config["run_datasets"] == ["7"]
    assert (config["datasets"]["7"]["path"], config["datasets"]["7"]["user_col"], config["datasets"]["7"]["item_col"]) == ("1", "0", "1")
    assert config["datasets"]["7"]["heldout_users"] == 5


def test_command_line_text_that_is_still_refused_shows_the_configfile_way():
    command_line = {"ease": {"lambda_grid": ["abc"]}}
    with pytest.raises(ConfigError) as caught:
        _with_command_line(command_line)
    message = str(caught.value)
    assert "ease/lambda_grid/0: 'abc' is not of type 'number'" in message
    assert "came from --config as the text 'abc'" in message and "`{ease: {lambda_grid: [abc]}}`" in message
    assert "pass it with --configfile FILE" in message
    with pytest.raises(ConfigError) as caught:  # the same text in a config file: no word of --config
        validate_config(deep_merge(minimal_config(), command_line))
    assert "'abc' is not of type 'number'" in str(caught.value) and "--config" not in str(caught.value)


# ------------------------------------------------------------------ the same through Snakemake (dry runs)


@pytest.mark.workflow
def test_snakemake_reports_islims_message_for_a_wrong_value_in_a_dataset_entry(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("datasets:\n  ml-100k:\n    heldout_users: 0.9\n", encoding="utf-8")
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configfile=override)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "datasets/ml-100k/heldout_users: 0.9 is not valid under any of the given schemas" in output
    assert "0.9 is greater than or equal to the maximum of 0.5" in output
    assert "Unevaluated properties" not in output and "were unexpected" not in output


@pytest.mark.workflow
def test_snakemake_reads_nested_command_line_numbers(tmp_path):
    result = snakemake(
        tmp_path, "--dry-run", "--cores", "1", "--config", "ease={lambda_grid: [100, 1e-3]}", "datasets={ml-100k: {heldout_users: 50}}"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "rule ease:" in result.stdout


@pytest.mark.workflow
def test_snakemake_refuses_a_command_line_value_with_the_configfile_way(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", "--config", "ease={lambda_grid: [many]}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ease/lambda_grid/0: 'many' is not of type 'number'" in output and "pass it with --configfile FILE" in output


@pytest.mark.workflow
def test_snakemake_refuses_a_non_finite_memory_budget(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("memory_budget_gb: .inf\n", encoding="utf-8")
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configfile=override)
    assert result.returncode != 0
    assert "memory_budget_gb: inf is not a finite number" in result.stdout + result.stderr


# ------------------------------------------------------------------ the CLI: files that are not there or not files


def test_cli_check_config_of_a_directory_names_it(tmp_path, capsys):
    assert cli_main(["check-config", "--config", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"config file {tmp_path} is a directory, not a YAML file; name the file itself, e.g. {tmp_path / 'config.yaml'}" in error


def test_cli_prepare_before_fetch_says_to_fetch_first(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(minimal_config()), encoding="utf-8")
    code = cli_main(["prepare", "d", "--config", str(path), "--data-dir", str(tmp_path / "data")])
    assert code == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'data' / 'raw' / 'd' / 'manifest.json'} does not exist" in error
    assert "run `islim fetch d` first" in error


# ------------------------------------------------------------------ deep-model settings of the wrong type


@pytest.mark.parametrize("model, network", [("multvae", "MultVAE"), ("recvae", "RecVAE"), ("hvamp", "HVamp")])
def test_a_deep_model_setting_given_as_text_names_the_setting_and_the_type(split, model, network):
    with pytest.raises(ConfigError) as caught:
        train_run("toy", split, model, "baseline", {"hidden_dim": "32", "n_epochs": 1}, {}, {}, progress=False)
    message = str(caught.value)
    assert message.startswith(f"{network} setting 'hidden_dim' must be an integer, got '32' (str); write it without quotes")
    assert "e.g. `hidden_dim: 600` (its default)" in message


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"lr": float("nan")}, "setting 'lr' must be a finite number, got nan"),
        ({"normalize_grad": "yes"}, "setting 'normalize_grad' must be true or false, got 'yes'"),
        ({"patience": 2.5}, "setting 'patience' must be an integer or null, got 2.5"),
        ({"device": 0}, "setting 'device' must be a string, got 0"),
        ({"implicit_slim": "replace"}, "setting 'implicit_slim' must be a mapping of ImplicitSLIM settings, got 'replace'"),
        ({"implicit_slim": {"lam": "500"}}, "implicit_slim setting 'lam' must be a finite number, got '500'"),
    ],
)
def test_other_deep_model_settings_of_the_wrong_type_are_refused(split, params, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        train_run("toy", split, "multvae", "baseline", {**params, "n_epochs": 1}, {}, {}, progress=False)


def test_a_grid_candidate_of_the_wrong_type_is_refused_when_sizing_the_job():
    settings = {"params": {}, "grid": {"hidden_dim": [16, "32"]}, "variants": {"baseline": {}}}
    with pytest.raises(ConfigError, match=re.escape("MultVAE setting 'hidden_dim' must be an integer, got '32'")):
        train_mem_mb({"users": {"train": 100}, "items": 50}, "multvae", settings)


def test_cuda_without_cuda_says_what_to_use_instead(split, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as caught:
        train_run("toy", split, "multvae", "baseline", {"device": "cuda", "n_epochs": 1}, {}, {}, progress=False)
    assert str(caught.value).startswith("device 'cuda' asks for CUDA, but no CUDA device is available here")
    assert "use device: auto (CUDA when present, else the CPU) or device: cpu" in str(caught.value)


def test_a_cuda_device_index_beyond_the_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=re.escape("device 'cuda:3' asks for CUDA device 3, but this machine has 1")):
        resolve_device("cuda:3")


def test_an_unknown_device_is_refused():
    with pytest.raises(ConfigError, match=re.escape("device 'tpu' is not a torch device")):
        resolve_device("tpu")
