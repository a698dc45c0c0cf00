"""Guards against NaN and infinity in computed quantities (losses, embeddings, factors)."""

from __future__ import annotations

import numpy as np

from islim.errors import NumericalError

#: What usually helps when a quantity stops being finite.
ADVICE = "lower the learning rate or regularise more (larger lambda / r_q), and check the input data"


def count_non_finite(values) -> int:
    """Number of NaN or infinite entries of a float, numpy array or torch tensor."""
    if hasattr(values, "detach"):
        import torch

        return int((~torch.isfinite(values.detach())).sum())
    return int(np.size(values) - np.isfinite(values).sum())


def require_finite(values, what: str, advice: str = ADVICE) -> None:
    """Raise :class:`NumericalError` naming ``what`` (the quantity and where, e.g. the epoch) if any
    entry of ``values`` is NaN or infinite. Costs one pass over ``values``."""
    bad = count_non_finite(values)
    if bad:
        size = int(values.numel()) if hasattr(values, "numel") else int(np.size(values))
        shown = f"{float(values):g}" if size == 1 else f"{bad:,} of {size:,} entries NaN or infinite"
        raise NumericalError(f"{what} is not finite ({shown}); the run stops here: {advice}")
