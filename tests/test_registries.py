"""The registries are the one source of model and arm names: the config check, the workflow's
wildcards, display names, figure styles and SLURM GPU routing all derive from them."""

from __future__ import annotations

import re

import pytest

from islim.catalog import check_registered_names
from islim.config import load_schema, validate_config
from islim.embeddings.knn import KNN_RULES
from islim.embeddings.registry import ARMS, AXES, DEFAULT_PARAMS, UNDEFINED, arms_of, check_arm_params
from islim.errors import ConfigError
from islim.models.base import USER_SCORING, Recommender
from islim.models.registry import (
    MODELS,
    PROTOCOLS,
    PUBLISHED_ONLY,
    build_model,
    default_params,
    model_class,
    trained_by,
    uses_gpu,
)
from islim.names import MODEL_NAMES
from islim.plotting.style import NEUTRAL, PALETTE, model_style
from tests.test_config import minimal_config


def _with(config: dict, path: list[str], value) -> dict:
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return config


# ------------------------------------------------------------------ models


def test_every_registered_model_is_a_recommender_with_a_known_protocol_and_rule():
    for name, spec in MODELS.items():
        cls = model_class(name)
        assert issubclass(cls, Recommender), name
        assert cls.user_scoring in USER_SCORING
        assert set(spec.protocols) <= set(PROTOCOLS)
        assert spec.rule in ("train", "ease")
        assert default_params(name) == cls.default_params()


def test_display_names_and_figure_styles_come_from_the_registry():
    assert {name: MODEL_NAMES[name] for name in MODELS} == {name: spec.display_name for name, spec in MODELS.items()}
    assert all(MODEL_NAMES[name] == display for name, display in PUBLISHED_ONLY.items())
    styles = [(model_style(name)["color"], model_style(name)["marker"]) for name in MODELS]
    assert len(set(styles)) == len(MODELS), "two models share a colour and marker"
    assert model_style("mf") == {"color": PALETTE[MODELS["mf"].colour], "marker": MODELS["mf"].marker}
    assert model_style("not-a-model")["color"] == NEUTRAL


def test_gpu_routing_follows_the_registry():
    assert [name for name in MODELS if uses_gpu(name)] == ["multvae", "recvae", "hvamp", "lightgcn", "ultragcn"]
    with pytest.raises(ConfigError, match="unknown model 'vae'; registered models"):
        uses_gpu("vae")
    with pytest.raises(ConfigError, match="unknown parameters \\['hiden_dim'\\] for model 'multvae'"):
        build_model("multvae", {"hiden_dim": 3})


def test_the_ablation_table_lists_arms_in_registry_order():
    from islim.ablations import ablation_table

    def record(neighbourhood, first, second):
        extra = {
            "neighbourhood": neighbourhood,
            "first_step": first,
            "second_step": second,
            "scorer": "mf",
            "status": "skipped",
            "reason": "x",
        }
        return {"dataset": "toy", "model": f"ablation:{neighbourhood}/{first}/{second}", "params": {"d": 8}, "extra": extra}

    cells = [("knn", "identity", "implicit"), ("all", "lle", "explicit"), ("all", "ease", "implicit_iterated"), ("all", "ease", "explicit")]
    table = ablation_table([record(*cell) for cell in cells])
    assert list(zip(table["neighbourhood"], table["first_step"], table["second_step"])) == [cells[3], cells[2], cells[1], cells[0]]


def test_the_train_rule_trains_every_model_but_ease():
    assert trained_by("train") == ["mf", "plrec", "multvae", "recvae", "hvamp", "popularity", "itemknn", "lightgcn", "ultragcn"]
    assert trained_by("ease") == ["ease"]


# ------------------------------------------------------------------ arms


def test_arm_names_orders_and_parameters_come_from_the_arms_registry():
    assert arms_of("neighbourhood") == ("all", "knn")
    assert arms_of("reference") == ("random", "svd")
    assert tuple(arm.name for arm in ARMS if arm.axis == "first_step" and arm.knn) == KNN_RULES
    for arm in ARMS:
        assert set(arm.params) <= set(DEFAULT_PARAMS), arm
        if arm.axis != "reference":
            check_arm_params(arm.axis, arm.name, {name: [DEFAULT_PARAMS[name]] for name in arm.params})
            for other in sorted(set(DEFAULT_PARAMS) - set(arm.params)):
                with pytest.raises(ConfigError, match=f"sets \\['{other}'\\], which that arm does not read"):
                    check_arm_params(arm.axis, arm.name, {other: [1]})
    for first, second in UNDEFINED:
        assert first in arms_of("first_step") and second in arms_of("second_step")


def test_every_registered_name_satisfies_the_schema_patterns():
    schema = load_schema()
    pattern = schema["$defs"]["training_models"]["propertyNames"]["pattern"]
    assert all(re.fullmatch(pattern, name) for name in MODELS)
    axes = schema["properties"]["ablations"]["properties"]
    for axis in AXES:
        assert all(re.fullmatch(axes[axis]["propertyNames"]["pattern"], name) for name in arms_of(axis))


# ------------------------------------------------------------------ the config check


def test_the_default_and_minimal_configs_pass_the_registry_check():
    import yaml

    from tests.workflow_helpers import REPO

    check_registered_names(validate_config(yaml.safe_load((REPO / "config.yaml").read_text())))
    check_registered_names(validate_config(minimal_config()))


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            ["training", "models", "ngcf"],
            {"variants": {"baseline": {}}},
            "training.models names \\['ngcf'\\], which the model registry does not train",
        ),
        (["training", "models", "ease"], {"variants": {"baseline": {}}}, "training.models names \\['ease'\\]"),
        (["ablations", "first_step", "eaze"], {}, "ablations.first_step names the unknown arm 'eaze'; known: \\['ease', 'lle'"),
        (
            ["ablations", "second_step", "implicit"],
            {"k": [10]},
            "ablations.second_step.implicit sets \\['k'\\], which that arm does not read; allowed: \\['alpha', 'threshold'\\]",
        ),
        (["ablations", "references"], ["random", "pca"], "ablations.references names \\['pca'\\]; known reference arms"),
    ],
)
def test_unknown_names_fail_the_check_with_the_known_ones(path, value, message):
    # Set after schema validation: the schema documents the current arms' parameters itself, while
    # the registry check is what guards arms added without a schema entry.
    config = _with(validate_config(minimal_config()), path, value)
    with pytest.raises(ConfigError, match=message):
        check_registered_names(config)


def test_a_dataset_level_training_override_is_checked_too():
    config = minimal_config()
    name = next(iter(config["datasets"]))
    _with(config, ["datasets", name, "training", "models", "svdpp"], {"variants": {"baseline": {}}})
    with pytest.raises(ConfigError, match=f"datasets.{name}.training.models names \\['svdpp'\\]"):
        check_registered_names(validate_config(config))
