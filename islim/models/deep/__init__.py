"""Deep (torch) recommenders — Mult-VAE, RecVAE, H+Vamp(Gated) — with optional ImplicitSLIM.

Inputs stay sparse: batches of CSR rows enter the first layer as a sparse×dense product
(:mod:`islim.models.deep.layers`). The networks (:mod:`~islim.models.deep.multvae`,
:mod:`~islim.models.deep.recvae`, :mod:`~islim.models.deep.hvamp`) are trained through the
estimators of :mod:`islim.models.deep.estimator` (:class:`MultVAEModel`, :class:`RecVAEModel`,
:class:`HVampModel`), which implement :class:`islim.models.base.Recommender`.
"""

from islim.models.deep.base import DeepRecommender, LossTerms, Phase, TrainState
from islim.models.deep.estimator import HVampModel, MultVAEModel, RecVAEModel, TorchRecommender
from islim.models.deep.hooks import ImplicitSLIMConfig, ImplicitSLIMHook
from islim.models.deep.hvamp import HVamp
from islim.models.deep.layers import DenseRows, SparseRows
from islim.models.deep.multvae import MultVAE
from islim.models.deep.recvae import ML20M_IMPLICIT_SLIM_PARAMS, RecVAE

__all__ = [
    "DeepRecommender",
    "DenseRows",
    "HVamp",
    "HVampModel",
    "ImplicitSLIMConfig",
    "ImplicitSLIMHook",
    "LossTerms",
    "ML20M_IMPLICIT_SLIM_PARAMS",
    "MultVAE",
    "MultVAEModel",
    "Phase",
    "RecVAE",
    "RecVAEModel",
    "SparseRows",
    "TorchRecommender",
    "TrainState",
]
