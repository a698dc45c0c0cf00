"""The names a configuration may use, checked against the registries.

The JSON schema checks the shape of the configuration; which models, ablation arms and
reference arms exist, and which hyper-parameters each arm reads, is known only to the registries
(:mod:`islim.models.registry`, :mod:`islim.embeddings.registry`). :func:`check_registered_names`
runs after schema validation (in the Snakefile and the CLI), so a misspelt name fails before any
job starts, with the list of known names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from islim.embeddings.registry import AXES, arms_of, check_arm_params
from islim.errors import ConfigError
from islim.models.registry import trained_by


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
