"""Datasets: raw readers, the synthetic generator, preprocessing, the strong-generalisation split and the per-user hold-out split."""
