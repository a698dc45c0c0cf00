"""Loading and validating the workflow configuration (``config.yaml``).

The JSON schema shipped in ``islim/schemas/config.schema.yaml`` is the single source of truth:
the Snakefile validates against it with ``snakemake.utils.validate`` and the CLI with
:func:`load_config`. Defaults declared in the schema are filled in.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from islim.errors import ConfigError

#: Package data this module reads (declared for :mod:`islim.codehash`).
PACKAGE_DATA = ("schemas/config.schema.yaml",)
SCHEMA_PATH = Path(__file__).parent / PACKAGE_DATA[0]


def load_schema() -> dict[str, Any]:
    """The configuration JSON schema as a dict."""
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _validator_filling_defaults(validator_class):
    """Extend a jsonschema validator class so that ``default`` values are written into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` against the schema, fill defaults, and check cross-field rules.

    Returns a validated deep copy. Raises :class:`ConfigError` naming the offending key.
    """
    config = copy.deepcopy(config)
    schema = load_schema()
    validator = _validator_filling_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    # A failing branch makes `unevaluatedProperties` flag valid keys too; report the real errors first.
    specific = [e for e in errors if e.validator != "unevaluatedProperties"]
    errors = specific or errors
    if errors:
        lines = [f"  - {'/'.join(map(str, e.absolute_path)) or '<top level>'}: {_explain(e, validator, schema)}" for e in errors[:10]]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    check_cross_fields(config)
    return config


def _explain(error: jsonschema.ValidationError, validator, root: dict[str, Any]) -> str:
    """The validator's message plus what is allowed: the declared keys of a mapping with an unknown
    key, the alternatives of a failed ``oneOf``/``anyOf``, the description of a failed ``pattern``."""
    if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(error.instance, dict):
        keys = sorted(_declared_keys(error.schema, error.instance, validator, root))
        return f"{error.message}; allowed keys here: {keys}"
    if error.validator in ("oneOf", "anyOf"):
        failures = " | ".join(sorted({e.message for e in error.context}))
        description = error.schema.get("description", "").strip()
        return f"{error.message}; the alternatives fail as: {failures}" + (f" (expected: {description})" if description else "")
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{error.message} (expected: {' '.join(error.schema['description'].split())})"
    return error.message


def _declared_keys(schema: dict[str, Any], instance: dict[str, Any], validator, root: dict[str, Any]) -> set[str]:
    """Property names a (sub)schema declares for ``instance``: its ``properties``, those of its
    ``$ref`` and ``allOf`` parts, and of the ``then`` of every ``if`` the instance satisfies."""
    keys = set(schema.get("properties", {}))
    parts = list(schema.get("allOf", []))
    if "$ref" in schema:
        node = root
        for name in schema["$ref"].removeprefix("#/").split("/"):
            node = node[name]
        parts.append(node)
    if "if" in schema and validator.evolve(schema=schema["if"]).is_valid(instance):
        parts.append(schema.get("then", {}))
    for part in parts:
        keys |= _declared_keys(part, instance, validator, root)
    return keys


def check_cross_fields(config: dict[str, Any]) -> None:
    """Rules a JSON schema cannot express: every dataset in ``run_datasets`` is in the registry."""
    missing = [name for name in config["run_datasets"] if name not in config["datasets"]]
    if missing:
        raise ConfigError(
            f"run_datasets names {missing}, which are not in the `datasets` registry "
            f"(known: {sorted(config['datasets'])}); add an entry or fix the name"
        )


def load_config(path: str | Path, overrides: list[str | Path] = ()) -> dict[str, Any]:
    """Read ``path`` (YAML), deep-merge each override file over it, validate, and fill defaults."""
    config = _read_yaml(path)
    for override in overrides:
        config = deep_merge(config, _read_yaml(override))
    return validate_config(config)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``: dicts merge recursively, anything else is replaced
    (the same rule as Snakemake's ``--configfile``)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping at the top level, found {type(data).__name__}")
    return data


def dataset_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The registry entry of dataset ``name`` (with schema defaults filled in)."""
    try:
        return config["datasets"][name]
    except KeyError as exc:
        raise ConfigError(f"dataset {name!r} is not in the registry; known: {sorted(config['datasets'])}") from exc


def training_models(config: dict[str, Any], name: str) -> dict[str, Any]:
    """``training.models`` with dataset ``name``'s own ``training.models`` deep-merged over it."""
    overrides = dataset_entry(config, name).get("training", {}).get("models", {})
    return deep_merge(config["training"].get("models", {}), overrides)


def ease_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Global ``ease`` settings with the dataset's own ``ease`` overrides applied."""
    return {**config["ease"], **dataset_entry(config, name).get("ease", {})}


def training_variant(config: dict[str, Any], name: str, model: str, variant: str) -> dict[str, Any]:
    """What one training run (``model`` in ``variant`` on dataset ``name``) uses of
    :func:`training_models`: the model's ``params`` and ``grid`` and this variant's settings only,
    as ``{"params", "grid", "variants": {variant: settings}}`` (so that editing another variant of
    the model does not rerun this one)."""
    settings = training_models(config, name)[model]
    return {"params": settings.get("params", {}), "grid": settings.get("grid", {}), "variants": {variant: settings["variants"][variant]}}


def ablation_cell_grids(ablations: Mapping[str, Any], arm: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The hyper-parameter grids one ablation cell uses: ``{axis: {arm: grid}}`` for the cell's arm
    on each axis (``arm`` as ``{"neighbourhood": "knn", "first_step": "ease", ...}``), out of the
    ``ablations`` config section; the other arms' grids are left out."""
    return {axis: {value: ablations.get(axis, {}).get(value) or {}} for axis, value in arm.items()}


def grid_points(grid: Mapping[str, list]) -> Iterator[dict[str, Any]]:
    """Every combination of a ``{name: [values]}`` grid, as dicts (one empty dict for an empty grid)."""
    names = sorted(grid)
    for values in itertools.product(*(grid[name] for name in names)):
        yield dict(zip(names, values))
