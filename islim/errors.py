"""Exception types raised by islim.

Every error says what was expected, what was found, and what to do about it.
"""


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
    """A computed quantity (a loss, embeddings, factors) became NaN or infinite."""
