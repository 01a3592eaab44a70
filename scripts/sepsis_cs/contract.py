"""The canonical cohort contract and its validator (docs/data-contract.md).

``cohort.parquet``: one row per ICU stay, core columns :data:`CORE_COLUMNS` plus any
static variable declared in the data dictionary.  ``timeseries.parquet``: long format
``stay_id, hour, variable, value``.  :func:`check` runs every check on both files in one pass
and returns the cleaned frames with every :class:`~sepsis_cs.problems.Problem` found (errors,
repairs, warnings); :func:`validate` raises :class:`~sepsis_cs.problems.ContractProblems` (one
line per problem) when there is any error.  A check that needs a column skips when that column is
missing or unusable, so one defect gives one line, not a cascade.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import polars as pl

from . import units
from .dictionary import Dictionary
from .problems import TODO, Problems, example, shape

#: core cohort columns -> logical type
CORE_COLUMNS: dict[str, str] = {
    "stay_id": "id",
    "patient_id": "id",
    "database": "string",
    "time_zero": "string",
    "cs": "bool",
    "cs_start_h": "numeric",
    "cs_drug": "string",
    "cs_hydrocortisone_eq_mg_24h": "numeric",
    "hospital_mortality": "binary",
    "mortality_28d": "binary",
    "shock_reversal_7d": "binary",
    "icu_los_days": "numeric",
}
#: optional cohort columns (event times for time-to-event and target-trial analyses); hours from
#: time zero, float, null when unknown.  Databases that can fill them should (adapters, simulator).
TIMING_COLUMNS: dict[str, str] = {
    "cs_first_h": "first systemic glucocorticoid administration at or after time zero, whatever the CS window (null: none recorded)",
    "death_h": "death, in or out of hospital, when recorded (null: no death recorded)",
    "icu_discharge_h": "leaving the ICU, alive or dead",
    "hospital_discharge_h": "hospital discharge, alive or dead",
    "followup_end_h": "end of known vital status (e.g. hospital discharge without death-record linkage)",
}
#: optional outcome columns (0/1, null when unknown): a database whose follow-up allows them should fill them
OPTIONAL_OUTCOMES: dict[str, str] = {
    "mortality_90d": "death within 90 days of time zero (0/1; null if the follow-up does not allow)",
}
OUTCOMES = ("hospital_mortality", "mortality_28d", "shock_reversal_7d", "icu_los_days", *OPTIONAL_OUTCOMES)
#: binary outcomes; every one but the optional ones is a core column (absent optional ones are skipped downstream)
BINARY_OUTCOMES = ("hospital_mortality", "mortality_28d", "shock_reversal_7d", *OPTIONAL_OUTCOMES)
#: time resolution of a database's time series (``databases.<name>.resolution``): hourly = values aggregated per
#: hour; daily = one value a day, day d at hour 24 d (case-report forms); irregular = sparse integer hours
RESOLUTIONS = ("hourly", "daily", "irregular")
#: static covariates every cohort must carry
REQUIRED_STATIC = ("age", "sex")
TIMESERIES_COLUMNS = ("stay_id", "hour", "variable", "value")
CS_DRUGS = (
    "hydrocortisone",
    "methylprednisolone",
    "dexamethasone",
    "prednisone",
    "prednisolone",
    "fludrocortisone",
)


@dataclass(frozen=True)
class ContractSettings:
    """Validator settings (config key ``contract``)."""

    window_start_h: int = -24
    window_end_h: int = 72
    cs_window_start_h: float = 0.0
    cs_window_end_h: float = 24.0
    min_group_size: int = 10
    out_of_range: str = "set_missing"  # or "error"
    unknown_variables: str = "error"  # or "drop"
    outcome: str = "hospital_mortality"
    #: above this share of implausible values a variable is taken to be in the wrong unit
    max_out_of_range_share: float = 0.2
    #: time resolution of the time series (RESOLUTIONS)
    resolution: str = "hourly"

    @classmethod
    def from_config(cls, config: dict, database: dict | None = None) -> ContractSettings:
        """Settings from the config (keys contract, time_window, cs_window, outcome, resolution); a database's own
        ``time_window`` and ``resolution`` (``database``: its ``databases.<name>`` entry) take precedence."""
        database = database or {}
        c = config.get("contract", {})
        tw = database.get("time_window") or config.get("time_window", {})
        cw = config.get("cs_window", {})
        return cls(
            window_start_h=int(tw.get("start_h", -24)),
            window_end_h=int(tw.get("end_h", 72)),
            cs_window_start_h=float(cw.get("start_h", 0)),
            cs_window_end_h=float(cw.get("end_h", 24)),
            min_group_size=int(c.get("min_group_size", 10)),
            out_of_range=c.get("out_of_range", "set_missing"),
            unknown_variables=c.get("unknown_variables", "error"),
            max_out_of_range_share=float(c.get("max_out_of_range_share", 0.2)),
            outcome=config.get("outcome", "hospital_mortality"),
            resolution=database.get("resolution") or config.get("resolution") or "hourly",
        )


#: columns that pandas writes for its index (``df.to_parquet`` of a filtered frame, ``to_csv`` without index=False)
INDEX_COLUMN = re.compile(r"^(__index_level_\d+__|Unnamed: \d+|)$")
#: separators of combined drug strings ("methylprednisolone+prednisone")
COMBINED_DRUG = re.compile(r"[+/,;&]| and ")
_YES = {"1", "y", "yes", "true", "t", "oui", "o", "ja", "j", "si", "sí", "positive", "pos"}
_NO = {"0", "n", "no", "false", "f", "non", "nein", "negative", "neg"}
#: numeric core columns that are hours or durations (NaN or infinite values are errors there)
_TIME_LIKE = ("cs_start_h", "icu_los_days", "cs_hydrocortisone_eq_mg_24h")
MAX_LEVEL_SUGGESTIONS = 20


@dataclass(frozen=True)
class CheckResult:
    """Output of :func:`check`: cleaned frames (meaningful only without errors) and every problem."""

    cohort: pl.DataFrame
    timeseries: pl.DataFrame
    problems: Problems

    @property
    def ok(self) -> bool:
        return not self.problems.errors


# ----------------------------------------------------------------------------- column parsers
# Each returns (frame, usable); an unusable column is reported once and skipped by later checks.
def _all_null_to(df: pl.DataFrame, col: str, dtype: pl.DataType) -> pl.DataFrame:
    """A column with no values at all (e.g. an empty CSV column read as text) takes ``dtype``."""
    if df.height and df[col].null_count() == df.height and df.schema[col] != dtype:
        return df.with_columns(pl.col(col).cast(pl.Null).cast(dtype))
    return df


def _num(v):
    """A numeric code as a plain int when integral (YAML keys ``1``, not ``1.0``)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _first(s: pl.Series):
    return s.item(0) if len(s) else None


