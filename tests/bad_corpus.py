"""A corpus of bad inputs in the contract format, written by the tests (tests/data/bad/README.md).

Each case is a pair of files (cohort, time series) derived from a small valid simulated
database by one defect, with the one-line error the workflow must give: the rule that fails,
the column named and words of the expectation.  ``write_corpus(dest)`` writes every case
and returns the case table.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from sepsis_cs.simulate import SimulationSettings, simulate


@dataclass(frozen=True)
class Case:
    name: str
    defect: str
    rule: str | None  # rule expected to fail; None = must succeed (repaired and counted)
    column: str | None  # column named in the error
    words: str  # part of the expected message
    fmt: str = "parquet"  # parquet | csv | csv.gz
    lines: int = 1  # error lines expected (the validator reports every problem in one pass)


def _base():
    cohort, ts, _ = simulate(SimulationSettings(n_stays=120, repeat_stay_share=0.0), seed=99, database="bad")
    keep = ["map", "heart_rate", "lactate", "temperature", "creatinine", "sofa"]
    ts = ts.filter(pl.col("variable").is_in(keep))
    return cohort, ts


def _set(col, value, dtype=None):
    expr = pl.lit(value) if dtype is None else pl.lit(value, dtype=dtype)
    return lambda c: c.with_columns(expr.alias(col))


def _first_rows(col, value, n=3):
    return lambda c: c.with_columns(pl.when(pl.arange(0, pl.len()) < n).then(pl.lit(value)).otherwise(pl.col(col)).alias(col))


def _ts_var(var, fn):
    return lambda t: t.with_columns(pl.when(pl.col("variable") == var).then(fn(pl.col("value"))).otherwise(pl.col("value")).alias("value"))


Mut = Callable[[pl.DataFrame], pl.DataFrame]

# (case, cohort mutation, time-series mutation, raw-bytes mutation of the cohort file, raw of ts)
CASES: list[tuple[Case, Mut | None, Mut | None, Callable[[bytes], bytes] | None, Callable[[bytes], bytes] | None]] = [
    (Case("missing_column", "cohort without the `cs` column", "validate_cohort", "cs", "required column is missing"), lambda c: c.drop("cs"), None, None, None),
    (Case("renamed_column", "`age` renamed `age_years`", "validate_cohort", "age", "required column is missing"), lambda c: c.rename({"age": "age_years"}), None, None, None),
    (Case("unknown_column", "an undeclared column", "validate_cohort", "favourite_colour", "unknown column"), _set("favourite_colour", "blue"), None, None, None),
    (Case("wrong_dtype_numeric", "age stored as text", "validate_cohort", "age", "expected a numeric column"), lambda c: c.with_columns(pl.col("age").cast(pl.String)), None, None, None),
    (Case("wrong_dtype_id", "stay_id stored as float", "validate_cohort", "stay_id", "integer or string identifier", lines=2), lambda c: c.with_columns(pl.col("stay_id").cast(pl.Float64)), lambda t: t.with_columns(pl.col("stay_id").cast(pl.Float64)), None, None),
    (Case("duplicate_stay", "a stay_id twice", "validate_cohort", "stay_id", "duplicated stay_id"), lambda c: pl.concat([c, c.head(1)]), None, None, None),
    (Case("missing_patient_id", "null patient_id", "validate_cohort", "patient_id", "no missing identifiers"), _first_rows("patient_id", None), None, None, None),
    (Case("stay_not_in_cohort", "time-series stay absent from cohort", "validate_cohort", "stay_id", "in the cohort file"), lambda c: c.tail(c.height - 1), None, None, None),
    (Case("hours_beyond_window", "hour -48 (which also duplicates stay-hour-variable rows)", "validate_cohort", "hour", "time window", lines=2), None, lambda t: t.with_columns(pl.when(pl.arange(0, pl.len()) < 4).then(-48).otherwise(pl.col("hour")).alias("hour")), None, None),
    (Case("fractional_hours", "hour 1.5", "validate_cohort", "hour", "integer hours"), None, lambda t: t.with_columns((pl.col("hour").cast(pl.Float64) + 0.5).alias("hour")), None, None),
    (Case("map_900", "MAP 900 in a few rows (repaired: removed and counted)", None, None, "outside"), None, lambda t: t.with_columns(pl.when((pl.col("variable") == "map") & (pl.arange(0, pl.len()) % 50 == 0)).then(900.0).otherwise(pl.col("value")).alias("value")), None, None),
    (Case("age_minus_3", "age -3 in 3 stays (repaired: set missing and counted)", None, None, "outside"), _first_rows("age", -3.0), None, None, None),
    (Case("unit_fahrenheit", "temperature in Fahrenheit", "validate_cohort", "value", "unit mix-up"), None, _ts_var("temperature", lambda v: v * 9 / 5 + 32), None, None),
    (Case("unit_creatinine_umol", "creatinine in umol/L", "validate_cohort", "value", "unit mix-up"), None, _ts_var("creatinine", lambda v: v * 88.4), None, None),
    (Case("unit_weight_grams", "weight in grams", "validate_cohort", "weight", "unit mix-up"), lambda c: c.with_columns(pl.col("weight") * 1000), None, None, None),
    (Case("empty_cohort_file", "cohort file of 0 bytes", "ingest_contract", None, "file is empty"), None, None, lambda b: b"", None),
    (Case("empty_cohort", "cohort with a header and no rows", "validate_cohort", None, "cohort is empty"), lambda c: c.head(0), lambda t: t.head(0), None, None),
    (Case("cs_group_zero", "nobody treated", "validate_cohort", "cs", "too small"), lambda c: c.with_columns(pl.lit(False).alias("cs"), pl.lit(None, dtype=pl.Float64).alias("cs_start_h"), pl.lit(None, dtype=pl.String).alias("cs_drug"), pl.lit(None, dtype=pl.Float64).alias("cs_hydrocortisone_eq_mg_24h")), None, None, None),
    (Case("cs_group_three", "three treated stays", "validate_cohort", "cs", "too small"), lambda c: c.with_columns((pl.col("cs") & (pl.col("cs").cum_sum() <= 3)).alias("cs")).with_columns(*(pl.when(pl.col("cs")).then(pl.col(k)).otherwise(None).alias(k) for k in ("cs_start_h", "cs_drug", "cs_hydrocortisone_eq_mg_24h"))), None, None, None),
    (Case("outcome_one_class", "every stay survived", "validate_cohort", "hospital_mortality", "both outcome classes"), _set("hospital_mortality", 0, pl.Int8), None, None, None),
    (Case("all_missing_variable", "weight entirely missing", "validate_cohort", "weight", "entirely missing"), _set("weight", None, pl.Float64), None, None, None),
    (Case("treated_without_start", "cs true, no start hour", "validate_cohort", "cs_start_h", "start hour"), lambda c: c.with_columns(pl.when(pl.col("cs")).then(None).otherwise(pl.col("cs_start_h")).alias("cs_start_h")), None, None, None),
    (Case("cs_start_outside_window", "CS started at 40 h", "validate_cohort", "cs_start_h", "within [0, 24]"), lambda c: c.with_columns(*(pl.when(pl.col("cs")).then(40.0).otherwise(pl.col(k) if k == "cs_first_h" else None).alias(k) for k in ("cs_start_h", "cs_first_h") if k in c.columns)), None, None, None),
    (Case("unknown_cs_drug", "CS drug 'budesonide'", "validate_cohort", "cs_drug", "expected one of"), lambda c: c.with_columns(pl.when(pl.col("cs")).then(pl.lit("budesonide")).otherwise(None).alias("cs_drug")), None, None, None),
    (Case("bad_category_level", "sex 'X'", "validate_cohort", "sex", "expected one of"), _set("sex", "X"), None, None, None),
    (Case("binary_not_01", "diabetes coded 1/2", "validate_cohort", "diabetes", "binary"), lambda c: c.with_columns(pl.col("diabetes") + 1), None, None, None),
    (Case("unknown_variable", "an undeclared hourly variable", "validate_cohort", "variable", "unknown variable"), None, lambda t: t.with_columns(pl.when(pl.arange(0, pl.len()) < 5).then(pl.lit("unobtainium")).otherwise(pl.col("variable")).alias("variable")), None, None),
    (Case("duplicate_measurement", "two values for one stay-hour-variable", "validate_cohort", "variable", "duplicates"), None, lambda t: pl.concat([t, t.head(3)]), None, None),
    (Case("ts_missing_column", "time series without `value`", "validate_cohort", "value", "required column is missing"), None, lambda t: t.drop("value"), None, None),
    (Case("ts_extra_column", "time series with a `unit` column", "validate_cohort", "unit", "unknown column"), None, lambda t: t.with_columns(pl.lit("mmHg").alias("unit")), None, None),
    (Case("ts_value_text", "values stored as text", "validate_cohort", "value", "numeric"), None, lambda t: t.with_columns(pl.col("value").cast(pl.String)), None, None),
    (Case("truncated_parquet", "cohort Parquet cut in half", "ingest_contract", None, "truncated"), None, None, lambda b: b[: len(b) // 2], None),
    (Case("truncated_csv_gz", "time series csv.gz cut in half", "ingest_contract", None, "truncated or corrupt", fmt="csv.gz"), None, None, None, lambda b: b[: len(b) // 2]),
    (Case("non_utf8_csv", "cohort CSV with Latin-1 bytes", "ingest_contract", None, "expected UTF-8", fmt="csv"), None, None, lambda b: b.replace(b"medical", "m\u00e9dical".encode("latin-1"), 1), None),
    (Case("csv_ragged", "cohort CSV with a ragged row", "ingest_contract", None, "well-formed CSV", fmt="csv"), None, None, lambda b: b + b",".join(b"1" for _ in range(60)) + b"\n", None),
    (Case("good_csv", "a valid database delivered as CSV (control)", None, None, "", fmt="csv"), None, None, None, None),
    (Case("negative_icu_los", "ICU length of stay -2 days", "validate_cohort", "icu_los_days", "length of stay >= 0"), _first_rows("icu_los_days", -2.0), None, None, None),
    (Case("untreated_with_start", "untreated stays with a CS start hour", "validate_cohort", "cs_start_h", "no CS start hour for untreated"), lambda c: c.with_columns(pl.when(~pl.col("cs")).then(5.0).otherwise(pl.col("cs_start_h")).alias("cs_start_h")), None, None, None),
    (Case("nan_start_hour", "NaN as the start hour of treated stays", "validate_cohort", "cs_start_h", "NaN"), lambda c: c.with_columns(pl.when(pl.col("cs")).then(float("nan")).otherwise(None).alias("cs_start_h")), None, None, None),
    (Case("mortality_not_01", "hospital mortality coded 1/2", "validate_cohort", "hospital_mortality", "binary"), lambda c: c.with_columns(pl.col("hospital_mortality") + 1), None, None, None),
    (Case("ids_do_not_match", "time-series ids prefixed 'S-'", "validate_cohort", "stay_id", "no stay_id in common"), None, lambda t: t.with_columns(("S-" + pl.col("stay_id").cast(pl.String)).alias("stay_id")), None, None),
    (Case("csv_named_parquet", "a CSV file named cohort.parquet", "ingest_contract", None, "rename it .csv"), None, None, lambda b: pl.read_parquet(io.BytesIO(b)).write_csv().encode(), None),
    (Case("non_utf8_parquet", "cohort Parquet whose sex column is not UTF-8 text", "ingest_contract", "sex", "UTF-8"), None, None, lambda b: _not_utf8(b, "sex"), None),
    (Case("pandas_index", "cohort saved from a shuffled pandas frame (index column ignored with a note)", None, None, "pandas index"), None, None, lambda b: _pandas_filtered(b), None),
    (Case("empty_timeseries", "time series with a header and no rows (warning)", None, None, "no hourly values"), None, lambda t: t.head(0), None, None),
]


def _not_utf8(parquet: bytes, column: str) -> bytes:
    """The Parquet file with one text column holding Latin-1 bytes (what some exporters write)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet))
    values = [("\u00e9" + v if v else "").encode("latin-1") for v in table[column].to_pylist()]
    offsets = pa.array([0, *(sum(len(x) for x in values[: i + 1]) for i in range(len(values)))], type=pa.int32()).buffers()[1]
    bad = pa.Array.from_buffers(pa.string(), len(values), [None, offsets, pa.py_buffer(b"".join(values))])
    out = io.BytesIO()
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, bad), out)
    return out.getvalue()


