"""Display names of models, variants and metrics, shared by the figures and the results tables.

Model names come from the model registry (:mod:`islim.models.registry`); names not listed are
shown as the config spells them.
"""

from islim.models.registry import MODELS, PUBLISHED_ONLY

MODEL_NAMES = {**{name: spec.display_name for name, spec in MODELS.items()}, **PUBLISHED_ONLY}

METRIC_NAMES = {"recall@20": "Recall@20", "recall@50": "Recall@50", "ndcg@100": "NDCG@100"}
