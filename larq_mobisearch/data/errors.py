"""The errors a data source raises when the requested data cannot be used on this machine."""

from __future__ import annotations


class DatasetNotAvailableError(RuntimeError):
    """The requested data is not on this machine (not prepared, missing folder or files, unusable contents)."""


class UnknownDatasetError(DatasetNotAvailableError, ValueError):
    """The dataset name is neither a built-in source (`choices.DATASETS`) nor a known TFDS dataset."""


class CorruptDatasetError(DatasetNotAvailableError, ValueError):
    """A data file exists but cannot be read: truncated, wrong format, or inconsistent with another file."""
