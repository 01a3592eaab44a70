"""Per-database mapping of an export onto the contract (config ``databases.<name>.mapping``).

Onboarding a hospital or trial export is a YAML edit, not a script: rule ``ingest_contract``
reads the files with the ``read`` options, then :func:`apply_mapping` renames columns, fills
constant columns, maps levels, reduces combined drug strings, converts units (named conversions of
:mod:`sepsis_cs.units`), renames and drops variables, and optionally floors fractional hours,
drops hours outside the time window and aggregates duplicate measurements with the dictionary's
aggregation.  ``extra_variables`` extend the data dictionary for this database only
(:func:`sepsis_cs.dictionary.extend_dictionary`).  Every change is recorded as a ``mapped``
problem (what was done, how many rows); a mapping entry that does not fit the files is an error
or a warning of the same one-pass report as the validator's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import units
from .contract import CORE_COLUMNS, OPTIONAL_OUTCOMES, TIMESERIES_COLUMNS, TIMING_COLUMNS
from .dictionary import Dictionary
from .errors import ConfigError
from .problems import Problems, find_todo

COMBINE_RULES = ("error", "first", "last")
DEFAULT_SEPARATORS = "+/,;&"


@dataclass(frozen=True)
class Mapping:
    """A database's mapping (schema: ``databases.<name>.mapping`` of config/schema/config.schema.yaml)."""

    read: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)
    timeseries_columns: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    levels: dict = field(default_factory=dict)
    cs_drug: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    variables: dict = field(default_factory=dict)
    drop: tuple = ()
    timeseries: dict = field(default_factory=dict)
    extra_variables: dict = field(default_factory=dict)
    where: str = "mapping"

    @classmethod
    def from_config(cls, raw: dict | None, where: str = "mapping") -> Mapping:
        """Build from the config value; a leftover ``TODO`` placeholder or unknown name is a one-line error."""
        raw = dict(raw or {})
        todo = find_todo(raw, where)
        if todo:
            raise ConfigError("config", todo[0], f"still TODO: replace the placeholder{'s' if len(todo) > 1 else ''} ({', '.join(todo[:6])}{' ...' if len(todo) > 6 else ''})")
        known = {f for f in cls.__dataclass_fields__ if f != "where"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError("config", f"{where}.{unknown[0]}", f"unknown mapping key; expected one of {sorted(known)}")
        for name, conv in (raw.get("units") or {}).items():
            if conv not in units.CONVERSIONS:
                raise ConfigError("config", f"{where}.units.{name}", f"unknown conversion {conv!r}; expected one of {sorted(units.CONVERSIONS)}")
        combined = (raw.get("cs_drug") or {}).get("combined", "error")
        if combined not in COMBINE_RULES:
            raise ConfigError("config", f"{where}.cs_drug.combined", f"expected one of {list(COMBINE_RULES)}, got {combined!r}")
        raw["drop"] = tuple(raw.get("drop") or ())
        return cls(**{k: (v if v is not None else cls.__dataclass_fields__[k].default_factory()) if k != "drop" else v for k, v in raw.items()}, where=where)

    @property
    def read_options(self) -> dict:
        r = self.read or {}
        return {"encoding": r.get("encoding", "utf-8"), "separator": r.get("separator", ","), "decimal_comma": bool(r.get("decimal_comma", False))}

    def is_empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__ if f not in ("where", "read", "extra_variables"))


# ----------------------------------------------------------------------------- helpers
def _kind(col: str, dictionary: Dictionary) -> str:
    """Logical type of a cohort column: id, string, numeric, binary, bool, categorical."""
    if col in CORE_COLUMNS:
        return CORE_COLUMNS[col]
    if col in TIMING_COLUMNS:
        return "numeric"
    if col in OPTIONAL_OUTCOMES:
        return "binary"
    if col in dictionary:
        return dictionary[col].type
    return "string"


def _norm_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


#: YAML 1.1 reads unquoted yes/no/on/off/true/false keys as booleans (and JSON params turn them into "true"/"false")
_YAML_TRUE = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE")
_YAML_FALSE = ("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE")


def _level_keys(table: dict) -> dict[str, str | None]:
    """Export value -> contract value as text; a boolean key stands for every spelling YAML reads as it."""
    out: dict[str, str | None] = {}
    for k, v in table.items():
        words = _YAML_TRUE if k is True or k == "true" else _YAML_FALSE if k is False or k == "false" else (_norm_value(k),)
        for w in words:
            out.setdefault(w, _norm_value(v))
    return out


