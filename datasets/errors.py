"""The data sets' bad-input errors, importable without torch (the CLI maps them to one-line errors)."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """Bad or missing input data; the message names the file or field and what was expected."""


class MissingDataError(DatasetError):
    """A data file that is not there (yet): `path` is where it belongs; downloading it may fix that."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path
