"""Deep (torch) recommenders — Mult-VAE, RecVAE, H+Vamp(Gated) — with optional ImplicitSLIM.

Inputs stay sparse: batches of CSR rows enter the first layer as a sparse×dense product
(:mod:`islim.models.deep.layers`). :func:`fit` trains with validation and early stopping,
:func:`score_batch` scores fold-in rows for :func:`islim.evaluate.evaluate`.
"""

from islim.models.deep.base import DeepRecommender, LossTerms, Phase, TrainState
from islim.models.deep.hooks import ImplicitSLIMConfig, ImplicitSLIMHook
from islim.models.deep.hvamp import HVamp
from islim.models.deep.layers import DenseRows, SparseRows
from islim.models.deep.multvae import MultVAE
from islim.models.deep.recvae import ML20M_IMPLICIT_SLIM_PARAMS, RecVAE
from islim.models.deep.trainer import CURVE_COLUMNS, MODELS, default_params, fit, resolve_params, score_batch

__all__ = [
    "CURVE_COLUMNS",
    "DeepRecommender",
    "DenseRows",
    "HVamp",
    "ImplicitSLIMConfig",
    "ImplicitSLIMHook",
    "LossTerms",
    "ML20M_IMPLICIT_SLIM_PARAMS",
    "MODELS",
    "MultVAE",
    "Phase",
    "RecVAE",
    "SparseRows",
    "TrainState",
    "default_params",
    "fit",
    "resolve_params",
    "score_batch",
]
