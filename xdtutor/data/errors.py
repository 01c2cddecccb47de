"""Exceptions for bad input. Every one names the file, line and field it is about.

The CLI prints ``str(error)`` (no traceback) and exits non-zero, so the message must be enough to
find and fix the problem: ``path/to/file:13: field 'item[4]': not an integer: 'x1'``.
"""

from __future__ import annotations

import os
from pathlib import Path


class DataError(Exception):
    """Base class: something is wrong with the data (or how it was fetched).

    Args:
        file: The offending file or folder (``None`` when not about one file).
        line: 1-based line number in ``file`` (``None`` when not about one line).
        field: Name of the field/column/key (``None`` when not about one field).
        message: What is wrong.
    """

    def __init__(self, file: str | os.PathLike | None = None, line: int | None = None,
                 field: str | None = None, message: str = "") -> None:
        # a URL stays a string: Path("https://host/x") would collapse the "//" into "https:/host/x"
        self.file = None if file is None else file if isinstance(file, str) and "://" in file else Path(file)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file) + (f":{self.line}" if self.line is not None else "")
        elif self.line is not None:
            where = f"line {self.line}"
        parts = [p for p in (where, f"field {self.field!r}" if self.field else "") if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class MalformedLineError(DataError):
    """A line does not follow the file format (wrong number of fields, not an integer, …)."""


class UnknownItemError(DataError):
    """An interaction refers to an item id that is not in the catalogue."""


class EmptyDomainError(DataError):
    """A domain has no items or no interactions."""


class MissingTextError(DataError):
    """An item has no text, or only whitespace."""


class DataEncodingError(DataError):
    """A text file is not valid UTF-8."""


class ChecksumError(DataError):
    """A file's sha256 differs from the registry's."""


class NotADatasetError(DataError):
    """A folder lacks the files of the dataset it is supposed to hold, or the name is unknown."""


class DownloadError(DataError):
    """A download failed (HTTP error, connection lost, too many retries)."""


class UnsafePickleError(DataError):
    """A pickle tried to load a global (class, function): refused, since that can run code."""
