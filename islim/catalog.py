"""The names a configuration may use, checked against the registries.

The JSON schema checks the shape of the configuration; which models, ablation arms, reference
arms and metric families exist, which hyper-parameters each arm reads and which evaluation
protocols each model supports, is known only to the registries (:mod:`islim.models.registry`,
:mod:`islim.embeddings.registry`, :mod:`islim.metrics`). :func:`check_registered_names` runs after
schema validation (in the Snakefile and the CLI), so a misspelt name or a model that cannot be
evaluated on a dataset fails before any job starts, with the list of known names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from islim.config import protocol_of, training_models
from islim.embeddings.registry import AXES, arms_of, check_arm_params
from islim.errors import ConfigError
from islim.metrics import parse_metric
from islim.models.registry import model_spec, trained_by


def check_registered_names(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first unknown model, arm or arm parameter.

    Parameters
    ----------
    config : mapping
        A configuration already validated against the schema (defaults filled in).
    """
    trainable = trained_by("train")
    sections = [("training.models", config.get("training", {}).get("models") or {})]
    sections += [
        (f"datasets.{name}.training.models", entry.get("training", {}).get("models") or {})
        for name, entry in config.get("datasets", {}).items()
    ]
    for where, models in sections:
        unknown = sorted(set(models) - set(trainable))
        if unknown:
            raise ConfigError(f"{where} names {unknown}, which the model registry does not train; known: {trainable}")
    ablations = config.get("ablations", {})
    for axis in AXES:
        for name, grids in (ablations.get(axis) or {}).items():
            if name not in arms_of(axis):
                raise ConfigError(f"ablations.{axis} names the unknown arm {name!r}; known: {list(arms_of(axis))}")
            check_arm_params(axis, name, grids)
    unknown = sorted(set(ablations.get("references") or []) - set(arms_of("reference")))
    if unknown:
        raise ConfigError(f"ablations.references names {unknown}; known reference arms: {list(arms_of('reference'))}")
    check_metrics(config.get("metrics") or {})
    check_protocols(config)


def check_metrics(metrics: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for an unknown metric family in ``metrics.<protocol>``, or a
    ``select`` metric that cannot select (a set-level one, or one where lower is better).

    Parameters
    ----------
    metrics : mapping
        The config's ``metrics`` section: ``{protocol: {names, cutoffs, select, recall}}``.
    """
    for protocol, settings in metrics.items():
        for name in settings.get("names", []):
            try:
                parse_metric(name)
            except ConfigError as exc:
                raise ConfigError(f"metrics.{protocol}.names: {exc}") from None
        if "select" in settings:
            try:
                selected = parse_metric(settings["select"])
            except ConfigError as exc:
                raise ConfigError(f"metrics.{protocol}.select: {exc}") from None
            if not (selected.per_user and selected.family.higher_is_better):
                raise ConfigError(
                    f"metrics.{protocol}.select is {selected.name}, which cannot select a model: the selection metric must have "
                    "one value per user and be better when higher (recall, ndcg, hitrate, mrr or precision), not coverage or arp"
                )


def check_protocols(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` when a dataset of ``run_datasets`` would train a model that does
    not support the dataset's evaluation protocol (``protocols`` of its registry entry): e.g. a
    graph model, which scores only users it was trained on, on a ``strong`` dataset, whose
    held-out users are not in the training matrix.

    The models of a dataset are EASE (always run) and, when ``training.activate``, those of
    ``training.models`` with the dataset's own ``training.models`` merged over them.
    """
    for name in config.get("run_datasets", []):
        entry = config["datasets"][name]
        protocol = protocol_of(entry)
        models = ["ease", *(training_models(config, name) if config.get("training", {}).get("activate") else {})]
        for model in models:
            supported = model_spec(model).protocols
            if protocol not in supported:
                raise ConfigError(
                    f"dataset {name!r} is evaluated under the {protocol!r} protocol, which model {model!r} does not support "
                    f"(it supports {' and '.join(map(repr, supported))}, see islim.models.registry): train {model!r} only on "
                    f"datasets evaluated under {' or '.join(map(repr, supported))}, in those datasets' own training.models "
                    f"rather than the global training.models, or change the protocol of {name!r} if its data allow"
                )
