"""Bring-your-own mimic-code derived tables for a ``mimic_iv`` database.

Many MIMIC-IV users already have MIT-LCP mimic-code's ``mimiciv_derived`` schema (DuckDB, or
exported from PostgreSQL / BigQuery).  With ``databases.<name>.derived`` set, the adapter takes

- ``sepsis3`` (required): the Sepsis-3 stays, their suspected-infection time and SOFA time;
- ``sofa`` (optional): the hourly 24-h-worst SOFA and its components (else computed as usual);
- ``suspicion_of_infection`` (optional): every suspected infection (the attrition step's count;
  else computed as usual)

from a DuckDB file (``derived: {duckdb: path}``, schema ``mimiciv_derived``) or from CSV/Parquet
exports (``derived: {sepsis3: path, sofa: path, suspicion_of_infection: path}``), instead of
computing them; time zero, the onset window and every later step are unchanged.  Each table is
checked for its columns and values (one line per problem, ``sepsis_cs.reference.read_derived``).
"""

from __future__ import annotations

import polars as pl

from ..reference import read_derived
from ..sofa import SOFA_COMPONENTS
from .mimic_iv_concepts import hour_of, to_hours

SOFA_FROM = {
    "sofa_resp": "respiration_24hours",
    "sofa_coag": "coagulation_24hours",
    "sofa_liver": "liver_24hours",
    "sofa_cardio": "cardiovascular_24hours",
    "sofa_cns": "cns_24hours",
    "sofa_renal": "renal_24hours",
}


def tables_of(derived: dict) -> tuple[str, ...]:
    """The derived tables a setting provides (sepsis3 always)."""
    if derived.get("duckdb"):
        return ("sepsis3", "sofa", "suspicion_of_infection")
    return tuple(t for t in ("sepsis3", "sofa", "suspicion_of_infection") if t == "sepsis3" or derived.get(t))


def load_derived(derived: dict, cand: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Derived tables in hours of the candidate stays (``cand``: ``stay_id, origin``).

    Returns ``sepsis`` (``stay_id, si_h, sofa_h``), and when given ``sofa`` (``stay_id, hour_icu``,
    the six components and ``sofa``) and ``si_events`` (``stay_id, si_h, abx_h, culture_h``).
    """
    raw = read_derived(derived, tables_of(derived))
    st = cand.select("stay_id", "origin")
    out = {}
    s = raw["sepsis3"].filter(pl.col("sepsis3").fill_null(False)).join(st, on="stay_id")
    out["sepsis"] = s.select(
        "stay_id", to_hours(pl.col("suspected_infection_time")).alias("si_h"), hour_of(to_hours(pl.col("sofa_time"))).alias("sofa_h")
    ).unique("stay_id", keep="first").sort("stay_id")
    if "sofa" in raw:
        f = raw["sofa"].join(st, on="stay_id")
        out["sofa"] = f.select(
            "stay_id", hour_of(to_hours(pl.col("endtime"))).alias("hour_icu"),
            *[pl.col(src).cast(pl.Int8).alias(dst) for dst, src in SOFA_FROM.items()],
            pl.col("sofa_24hours").cast(pl.Int8).alias("sofa"),
        )
    if "suspicion_of_infection" in raw:
        si = raw["suspicion_of_infection"].filter(pl.col("suspected_infection").fill_null(False)).join(st, on="stay_id")
        out["si_events"] = si.select(
            "stay_id", to_hours(pl.col("suspected_infection_time")).alias("si_h"),
            to_hours(pl.col("antibiotic_time")).alias("abx_h"), to_hours(pl.col("culture_time")).alias("culture_h"),
        ).sort("stay_id", "si_h")
    return out


def replace_sofa(filled: pl.DataFrame, sofa: pl.DataFrame) -> pl.DataFrame:
    """The hourly SOFA columns of ``filled`` replaced by the derived table's where it has the hour
    (the hours of the ICU stay); other hours (before ICU admission) keep the computed values."""
    cols = ["sofa", *SOFA_COMPONENTS]
    d = sofa.rename({c: f"_d_{c}" for c in cols}).with_columns(pl.lit(True).alias("_d"))
    out = filled.join(d, on=["stay_id", "hour_icu"], how="left")
    return out.with_columns(
        *[pl.when(pl.col("_d")).then(pl.col(f"_d_{c}")).otherwise(pl.col(c)).cast(pl.Int8).alias(c) for c in cols],
        (pl.col("_d").fill_null(False) | pl.col("sofa_known")).alias("sofa_known"),
    ).drop(*[f"_d_{c}" for c in cols], "_d")
