"""Recommender models: EASE (:mod:`islim.models.ease`), linear embedding models
(:mod:`islim.models.linear`, closed-form steps in :mod:`islim.models.ridge`) and deep autoencoders
(:mod:`islim.models.deep`)."""
