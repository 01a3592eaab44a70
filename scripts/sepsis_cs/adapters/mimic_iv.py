"""MIMIC-IV (v2.x, hosp/ + icu/ modules) -> cohort contract.

Each raw table is read with one lazy polars plan (``scan_csv`` on ``.csv.gz``/``.csv`` or
``scan_parquet``), filtered to the concept itemids and the candidate stays before anything is
materialised, and collected with the streaming engine.  Times become hours since ICU admission.

Mortality: ``admissions.hospital_expire_flag``; 28-day mortality from ``deathtime`` or
``patients.dod`` (state death records, out-of-hospital deaths up to one year after discharge, so
survival is known for 28 days); ICU length of stay from ``icustays``.  Antibiotic orders come from
``prescriptions``.  Corticosteroids are the doses **administered** according to ``emar`` /
``emar_detail`` (route from ``emar_detail`` or ``pharmacy``), with ``prescriptions`` (expanded by
frequency) only for admissions without any eMAR record (:func:`read_cs_events`).  Event times: death
from ``deathtime`` or ``dod`` (state records up to one year after discharge, so vital status is
followed to one year after hospital discharge: ``followup_end_h``).
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
    suspected_infection,
    variable_specs,
    vasopressor_hourly,
)
from .exposure import EVENT_SCHEMA, AdministrationSettings, dose_mg, expand_orders, match_cs_drug

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
    # dod is a date: an out-of-hospital death is placed no earlier than the hospital discharge
    death = pl.coalesce(pl.col("deathtime"), pl.when(dod.is_not_null()).then(pl.max_horizontal(dod, pl.col("dischtime"))))
    s = s.with_columns(
        (pl.col("anchor_age") + pl.col("intime").dt.year() - pl.col("anchor_year")).alias("age"),
        pl.col("gender").replace_strict({"F": "F", "M": "M"}, default=None).alias("sex"),
        ((pl.col("outtime") - pl.col("intime")).dt.total_seconds() / 3600.0).alias("icu_out_h"),
        ((death - pl.col("intime")).dt.total_seconds() / 3600.0).alias("death_h"),
        ((pl.col("dischtime") - pl.col("intime")).dt.total_seconds() / 3600.0).alias("hosp_out_h"),
        # state death records reach one year after discharge (MIMIC-IV documentation)
        ((pl.col("dischtime") - pl.col("intime")).dt.total_seconds() / 3600.0 + 365 * 24).alias("followup_end_h"),
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

    cs_events, emar_stays, cs_stats = read_cs_events(root, ev_stays, stays, concepts)
    stays = _add_static(root, stays, cand, cdb)
    cohort, ts, attrition, stats = build_cohort(
        database=database, stays=stays, hourly=hourly, vaso_any=vaso_any, abx=abx, cultures=micro,
        cs_events=cs_events, cs_home=pl.DataFrame(schema={"stay_id": pl.Int64}), concepts=concepts, dictionary=dictionary, d=d,
        ventilation=ventilation, source_regex=cdb.get("infection_source"),
    )
    stats.update(cs_stats)
    # cohort ICU stays not documented in eMAR: their CS doses come from prescriptions
    in_cohort = cohort.join(emar_stays.select(pl.col("stay_id").cast(pl.String)), on="stay_id", how="anti")
    stats["n_cohort_icu_stays_without_emar"] = in_cohort.height
    stats["n_cs_in_icu_stays_without_emar"] = int(in_cohort["cs"].sum())
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


# ----------------------------------------------------------------------------- corticosteroids
def _with_segment(df: pl.DataFrame, icu: pl.DataFrame, by_unit: bool) -> pl.DataFrame:
    """Add ``segment``: the ICU stay (``icu_stay``) containing ``t_h`` in the row's admission, else -1
    (the rest of the admission).  ``icu``: ``stay_id, hadm_id, icu_stay, start_h, end_h`` in hours of
    the candidate stay ``stay_id``.  With ``by_unit`` false the whole admission is one segment."""
    if not by_unit or df.height == 0:
        return df.with_columns(pl.lit(-1, dtype=pl.Int64).alias("segment"))
    df = df.with_row_index("_r")
    hit = (
        df.select("_r", "stay_id", "hadm_id", "t_h")
        .join(icu, on=["stay_id", "hadm_id"], how="inner")
        .filter(pl.col("t_h").is_between(pl.col("start_h"), pl.col("end_h")))
        .group_by("_r")
        .agg(pl.col("icu_stay").min())
    )
    return df.join(hit, on="_r", how="left").with_columns(pl.col("icu_stay").fill_null(-1).cast(pl.Int64).alias("segment")).drop("_r", "icu_stay")


def read_cs_events(root, stays: pl.DataFrame, all_stays: pl.DataFrame, concepts: dict) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Systemic corticosteroid events of the patients of ``stays`` (see :mod:`.exposure`).

    - where eMAR documents the care (``cs_administration.emar_coverage``: ``care_unit`` = each ICU stay
      and the rest of each admission separately, since many admissions have eMAR on the ward only;
      ``admission`` = any eMAR record in the admission): the doses **given** (``event_txt`` matching
      ``emar_given_regex``: Administered, Delayed/Partial Administered, Started..., never Not Given,
      Hold Dose, Stopped), at ``charttime``; dose = the sum of ``emar_detail.dose_given`` over the
      product rows (e.g. 4 x 8 mg tablets), else the parent row's ``dose_due``; route from
      ``emar_detail`` or the ``pharmacy`` order.  ``prescriptions`` orders starting there count only as
      evidence of prior use (``orders_mark_prior_use``);
    - elsewhere (and without the eMAR tables): ``prescriptions`` orders expanded into scheduled doses
      (:func:`.exposure.expand_orders`; frequency text from ``pharmacy``, else ``doses_per_24_hrs``).

    All admissions of the patient are read (the look-back for prevalent use may reach an earlier one);
    doses after the hospital discharge of the stay are dropped.  ``all_stays``: every ICU stay of the
    database (segments).  Returns the events, the eMAR-covered segments ``stay_id, segment`` of the
    candidate stays' own ICU stays, and statistics.
    """
    settings = AdministrationSettings.from_concepts(concepts)
    by_unit = settings.emar_coverage == "care_unit"
    subjects = stays.select("subject_id").unique().lazy()
    pts = stays.select("subject_id", "stay_id", "intime", "hosp_out_h")
    # every ICU stay of these patients, in hours of each candidate stay
    icu = (
        all_stays.join(stays.select("subject_id"), on="subject_id", how="semi")
        .select("subject_id", "hadm_id", pl.col("stay_id").alias("icu_stay"), pl.col("intime").alias("icu_in"), pl.col("outtime").alias("icu_out"))
        .join(pts.select("subject_id", "stay_id", "intime"), on="subject_id")
        .select(
            "stay_id", "hadm_id", "icu_stay",
            ((pl.col("icu_in") - pl.col("intime")).dt.total_seconds() / 3600.0).alias("start_h"),
            ((pl.col("icu_out") - pl.col("intime")).dt.total_seconds() / 3600.0).alias("end_h"),
        )
    )
    not_route = pl.col("route").fill_null("").str.contains(concepts["cs_route_exclude"])
    stats: dict = {}
    parts = []
    covered = pl.DataFrame(schema={"stay_id": pl.Int64, "hadm_id": pl.Int64, "segment": pl.Int64})
    pharmacy = None
    if table_path(root, "pharmacy") is not None:
        pharmacy = scan(root, "pharmacy").select(_int("pharmacy_id").alias("pharmacy_id"), pl.col("route").alias("order_route"), "frequency")
    if table_path(root, "emar") is not None:
        emar = (
            scan(root, "emar")
            .select(_int("subject_id").alias("subject_id"), _int("hadm_id").alias("hadm_id"), "emar_id", _int("pharmacy_id").alias("pharmacy_id"), "charttime", "medication", "event_txt")
            .join(subjects, on="subject_id", how="semi")
        )
        # segments documented in eMAR (any drug): one row per admission and hour is enough
        hours = (
            emar.filter(pl.col("hadm_id").is_not_null())
            .select("subject_id", "hadm_id", _ts("charttime").dt.truncate("1h").alias("ct"))
            .unique()
            .collect(engine="streaming")
            .join(pts.select("subject_id", "stay_id", "intime"), on="subject_id")
            .select("stay_id", "hadm_id", ((pl.col("ct") - pl.col("intime")).dt.total_seconds() / 3600.0).alias("t_h"))
        )
        covered = _with_segment(hours, icu, by_unit).select("stay_id", "hadm_id", "segment").unique()
        given = (
            emar.with_columns(match_cs_drug(pl.col("medication").fill_null(""), concepts).alias("drug"))
            .filter(pl.col("drug").is_not_null() & ~pl.col("medication").fill_null("").str.contains(concepts["cs_name_exclude"]))
            .filter(pl.col("event_txt").fill_null("").str.strip_chars().str.contains(settings.emar_given_regex))
            .collect(engine="streaming")
        )
        dose = pl.DataFrame(schema={"emar_id": pl.String, "dose_mg": pl.Float64, "route": pl.String})
        if table_path(root, "emar_detail") is not None and given.height:
            det = (
                scan(root, "emar_detail")
                .select(_int("subject_id").alias("subject_id"), "emar_id", "parent_field_ordinal", "dose_due", "dose_due_unit", "dose_given", "dose_given_unit", "route")
                .join(subjects, on="subject_id", how="semi")
                .join(given.select("emar_id").lazy(), on="emar_id", how="semi")
                .collect(engine="streaming")
            )
            child = pl.col("parent_field_ordinal").is_not_null()
            given_mg = dose_mg(pl.col("dose_given"), pl.col("dose_given_unit"))
            due_mg = dose_mg(pl.col("dose_due"), pl.col("dose_due_unit"))
            dose = det.group_by("emar_id").agg(
                pl.coalesce(
                    pl.when(given_mg.filter(child).is_not_null().any()).then(given_mg.filter(child).sum()),
                    due_mg.filter(~child).first(),
                ).alias("dose_mg"),
                pl.col("route").drop_nulls().first().alias("route"),
            )
        e = given.join(dose, on="emar_id", how="left")
        if pharmacy is not None:
            e = e.join(pharmacy.join(e.select("pharmacy_id").drop_nulls().unique().lazy(), on="pharmacy_id", how="semi").collect(engine="streaming"),
                       on="pharmacy_id", how="left").with_columns(pl.coalesce("route", "order_route").alias("route"))
        stats["n_cs_emar_doses_non_systemic_route"] = int(e.select(not_route.sum()).item())
        parts.append(
            e.filter(~not_route).join(pts, on="subject_id")
            .select("stay_id", _hours("charttime").alias("t_h"), "drug", "dose_mg", pl.lit("administration").alias("evidence"), "hosp_out_h")
        )
    # prescriptions: doses in segments without eMAR are taken from the orders; elsewhere orders are prior-use evidence
    rx = (
        scan(root, "prescriptions")
        .select(_int("subject_id").alias("subject_id"), _int("hadm_id").alias("hadm_id"), _int("pharmacy_id").alias("pharmacy_id"), "starttime", "stoptime",
                "drug", "route", "dose_val_rx", "dose_unit_rx", _num("doses_per_24_hrs").alias("per_day"))
        .join(subjects, on="subject_id", how="semi")
        .with_columns(match_cs_drug(pl.col("drug").fill_null(""), concepts).alias("cs_drug"))
        .filter(pl.col("cs_drug").is_not_null() & ~not_route & ~pl.col("drug").fill_null("").str.contains(concepts["cs_name_exclude"]))
        .collect(engine="streaming")
    )
    if pharmacy is not None and rx.height:
        rx = rx.join(pharmacy.select("pharmacy_id", "frequency").join(rx.select("pharmacy_id").drop_nulls().unique().lazy(), on="pharmacy_id", how="semi")
                     .collect(engine="streaming"), on="pharmacy_id", how="left")
    else:
        rx = rx.with_columns(pl.lit(None, dtype=pl.String).alias("frequency"))
    rx = rx.join(pts, on="subject_id").with_columns(
        _hours("starttime").alias("start_h"), _hours("stoptime").alias("stop_h"), dose_mg(pl.col("dose_val_rx"), pl.col("dose_unit_rx")).alias("dose_mg")
    )
    orders = rx.select("stay_id", "hadm_id", "start_h", "stop_h", pl.col("cs_drug").alias("drug"), "dose_mg", "frequency", "per_day", pl.lit(False).alias("prn"))
    doses = _with_segment(expand_orders(orders, settings, keep=("hadm_id",)), icu, by_unit)
    doses = doses.join(covered, on=["stay_id", "hadm_id", "segment"], how="anti")
    parts.append(doses.join(pts.select("stay_id", "hosp_out_h"), on="stay_id").drop("hadm_id", "segment"))
    if settings.orders_mark_prior_use:
        starts = _with_segment(rx.select("stay_id", "hadm_id", pl.col("start_h").alias("t_h"), pl.col("cs_drug").alias("drug"), "dose_mg", "hosp_out_h"), icu, by_unit)
        parts.append(
            starts.join(covered, on=["stay_id", "hadm_id", "segment"], how="semi")
            .select("stay_id", "t_h", "drug", "dose_mg", pl.lit("order").alias("evidence"), "hosp_out_h")
        )
    events = pl.concat([p.select(*EVENT_SCHEMA, "hosp_out_h").cast({**EVENT_SCHEMA, "hosp_out_h": pl.Float64}) for p in parts], how="vertical")
    events = events.filter(pl.col("t_h").is_not_null() & (pl.col("hosp_out_h").is_null() | (pl.col("t_h") <= pl.col("hosp_out_h")))).drop("hosp_out_h")
    # the candidate stays' own ICU stays documented in eMAR
    own = covered.join(stays.select("stay_id", "hadm_id"), on=["stay_id", "hadm_id"]).filter(pl.col("segment") == pl.col("stay_id") if by_unit else pl.lit(True))
    return events, own.select("stay_id").unique(), stats
