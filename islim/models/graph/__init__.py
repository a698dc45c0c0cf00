"""Graph recommenders of the per-user hold-out protocol (issue 15): they score the users they were
trained on (``user_scoring = "known_users"``).

* :mod:`~islim.models.graph.lightgcn` — LightGCN (He et al., SIGIR 2020);
* :mod:`~islim.models.graph.ultragcn` — UltraGCN (Mao et al., CIKM 2021);
* :mod:`~islim.models.graph.base` — the shared estimator: tables, training loop, early stopping,
  checkpoints, scoring;
* :mod:`~islim.models.graph.implicit` — ImplicitSLIM initialisation and regularisation of the
  user and item tables;
* :mod:`~islim.models.graph.structure` — the normalised bipartite adjacency and propagation,
  negative sampling, UltraGCN's constraint weights.
"""
