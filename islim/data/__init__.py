"""Datasets: raw readers, the synthetic generator, preprocessing and the strong-generalisation split."""