def _as_id(df: pl.DataFrame, col: str, file: str, P: Problems) -> tuple[pl.DataFrame, bool]:
    dtype = df.schema[col]
    ok = True
    if dtype.is_integer():
        df = df.with_columns(pl.col(col).cast(pl.String))
    elif dtype != pl.String:
        fix = None
        if dtype.is_float():
            fix = f"write identifiers as integers or text (pandas turns an integer column with gaps into floats: df['{col}'].astype('Int64'))"
        P.error(file, col, f"expected an integer or string identifier, got {dtype}", fix=fix)
        return df, False
    n_null = df[col].null_count()
    if n_null:
        P.error(file, col, f"expected no missing identifiers, found {n_null}", n=n_null)
        ok = False
    return df, ok


def _binary_guess(value: str):
    v = value.strip().lower()
    return 1 if v in _YES else 0 if v in _NO else TODO


def _as_binary(df: pl.DataFrame, col: str, file: str, P: Problems, nullable: bool = True) -> tuple[pl.DataFrame, bool]:
    df = _all_null_to(df, col, pl.Int8)
    dtype = df.schema[col]
    s = df[col]
    if dtype == pl.Boolean or dtype == pl.Null:
        s = s.cast(pl.Int8)
    elif dtype.is_integer() or dtype.is_float():
        known = s.drop_nulls()
        bad = known.filter(~known.cast(pl.Float64).is_in([0.0, 1.0]))
        if len(bad):
            P.error(file, col, f"expected binary 0/1 or true/false, found {len(bad)} other values", n=len(bad), example=example(_first(bad)))
            return df, False
        s = s.cast(pl.Int8)
    elif dtype == pl.String:
        values = s.drop_nulls().unique().sort()
        patch = None
        if len(values) <= MAX_LEVEL_SUGGESTIONS:
            patch = {"levels": {col: {v: _binary_guess(v) for v in values.to_list()}}}
        n_text = len(s) - s.null_count()
        P.error(file, col, "expected binary 0/1 or true/false, got text", n=n_text, example=example(_first(values)), patch=patch)
        return df, False
    else:
        P.error(file, col, f"expected binary 0/1 or true/false, got dtype {dtype}")
        return df, False
    if not nullable and s.null_count():
        P.error(file, col, f"expected no missing values, found {s.null_count()}", n=s.null_count())
        return df, False
    return df.with_columns(s.alias(col)), True


def _as_float(df: pl.DataFrame, col: str, file: str, P: Problems) -> tuple[pl.DataFrame, bool]:
    df = _all_null_to(df, col, pl.Float64)
    dtype = df.schema[col]
    if dtype.is_numeric() or dtype == pl.Null:
        return df.with_columns(pl.col(col).cast(pl.Float64)), True
    if dtype == pl.String:
        s = df[col].drop_nulls()
        parsed = s.str.strip_chars().cast(pl.Float64, strict=False)
        comma = s.str.contains(r"^\s*-?\d+,\d+\s*$")
        if comma.any() and (parsed.is_not_null() | comma).all():
            P.error(file, col, "expected a numeric column, got numbers with a decimal comma", n=int(comma.sum()),
                    example=example(_first(s.filter(comma))), patch={"read": {"decimal_comma": True}})
        else:
            bad = s.filter(parsed.is_null())
            P.error(file, col, f"expected a numeric column, got dtype {dtype}", n=len(bad), example=example(_first(bad)),
                    fix="write numbers only; missing values as empty cells (NA and NaN are read as missing too)")
        return df, False
    P.error(file, col, f"expected a numeric column, got dtype {dtype}")
    return df, False


def _as_string(df: pl.DataFrame, col: str, file: str, P: Problems) -> tuple[pl.DataFrame, bool]:
    dtype = df.schema[col]
    if dtype in (pl.String, pl.Null) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return df.with_columns(pl.col(col).cast(pl.String)), True
    if dtype == pl.Binary:
        P.error(file, col, "expected a text column, got raw bytes (text that is not UTF-8?)", fix="write the column as UTF-8 text")
    else:
        P.error(file, col, f"expected a text column, got dtype {dtype}")
    return df, False


