"""Small random test matrices shared by the unit tests."""

import numpy as np
import scipy.sparse as sp


def random_binary(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    """A seeded ``(n_users, n_items)`` float32 CSR matrix of ones at ``density`` of the cells."""
    X = sp.random(n_users, n_items, density=density, random_state=seed, format="csr", dtype=np.float32)
    X.data[:] = 1.0
    return X
