"""User-facing errors: one line naming the file, the column (or key) and what was expected."""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input data or configuration.

    Rendered as a single line ``<file>: column '<column>': <expected>`` so that a user
    sees what to fix without a Python traceback.
    """

    def __init__(self, file: str, column: str | None, expected: str):
        self.file = str(file)
        self.column = column
        self.expected = expected
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.file}"
        if self.column is not None:
            where += f": column '{self.column}'"
        return f"{where}: {self.expected}".replace("\n", " ")


class ContractError(UserInputError):
    """Input that violates the canonical cohort contract (docs/data-contract.md)."""


class ConfigError(UserInputError):
    """A configuration key with a wrong value; ``column`` holds the key path."""

    def one_line(self) -> str:
        where = f"{self.file}"
        if self.column is not None:
            where += f": key '{self.column}'"
        return f"{where}: {self.expected}".replace("\n", " ")
