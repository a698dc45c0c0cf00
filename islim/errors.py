"""Exception types raised by islim.

Every error says what was expected, what was found, and what to do about it.
"""

from __future__ import annotations


class IslimError(Exception):
    """Base class of every error raised deliberately by islim."""


class ConfigError(IslimError, ValueError):
    """A configuration value is missing, malformed or impossible."""


class DataFormatError(IslimError, ValueError):
    """An input file does not have the expected layout or content."""


class IntegrityError(IslimError):
    """A file's size, digest or content counts differ from the expected ones."""


class DownloadError(IslimError):
    """No source of a dataset could be fetched and verified."""


class MemoryBudgetError(IslimError, MemoryError):
    """An allocation would exceed the memory budget; raised before allocating."""


class NumericalError(IslimError, ArithmeticError):
    """A computed quantity (a loss, embeddings, factors) became NaN or infinite, or a matrix that
    must be positive definite (a regularised Gram matrix) is not."""


class GridSearchError(IslimError):
    """Every point of a hyper-parameter grid failed; the message names each point and its reason."""

    @classmethod
    def every_point(cls, what: str, failed: list[dict]) -> GridSearchError:
        """The error for ``what`` (e.g. ``"EASE on ml-1m"``) whose every grid point failed.

        Parameters
        ----------
        what : str
            The search, as the message should name it.
        failed : list of dict
            One entry per point: its parameters and ``"reason"`` (the error message).
        """
        points = "".join(f"\n  {format_point(entry)}: {entry['reason']}" for entry in failed)
        return cls(
            f"{what}: every grid point failed:{points}\nChange or drop these settings (each reason says what went wrong) and run again"
        )


#: Errors that make one point of a hyper-parameter grid fail — it is recorded with the reason and
#: the search goes on — rather than the search: a numerical breakdown (NaN or infinity, a matrix that
#: is not positive definite) or dense work over the memory budget. Anything else stops the search.
GRID_POINT_ERRORS = (NumericalError, MemoryBudgetError)


def format_point(point: dict) -> str:
    """A grid point as ``name=value, ...`` (``"reason"`` and ``"status"`` left out; ``defaults`` if empty)."""
    shown = [f"{name}={value}" for name, value in point.items() if name not in ("reason", "status")]
    return ", ".join(shown) or "defaults"