def _level_guess(value: str, levels: tuple[str, ...]):
    v = value.strip().lower()
    exact = [lv for lv in levels if lv.lower() == v]
    if exact:
        return exact[0]
    starts = [lv for lv in levels if v.startswith(lv.lower()) or lv.lower().startswith(v)]
    return starts[0] if len(starts) == 1 else TODO


def _levels(df: pl.DataFrame, col: str, levels: tuple[str, ...], file: str, P: Problems) -> None:
    bad = df.filter(pl.col(col).is_not_null() & ~pl.col(col).is_in(list(levels)))[col]
    if not len(bad):
        return
    values = bad.unique(maintain_order=True)
    patch = None
    if len(values) <= MAX_LEVEL_SUGGESTIONS:
        patch = {"levels": {col: {v: _level_guess(v, levels) for v in sorted(values.to_list())}}}
    P.error(file, col, f"expected one of {list(levels)}, {len(bad)} rows have another value", n=len(bad), example=example(values[0]),
            patch=patch, fix=None if patch else f"map the values with mapping.levels.{col}")


def _non_finite(df: pl.DataFrame, col: str, file: str, P: Problems) -> bool:
    """NaN or infinite values in a numeric column: an error (missing values are empty, not NaN)."""
    bad = df.filter(pl.col(col).is_nan() | pl.col(col).is_infinite())[col]
    if len(bad):
        P.error(file, col, f"expected a number or an empty value, {len(bad)} rows are NaN or infinite", n=len(bad), example=example(bad[0]),
                fix="write missing values as empty (null), not NaN")
        return False
    return True


def _range(df, col, var, settings, file, P, what="values") -> pl.DataFrame:
    """Plausible-range check of a numeric cohort column: unit mix-up, error or set missing."""
    rlo, rhi = var.range
    mask = pl.col(col).is_not_null() & ((pl.col(col) < rlo) | (pl.col(col) > rhi))
    out = df.filter(mask)[col]
    n_known = df.height - df[col].null_count()
    if not len(out) or not n_known:
        return df
    if len(out) / n_known > settings.max_out_of_range_share:
        conv = units.suggest(df[col], col, var.unit, rlo, rhi, settings.max_out_of_range_share)
        P.error(file, col, f"{100 * len(out) / n_known:.0f}% of values outside [{rlo:g}, {rhi:g}]; expected unit {var.unit or 'as in the dictionary'} (unit mix-up?)",
                n=len(out), example=example(out[0]), patch={"units": {col: conv.name}} if conv else None)
        return df
    if settings.out_of_range == "error":
        P.error(file, col, f"expected values in [{rlo:g}, {rhi:g}] {var.unit}, {len(out)} are outside", n=len(out), example=example(out[0]),
                fix="correct them, or set contract.out_of_range: set_missing")
        return df
    P.repair(file, col, f"outside [{rlo:g}, {rhi:g}]", len(out), "set to missing", example=example(out[0]))
    return df.with_columns(pl.when(mask).then(None).otherwise(pl.col(col)).alias(col))


def _drop_index_columns(df: pl.DataFrame, file: str, P: Problems) -> pl.DataFrame:
    idx = [c for c in df.columns if INDEX_COLUMN.match(c)]
    for c in idx:
        P.warn(file, c, "pandas index column, not data", action="ignored", fix="df.to_parquet(path, index=False) / df.to_csv(path, index=False)")
    return df.drop(idx)


_UNIT_SUFFIX = re.compile(r"_(h|hr|hrs|hours|min|mins|minutes|d|day|days|mg|g|kg|lb|lbs|f|c|umol|mmol)$")
#: unit suffix of an export column -> conversion into the contract column's unit (by the contract's suffix)
_SUFFIX_CONVERSION = {("min", "h"): "minutes_to_hours", ("mins", "h"): "minutes_to_hours", ("minutes", "h"): "minutes_to_hours",
                      ("d", "h"): "days_to_hours", ("day", "h"): "days_to_hours", ("days", "h"): "days_to_hours",
                      ("h", "days"): "hours_to_days", ("hr", "days"): "hours_to_days", ("hrs", "days"): "hours_to_days",
                      ("hours", "days"): "hours_to_days", ("g", "kg"): "g_to_kg", ("lb", "kg"): "lb_to_kg", ("lbs", "kg"): "lb_to_kg"}


def _suffix(name: str) -> str | None:
    m = _UNIT_SUFFIX.search(name.lower())
    return m.group(1) if m else None


def _rename_patch(src: str, dst: str) -> dict:
    """``mapping.columns: {src: dst}``, plus the unit conversion the names' suffixes imply (cs_start_min -> cs_start_h)."""
    patch: dict = {"columns": {src: dst}}
    conv = _SUFFIX_CONVERSION.get((_suffix(src), _suffix(dst)))
    if conv:
        patch["units"] = {dst: conv}
    return patch


def _close(name: str, candidates: list[str]) -> str | None:
    low = {c.lower(): c for c in candidates}
    if name.lower() in low:
        return low[name.lower()]
    stem = _UNIT_SUFFIX.sub("", name.lower())
    same_stem = [c for c in candidates if _UNIT_SUFFIX.sub("", c.lower()) == stem]
    if len(same_stem) == 1:
        return same_stem[0]
    hit = difflib.get_close_matches(name.lower(), list(low), n=1, cutoff=0.75)
    if hit:
        return low[hit[0]]
    pref = [c for c in candidates if c.lower().startswith(name.lower()) or name.lower().startswith(c.lower())]
    return pref[0] if len(pref) == 1 else None


