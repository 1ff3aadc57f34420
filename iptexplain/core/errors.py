"""Errors that carry the input position, so every message can point back at the text."""

from __future__ import annotations


class InputError(Exception):
    """Bad input: reported as one line ``FILE:LINE: what is wrong`` and exit status 2."""

    def __init__(self, message: str, source: str = "<input>", line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"


class OptionError(ValueError):
    """An extension could not parse its options; the parser adds the position."""
