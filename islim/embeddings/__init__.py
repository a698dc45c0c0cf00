"""Item-embedding extraction: ImplicitSLIM, SLIM-LLE and the ablation arms (spec §2, §7).

Item embeddings are ``(n_items, d)`` arrays, one row per item (the paper's ``d × I`` transposed);
``X`` is the ``(n_users, n_items)`` CSR training matrix of ones.

* :func:`implicit_slim`, :func:`iterate_implicit_slim` — the paper's closed form (numpy or torch);
* :func:`slim_lle`, :func:`lle_embeddings` — the explicit variant and the generic eigen step;
* first steps (:mod:`~islim.embeddings.weights`, :mod:`~islim.embeddings.knn`) and the generic
  implicit step :func:`anchored_update`;
* :func:`random_embeddings`, :func:`svd_embeddings` — reference arms;
* :func:`arm_embeddings`, :func:`reference_embeddings` — one call per ablation grid cell.
"""

from islim.embeddings._linalg import IterationResult
from islim.embeddings.anchored import anchored_update, block_cg, iterate_anchored_update
from islim.embeddings.explicit import lle_embeddings, slim_lle
from islim.embeddings.gram_operator import SparseGram, TorchSparseGram, gram_operator
from islim.embeddings.implicit import implicit_slim, iterate_implicit_slim
from islim.embeddings.knn import knn_weights, top_k_neighbours
from islim.embeddings.reference import random_embeddings, svd_embeddings
from islim.embeddings.registry import (
    ARMS,
    DEFAULT_PARAMS,
    FIRST_STEPS,
    NEIGHBOURHOODS,
    REFERENCE_ARMS,
    SECOND_STEPS,
    Arm,
    arm_embeddings,
    reference_embeddings,
    validate_arm,
)
from islim.embeddings.weights import cooccurrence_weights, ease_weights, identity_weights, lle_weights, slim_lle_weights

__all__ = [
    "ARMS",
    "Arm",
    "DEFAULT_PARAMS",
    "FIRST_STEPS",
    "NEIGHBOURHOODS",
    "REFERENCE_ARMS",
    "SECOND_STEPS",
    "IterationResult",
    "SparseGram",
    "TorchSparseGram",
    "anchored_update",
    "arm_embeddings",
    "block_cg",
    "cooccurrence_weights",
    "ease_weights",
    "gram_operator",
    "identity_weights",
    "implicit_slim",
    "iterate_anchored_update",
    "iterate_implicit_slim",
    "knn_weights",
    "lle_embeddings",
    "lle_weights",
    "random_embeddings",
    "reference_embeddings",
    "slim_lle",
    "slim_lle_weights",
    "svd_embeddings",
    "top_k_neighbours",
    "validate_arm",
]
