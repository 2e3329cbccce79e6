"""The error type of the data sources, in a leaf module so every reader can raise it."""

from __future__ import annotations

__all__ = ["DataSourceError"]


class DataSourceError(ValueError):
    """A SOURCE that cannot be read as data; the message names the problem and the fix."""
