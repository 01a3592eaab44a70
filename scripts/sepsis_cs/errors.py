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

    def lines(self) -> list[str]:
        """Every problem as one line (one here; :class:`sepsis_cs.problems.ContractProblems` has several)."""
        return [self.one_line()]

    def report(self) -> list[str]:
        """Extra lines printed after the errors (summary of warnings and repairs, where the table is)."""
        return []


class ContractError(UserInputError):
    """Input that violates the canonical cohort contract (docs/data-contract.md)."""


class ConfigError(UserInputError):
    """A configuration key with a wrong value; ``column`` holds the key path."""

    def one_line(self) -> str:
        where = f"{self.file}"
        if self.column is not None:
            where += f": key '{self.column}'"
        return f"{where}: {self.expected}".replace("\n", " ")