def _extra_variable_patch(name: str, s: pl.Series, source: str) -> dict:
    """A suggested ``mapping.extra_variables`` entry inferred from the values (kind and unit are guesses)."""
    known = s.drop_nulls()
    entry: dict = {"label": name.replace("_", " ").capitalize(), "unit": ""}
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        binary = s.dtype == pl.Boolean or (len(known) > 0 and known.cast(pl.Float64).is_in([0.0, 1.0]).all())
        entry.update(kind="comorbidity" if binary and source == "static" else ("lab" if source == "hourly" else "score"),
                     type="binary" if binary else "numeric", source=source)
        if source == "hourly":
            entry["aggregation"] = "mean"
    else:
        levels = known.cast(pl.String).unique().sort().to_list()
        entry.update(kind="demographic", type="categorical", source=source)
        if len(levels) <= MAX_LEVEL_SUGGESTIONS:
            entry["levels"] = levels
    return {"extra_variables": {name: entry}}


def _unknown(file: str, name: str, what: str, settings: ContractSettings, P: Problems, n: int | None, patch: dict | None, rename: dict | None) -> bool:
    """An undeclared column or variable: dropped (``unknown_variables: drop``) or an error with fixes; True when dropped.

    A column is named as the column; an hourly variable as ``variable '<name>'`` of column ``variable``.
    """
    column, label = (name, f"unknown {what}") if what == "column" else ("variable", f"unknown variable '{name}'")
    if settings.unknown_variables == "drop":
        P.repair(file, column, label, n, "dropped")
        return True
    if rename:
        P.error(file, column, f"{label}; expected a contract name", n=n, patch=rename)
    else:
        expected = "a core column or a static variable of config/variables.yaml" if what == "column" else "an hourly variable of config/variables.yaml"
        P.error(file, column, f"{label}; expected {expected}", n=n, patch=patch,
                fix=f"declare it in mapping.extra_variables (suggested: {_patch_text(patch)}), or list it in mapping.drop, or set contract.unknown_variables: drop")
    return False


def _patch_text(patch: dict | None) -> str:
    from .problems import flow

    if not patch:
        return ""
    (name, entry), = patch["extra_variables"].items()
    return f"{name}: {flow(entry)}"