def _cast_mapped(s: pl.Series, kind: str) -> pl.Series:
    """After a level map: numeric/binary columns back to numbers when every value now parses."""
    if kind not in ("numeric", "binary", "bool"):
        return s
    parsed = s.str.strip_chars().cast(pl.Float64, strict=False)
    if (parsed.is_null() & s.is_not_null()).any():
        return s  # unmapped text left for the validator to report
    if kind == "numeric":
        return parsed
    return parsed.cast(pl.Int8, strict=False) if parsed.drop_nulls().is_in([0.0, 1.0]).all() else parsed


def _rename(df: pl.DataFrame, renames: dict, file: str, key: str, P: Problems) -> pl.DataFrame:
    done = {}
    for src, dst in renames.items():
        src, dst = str(src), str(dst)
        if src not in df.columns:
            if dst not in df.columns:
                P.warn(file, src, f"{key}.{src}: no such column in the file", action="ignored")
            continue
        if dst in df.columns and dst != src:
            P.error(file, dst, f"{key}.{src} renames '{src}' to '{dst}', which the file already has", fix=f"drop one of them (mapping.drop: [{src}])")
            continue
        done[src] = dst
    if done:
        df = df.rename(done)
        P.add("mapped", file, None, f"{key}: {', '.join(f'{a} -> {b}' for a, b in done.items())}", action=f"{len(done)} column{'s' if len(done) > 1 else ''} renamed")
    return df


# ----------------------------------------------------------------------------- cohort
def map_cohort(df: pl.DataFrame, m: Mapping, dictionary: Dictionary, file: str, P: Problems, ts_columns: list[str] = (), ts_variables=()) -> pl.DataFrame:
    w = m.where
    df = _rename(df, m.columns, file, f"{w}.columns", P)
    drop = [c for c in m.drop if c in df.columns]
    if drop:
        df = df.drop(drop)
        P.add("mapped", file, None, f"{w}.drop: {', '.join(drop)}", action="columns dropped")
    for col, value in m.constants.items():
        kind = _kind(col, dictionary)
        dtype = {"numeric": pl.Float64, "binary": pl.Int8, "bool": pl.Boolean}.get(kind, pl.String)
        if value is not None and dtype == pl.String:
            value = str(value)
        replaced = col in df.columns
        df = df.with_columns(pl.lit(value, dtype=dtype).alias(col))
        P.add("mapped", file, col, f"{w}.constants.{col}", n=df.height, action=f"set to {'missing' if value is None else repr(value)} for every stay" + (" (the file's column replaced)" if replaced else ""))
    for col, table in m.levels.items():
        if col == "cs_drug":
            continue  # applied to each part of a combined string below
        if col not in df.columns:
            P.warn(file, col, f"{w}.levels.{col}: no such column in the file", action="ignored")
            continue
        keys = _level_keys(table)
        s = df[col].cast(pl.String)
        mapped = s.replace_strict(keys, default=s, return_dtype=pl.String) if keys else s
        n = int((s.is_in(list(keys)) & s.is_not_null()).sum())
        df = df.with_columns(_cast_mapped(mapped, _kind(col, dictionary)).alias(col))
        P.add("mapped", file, col, f"{w}.levels.{col}", n=n, action=f"{len(table)} values mapped")
    if "cs_drug" in df.columns and (m.cs_drug or "cs_drug" in m.levels):
        df = _map_cs_drug(df, m, file, P)
    for col, name in m.units.items():
        if col not in df.columns:
            continue  # a time-series variable (or a warning in map_timeseries)
        conv = units.CONVERSIONS[name]
        unit = units.CORE_UNITS.get(col) or (dictionary[col].unit if col in dictionary else None)
        if unit is None or not conv.fits(col, unit):
            P.error(file, col, f"{w}.units.{col}: {name} gives {conv.to_unit}" + (f" for {', '.join(conv.variables)}" if conv.variables else "")
                    + f", but '{col}' is in {unit or 'no declared unit'}", fix=f"expected one of {[c.name for c in units.candidates(col, unit or '')] or 'no registered conversion'}")
            continue
        if not df.schema[col].is_numeric():
            continue  # the validator reports the type
        n = df[col].drop_nulls().len()
        df = df.with_columns(conv.expr(pl.col(col).cast(pl.Float64)).alias(col))
        P.add("mapped", file, col, f"{w}.units.{col}", n=n, action=f"converted {conv.from_unit} -> {conv.to_unit}")
    return df


