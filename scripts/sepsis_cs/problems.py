"""Problems found in a user's contract files, collected in one pass (docs/bring-your-database.md).

A :class:`Problem` is one line: file, column, what was expected, how many rows, one example
*value* (never an identifier or a row), and the fix: a config change where one exists.  Fixes
that are mapping entries also carry a ``patch`` (a fragment of ``databases.<name>.mapping``), so
that :func:`suggested_mapping` can assemble every fix into one block to paste into the config.

Severities: ``error`` stops the run; ``mapped`` (what the database's mapping did), ``repair`` (values set missing, rows removed, columns
dropped) and ``warning`` (nothing changed, but worth knowing) are printed as a short summary and
written to ``validation_changes.csv``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .errors import ContractError

SEVERITIES = ("error", "mapped", "repair", "warning")
#: placeholder of a suggested mapping value the user must fill in (refused by the mapping loader)
TODO = "TODO"
#: printed lines per severity before "... and k more" (the table keeps every problem)
MAX_PRINTED = 25
PROBLEM_SCHEMA = {
    "severity": pl.String,
    "file": pl.String,
    "column": pl.String,
    "expected": pl.String,
    "n": pl.Int64,
    "example": pl.String,
    "fix": pl.String,
    "action": pl.String,
}
CHANGE_SCHEMA = {"file": pl.String, "column": pl.String, "check": pl.String, "n": pl.Int64, "action": pl.String}


@dataclass
class Problem:
    severity: str
    file: str
    column: str | None
    expected: str
    n: int | None = None
    example: str | None = None
    fix: str | None = None
    action: str | None = None
    patch: dict | None = field(default=None, repr=False)

    def line(self) -> str:
        where = f"{self.file}"
        if self.column is not None:
            where += f": column '{self.column}'"
        text = f"{where}: {self.expected}"
        if self.example is not None:
            text += f" (e.g. {self.example})"
        if self.action and not self.action.startswith("none"):
            text += f": {self.action}"
            if self.n is not None and self.severity in ("mapped", "repair"):
                text += f" ({self.n} {'row' if self.n == 1 else 'rows'})"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text.replace("\n", " ")


def example(value: Any, width: int = 40) -> str | None:
    """One offending value as short quoted text (callers never pass an identifier)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        text = f"{value:g}"
    else:
        text = str(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return repr(text) if isinstance(value, str) else text


def shape(identifier: str) -> str:
    """The form of an identifier without its content: digits -> 9, letters -> A/a (``S-00123`` -> ``A-99999``)."""
    return re.sub(r"[a-z]", "a", re.sub(r"[A-Z]", "A", re.sub(r"[0-9]", "9", identifier)))


def flow(value: Any) -> str:
    """A mapping fragment as one-line YAML flow text, e.g. ``{EMERGENCY: TODO, URGENT: TODO}``."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False, allow_unicode=True).strip()
    return text.removesuffix("...").strip()


def patch_fix(patch: dict) -> str:
    """``mapping.levels.admission_type: {EMERGENCY: TODO}`` from ``{"levels": {"admission_type": {...}}}``."""
    path, node = ["mapping"], patch
    while isinstance(node, dict) and len(node) == 1 and isinstance(next(iter(node.values())), dict):
        (key, node), = node.items()
        path.append(str(key))
    return f"{'.'.join(path)}: {flow(node)}"


class Problems:
    """Collector: every check appends; nothing raises until :meth:`raise_if_errors`."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, severity: str, file: str, column: str | None, expected: str, *, n: int | None = None, example: str | None = None,
            fix: str | None = None, action: str | None = None, patch: dict | None = None) -> Problem:
        if fix is None and patch is not None:
            fix = patch_fix(patch)
        p = Problem(severity, str(file), column, expected, None if n is None else int(n), example, fix, action, patch)
        self.items.append(p)
        return p

    def error(self, file, column, expected, **kw) -> Problem:
        return self.add("error", file, column, expected, **kw)

    def warn(self, file, column, expected, **kw) -> Problem:
        return self.add("warning", file, column, expected, **kw)

    def repair(self, file, column, expected, n, action, **kw) -> Problem:
        return self.add("repair", file, column, expected, n=n, action=action, **kw)

    def extend(self, other: Problems | list[Problem]) -> None:
        self.items += other.items if isinstance(other, Problems) else list(other)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    def of(self, severity: str) -> list[Problem]:
        return [p for p in self.items if p.severity == severity]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ContractProblems(self.items)

    def frame(self) -> pl.DataFrame:
        return problems_frame(self.items)

    def changes(self) -> pl.DataFrame:
        return changes_frame(self.items)