# ----------------------------------------------------------------------------- cohort
def check_cohort(df: pl.DataFrame, dictionary: Dictionary, settings: ContractSettings, file: str, P: Problems) -> tuple[pl.DataFrame, set[str]]:
    """Every cohort check; returns the cleaned table and the set of usable columns."""
    df = _drop_index_columns(df, file, P)
    if df.height == 0:
        P.error(file, None, "cohort is empty; expected at least one ICU stay")
        return df, set()
    static = dictionary.static
    known = set(CORE_COLUMNS) | set(OPTIONAL_OUTCOMES) | set(TIMING_COLUMNS) | set(static)
    extra = [c for c in df.columns if c not in known]
    missing = [c for c in CORE_COLUMNS if c not in df.columns] + [c for c in REQUIRED_STATIC if c not in df.columns]
    if settings.outcome in OPTIONAL_OUTCOMES and settings.outcome not in df.columns:
        missing.append(settings.outcome)  # the configured outcome is required
    claimed: set[str] = set()
    for col in missing:
        match = _close(col, [c for c in extra if c not in claimed])
        if match:
            claimed.add(match)
            P.error(file, col, f"required column is missing; column '{match}' looks like it", patch=_rename_patch(match, col))
        elif col in ("time_zero", "database"):
            hint = "the definition of time zero, e.g. icu_admission or sepsis3_onset" if col == "time_zero" else "the database name"
            P.error(file, col, f"required column is missing (see docs/data-contract.md); expected {hint}", patch={"constants": {col: TODO}})
        elif col in ("cs_drug", "cs_hydrocortisone_eq_mg_24h", "shock_reversal_7d", "mortality_28d"):
            P.error(file, col, "required column is missing (see docs/data-contract.md)", patch={"constants": {col: None}},
                    fix=f"mapping.constants: {{{col}: null}} when the export does not record it, or mapping.columns: {{<your column>: {col}}}")
        else:
            P.error(file, col, "required column is missing (see docs/data-contract.md)", fix=f"mapping.columns: {{<your column>: {col}}}")
    dropped = []
    for col in extra:
        if col in claimed:
            continue
        near = _close(col, [c for c in static if c not in df.columns] + [c for c in (*OPTIONAL_OUTCOMES, *TIMING_COLUMNS) if c not in df.columns])
        rename = _rename_patch(col, near) if near else None
        if _unknown(file, col, "column", settings, P, None, None if near else _extra_variable_patch(col, df[col], "static"), rename):
            dropped.append(col)
    df = df.drop(dropped)
    ok = {c for c in df.columns if c not in claimed and c not in missing}

    # core columns: types
    for col, kind in CORE_COLUMNS.items():
        if col not in ok:
            continue
        if kind == "id":
            df, good = _as_id(df, col, file, P)
        elif kind == "string":
            df, good = _as_string(df, col, file, P)
        elif kind == "numeric":
            df, good = _as_float(df, col, file, P)
            good = good and (col not in _TIME_LIKE or _non_finite(df, col, file, P))
        elif kind == "binary":
            df, good = _as_binary(df, col, file, P)
        else:  # bool
            df, good = _as_binary(df, col, file, P, nullable=False)
            if good:
                df = df.with_columns(pl.col(col).cast(pl.Boolean))
        if not good:
            ok.discard(col)
    for col in OPTIONAL_OUTCOMES:
        if col in ok:
            df, good = _as_binary(df, col, file, P)
            if not good:
                ok.discard(col)
    for col in TIMING_COLUMNS:
        if col in ok:
            df, good = _as_float(df, col, file, P)
            good = good and _non_finite(df, col, file, P)
            if good:
                negative = df.filter(pl.col(col) < 0)[col]
                if len(negative):
                    P.error(file, col, f"expected hours from time zero >= 0, {len(negative)} rows are negative", n=len(negative), example=example(negative[0]))
                    good = False
            if not good:
                ok.discard(col)

    # impossible values of core columns
    for col, what in (("icu_los_days", "an ICU length of stay >= 0 days"), ("cs_hydrocortisone_eq_mg_24h", "a dose >= 0 mg")):
        if col in ok:
            negative = df.filter(pl.col(col) < 0)[col]
            if len(negative):
                P.error(file, col, f"expected {what}, {len(negative)} rows are negative", n=len(negative), example=example(negative[0]))
                ok.discard(col)

    if "stay_id" in ok:
        dup = df.height - df["stay_id"].n_unique()
        if dup:
            P.error(file, "stay_id", f"expected one row per ICU stay, found {dup} duplicated stay_id values", n=dup)
            ok.discard("stay_id")

    _check_treatment(df, settings, file, P, ok)

    for col in df.columns:
        if col not in static or col not in ok:
            continue
        var = static[col]
        if var.type == "numeric":
            df, good = _as_float(df, col, file, P)
            good = good and _non_finite(df, col, file, P)
        elif var.type == "binary":
            df, good = _as_binary(df, col, file, P)
        elif var.levels is not None and df.schema[col].is_numeric():  # categories written as numeric codes
            codes = df[col].drop_nulls().unique().sort()
            patch = {"levels": {col: {_num(v): TODO for v in codes.to_list()}}} if len(codes) <= MAX_LEVEL_SUGGESTIONS else None
            P.error(file, col, f"expected one of {list(var.levels)}, got numeric codes", n=df.height - df[col].null_count(),
                    example=example(_num(codes[0])) if len(codes) else None, patch=patch, fix=None if patch else f"map the codes with mapping.levels.{col}")
            good = False
        else:
            df, good = _as_string(df, col, file, P)
            if good and var.levels is not None:
                n_before = len(P.errors)
                _levels(df, col, var.levels, file, P)
                good = len(P.errors) == n_before
        if not good:
            ok.discard(col)
            continue
        if df[col].null_count() == df.height:
            P.error(file, col, "column is entirely missing; expected at least one value", patch={"drop": [col]},
                    fix=f"mapping.drop: [{col}] if the database does not record it")
            ok.discard(col)
            continue
        if var.type == "numeric" and var.range is not None:
            df = _range(df, col, var, settings, file, P)

    if "cs" in ok:
        n_cs = int(df["cs"].sum())
        n_no = df.height - n_cs
        if min(n_cs, n_no) < settings.min_group_size:
            group = "cs = true" if n_cs < n_no else "cs = false"
            P.error(file, "cs", f"expected at least {settings.min_group_size} stays in each treatment group, group {group} is too small",
                    fix="contract.min_group_size (analyses need both groups)")
    out = settings.outcome
    if out in BINARY_OUTCOMES and out in ok:
        if df[out].drop_nulls().n_unique() < 2:
            P.error(file, out, "expected both outcome classes (0 and 1) among known values, found one or none")
    if P.errors:
        return df, ok
    first = [*CORE_COLUMNS, *(c for c in OPTIONAL_OUTCOMES if c in df.columns), *(c for c in TIMING_COLUMNS if c in df.columns)]
    ordered = first + sorted(c for c in df.columns if c not in first)
    return df.select(ordered).sort("stay_id"), ok