def _map_cs_drug(df: pl.DataFrame, m: Mapping, file: str, P: Problems) -> pl.DataFrame:
    opts = m.cs_drug or {}
    rule = opts.get("combined", "error")
    lower = opts.get("lowercase", True)
    seps = opts.get("separators", DEFAULT_SEPARATORS)
    aliases = {(k or "").strip(): v for k, v in _level_keys(m.levels.get("cs_drug") or {}).items()}
    if lower:
        aliases = {k.lower(): v for k, v in aliases.items()}
    s = df["cs_drug"].cast(pl.String).str.strip_chars()
    if lower:
        s = s.str.to_lowercase()
    pattern = "[" + re.escape(seps) + "]| and "
    n_combined = int(s.str.contains(pattern).sum()) if rule != "error" else 0
    if rule != "error":
        parts = s.str.replace_all(pattern, "\u0000").str.split("\u0000").list.eval(pl.element().str.strip_chars()).list.eval(
            pl.element().filter(pl.element() != "")
        )
        s = parts.list.first() if rule == "first" else parts.list.last()
    if aliases:
        s = s.replace_strict(aliases, default=s, return_dtype=pl.String)
    df = df.with_columns(s.alias("cs_drug"))
    if n_combined:
        P.add("mapped", file, "cs_drug", f"{m.where}.cs_drug.combined: {rule}", n=n_combined, action=f"combined drug strings reduced to the {rule} listed")
    if aliases:
        P.add("mapped", file, "cs_drug", f"{m.where}.levels.cs_drug", n=None, action=f"{len(aliases)} names mapped")
    return df


# ----------------------------------------------------------------------------- time series
def map_timeseries(ts: pl.DataFrame, m: Mapping, dictionary: Dictionary, window: tuple[int, int], file: str, P: Problems,
                   cohort_columns: list[str] = (), cohort_ids: pl.Series | None = None) -> pl.DataFrame:
    w = m.where
    ts = _rename(ts, m.timeseries_columns, file, f"{w}.timeseries_columns", P)
    drop_cols = [c for c in m.drop if c in ts.columns and c not in TIMESERIES_COLUMNS]
    if drop_cols:
        ts = ts.drop(drop_cols)
        P.add("mapped", file, None, f"{w}.drop: {', '.join(drop_cols)}", action="columns dropped")
    has = set(ts.columns)
    if "variable" in has and ts.schema["variable"] in (pl.String, pl.Categorical):
        ts = ts.with_columns(pl.col("variable").cast(pl.String))
        drop_vars = [v for v in m.drop if v not in drop_cols]
        if drop_vars:
            n = ts.filter(pl.col("variable").is_in(drop_vars)).height
            if n:
                ts = ts.filter(~pl.col("variable").is_in(drop_vars))
                P.add("mapped", file, "variable", f"{w}.drop: {', '.join(drop_vars)}", n=n, action="rows dropped")
        if m.variables:
            ren = {str(k): str(v) for k, v in m.variables.items()}
            n = ts.filter(pl.col("variable").is_in(list(ren))).height
            ts = ts.with_columns(pl.col("variable").replace(ren))
            P.add("mapped", file, "variable", f"{w}.variables", n=n, action=f"{len(ren)} variable names mapped")
    opts = m.timeseries or {}
    if "hour" in has and opts.get("fractional_hours") == "floor" and ts.schema["hour"].is_float():
        n = ts.filter(pl.col("hour") != pl.col("hour").floor()).height
        ts = ts.with_columns(pl.col("hour").floor())
        P.add("mapped", file, "hour", f"{w}.timeseries.fractional_hours: floor", n=n, action="hours floored")
    if "hour" in has and opts.get("outside_window") == "drop" and ts.schema["hour"].is_numeric():
        lo, hi = window
        out = (pl.col("hour") < lo) | (pl.col("hour") > hi)
        n = ts.filter(out).height
        ts = ts.filter(~out | pl.col("hour").is_null())
        P.add("mapped", file, "hour", f"{w}.timeseries.outside_window: drop", n=n, action=f"rows outside [{lo}, {hi}] h dropped")
    if {"variable", "value"} <= has:
        for var, name in m.units.items():
            if var in cohort_columns:
                continue
            conv = units.CONVERSIONS[name]
            if var not in dictionary.hourly:
                if var not in dictionary.static and var not in units.CORE_UNITS:
                    P.warn(file, var, f"{w}.units.{var}: neither a cohort column nor an hourly variable of the dictionary", action="ignored")
                continue
            unit = dictionary[var].unit
            if not conv.fits(var, unit):
                P.error(file, "value", f"{w}.units.{var}: {name} gives {conv.to_unit}" + (f" for {', '.join(conv.variables)}" if conv.variables else "")
                        + f", but '{var}' is in {unit or 'no declared unit'}", fix=f"expected one of {[c.name for c in units.candidates(var, unit)] or 'no registered conversion'}")
                continue
            if not ts.schema["value"].is_numeric():
                continue
            is_var = pl.col("variable") == var
            n = ts.filter(is_var & pl.col("value").is_not_null()).height
            ts = ts.with_columns(pl.when(is_var).then(conv.expr(pl.col("value").cast(pl.Float64))).otherwise(pl.col("value").cast(pl.Float64)).alias("value"))
            P.add("mapped", file, var, f"{w}.units.{var}", n=n, action=f"converted {conv.from_unit} -> {conv.to_unit}")
    if opts.get("unknown_stays") == "drop" and "stay_id" in ts.columns and cohort_ids is not None:
        ids = ts["stay_id"].cast(pl.String) if ts.schema["stay_id"].is_integer() else ts["stay_id"]
        if ids.dtype == pl.String:
            known = ids.is_in(cohort_ids.implode())
            n = int((~known).sum())
            ts = ts.filter(known)
            P.add("mapped", file, "stay_id", f"{w}.timeseries.unknown_stays: drop", n=n, action="rows of stays absent from the cohort dropped")
    if opts.get("duplicates") == "aggregate" and set(TIMESERIES_COLUMNS) <= set(ts.columns) and ts.schema["value"].is_numeric():
        ts = _aggregate_duplicates(ts, dictionary, file, m, P)
    return ts


