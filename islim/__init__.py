"""islim: a reproducible, fast benchmark of ImplicitSLIM (Shenbin & Nikolenko, ICLR 2024).

Modules: ``islim.data`` (readers, synthetic generator, split), ``islim.download``,
``islim.metrics`` / ``islim.evaluate``, ``islim.models`` (EASE, MF/PLRec, deep autoencoders),
``islim.embeddings`` (ImplicitSLIM, SLIM-LLE, ablation arms), ``islim.pipeline`` (workflow
steps) and ``islim.cli``.
"""

__version__ = "0.1.0"