def _pandas_filtered(parquet: bytes) -> bytes:
    df = pl.read_parquet(io.BytesIO(parquet)).to_pandas()
    out = io.BytesIO()
    df.sample(frac=1.0, random_state=0).to_parquet(out)  # a shuffled frame keeps its index: written as __index_level_0__
    return out.getvalue()


def _write(df: pl.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.write_parquet(path)
    elif fmt == "csv":
        df.write_csv(path)
    else:
        with gzip.open(path, "wb") as fh:
            fh.write(df.write_csv().encode())


def write_corpus(dest: Path) -> list[Case]:
    """Write every case under ``dest/<case>/`` and return the cases."""
    cohort0, ts0 = _base()
    out = []
    for case, cmut, tmut, craw, traw in CASES:
        d = dest / case.name
        d.mkdir(parents=True, exist_ok=True)
        c = cmut(cohort0) if cmut else cohort0
        t = tmut(ts0) if tmut else ts0
        cpath, tpath = d / f"cohort.{case.fmt}", d / f"timeseries.{case.fmt}"
        _write(c, cpath, case.fmt)
        _write(t, tpath, case.fmt)
        if craw:
            cpath.write_bytes(craw(cpath.read_bytes()))
        if traw:
            tpath.write_bytes(traw(tpath.read_bytes()))
        out.append(case)
    return out
