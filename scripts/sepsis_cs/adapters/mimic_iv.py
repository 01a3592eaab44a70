"""MIMIC-IV (v2.x, hosp/ + icu/ modules) -> cohort contract.

Each raw table is read with one lazy polars plan (``scan_csv`` on ``.csv.gz``/``.csv`` or
``scan_parquet``), filtered to the concept itemids and the candidate stays before anything is
materialised, and collected with the streaming engine.  Times become hours since ICU admission.

Mortality: ``admissions.hospital_expire_flag``; 28-day mortality from ``deathtime`` or
``patients.dod`` (state death records, out-of-hospital deaths up to one year after discharge, so
survival is known for 28 days); ICU length of stay from ``icustays``.  CS and antibiotic orders
come from ``prescriptions`` (order start times; doses = ``dose_val_rx`` x ``doses_per_24_hrs``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import polars as pl
import polars.selectors as cs

from ..dictionary import Dictionary
from ..errors import UserInputError
from .tables import MIMIC_IV_TABLES, mimic_iv_path
from .common import (
    CohortDefinition,
    IngestResult,
    aggregate_hourly,
    build_cohort,
    check_concepts,
    match_cs_drug,
    suspected_infection,
    variable_specs,
    vasopressor_hourly,
)

log = logging.getLogger("sepsis_cs")

TABLES = MIMIC_IV_TABLES
REQUIRED = ("patients", "admissions", "icustays", "prescriptions", "microbiologyevents")
TS = "%Y-%m-%d %H:%M:%S"


def table_path(root: str | Path, table: str) -> Path | None:
    """The file of a logical table (.parquet, .csv.gz or .csv), or None when absent."""
    return mimic_iv_path(root, table)


def scan(root: str | Path, table: str) -> pl.LazyFrame:
    p = table_path(root, table)
    if p is None:
        raise UserInputError(Path(root) / TABLES[table], None, "required MIMIC-IV table is missing (expected .csv.gz, .csv or .parquet)")
    if p.suffix == ".parquet":
        # same plan as for CSV: text columns, timestamps in the CSV format
        return pl.scan_parquet(p).with_columns(
            cs.datetime().dt.strftime(TS), cs.date().dt.strftime("%Y-%m-%d"), (~cs.temporal()).cast(pl.String)
        )
    # every column as text, numbers cast explicitly where needed: robust to odd rows
    return pl.scan_csv(p, infer_schema=False)


def _ts(col: str) -> pl.Expr:
    return pl.col(col).str.to_datetime(TS, strict=False)


def _num(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Float64, strict=False)


def _int(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Int64, strict=False)


def _hours(col: str) -> pl.Expr:
    return (_ts(col) - pl.col("intime")).dt.total_seconds() / 3600.0


def _require_columns(lf: pl.LazyFrame, table: str, cols: list[str], root) -> None:
    have = lf.collect_schema().names()
    for c in cols:
        if c not in have:
            raise UserInputError(table_path(root, table), c, "required column is missing (MIMIC-IV schema v2)")


def load_stays(root) -> pl.DataFrame:
    icu = scan(root, "icustays")
    _require_columns(icu, "icustays", ["subject_id", "hadm_id", "stay_id", "intime", "outtime"], root)
    pat = scan(root, "patients").select(_int("subject_id").alias("subject_id"), "gender", _num("anchor_age").alias("anchor_age"), _int("anchor_year").alias("anchor_year"), pl.col("dod"))
    adm = scan(root, "admissions").select(
        _int("hadm_id").alias("hadm_id"), _ts("deathtime").alias("deathtime"), _ts("dischtime").alias("dischtime"),
        pl.col("admission_type"), _int("hospital_expire_flag").alias("hospital_expire_flag"),
    )
    s = (
        icu.select(_int("subject_id").alias("subject_id"), _int("hadm_id").alias("hadm_id"), _int("stay_id").alias("stay_id"), _ts("intime").alias("intime"), _ts("outtime").alias("outtime"))
        .join(pat, on="subject_id", how="left")
        .join(adm, on="hadm_id", how="left")
        .collect(engine="streaming")
    )
    dod = pl.col("dod").str.slice(0, 10).str.to_datetime("%Y-%m-%d", strict=False)
    death = pl.coalesce(pl.col("deathtime"), dod)
    s = s.with_columns(
        (pl.col("anchor_age") + pl.col("intime").dt.year() - pl.col("anchor_year")).alias("age"),
        pl.col("gender").replace_strict({"F": "F", "M": "M"}, default=None).alias("sex"),
        ((pl.col("outtime") - pl.col("intime")).dt.total_seconds() / 3600.0).alias("icu_out_h"),
        ((death - pl.col("intime")).dt.total_seconds() / 3600.0).alias("death_h"),
        pl.lit(math.inf).alias("alive_known_until_h"),
        pl.col("hospital_expire_flag").cast(pl.Int8).alias("hospital_mortality"),
        (pl.col("deathtime").is_not_null() & (pl.col("deathtime") <= pl.col("outtime") + pl.duration(hours=6))).alias("died_in_icu"),
        pl.col("intime").rank("ordinal").over("subject_id").alias("stay_rank"),
        pl.col("subject_id").cast(pl.String).alias("patient_id"),
    )
    return s


def _item_map(concepts_db: dict, table: str) -> pl.DataFrame:
    rows = []
    for var, sources in concepts_db["hourly"].items():
        for src in sources:
            if src["table"] != table:
                continue
            for item in src.get("itemid", []):
                rows.append((int(item), var, float(src.get("factor", 1.0)), float(src.get("offset", 0.0)), src.get("convert") == "fahrenheit_to_celsius"))
    return pl.DataFrame(rows, schema={"itemid": pl.Int64, "variable": pl.String, "factor": pl.Float64, "offset": pl.Float64, "f2c": pl.Boolean}, orient="row")


def _events(lf: pl.LazyFrame, items: pl.DataFrame, stays: pl.DataFrame, key: str, time_col: str, value_col: str) -> pl.LazyFrame:
    """One lazy plan: filter itemids, join candidate stays, convert units -> stay_id, t_h, variable, value."""
    v = _num(value_col)
    lf = lf.select(_int(key).alias(key), _int("itemid").alias("itemid"), pl.col(time_col), v.alias("v"))
    lf = lf.filter(pl.col("itemid").is_in(items["itemid"].implode()))
    cols = [key, "intime"] if key == "stay_id" else [key, "stay_id", "intime"]
    lf = lf.join(items.lazy(), on="itemid").join(stays.select(cols).lazy(), on=key)
    val = pl.when(pl.col("f2c")).then((pl.col("v") - 32.0) * (5.0 / 9.0)).otherwise(pl.col("v")) * pl.col("factor") + pl.col("offset")
    return lf.select(pl.col("stay_id"), _hours(time_col).alias("t_h"), "variable", val.alias("value"))


def ingest(root: str | Path, database: str, config: dict, concepts: dict, dictionary: Dictionary) -> IngestResult:
    """Read MIMIC-IV from ``root`` and return the contract files of the configured cohort."""
    d = CohortDefinition.from_config(config)
    check_concepts(concepts, "mimic_iv", dictionary)
    cdb = concepts["mimic_iv"]
    for t in REQUIRED:
        if table_path(root, t) is None:
            raise UserInputError(Path(root) / TABLES[t], None, "required MIMIC-IV table is missing (expected .csv.gz, .csv or .parquet)")
    stays = load_stays(root)
    log.info("%d ICU stays", stays.height)
    cand = stays.filter(pl.col("age") >= d.min_age)
    if d.first_stay_only:
        cand = cand.filter(pl.col("stay_rank") == 1)

    # ---- antibiotics and CS orders (prescriptions), cultures (microbiologyevents)
    rx = (
        scan(root, "prescriptions")
        .select(_int("hadm_id").alias("hadm_id"), "starttime", "drug", "route", _num("dose_val_rx").alias("dose"),
                pl.col("dose_val_rx"), "dose_unit_rx", _num("doses_per_24_hrs").alias("per_day"))
        .join(cand.select("hadm_id", "stay_id", "intime").lazy(), on="hadm_id")
        .with_columns(_hours("starttime").alias("t_h"))
    )
    ab = concepts["antibiotics"]
    abx = rx.filter(pl.col("drug").str.contains(ab["name_regex"]) & ~pl.col("route").fill_null("").str.contains(ab["route_exclude"])).select("stay_id", "t_h").collect(engine="streaming")
    cs_raw = (
        rx.with_columns(match_cs_drug(pl.col("drug"), concepts).alias("cs_drug"))
        .filter(pl.col("cs_drug").is_not_null())
        .filter(~pl.col("route").fill_null("").str.contains(concepts["cs_route_exclude"]) & ~pl.col("drug").str.contains(concepts["cs_name_exclude"]))
        .collect(engine="streaming")
    )
    first_num = pl.col("dose_val_rx").str.extract(r"([0-9]*\.?[0-9]+)").cast(pl.Float64, strict=False)
    cs_orders = cs_raw.select(
        "stay_id", "t_h", pl.col("cs_drug").alias("drug"),
        pl.when(pl.col("dose_unit_rx").str.to_lowercase() == "mg").then(first_num * pl.col("per_day").fill_null(1.0)).alias("daily_mg"),
    )
    micro = (
        scan(root, "microbiologyevents")
        .select(_int("subject_id").alias("subject_id"), "micro_specimen_id", pl.coalesce("charttime", "chartdate").alias("ct"), "spec_type_desc")
        .unique(subset=["micro_specimen_id"], keep="first")
        .join(cand.select("subject_id", "stay_id", "intime").lazy(), on="subject_id")
        .select("stay_id", _hours("ct").alias("t_h"), pl.col("spec_type_desc").alias("specimen"))
        .filter(pl.col("t_h").is_between(d.onset_search_start_h - d.culture_then_abx_h - 1, d.onset_search_end_h + d.abx_then_culture_h + 1))
        .collect(engine="streaming")
    )
    abx = abx.filter(pl.col("t_h").is_between(d.onset_search_start_h - d.abx_then_culture_h - 1, d.onset_search_end_h + d.culture_then_abx_h + 1))

    # ---- hourly events of the stays with a suspected infection (one lazy plan per table)
    si_ids = suspected_infection(abx, micro.select("stay_id", "t_h"), d).select("stay_id")
    ev_stays = cand.join(si_ids, on="stay_id")
    log.info("%d candidate stays, %d with suspected infection", cand.height, ev_stays.height)
    specs = variable_specs(dictionary, concepts)
    grid = d.grid
    pieces, events = [], []
    key_of = {"chartevents": ("stay_id", "charttime", "valuenum"), "labevents": ("hadm_id", "charttime", "valuenum"), "outputevents": ("stay_id", "charttime", "value")}
    for table, (key, tcol, vcol) in key_of.items():
        items = _item_map(cdb, table)
        if items.height == 0 or table_path(root, table) is None:
            if items.height:
                log.warning("table %s absent: its concepts are skipped", table)
            continue
        events.append(_events(scan(root, table), items, ev_stays, key, tcol, vcol))
    if events:
        # one variable may come from several tables (glucose): aggregate after concatenation
        pieces.append(aggregate_hourly(pl.concat(events), specs, grid).collect(engine="streaming"))
    # vasopressors (inputevents intervals), weight, ventilation
    vaso_rows = [(int(i), name, float(v["factor"])) for name, v in cdb["vasopressors"].items() for i in v["itemid"]]
    vmap = pl.DataFrame(vaso_rows, schema={"itemid": pl.Int64, "drug": pl.String, "factor": pl.Float64}, orient="row")
    if table_path(root, "inputevents") is not None:
        iv = (
            scan(root, "inputevents")
            .select(_int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), "starttime", "endtime", _num("rate").alias("rate"), "statusdescription")
            .filter(pl.col("itemid").is_in(vmap["itemid"].implode()) & (pl.col("statusdescription").fill_null("") != "Rewritten"))
            .join(vmap.lazy(), on="itemid")
            .join(ev_stays.select("stay_id", "intime").lazy(), on="stay_id")
            .select("stay_id", "drug", _hours("starttime").alias("start_h"), _hours("endtime").alias("end_h"), (pl.col("rate") * pl.col("factor")).alias("rate_ne"))
        )
        ne, vaso_any = vasopressor_hourly(iv, d.vaso_grid_end, grid[0])
        pieces.append(ne.filter(pl.col("hour_icu") <= grid[1]).collect(engine="streaming"))
        vaso_any = vaso_any.collect(engine="streaming")
    else:
        vaso_any = pl.DataFrame(schema={"stay_id": pl.Int64, "hour_icu": pl.Int32})
    hourly = pl.concat(pieces) if pieces else pl.DataFrame(schema={"stay_id": pl.Int64, "hour_icu": pl.Int32, "variable": pl.String, "value": pl.Float64})

    ventilation = None
    if table_path(root, "procedureevents") is not None:
        ventilation = (
            scan(root, "procedureevents")
            .select(_int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), "starttime", "endtime")
            .filter(pl.col("itemid").is_in([int(i) for i in cdb.get("ventilation_itemids", [])]))
            .join(cand.select("stay_id", "intime").lazy(), on="stay_id")
            .select("stay_id", _hours("starttime").alias("start_h"), _hours("endtime").alias("end_h"))
            .collect(engine="streaming")
        )

    stays = _add_static(root, stays, cand, cdb)
    cohort, ts, attrition, stats = build_cohort(
        database=database, stays=stays, hourly=hourly, vaso_any=vaso_any, abx=abx, cultures=micro,
        cs_orders=cs_orders, cs_chronic=pl.DataFrame(schema={"stay_id": pl.Int64}), concepts=concepts, dictionary=dictionary, d=d,
        ventilation=ventilation, source_regex=cdb.get("infection_source"),
    )
    return IngestResult(cohort, ts, attrition, stats)


def _add_static(root, stays: pl.DataFrame, cand: pl.DataFrame, cdb: dict) -> pl.DataFrame:
    """Weight, comorbidities (ICD prefixes) and admission type of the candidate stays."""
    out = stays
    # weight: first charted admission/daily weight in the stay
    items = [int(i) for src in cdb.get("weight", []) for i in src.get("itemid", [])]
    if items and table_path(root, "chartevents") is not None:
        w = (
            scan(root, "chartevents")
            .select(_int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), "charttime", _num("valuenum").alias("weight"))
            .filter(pl.col("itemid").is_in(items) & pl.col("weight").is_between(25, 300))
            .join(cand.select("stay_id").lazy(), on="stay_id")
            .sort("stay_id", "charttime")
            .group_by("stay_id")
            .agg(pl.col("weight").first())
            .collect(engine="streaming")
        )
        out = out.join(w, on="stay_id", how="left")
    if table_path(root, "diagnoses_icd") is not None:
        dx = (
            scan(root, "diagnoses_icd")
            .select(_int("hadm_id").alias("hadm_id"), "icd_code", "icd_version")
            .join(cand.select("hadm_id").lazy(), on="hadm_id")
            .collect(engine="streaming")
        )
        for name, codes in cdb.get("comorbidities", {}).items():
            hit = pl.lit(False)
            for ver, key in (("9", "icd9"), ("10", "icd10")):
                prefixes = codes.get(key, [])
                if prefixes:
                    hit = hit | ((pl.col("icd_version") == ver) & pl.col("icd_code").str.starts_with(prefixes[0]))
                    for p in prefixes[1:]:
                        hit = hit | ((pl.col("icd_version") == ver) & pl.col("icd_code").str.starts_with(p))
            ids = dx.filter(hit)["hadm_id"].unique()
            out = out.with_columns(pl.col("hadm_id").is_in(ids.implode()).cast(pl.Int8).alias(name))
    surgical = set(cdb.get("surgical_services", []))
    if table_path(root, "services") is not None:
        sv = (
            scan(root, "services")
            .select(_int("hadm_id").alias("hadm_id"), _ts("transfertime").alias("tt"), "curr_service")
            .join(cand.select("hadm_id", "stay_id", "intime").lazy(), on="hadm_id")
            .filter(pl.col("tt") <= pl.col("intime") + pl.duration(hours=24))
            .collect(engine="streaming")
        )
        surg_ids = sv.filter(pl.col("curr_service").is_in(list(surgical)))["stay_id"].unique()
        out = out.with_columns(
            pl.when(pl.col("stay_id").is_in(surg_ids.implode()) & pl.col("admission_type").str.contains("(?i)elective|surgical same day"))
            .then(pl.lit("surgical_elective"))
            .when(pl.col("stay_id").is_in(surg_ids.implode()))
            .then(pl.lit("surgical_emergency"))
            .otherwise(pl.lit("medical"))
            .alias("admission_type")
        )
    else:
        out = out.drop("admission_type")
    return out