def _aggregate_duplicates(ts: pl.DataFrame, dictionary: Dictionary, file: str, m: Mapping, P: Problems) -> pl.DataFrame:
    """Several values of one stay, hour and variable -> one, with the dictionary's aggregation (mean if undeclared)."""
    keys = ["stay_id", "hour", "variable"]
    n_dup = ts.height - ts.select(keys).n_unique()
    if not n_dup:
        return ts
    agg_of = {name: v.aggregation for name, v in dictionary.hourly.items()}
    v = pl.col("value")
    aggs = {"mean": v.mean(), "min": v.min(), "max": v.max(), "first": v.first(), "last": v.last(), "sum": v.sum(), "median": v.median()}
    grouped = ts.with_columns(pl.col("value").cast(pl.Float64)).group_by(keys, maintain_order=True).agg(**{f"_{k}": e for k, e in aggs.items()})
    how = pl.col("variable").replace_strict(agg_of, default="mean", return_dtype=pl.String)
    expr = pl.lit(None, dtype=pl.Float64)
    for k in aggs:
        expr = pl.when(how == k).then(pl.col(f"_{k}")).otherwise(expr)
    out = grouped.with_columns(expr.alias("value")).select(ts.columns)
    P.add("mapped", file, "variable", f"{m.where}.timeseries.duplicates: aggregate", n=n_dup, action="duplicate values aggregated with the dictionary's aggregation")
    return out


def apply_mapping(cohort: pl.DataFrame, ts: pl.DataFrame, m: Mapping, dictionary: Dictionary, window: tuple[int, int],
                  cohort_file: str, ts_file: str, P: Problems, database: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both files through the mapping; every action and misfit goes to ``P``.

    A cohort without a ``database`` column gets ``database`` (the config's name of the database).
    """
    if database and "database" not in cohort.columns and "database" not in m.constants and "database" not in {str(v) for v in m.columns.values()}:
        cohort = cohort.with_columns(pl.lit(database, dtype=pl.String).alias("database"))
        P.add("mapped", cohort_file, "database", "no database column", n=cohort.height, action=f"set to the config's name {database!r}")
    present = set(cohort.columns) | set(ts.columns) | {str(v) for v in m.columns.values()} | {str(v) for v in m.timeseries_columns.values()}
    if "variable" in ts.columns and ts.schema["variable"] == pl.String:
        present |= set(ts["variable"].unique().drop_nulls().to_list())
    for name in m.drop:
        if name not in present:
            P.warn(cohort_file, name, f"{m.where}.drop: {name} is neither a column nor a variable of the files", action="ignored")
    cohort = map_cohort(cohort, m, dictionary, cohort_file, P)
    ids = None
    if "stay_id" in cohort.columns and (cohort.schema["stay_id"] == pl.String or cohort.schema["stay_id"].is_integer()):
        ids = cohort["stay_id"].cast(pl.String)
    ts = map_timeseries(ts, m, dictionary, window, ts_file, P, cohort_columns=cohort.columns, cohort_ids=ids)
    return cohort, ts
