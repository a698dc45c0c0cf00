"""Loading and validating the workflow configuration (``config.yaml``).

The JSON schema shipped in ``islim/schemas/config.schema.yaml`` is the single source of truth:
the Snakefile (``rules/common.smk``) and the CLI (:func:`load_config`) both validate against it
with :func:`validate_config`, which fills in the defaults declared in the schema, reports every
violation with its key path and what is allowed, refuses NaN and infinities wherever the schema
asks for a number, and reads the text that Snakemake's ``--config`` passes on for nested values
as the number, boolean or null it spells where the schema asks for one.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
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


def _finite_numbers(validate_type):
    """Wrap the ``type`` keyword so that a NaN or infinite float is refused where the schema asks for
    a number (JSON has no such numbers; YAML's ``.nan``, ``.inf`` and ``-.inf`` are never meant)."""

    def check_type(validator, types, instance, schema):
        errors = list(validate_type(validator, types, instance, schema))
        if errors or not isinstance(instance, float) or math.isfinite(instance):
            yield from errors
            return
        alternative = " or null" if "null" in ([types] if isinstance(types, str) else types) else ""
        yield jsonschema.ValidationError(
            f"{instance!r} is not a finite number; write a finite number{alternative} here (NaN, .inf and -.inf are refused)"
        )

    return check_type


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


#: The schema's validator class: draft 2020-12 with finite numbers only.
ConfigValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"type": _finite_numbers(jsonschema.Draft202012Validator.VALIDATORS["type"])}
)