def _check_treatment(df: pl.DataFrame, settings: ContractSettings, file: str, P: Problems, ok: set[str]) -> None:
    """Treatment record consistency: start hour, drug and dose present exactly for treated stays."""
    if "cs" not in ok:
        return
    treated, untreated = pl.col("cs"), ~pl.col("cs")
    if "cs_start_h" in ok:
        n = df.filter(treated & pl.col("cs_start_h").is_null()).height
        if n:
            P.error(file, "cs_start_h", f"expected a start hour for every treated stay (cs = true), {n} are missing", n=n)
        bad = df.filter(untreated & pl.col("cs_start_h").is_not_null())["cs_start_h"]
        if len(bad):
            P.error(file, "cs_start_h", f"expected no CS start hour for untreated stays (cs = false), {len(bad)} have one", n=len(bad), example=example(bad[0]),
                    fix="leave cs_start_h empty when cs is false (a start after the CS window belongs in cs_first_h), or set cs = true")
        lo, hi = settings.cs_window_start_h, settings.cs_window_end_h
        outside = df.filter(treated & ((pl.col("cs_start_h") < lo) | (pl.col("cs_start_h") > hi)))["cs_start_h"]
        if len(outside):
            P.error(file, "cs_start_h", f"expected treated stays to start CS within [{lo:g}, {hi:g}] h of time zero, {len(outside)} do not",
                    n=len(outside), example=example(outside[0]), fix="cs_window (config) if the window is meant to be wider; else cs = false for late starters")
    if "cs_first_h" in ok and "cs_start_h" in ok:
        n = df.filter(treated & (pl.col("cs_first_h").is_null() | (pl.col("cs_first_h") != pl.col("cs_start_h")))).height
        if n:
            P.error(file, "cs_first_h", f"expected cs_first_h = cs_start_h for treated stays (cs = true), {n} differ", n=n)
    if "cs_drug" in ok:
        bad = df.filter(untreated & pl.col("cs_drug").is_not_null())["cs_drug"]
        if len(bad):
            P.error(file, "cs_drug", f"expected no CS drug for untreated stays (cs = false), {len(bad)} have one", n=len(bad), example=example(bad[0]))
        drugs = df.filter(treated & pl.col("cs_drug").is_not_null() & ~pl.col("cs_drug").is_in(list(CS_DRUGS)))["cs_drug"]
        if len(drugs):
            combined = drugs.filter(drugs.str.contains(COMBINED_DRUG.pattern))
            lower_ok = drugs.str.strip_chars().str.to_lowercase().is_in(list(CS_DRUGS))
            patch, fix = None, None
            if len(combined):
                patch = {"cs_drug": {"combined": "first"}}
            elif lower_ok.all():
                patch = {"cs_drug": {"lowercase": True}}
            else:
                names = drugs.filter(~lower_ok).unique(maintain_order=True)
                if len(names) <= MAX_LEVEL_SUGGESTIONS:
                    patch = {"levels": {"cs_drug": {v: TODO for v in sorted(names.to_list())}}}
                else:
                    fix = "map the names with mapping.levels.cs_drug"
            example_value = combined[0] if len(combined) else drugs[0]
            P.error(file, "cs_drug", f"expected one of {', '.join(CS_DRUGS)}; {len(drugs)} rows have another value", n=len(drugs),
                    example=example(example_value), patch=patch, fix=fix)
    if "cs_hydrocortisone_eq_mg_24h" in ok:
        bad = df.filter(untreated & (pl.col("cs_hydrocortisone_eq_mg_24h") > 0))["cs_hydrocortisone_eq_mg_24h"]
        if len(bad):
            P.error(file, "cs_hydrocortisone_eq_mg_24h", f"expected no CS dose for untreated stays (cs = false), {len(bad)} have one", n=len(bad),
                    example=example(bad[0]))


