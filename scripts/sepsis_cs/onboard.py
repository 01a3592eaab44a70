"""Onboarding a database: read, map and check a contract pair in one pass (rules and CLI).

:func:`read_pair` and :func:`ingest` are what rule ``ingest_contract`` runs; :func:`check_pair`
adds the validator, as ``scripts/check_contract.py`` does without Snakemake
(:mod:`sepsis_cs.check_cli`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .contract import CORE_COLUMNS, OPTIONAL_OUTCOMES, TIMING_COLUMNS, ContractSettings, check
from .dictionary import Dictionary, extend_dictionary
from .errors import UserInputError
from .io import read_table
from .mapping import Mapping, apply_mapping
from .problems import Problems


@dataclass
class Outcome:
    """Result of :func:`check_pair`: frames (validated when ``ok``), the dictionary used and every problem."""

    cohort: pl.DataFrame | None
    timeseries: pl.DataFrame | None
    dictionary: Dictionary
    problems: Problems

    @property
    def ok(self) -> bool:
        return not self.problems.errors


def database_dictionary(dictionary: Dictionary, mapping: Mapping) -> Dictionary:
    """The data dictionary plus the database's ``extra_variables``."""
    return extend_dictionary(dictionary, mapping.extra_variables, f"{mapping.where}.extra_variables", reserved=(*CORE_COLUMNS, *OPTIONAL_OUTCOMES, *TIMING_COLUMNS))


def read_pair(cohort_path, ts_path, mapping: Mapping, P: Problems) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Read both files; an unreadable file becomes an error of ``P`` (both are tried)."""
    out = []
    for path in (cohort_path, ts_path):
        try:
            out.append(read_table(path, **mapping.read_options))
        except UserInputError as exc:
            P.error(exc.file, exc.column, exc.expected)
            out.append(None)
    return out[0], out[1]


def ingest(cohort_path, ts_path, mapping: Mapping, dictionary: Dictionary, settings: ContractSettings, P: Problems,
           cohort_name: str | None = None, ts_name: str | None = None, database: str | None = None) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Read and map a pair; ``None`` frames when a file could not be read."""
    cohort, ts = read_pair(cohort_path, ts_path, mapping, P)
    if cohort is None or ts is None:
        return cohort, ts
    window = (settings.window_start_h, settings.window_end_h)
    return apply_mapping(cohort, ts, mapping, dictionary, window, cohort_name or str(cohort_path), ts_name or str(ts_path), P, database=database)


def check_pair(cohort_path, ts_path, mapping: Mapping, dictionary: Dictionary, settings: ContractSettings, database: str | None = None) -> Outcome:
    """Read, map and validate a pair: every problem of both files in one pass (``database``: its config name)."""
    P = Problems()
    dictionary = database_dictionary(dictionary, mapping)
    cohort, ts = ingest(cohort_path, ts_path, mapping, dictionary, settings, P, database=database)
    if cohort is None or ts is None:
        return Outcome(cohort, ts, dictionary, P)
    res = check(cohort, ts, dictionary, settings, str(cohort_path), str(ts_path), problems=P)
    return Outcome(res.cohort, res.timeseries, dictionary, P)
