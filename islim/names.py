"""Display names of models, variants and metrics, shared by the figures and the results tables.

Names not listed here are shown as the config spells them.
"""

MODEL_NAMES = {
    "ease": "EASE",
    "mf": "MF",
    "plrec": "PLRec",
    "multdae": "Mult-DAE",
    "multvae": "Mult-VAE",
    "recvae": "RecVAE",
    "hvamp": "H+Vamp(Gated)",
}

METRIC_NAMES = {"recall@20": "Recall@20", "recall@50": "Recall@50", "ndcg@100": "NDCG@100"}