class ContractProblems(ContractError):
    """Every problem of a pair of contract files; ``str()`` is the first error, :meth:`lines` all of them."""

    def __init__(self, problems: list[Problem], table: str | None = None):
        self.problems = list(problems)
        self.table = table
        self.hint: str | None = None
        first = next(p for p in self.problems if p.severity == "error")
        prefix = first.file + (f": column '{first.column}'" if first.column is not None else "")
        super().__init__(first.file, first.column, first.line()[len(prefix) + 2 :])
        n_err = len(self.errors)
        if n_err > 1:
            self.args = (f"{self.one_line()} (+{n_err - 1} more problems)",)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def lines(self) -> list[str]:
        return printed_lines(self.errors)

    def report(self) -> list[str]:
        out = summary_lines(self.problems)
        n_err = len(self.errors)
        out.append(f"{n_err} problem{'s' if n_err != 1 else ''} to fix" + (f"; every problem is listed in {self.table}" if self.table else ""))
        if self.hint:
            out.append(self.hint)
        return out


def printed_lines(problems: list[Problem], limit: int = MAX_PRINTED) -> list[str]:
    """One line per problem, at most ``limit`` per (file, expected) kind... and a count of the rest."""
    lines = [p.line() for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more like these (see the problems table)")
    return lines


def summary_lines(problems: list[Problem]) -> list[str]:
    """Short summary of repairs and warnings, one line each (``repair: ...``, ``warning: ...``)."""
    out = []
    for sev in ("mapped", "repair", "warning"):
        items = [p for p in problems if p.severity == sev]
        out += [f"{sev}: {line}" for line in printed_lines(items)]
    return out


def problems_frame(problems: list[Problem]) -> pl.DataFrame:
    rows = [{k: getattr(p, k) for k in PROBLEM_SCHEMA} for p in problems]
    return pl.DataFrame(rows, schema=PROBLEM_SCHEMA)


def frame_problems(df: pl.DataFrame) -> list[Problem]:
    """Problems back from a table written by :func:`problems_frame` (e.g. the mapping step's)."""
    return [Problem(**{k: r[k] for k in PROBLEM_SCHEMA}) for r in df.iter_rows(named=True)]


def changes_frame(problems: list[Problem]) -> pl.DataFrame:
    """Repairs and warnings as ``validation_changes.csv`` rows (file, column, check, n, action)."""
    rows = [
        dict(file=p.file, column=p.column, check=p.expected, n=p.n, action=p.action or "none (warning)")
        for p in problems
        if p.severity != "error"
    ]
    return pl.DataFrame(rows, schema=CHANGE_SCHEMA)


def _merge(into: dict, patch: dict) -> None:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        elif isinstance(v, list) and isinstance(into.get(k), list):
            into[k] += [x for x in v if x not in into[k]]
        else:
            into.setdefault(k, v)


def suggested_mapping(problems: list[Problem], current: dict | None = None) -> dict:
    """Every problem's mapping patch merged over ``current`` (entries the user already has win)."""
    import copy

    out = copy.deepcopy(current or {})
    for p in problems:
        if p.patch:
            _merge(out, p.patch)
    return out


def find_todo(mapping: Any, path: str = "mapping") -> list[str]:
    """Keys of ``mapping`` whose value is still the :data:`TODO` placeholder."""
    if isinstance(mapping, dict):
        return [k for key, v in mapping.items() for k in find_todo(v, f"{path}.{key}")]
    if isinstance(mapping, list):
        return [k for i, v in enumerate(mapping) for k in find_todo(v, f"{path}[{i}]")]
    return [path] if mapping == TODO else []