def validate_config(config: dict[str, Any], command_line: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``config`` against the schema, fill defaults, and check cross-field rules.

    Parameters
    ----------
    config : dict
        The merged configuration (config files, then command-line values).
    command_line : mapping, optional
        The values given with Snakemake's ``--config`` (``workflow.config_settings.config``).
        Snakemake passes every value below the top level on as text (``ease={lambda_grid: [100]}``
        arrives as ``['100']``). Such a text is read as the number, boolean or null it spells
        (:func:`read_command_line_text`) where the schema refuses text, or where it leaves the
        type open (model settings); a text still refused gets a hint at ``--configfile``.

    Returns
    -------
    dict
        A validated deep copy with the schema's defaults filled in.

    Raises
    ------
    ConfigError
        Listing each violation with its key path and what is allowed there.
    """
    config = copy.deepcopy(config)
    schema = load_schema()
    texts = dict(_text_leaves(command_line or {}))
    if texts:
        read_command_line_text(config, texts, ConfigValidator(schema))
    validator = _validator_filling_defaults(ConfigValidator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    # A failing branch makes `unevaluatedProperties` flag valid keys too; report the real errors first.
    specific = [e for e in errors if e.validator != "unevaluatedProperties"]
    errors = specific or errors
    if errors:
        lines = [
            f"  - {'/'.join(map(str, e.absolute_path)) or '<top level>'}: {_explain(e, validator, schema)}"
            + _command_line_hint(tuple(e.absolute_path), config, texts, command_line)
            for e in errors[:10]
        ]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    check_cross_fields(config)
    return config


def read_command_line_text(config: dict[str, Any], texts: Mapping[tuple, str], validator) -> None:
    """Replace, in place, the ``--config`` texts of ``config`` that stand for a number, boolean or null.

    Parameters
    ----------
    config : dict
        The merged configuration; ``texts`` are its values that came from ``--config`` as text.
    texts : mapping
        Key path (a tuple of keys and list indices) → the text given there.
    validator : jsonschema validator
        A validator of the whole schema (one that does not fill defaults).

    Notes
    -----
    A text that spells a number (``100``, ``1e-3``), a boolean (``true``, ``false``) or null
    (``null``, ``~``) is replaced by that value when the schema refuses text at its place for its
    type only (``lambda_grid`` items, ``heldout_users``, ``activate``), or when the schema does not
    look at the value there (the open model settings under ``training``). Text that the schema
    accepts as text (a dataset name, a column name, a digest) stays text.
    """
    for path, text in sorted(texts.items(), key=lambda item: list(map(str, item[0]))):
        value = _spelled_value(text)
        if isinstance(value, str) or _lookup(config, path) != text:
            continue
        refused = _errors_at(validator, config, path)
        if refused:
            wanted = all(error.validator == "type" for error in refused)
        else:
            _assign(config, path, _Opaque())
            wanted = not _errors_at(validator, config, path)  # nothing at this place checks the value
            _assign(config, path, text)
        if wanted:
            _assign(config, path, value)


class _Opaque:
    """A value of no JSON type: every ``type`` or ``enum`` keyword that looks at it refuses it."""


def _spelled_value(text: str) -> Any:
    """The number, boolean or null that ``text`` spells (Python's ``int``/``float`` syntax, then
    YAML's words such as ``true``, ``null``, ``.inf``), else ``text`` itself."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if value is None or isinstance(value, bool | int | float) else text


def _text_leaves(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """``(key path, text)`` of every text value in a nested mapping/list."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _text_leaves(value, (*path, key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _text_leaves(value, (*path, index))
    elif isinstance(node, str):
        yield path, node


def _lookup(node: Any, path: tuple) -> Any:
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _assign(node: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _errors_at(validator, instance: Any, path: tuple) -> list[jsonschema.ValidationError]:
    """The innermost validation errors of ``instance`` located exactly at ``path`` (the alternatives
    of a failed ``oneOf``/``anyOf`` included)."""

    def innermost(errors):
        for error in errors:
            if error.context:
                yield from innermost(error.context)
            elif tuple(error.absolute_path) == path:
                yield error

    return list(innermost(validator.iter_errors(instance)))


def _command_line_hint(path: tuple, config: dict[str, Any], texts: Mapping[tuple, str], command_line: Mapping[str, Any] | None) -> str:
    """For an error at a value that ``--config`` gave as text: how Snakemake passed it on, and the
    ``--configfile`` way of giving the same setting."""
    if path not in texts or not isinstance(_lookup(config, path), str):
        return ""
    top = path[0]
    setting = yaml.safe_dump({top: _typed_copy(command_line[top])}, default_flow_style=True, width=1000).strip()
    return (
        f" (this value came from --config as the text {texts[path]!r}: Snakemake passes nested --config values on as "
        f"text, and islim reads a text as a number, true/false or null only where the schema asks for one; give a valid "
        f"value, or put the setting in a YAML file, e.g. `{setting}`, and pass it with --configfile FILE)"
    )


def _typed_copy(node: Any) -> Any:
    """``node`` with every text that spells a number, boolean or null replaced by that value."""
    if isinstance(node, Mapping):
        return {key: _typed_copy(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_typed_copy(value) for value in node]
    return _spelled_value(node) if isinstance(node, str) else node


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
    ``$ref`` and ``allOf`` parts, and of the ``then`` of every ``if`` the instance satisfies (the
    ``else`` of every other)."""
    keys = set(schema.get("properties", {}))
    parts = list(schema.get("allOf", []))
    if "$ref" in schema:
        node = root
        for name in schema["$ref"].removeprefix("#/").split("/"):
            node = node[name]
        parts.append(node)
    if "if" in schema:
        parts.append(schema.get("then" if validator.evolve(schema=schema["if"]).is_valid(instance) else "else", {}))
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
    except IsADirectoryError as exc:
        raise ConfigError(
            f"config file {path} is a directory, not a YAML file; name the file itself, e.g. {Path(path) / 'config.yaml'}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 YAML") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc}); check its permissions and the path") from exc
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


def protocol_of(entry: Mapping[str, Any]) -> str:
    """The evaluation protocol of a dataset registry entry: its ``protocol``, by default ``weak`` for a
    published per-user split (``kind: lightgcn``) and ``strong`` otherwise."""
    return entry.get("protocol") or ("weak" if entry["kind"] == "lightgcn" else "strong")


def training_models(config: dict[str, Any], name: str) -> dict[str, Any]:
    """``training.models`` with dataset ``name``'s own ``training.models`` deep-merged over it; a
    model the dataset maps to ``null`` (or that is ``null`` in both) is left out."""
    overrides = dataset_entry(config, name).get("training", {}).get("models", {})
    merged = deep_merge(config["training"].get("models", {}), overrides)
    return {model: settings for model, settings in merged.items() if settings is not None}


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


def merge_settings(params: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the variant's settings on top; nested mappings (``implicit_slim``) merge key by key."""
    merged = dict(params)
    for key, value in variant.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, Mapping) else value
    return merged


def grid_points(grid: Mapping[str, list]) -> Iterator[dict[str, Any]]:
    """Every combination of a ``{name: [values]}`` grid, as dicts (one empty dict for an empty grid)."""
    names = sorted(grid)
    for values in itertools.product(*(grid[name] for name in names)):
        yield dict(zip(names, values))


#: File stem of one grid point (and seed) of a run: ``p<index>`` or ``p<index>.s<seed>``.
POINT_NAME = re.compile(r"p(0|[1-9][0-9]*)(?:\.s(0|[1-9][0-9]*))?")


def point_name(index: int, seed: int | None = None) -> str:
    """The name of grid point ``index`` (the position in :func:`grid_points`) trained with ``seed``:
    ``p<index>``, or ``p<index>.s<seed>`` for a seeded (stochastic) model; the file stem of its job's
    outputs under ``results/<dataset>/points/<run>/``."""
    return f"p{index}" if seed is None else f"p{index}.s{seed}"


def parse_point_name(name: str) -> tuple[int, int | None]:
    """``(index, seed)`` of a :func:`point_name` (``seed`` is ``None`` for ``p<index>``)."""
    match = POINT_NAME.fullmatch(name)
    if match is None:
        raise ConfigError(f"{name!r} is not a grid point name; expected p<index> or p<index>.s<seed>, e.g. p0 or p2.s1")
    index, seed = match.groups()
    return int(index), None if seed is None else int(seed)


def run_seeds(seeds: Sequence[int], stochastic: bool) -> list[int | None]:
    """The seeds a run trains each grid point with: the top-level ``seeds`` for a stochastic model
    (:attr:`islim.models.registry.ModelSpec.stochastic`), one unseeded run (``[None]``) otherwise."""
    return list(seeds) if stochastic else [None]


def run_point_names(grid: Mapping[str, list], seeds: Sequence[int | None]) -> list[str]:
    """The :func:`point_name` of every grid point x seed of a run, points in :func:`grid_points` order."""
    return [point_name(index, seed) for index in range(len(list(grid_points(grid)))) for seed in seeds]


def point_settings(run: Mapping[str, Any], variant: str, name: str) -> dict[str, Any]:
    """What one grid point x seed of a training run trains with.

    Parameters
    ----------
    run : mapping
        The run's ``{"params", "grid", "variants"}`` (:func:`training_variant`).
    variant : str
        The variant (a key of ``run["variants"]``).
    name : str
        The point's :func:`point_name`.

    Returns
    -------
    dict
        ``{"point": the grid values, "seed": int or None, "settings": params, then the variant's
        settings, then the point (:func:`merge_settings`), with ``seed`` set to the point's seed}``.

    Raises
    ------
    ConfigError
        ``name`` is malformed or beyond the grid, or a seeded point's settings already set ``seed``
        (a stochastic model's seeds come from the top-level ``seeds`` setting only).
    """
    index, seed = parse_point_name(name)
    points = list(grid_points(run.get("grid") or {}))
    if index >= len(points):
        raise ConfigError(f"grid point {name!r} does not exist: the grid {dict(run.get('grid') or {})} has {len(points)} point(s)")
    point = points[index]
    settings = merge_settings(merge_settings(run.get("params") or {}, run["variants"][variant]), point)
    if seed is not None:
        if "seed" in settings:
            raise ConfigError(
                f"variant {variant!r} sets seed={settings['seed']!r}, but the seeds of a stochastic model come from the "
                "top-level `seeds` setting (one run per seed); remove `seed` from its params, variant and grid"
            )
        settings["seed"] = seed
    return {"point": point, "seed": seed, "settings": settings}