# ----------------------------------------------------------------------------- time series
def check_timeseries(ts: pl.DataFrame, cohort: pl.DataFrame, cohort_ok: set[str], dictionary: Dictionary, settings: ContractSettings,
                     file: str, P: Problems, cohort_file: str = "cohort file") -> pl.DataFrame:
    """Every time-series check (against the cohort's stays when its ``stay_id`` is usable)."""
    ts = _drop_index_columns(ts, file, P)
    missing = [c for c in TIMESERIES_COLUMNS if c not in ts.columns]
    extra = [c for c in ts.columns if c not in TIMESERIES_COLUMNS]
    hourly = dictionary.hourly
    claimed: set[str] = set()
    for col in missing:
        match = _close(col, [c for c in extra if c not in claimed])
        if match:
            claimed.add(match)
            P.error(file, col, f"required column is missing; column '{match}' looks like it", patch={"timeseries_columns": {match: col}})
        else:
            wide = [c for c in extra if c in hourly]
            hint = (f"; columns {', '.join(wide[:3])} are variables: the table looks wide (one column per variable), expected long"
                    if col in ("variable", "value") and wide else "")
            P.error(file, col, f"required column is missing; expected stay_id, hour, variable, value{hint}",
                    fix=f"mapping.timeseries_columns: {{<your column>: {col}}}" if not hint else "reshape to long format (pandas: df.melt(id_vars=['stay_id', 'hour'], var_name='variable', value_name='value'))")
    dropped = []
    for col in extra:
        if col in claimed:
            continue
        if settings.unknown_variables == "drop":
            P.repair(file, col, "unknown column", None, "dropped")
            dropped.append(col)
        else:
            P.error(file, col, "unknown column; expected only stay_id, hour, variable, value",
                    fix="drop it from the export, list it in mapping.drop, or set contract.unknown_variables: drop")
    ts = ts.drop(dropped)
    if missing:
        return ts
    if ts.height == 0:
        P.warn(file, None, "no hourly values at all; features from the time series will be missing", action="none")
        return ts.select(TIMESERIES_COLUMNS)
    ok = set(TIMESERIES_COLUMNS) - claimed
    ts, good = _as_id(ts, "stay_id", file, P)
    if not good:
        ok.discard("stay_id")
    hour_dtype = ts.schema["hour"]
    if hour_dtype.is_integer():
        ts = ts.with_columns(pl.col("hour").cast(pl.Int32))
    elif hour_dtype.is_float():
        bad = ts.filter(pl.col("hour").is_nan() | pl.col("hour").is_infinite() | (pl.col("hour") != pl.col("hour").floor()))["hour"]
        if len(bad):
            P.error(file, "hour", f"expected integer hours from time zero, got dtype {hour_dtype} with {len(bad)} fractional or NaN values", n=len(bad),
                    example=example(bad[0]), fix="floor the hours (hour = floor(hours since time zero)) and aggregate per hour")
            ok.discard("hour")
        else:
            ts = ts.with_columns(pl.col("hour").cast(pl.Int32))
    else:
        P.error(file, "hour", f"expected integer hours from time zero, got dtype {hour_dtype}")
        ok.discard("hour")
    ts, good = _as_string(ts, "variable", file, P)
    if not good:
        ok.discard("variable")
    ts, good = _as_float(ts, "value", file, P)
    if not good:
        ok.discard("value")
    for col in ("hour", "variable"):
        if col in ok and ts[col].null_count():
            P.error(file, col, f"expected no missing values, found {ts[col].null_count()}", n=ts[col].null_count())
            ok.discard(col)
    if "hour" in ok:
        lo, hi = settings.window_start_h, settings.window_end_h
        out = ts.filter((pl.col("hour") < lo) | (pl.col("hour") > hi))["hour"]
        if len(out):
            P.error(file, "hour", f"expected hours within the time window [{lo}, {hi}], {len(out)} rows are outside", n=len(out), example=example(out[0]),
                    patch={"timeseries": {"outside_window": "drop"}})
        if settings.resolution == "daily":
            off = ts.filter(pl.col("hour") % 24 != 0)["hour"]
            if len(off):
                P.error(file, "hour", f"expected whole days (resolution: daily: day d at hour 24 d), {len(off)} rows are at other hours",
                        n=len(off), example=example(off[0]), fix="write hour = 24 * day (day 0 = the day of time zero), or declare resolution: irregular")
    if "variable" not in ok:
        return ts
    # variables: integer codes in name order (cheap grouping, lookups and sorting on large tables)
    names = ts["variable"].unique().sort()
    ts = ts.with_columns(pl.col("variable").replace_strict(names, pl.arange(0, len(names), eager=True), return_dtype=pl.Int32).alias("_v"))
    value_ok = "value" in ok
    aggs = [pl.len().alias("n")]
    if value_ok:
        aggs += [pl.col("value").is_not_null().sum().alias("known"), pl.col("value").is_nan().sum().alias("nan")]
    stats = ts.group_by("_v").agg(aggs).sort("_v")
    stats = stats.with_columns(pl.Series("variable", names.gather(stats["_v"])))
    static_lower = {v.lower() for v in dictionary.static}
    present = set(names.to_list())
    dropped = []
    for code, name, n in stats.select("_v", "variable", "n").iter_rows():
        if name in hourly:
            continue
        near = _close(name, [v for v in hourly if v not in present]) if name.lower() not in static_lower else None
        rename = {"variables": {name: near}} if near else None
        values = ts.filter(pl.col("_v") == code)["value"] if value_ok else pl.Series([], dtype=pl.Float64)
        if _unknown(file, name, "variable", settings, P, n, None if near else _extra_variable_patch(name, values, "hourly"), rename):
            dropped.append(code)
    if dropped:
        ts = ts.filter(~pl.col("_v").is_in(dropped))
        stats = stats.filter(~pl.col("_v").is_in(dropped))
    if "stay_id" in ok and "stay_id" in cohort_ok and cohort.height:
        _check_ids(ts, cohort, file, cohort_file, P)
    if {"stay_id", "hour"} <= ok and ts.height:
        # one sort on one integer key (stay, variable, hour: the output's order) also finds duplicates
        ids = ts["stay_id"].unique().sort()
        h0, h1 = int(ts["hour"].min()), int(ts["hour"].max())
        span, n_v = h1 - h0 + 1, len(names)
        stay_code = pl.col("stay_id").replace_strict(ids, pl.arange(0, len(ids), eager=True), return_dtype=pl.Int64)
        ts = ts.with_columns(((stay_code * n_v + pl.col("_v")) * span + (pl.col("hour") - h0)).alias("_k"))
        if not bool((ts["_k"].diff().fill_null(1) > 0).all()):  # already in order without duplicates: no sort (most exports)
            ts = ts.sort("_k")
        dup = ts.filter(pl.col("_k") == pl.col("_k").shift(1))["_v"]
        if len(dup):
            worst = names[int(dup.value_counts(sort=True, name="k").sort(["k", "_v"], descending=[True, False])["_v"][0])]
            P.error(file, "variable", f"expected one value per stay, hour and variable, found {len(dup)} duplicates", n=len(dup),
                    example=example(worst), patch={"timeseries": {"duplicates": "aggregate"}})
        ts = ts.drop("_k")
    if not value_ok:
        return ts.drop("_v")
    # values: NaN is a missing measurement, removed; all-missing variables; plausible ranges
    n_nan = int(stats["nan"].sum())
    if n_nan:
        P.repair(file, "value", "NaN values", n_nan, "removed (missing)")
    for name in stats.filter(pl.col("known") == pl.col("nan"))["variable"]:
        if name in hourly:
            P.warn(file, name, "hourly variable has rows but no value at all", action="none (no features from it)")
    if n_nan or int(stats["known"].sum()) < ts.height:  # (a copy of a large table only when there is something to remove)
        ts = ts.filter(pl.col("value").is_not_null() & ~pl.col("value").is_nan())
    inf = ts.filter(pl.col("value").is_infinite())
    if inf.height:
        P.error(file, "value", f"expected finite values, {inf.height} are infinite", n=inf.height, example=example(inf["variable"][0]))
        return ts.drop("_v")
    totals = dict(stats.select("variable", (pl.col("known") - pl.col("nan")).alias("k")).iter_rows())
    ts = _ts_ranges(ts, names, hourly, totals, settings, file, P).drop("_v")
    if P.errors:
        return ts
    # cohort stays without any hourly value: allowed, said
    if "stay_id" in cohort_ok and cohort.height:
        without = cohort.height - cohort.select("stay_id").join(ts.select(pl.col("stay_id").unique()), on="stay_id", how="semi").height
        if without:
            P.warn(cohort_file, "stay_id", f"{without} of {cohort.height} stays have no hourly value in {file}", n=without, action="none")
    return ts.select(TIMESERIES_COLUMNS)


