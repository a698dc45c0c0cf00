"""Display names of models, variants and metrics, shared by the figures and the results tables.

Model names come from the model registry (:mod:`islim.models.registry`); names not listed are
shown as the config spells them. Metric names (``family@K``) are shown with their family's title
(:mod:`islim.metrics`: ``hitrate@10`` is ``HitRate@10``).
"""

from islim.errors import ConfigError
from islim.metrics import FAMILIES, METRIC_NAME, parse_metric
from islim.models.registry import MODELS, PUBLISHED_ONLY

MODEL_NAMES = {**{name: spec.display_name for name, spec in MODELS.items()}, **PUBLISHED_ONLY}


def metric_title(name: str) -> str:
    """Display name of a metric, e.g. ``NDCG@100`` for ``ndcg@100``; any other text as it is."""
    try:
        return parse_metric(name).title
    except ConfigError:
        return name


def metric_order(name: str) -> tuple[int, int, str]:
    """Sort key of metric names: by family in registry order (recall, ndcg, hitrate, mrr, precision,
    coverage, arp), then by cut-off; other text after them, alphabetically."""
    match = METRIC_NAME.match(name)
    if match is None or match.group(1) not in FAMILIES:
        return (len(FAMILIES), 0, name)
    return (list(FAMILIES).index(match.group(1)), int(match.group(2)), name)
