"""The canonical cohort contract and its validator (docs/data-contract.md).

``cohort.parquet``: one row per ICU stay, core columns :data:`CORE_COLUMNS` plus any
static variable declared in the data dictionary.  ``timeseries.parquet``: long format
``stay_id, hour, variable, value``.  :func:`validate` checks both files against the
contract and returns cleaned frames plus a table of what was changed; any violation it
cannot repair raises a one-line :class:`ContractError` naming file, column and expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .dictionary import Dictionary
from .errors import ContractError

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
OUTCOMES = ("hospital_mortality", "mortality_28d", "shock_reversal_7d", "icu_los_days")
BINARY_OUTCOMES = ("hospital_mortality", "mortality_28d", "shock_reversal_7d")
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

    @classmethod
    def from_config(cls, config: dict) -> "ContractSettings":
        c = config.get("contract", {})
        tw = config.get("time_window", {})
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
        )


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def _all_null_to(df: pl.DataFrame, col: str, dtype: pl.DataType) -> pl.DataFrame:
    """A column with no values at all (e.g. an empty CSV column read as text) takes ``dtype``."""
    if df.height and df[col].null_count() == df.height and df.schema[col] != dtype:
        return df.with_columns(pl.col(col).cast(pl.Null).cast(dtype))
    return df


def _as_id(df: pl.DataFrame, col: str, file: str) -> pl.DataFrame:
    dtype = df.schema[col]
    if dtype == pl.String:
        pass
    elif dtype.is_integer():
        df = df.with_columns(pl.col(col).cast(pl.String))
    else:
        raise ContractError(file, col, f"expected an integer or string identifier, got {dtype}")
    if df[col].null_count():
        raise ContractError(file, col, f"expected no missing identifiers, found {df[col].null_count()}")
    return df


def _as_binary(df: pl.DataFrame, col: str, file: str, nullable: bool = True) -> pl.DataFrame:
    df = _all_null_to(df, col, pl.Int8)
    dtype = df.schema[col]
    s = df[col]
    if dtype == pl.Boolean:
        s = s.cast(pl.Int8)
    elif dtype.is_integer() or dtype.is_float():
        bad = s.drop_nulls().filter(~s.drop_nulls().is_in([0, 1]))
        if len(bad):
            raise ContractError(file, col, f"expected binary 0/1 or true/false, found {len(bad)} other values")
        s = s.cast(pl.Int8)
    elif dtype == pl.Null:
        s = s.cast(pl.Int8)
    else:
        raise ContractError(file, col, f"expected binary 0/1 or true/false, got dtype {dtype}")
    if not nullable and s.null_count():
        raise ContractError(file, col, f"expected no missing values, found {s.null_count()}")
    return df.with_columns(s.alias(col))


def _as_float(df: pl.DataFrame, col: str, file: str) -> pl.DataFrame:
    df = _all_null_to(df, col, pl.Float64)
    dtype = df.schema[col]
    if not (_is_numeric(dtype) or dtype == pl.Null):
        raise ContractError(file, col, f"expected a numeric column, got dtype {dtype}")
    return df.with_columns(pl.col(col).cast(pl.Float64))


def _as_string(df: pl.DataFrame, col: str, file: str) -> pl.DataFrame:
    dtype = df.schema[col]
    if dtype in (pl.String, pl.Null) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return df.with_columns(pl.col(col).cast(pl.String))
    raise ContractError(file, col, f"expected a text column, got dtype {dtype}")


def validate_cohort(
    df: pl.DataFrame, dictionary: Dictionary, settings: ContractSettings, file: str = "cohort.parquet"
) -> tuple[pl.DataFrame, list[dict]]:
    """Check a cohort table against the contract; return the cleaned table and change records."""
    changes: list[dict] = []
    if df.height == 0:
        raise ContractError(file, None, "cohort is empty; expected at least one ICU stay")
    missing = [c for c in CORE_COLUMNS if c not in df.columns] + [c for c in REQUIRED_STATIC if c not in df.columns]
    if missing:
        raise ContractError(file, missing[0], "required column is missing (see docs/data-contract.md)")
    static = dictionary.static
    extra = [c for c in df.columns if c not in CORE_COLUMNS and c not in TIMING_COLUMNS and c not in static]
    if extra:
        if settings.unknown_variables == "drop":
            df = df.drop(extra)
            changes += [dict(file=file, column=c, check="unknown column", n=df.height, action="dropped") for c in extra]
        else:
            raise ContractError(file, extra[0], "unknown column; expected a core column or a static variable of config/variables.yaml")

    for col, kind in CORE_COLUMNS.items():
        if kind == "id":
            df = _as_id(df, col, file)
        elif kind == "string":
            df = _as_string(df, col, file)
        elif kind == "numeric":
            df = _as_float(df, col, file)
        elif kind == "binary":
            df = _as_binary(df, col, file)
        elif kind == "bool":
            df = _as_binary(df, col, file, nullable=False).with_columns(pl.col(col).cast(pl.Boolean))

    for col in TIMING_COLUMNS:
        if col in df.columns:
            df = _as_float(df, col, file)
            negative = df.filter(pl.col(col) < 0).height
            if negative:
                raise ContractError(file, col, f"expected hours from time zero >= 0, {negative} rows are negative")

    dup = df.height - df["stay_id"].n_unique()
    if dup:
        raise ContractError(file, "stay_id", f"expected one row per ICU stay, found {dup} duplicated stay_id values")

    # treatment consistency
    treated_no_start = df.filter(pl.col("cs") & pl.col("cs_start_h").is_null()).height
    if treated_no_start:
        raise ContractError(file, "cs_start_h", f"expected a start hour for every treated stay (cs = true), {treated_no_start} are missing")
    if "cs_first_h" in df.columns:
        n_bad = df.filter(pl.col("cs") & (pl.col("cs_first_h").is_null() | (pl.col("cs_first_h") != pl.col("cs_start_h")))).height
        if n_bad:
            raise ContractError(file, "cs_first_h", f"expected cs_first_h = cs_start_h for treated stays (cs = true), {n_bad} differ")
    lo, hi = settings.cs_window_start_h, settings.cs_window_end_h
    outside = df.filter(pl.col("cs") & ((pl.col("cs_start_h") < lo) | (pl.col("cs_start_h") > hi))).height
    if outside:
        raise ContractError(file, "cs_start_h", f"expected treated stays to start CS within [{lo:g}, {hi:g}] h of time zero, {outside} do not")
    bad_drug = df.filter(pl.col("cs") & pl.col("cs_drug").is_not_null() & ~pl.col("cs_drug").is_in(list(CS_DRUGS))).height
    if bad_drug:
        raise ContractError(file, "cs_drug", f"expected one of {', '.join(CS_DRUGS)}; {bad_drug} rows have another value")

    for col in df.columns:
        if col not in static:
            continue
        var = static[col]
        if var.type == "numeric":
            df = _as_float(df, col, file)
        elif var.type == "binary":
            df = _as_binary(df, col, file)
        else:
            df = _as_string(df, col, file)
            if var.levels is not None:
                bad = df.filter(pl.col(col).is_not_null() & ~pl.col(col).is_in(list(var.levels))).height
                if bad:
                    raise ContractError(file, col, f"expected one of {list(var.levels)}, {bad} rows have another value")
        if df[col].null_count() == df.height:
            raise ContractError(file, col, "column is entirely missing; expected at least one value (drop the column if the database lacks it)")
        if var.type == "numeric" and var.range is not None:
            rlo, rhi = var.range
            mask = pl.col(col).is_not_null() & ((pl.col(col) < rlo) | (pl.col(col) > rhi))
            n_out = df.filter(mask).height
            n_known = df.height - df[col].null_count()
            if n_out and n_known and n_out / n_known > settings.max_out_of_range_share:
                raise ContractError(
                    file, col, f"{100 * n_out / n_known:.0f}% of values outside [{rlo:g}, {rhi:g}]; expected unit {var.unit or 'as in the dictionary'} (unit mix-up?)"
                )
            if n_out:
                if settings.out_of_range == "error":
                    raise ContractError(file, col, f"expected values in [{rlo:g}, {rhi:g}] {var.unit}, {n_out} are outside")
                df = df.with_columns(pl.when(mask).then(None).otherwise(pl.col(col)).alias(col))
                changes.append(dict(file=file, column=col, check=f"outside [{rlo:g}, {rhi:g}]", n=n_out, action="set to missing"))

    n_cs = int(df["cs"].sum())
    n_no = df.height - n_cs
    if min(n_cs, n_no) < settings.min_group_size:
        group = "cs = true" if n_cs < n_no else "cs = false"
        raise ContractError(
            file, "cs", f"expected at least {settings.min_group_size} stays in each treatment group, group {group} is too small"
        )
    out = settings.outcome
    if out in BINARY_OUTCOMES:
        n_classes = df[out].drop_nulls().n_unique()
        if n_classes < 2:
            raise ContractError(file, out, "expected both outcome classes (0 and 1) among known values, found one or none")
    timing = [c for c in TIMING_COLUMNS if c in df.columns]
    ordered = list(CORE_COLUMNS) + timing + sorted(c for c in df.columns if c not in CORE_COLUMNS and c not in TIMING_COLUMNS)
    return df.select(ordered).sort("stay_id"), changes


def validate_timeseries(
    ts: pl.DataFrame,
    cohort: pl.DataFrame,
    dictionary: Dictionary,
    settings: ContractSettings,
    file: str = "timeseries.parquet",
) -> tuple[pl.DataFrame, list[dict]]:
    """Check a long hourly table against the contract; return the cleaned table and change records."""
    changes: list[dict] = []
    missing = [c for c in TIMESERIES_COLUMNS if c not in ts.columns]
    if missing:
        raise ContractError(file, missing[0], "required column is missing; expected stay_id, hour, variable, value")
    extra = [c for c in ts.columns if c not in TIMESERIES_COLUMNS]
    if extra:
        raise ContractError(file, extra[0], "unknown column; expected only stay_id, hour, variable, value")
    ts = _as_id(ts, "stay_id", file)
    if not ts.schema["hour"].is_integer():
        if ts.schema["hour"].is_float() and ts.filter(pl.col("hour") != pl.col("hour").floor()).height == 0:
            ts = ts.with_columns(pl.col("hour").cast(pl.Int32))
        else:
            raise ContractError(file, "hour", f"expected integer hours from time zero, got dtype {ts.schema['hour']}")
    ts = ts.with_columns(pl.col("hour").cast(pl.Int32))
    ts = _as_string(ts, "variable", file)
    ts = _as_float(ts, "value", file)
    if ts["hour"].null_count() or ts["variable"].null_count():
        raise ContractError(file, "hour" if ts["hour"].null_count() else "variable", "expected no missing values")
    lo, hi = settings.window_start_h, settings.window_end_h
    n_out = ts.filter((pl.col("hour") < lo) | (pl.col("hour") > hi)).height
    if n_out:
        raise ContractError(file, "hour", f"expected hours within the time window [{lo}, {hi}], {n_out} rows are outside")
    hourly = dictionary.hourly
    unknown = sorted(set(ts["variable"].unique().to_list()) - set(hourly))
    if unknown:
        if settings.unknown_variables == "drop":
            n = ts.filter(pl.col("variable").is_in(unknown)).height
            ts = ts.filter(~pl.col("variable").is_in(unknown))
            changes.append(dict(file=file, column="variable", check=f"unknown variables: {', '.join(unknown[:5])}", n=n, action="dropped"))
        else:
            raise ContractError(file, "variable", f"unknown variable '{unknown[0]}'; expected an hourly variable of config/variables.yaml")
    orphan = ts.select("stay_id").unique().join(cohort.select("stay_id"), on="stay_id", how="anti").height
    if orphan:
        raise ContractError(file, "stay_id", f"expected every stay to be in the cohort file, {orphan} stays are not")
    dup = ts.height - ts.select("stay_id", "hour", "variable").n_unique()
    if dup:
        raise ContractError(file, "variable", f"expected one value per stay, hour and variable, found {dup} duplicates")
    ts = ts.filter(pl.col("value").is_not_null())
    # ranges
    ranges = pl.DataFrame(
        {
            "variable": [v.name for v in hourly.values() if v.range],
            "lo": [v.range[0] for v in hourly.values() if v.range],
            "hi": [v.range[1] for v in hourly.values() if v.range],
        },
        schema={"variable": pl.String, "lo": pl.Float64, "hi": pl.Float64},
    )
    flagged = ts.join(ranges, on="variable", how="left").with_columns(
        ((pl.col("value") < pl.col("lo")) | (pl.col("value") > pl.col("hi"))).fill_null(False).alias("_out")
    )
    counts = flagged.filter("_out").group_by("variable").len().sort("variable")
    totals = dict(ts.group_by("variable").len().iter_rows())
    for row in counts.iter_rows(named=True):
        share = row["len"] / totals[row["variable"]]
        if share > settings.max_out_of_range_share:
            v = hourly[row["variable"]]
            raise ContractError(
                file, "value", f"variable '{row['variable']}': {100 * share:.0f}% of values outside [{v.range[0]:g}, {v.range[1]:g}]; expected unit {v.unit} (unit mix-up?)"
            )
    if counts.height:
        if settings.out_of_range == "error":
            row = counts.row(0, named=True)
            v = hourly[row["variable"]]
            raise ContractError(file, "value", f"variable '{row['variable']}': expected values in [{v.range[0]:g}, {v.range[1]:g}] {v.unit}, {row['len']} are outside")
        for row in counts.iter_rows(named=True):
            v = hourly[row["variable"]]
            changes.append(
                dict(file=file, column=row["variable"], check=f"outside [{v.range[0]:g}, {v.range[1]:g}]", n=row["len"], action="removed")
            )
        ts = flagged.filter(~pl.col("_out"))
    ts = ts.select(TIMESERIES_COLUMNS).sort(["stay_id", "variable", "hour"])
    return ts, changes


def validate(
    cohort: pl.DataFrame,
    ts: pl.DataFrame,
    dictionary: Dictionary,
    settings: ContractSettings,
    cohort_file: str = "cohort.parquet",
    ts_file: str = "timeseries.parquet",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Validate both contract files; returns ``(cohort, timeseries, changes)``."""
    cohort, c1 = validate_cohort(cohort, dictionary, settings, cohort_file)
    ts, c2 = validate_timeseries(ts, cohort, dictionary, settings, ts_file)
    changes = pl.DataFrame(
        c1 + c2, schema={"file": pl.String, "column": pl.String, "check": pl.String, "n": pl.Int64, "action": pl.String}
    )
    return cohort, ts, changes