def _check_ids(ts: pl.DataFrame, cohort: pl.DataFrame, file: str, cohort_file: str, P: Problems) -> None:
    """Every time-series stay must be in the cohort; said with counts and the *form* of ids on both sides."""
    ts_ids = ts.select("stay_id").unique()
    c_ids = cohort.select("stay_id").unique()
    orphan = ts_ids.join(c_ids, on="stay_id", how="anti")
    if not orphan.height:
        return
    without = c_ids.join(ts_ids, on="stay_id", how="anti")

    def form(ids: pl.DataFrame) -> str:
        s = ids["stay_id"].sort().head(200).map_elements(shape, return_dtype=pl.String)
        return repr(s.mode().sort()[0]) if len(s) else "none"

    common = ts_ids.height - orphan.height
    text = (f"expected every time-series stay in the cohort file ({cohort_file}), {orphan.height} of {ts_ids.height} are not; "
            f"{without.height} of {c_ids.height} cohort stays have no time-series rows; "
            f"ids not found look like {form(orphan)} here and {form(c_ids)} in the cohort (9 = digit, A/a = letter)")
    if common == 0:
        text = "no stay_id in common between the two files; " + text
    fix, patch = None, None
    if orphan["stay_id"].str.ends_with(".0").all() and not c_ids["stay_id"].str.ends_with(".0").any():
        fix = "the time-series ids were written as floats: write them as integers (pandas: .astype('Int64'))"
    elif common:
        patch = {"timeseries": {"unknown_stays": "drop"}}
        fix = "if the cohort was filtered after the export: mapping.timeseries: {unknown_stays: drop}"
    P.error(file, "stay_id", text, n=orphan.height, fix=fix, patch=patch)


def _ts_ranges(ts: pl.DataFrame, names: pl.Series, hourly, totals: dict, settings: ContractSettings, file: str, P: Problems) -> pl.DataFrame:
    """Plausible ranges of the hourly values (``_v`` = variable code): unit mix-up (error), error, or rows removed (counted)."""
    lo = pl.Series([hourly[v].range[0] if v in hourly and hourly[v].range else None for v in names], dtype=pl.Float64)
    hi = pl.Series([hourly[v].range[1] if v in hourly and hourly[v].range else None for v in names], dtype=pl.Float64)
    out = ((pl.col("value") < pl.lit(lo).gather(pl.col("_v"))) | (pl.col("value") > pl.lit(hi).gather(pl.col("_v")))).fill_null(False)
    counts = ts.filter(out).group_by("variable").agg(pl.len(), pl.col("value").first().alias("example")).sort("variable")
    if not counts.height:
        return ts
    repaired = False
    for row in counts.iter_rows(named=True):
        name, n = row["variable"], row["len"]
        v = hourly[name]
        share = n / totals[name]
        if share > settings.max_out_of_range_share:
            conv = units.suggest(ts.filter(pl.col("variable") == name)["value"], name, v.unit, v.range[0], v.range[1], settings.max_out_of_range_share)
            P.error(file, "value", f"variable '{name}': {100 * share:.0f}% of values outside [{v.range[0]:g}, {v.range[1]:g}]; expected unit {v.unit} (unit mix-up?)",
                    n=n, example=example(row["example"]), patch={"units": {name: conv.name}} if conv else None)
        elif settings.out_of_range == "error":
            P.error(file, "value", f"variable '{name}': expected values in [{v.range[0]:g}, {v.range[1]:g}] {v.unit}, {n} are outside", n=n,
                    example=example(row["example"]), fix="correct them, or set contract.out_of_range: set_missing")
        else:
            P.repair(file, name, f"outside [{v.range[0]:g}, {v.range[1]:g}]", n, "removed", example=example(row["example"]))
            repaired = True
    return ts.filter(~out) if repaired else ts


# ----------------------------------------------------------------------------- both files
def check(
    cohort: pl.DataFrame,
    ts: pl.DataFrame,
    dictionary: Dictionary,
    settings: ContractSettings,
    cohort_file: str = "cohort.parquet",
    ts_file: str = "timeseries.parquet",
    problems: Problems | None = None,
) -> CheckResult:
    """Run every check on both files in one pass; never raises for bad data."""
    P = problems if problems is not None else Problems()
    cohort, cohort_ok = check_cohort(cohort, dictionary, settings, cohort_file, P)
    ts = check_timeseries(ts, cohort, cohort_ok, dictionary, settings, ts_file, P, cohort_file=cohort_file)
    return CheckResult(cohort, ts, P)


def validate(
    cohort: pl.DataFrame,
    ts: pl.DataFrame,
    dictionary: Dictionary,
    settings: ContractSettings,
    cohort_file: str = "cohort.parquet",
    ts_file: str = "timeseries.parquet",
    problems: Problems | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Validate both contract files; returns ``(cohort, timeseries, changes)``.

    Raises :class:`~sepsis_cs.problems.ContractProblems` listing every problem when any is an error.
    ``problems`` may hold earlier findings (the mapping step's) to report together.
    """
    res = check(cohort, ts, dictionary, settings, cohort_file, ts_file, problems)
    res.problems.raise_if_errors()
    return res.cohort, res.timeseries, res.problems.changes()
