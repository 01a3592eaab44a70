"""MIMIC-IV (v2.x, hosp/ + icu/ modules) -> cohort contract.

Each raw table is read with one lazy polars plan (``scan_csv`` on ``.csv.gz``/``.csv`` or
``scan_parquet``), filtered to the concept itemids and the candidate stays before anything is
materialised, and collected with the streaming engine.  Times become hours since the stay's
origin, the clock hour of ICU admission (``intime`` truncated to the hour); hours of the stay are
clock hours ``(k, k + 1]`` as in mimic-code's ``icustay_hourly``.

Suspected infection, the hourly SOFA, vasopressors and ventilation follow MIT-LCP mimic-code
(``mimic_iv_concepts``); with ``databases.<name>.derived`` set, ``sepsis3`` / ``sofa`` /
``suspicion_of_infection`` are read from a mimic-code build instead (``derived``).

Mortality: ``admissions.hospital_expire_flag``; 28-day mortality from ``deathtime`` or
``patients.dod`` (state death records, out-of-hospital deaths up to one year after discharge, so
survival is known for 28 days); ICU length of stay from ``icustays``.  Corticosteroids are the doses
**administered** according to ``emar`` / ``emar_detail`` (route from ``emar_detail`` or ``pharmacy``),
with ``prescriptions`` (expanded by frequency) where eMAR does not document the care
(:func:`read_cs_events`).  Event times: death from ``deathtime`` or ``dod`` (state records up to one
year after discharge, so vital status is followed to one year after hospital discharge:
``followup_end_h``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import polars.selectors as cs

from ..dictionary import Dictionary
from ..errors import UserInputError
from . import mimic_iv_concepts as mc
from .tables import MIMIC_IV_TABLES, mimic_iv_path
from .common import (
    CohortDefinition,
    IngestResult,
    aggregate_hourly,
    antibiotic_course_ok,
    build_cohort,
    check_concepts,
    stay_grid,
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
    # hours of the stay count from the clock hour of ICU admission (mimic-code's hourly grid): every
    # time in hours below is relative to it (``intime`` from here on; the exact time is ``intime_raw``)
    origin = pl.col("intime").dt.truncate("1h")
    shift = (pl.col("intime") - origin).dt.total_seconds() / 3600.0
    return s.with_columns(
        pl.col("intime").alias("intime_raw"), origin.alias("intime"), origin.alias("origin"),
        *[(pl.col(c) + shift).alias(c) for c in ("icu_out_h", "death_h", "hosp_out_h", "followup_end_h")],
    )


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


@dataclass
class Prepared:
    """Frames of :func:`prepare`, in hours of the stay (see the module docstring)."""

    stays: pl.DataFrame
    cand: pl.DataFrame
    si_events: pl.DataFrame  # stay_id, si_h, abx_h, culture_h
    hourly: pl.DataFrame
    vaso_any: pl.DataFrame
    ventilation: pl.DataFrame  # stay_id, start_h, end_h (invasive)
    micro: pl.DataFrame  # stay_id, t_h, specimen (infection source)
    stats: dict


def _stays_frame(frame: pl.DataFrame, stays: pl.DataFrame, key: str = "stay_id") -> pl.DataFrame:
    cols = {"stay_id": ["stay_id", "origin", "grid_end"], "hadm_id": ["hadm_id", "stay_id", "origin", "grid_end"], "subject_id": ["subject_id", "stay_id", "origin", "grid_end"]}[key]
    return stays.select(cols)


def _antibiotics(root, stays: pl.DataFrame, cand: pl.DataFrame, d: CohortDefinition, concepts: dict) -> pl.DataFrame:
    """Antibiotic rows of the candidate stays (mimic-code antibiotic.sql): ``subject_id, stay_id, starttime, t_h, stop_h``."""
    rx = scan(root, "prescriptions")
    have = rx.collect_schema().names()
    rx = rx.select(
        _int("subject_id").alias("subject_id"), _int("hadm_id").alias("hadm_id"), "drug", "route",
        (pl.col("drug_type") if "drug_type" in have else pl.lit(None, dtype=pl.String)).alias("drug_type"),
        _ts("starttime").alias("starttime"), (_ts("stoptime") if "stoptime" in have else pl.lit(None, dtype=pl.Datetime("us"))).alias("stoptime"),
    ).join(cand.select("hadm_id").lazy(), on="hadm_id").collect(engine="streaming")
    ab = mc.antibiotic(rx, stays.select("hadm_id", "stay_id", "intime_raw", "outtime"), concepts["antibiotics"])
    if d.antibiotic_during_icu:
        ab = ab.join(cand.select("stay_id"), on="stay_id")
    else:  # any antibiotic of the hospital admission, attributed to its candidate stay
        ab = ab.drop("stay_id").join(cand.select("hadm_id", "stay_id"), on="hadm_id")
    ab = ab.join(cand.select("stay_id", "intime"), on="stay_id")
    return ab.select("subject_id", "stay_id", "starttime", _hours_of(pl.col("starttime")).alias("t_h"), _hours_of(pl.col("stoptime")).alias("stop_h"))


def _suspicion(root, cand: pl.DataFrame, abx: pl.DataFrame, d: CohortDefinition, concepts: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Suspected-infection events (hours of the stay) and the cultures of the candidate stays."""
    m = scan(root, "microbiologyevents")
    have = m.collect_schema().names()
    micro = (
        m.select(
            _int("subject_id").alias("subject_id"), _int("hadm_id").alias("hadm_id"), "micro_specimen_id",
            pl.col("chartdate").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("chartdate"), _ts("charttime").alias("charttime"),
            "spec_type_desc", (pl.col("test_name") if "test_name" in have else pl.lit(None, dtype=pl.String)).alias("test_name"),
        )
        .join(cand.select("subject_id").unique().lazy(), on="subject_id")
        .collect(engine="streaming")
    )
    spec = mc.specimens(micro, concepts["cultures"] if d.cultures == "diagnostic" else None)
    if d.min_antibiotic_course_h > 0:
        abx = antibiotic_course_ok(abx, cand, d.min_antibiotic_course_h)
    si = mc.suspicion_of_infection(abx.select("subject_id", "stay_id", "starttime"), spec, d.culture_then_abx_h, d.abx_then_culture_h)
    si = si.join(cand.select("stay_id", "intime"), on="stay_id").select(
        "stay_id", _hours_of(pl.col("si_time")).alias("si_h"), _hours_of(pl.col("abx_time")).alias("abx_h"), _hours_of(pl.col("culture_time")).alias("culture_h")
    )
    cultures = spec.join(cand.select("subject_id", "stay_id", "intime"), on="subject_id").select(
        "stay_id", _hours_of(pl.coalesce(pl.col("charttime"), pl.col("chartdate").cast(pl.Datetime("us")))).alias("t_h"), pl.col("spec_type_desc").alias("specimen")
    )
    return si, cultures


def _hours_of(expr: pl.Expr) -> pl.Expr:
    return (expr - pl.col("intime")).dt.total_seconds() / 3600.0


def _sofa_inputs(root, ev_stays: pl.DataFrame, d: CohortDefinition, cdb: dict) -> tuple[list[pl.DataFrame], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Hourly SOFA inputs ``_sofa_*`` (mimic-code sofa.sql), drip rates, ventilation episodes.

    Returns ``(hourly pieces, vaso_any, invasive ventilation episodes, ICU hours)``; ICU hours =
    ``stay_id, icu_first_hour, icu_last_hour`` (hours holding the first and last heart rate).
    """
    sc, vc = cdb["sofa"], cdb["ventilation"]
    grid = d.grid
    lo = grid[0]
    st = ev_stays.with_columns(pl.col("intime").alias("origin"))
    t_lo = (pl.col("intime") + pl.duration(hours=lo - 1))
    t_hi = (pl.col("intime") + pl.duration(hours=1) * (pl.col("grid_end") + 2))
    # ---- chartevents: MAP, GCS, heart rate, FiO2, ventilation items (one scan)
    text_items = [sc["gcs"]["verbal"], vc["device_itemid"], vc["mode_itemid"], vc["mode_hamilton_itemid"]]
    items = sorted({*sc["map_itemids"], sc["gcs"]["motor"], sc["gcs"]["verbal"], sc["gcs"]["eyes"], sc["heart_rate_itemid"], sc["bg"]["fio2_chartevents"],
                    vc["device_itemid"], *vc["flow_itemids"], *vc["setting_itemids"]})
    ce_lf = scan(root, "chartevents")
    have = ce_lf.collect_schema().names()
    ce = (
        ce_lf.select(
            _int("subject_id").alias("subject_id"), _int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), _ts("charttime").alias("charttime"),
            (_ts("storetime") if "storetime" in have else pl.lit(None, dtype=pl.Datetime("us"))).alias("storetime"),
            pl.col("value"), _num("valuenum").alias("valuenum"),
        )
        .filter(pl.col("itemid").is_in(items))
        .join(st.select("stay_id", "intime", "grid_end").lazy(), on="stay_id")
        .filter(pl.col("charttime").is_between(t_lo - pl.duration(days=31), t_hi))
        .with_columns(pl.when(pl.col("itemid").is_in(text_items)).then(pl.col("value")).alias("value"))
        .drop("intime", "grid_end")
        .collect(engine="streaming")
    )
    hr = ce.filter(pl.col("itemid") == sc["heart_rate_itemid"]).group_by("stay_id").agg(
        pl.col("charttime").min().alias("intime_hr"), pl.col("charttime").max().alias("outtime_hr")
    )
    ce = ce.join(st.select("stay_id", "intime", "grid_end"), on="stay_id").filter(pl.col("charttime").is_between(t_lo, t_hi)).drop("intime", "grid_end")
    # ---- ventilation episodes: invasive ones give the respiratory SOFA its 3-4 points
    episodes = []
    if d.ventilation_source in ("chartevents", "either"):
        episodes.append(mc.ventilation(ce, vc).filter(pl.col("status") == "InvasiveVent").select("stay_id", "starttime", "endtime"))
    if d.ventilation_source in ("procedureevents", "either") and table_path(root, "procedureevents") is not None:
        episodes.append(
            scan(root, "procedureevents")
            .select(_int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), _ts("starttime").alias("starttime"), _ts("endtime").alias("endtime"))
            .filter(pl.col("itemid").is_in(vc["procedure_itemids"]))
            .join(st.select("stay_id").lazy(), on="stay_id")
            .select("stay_id", "starttime", "endtime")
            .collect(engine="streaming")
        )
    vent = pl.concat(episodes) if episodes else pl.DataFrame(schema={"stay_id": pl.Int64, "starttime": pl.Datetime("us"), "endtime": pl.Datetime("us")})
    pieces = [
        mc.bucket(mc.mean_bp(ce, sc["map_itemids"]), st, "stay_id", "charttime", "mbp", "_sofa_map", "min", grid),
        mc.bucket(mc.gcs(ce, sc["gcs"], sc["gcs"].get("ett_text", "No Response-ETT")), st, "stay_id", "charttime", "gcs", "_sofa_gcs", "min", grid),
    ]
    # ---- labevents: blood gases (arterial PaO2/FiO2), creatinine, bilirubin, platelets
    bgc, lab_items = sc["bg"], [sc["creatinine"]["itemid"], sc["bilirubin"]["itemid"], sc["platelets"]["itemid"]]
    if table_path(root, "labevents") is not None:
        le_lf = scan(root, "labevents")
        _require_columns(le_lf, "labevents", ["subject_id", "hadm_id", "specimen_id", "itemid", "charttime", "value", "valuenum"], root)
        lab = (
            le_lf.select(
                _int("subject_id").alias("subject_id"), _int("hadm_id").alias("hadm_id"), _int("specimen_id").alias("specimen_id"),
                _int("itemid").alias("itemid"), _ts("charttime").alias("charttime"), pl.col("value"), _num("valuenum").alias("valuenum"),
            )
            .filter(pl.col("itemid").is_in([bgc["specimen"], bgc["pao2"], bgc["fio2"], *lab_items]))
            .join(st.select("subject_id").unique().lazy(), on="subject_id")
            .collect(engine="streaming")
        )
        bg = mc.bg_pao2fio2(
            lab.filter(pl.col("itemid").is_in([bgc["specimen"], bgc["pao2"], bgc["fio2"]])),
            ce.filter(pl.col("itemid") == bgc["fio2_chartevents"]).select("subject_id", "charttime", "valuenum"), bgc,
        ).filter(pl.col("specimen") == bgc["arterial"])
        bg = bg.join(st.select("subject_id", "stay_id"), on="subject_id").join(
            vent.select("stay_id", pl.col("starttime").alias("v0"), pl.col("endtime").alias("v1")), on="stay_id", how="left"
        ).with_columns(((pl.col("charttime") >= pl.col("v0")) & (pl.col("charttime") <= pl.col("v1"))).fill_null(False).alias("on_vent"))
        bg = bg.group_by("stay_id", "subject_id", "charttime", "pao2fio2ratio").agg(pl.col("on_vent").any())
        for name, on in (("_sofa_pf_vent", True), ("_sofa_pf_novent", False)):
            x = bg.filter(pl.col("on_vent") == on).drop("subject_id")
            pieces.append(mc.bucket(x, st, "stay_id", "charttime", "pao2fio2ratio", name, "min", grid))
        pf = mc.bucket(bg.drop("subject_id"), st, "stay_id", "charttime", "pao2fio2ratio", "pf_ratio", "min", grid)
        pieces.append(pf)
        v = pl.col("valuenum")
        labs = lab.filter(pl.col("itemid").is_in(lab_items) & (v > 0)).group_by("specimen_id", "itemid").agg(
            pl.col("hadm_id").max(), pl.col("charttime").max(), v.max()
        )
        cr = labs.filter((pl.col("itemid") == sc["creatinine"]["itemid"]) & (v <= sc["creatinine"].get("max", 150)))
        pieces += [
            mc.bucket(cr, st, "hadm_id", "charttime", "valuenum", "_sofa_creatinine", "max", grid),
            mc.bucket(labs.filter(pl.col("itemid") == sc["bilirubin"]["itemid"]), st, "hadm_id", "charttime", "valuenum", "_sofa_bilirubin", "max", grid),
            mc.bucket(labs.filter(pl.col("itemid") == sc["platelets"]["itemid"]), st, "hadm_id", "charttime", "valuenum", "_sofa_platelets", "min", grid),
        ]
    # ---- urine output over 24 h
    if table_path(root, "outputevents") is not None:
        uo = (
            scan(root, "outputevents")
            .select(_int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), _ts("charttime").alias("charttime"), _num("value").alias("value"))
            .filter(pl.col("itemid").is_in(sc["urine_itemids"]))
            .join(st.select("stay_id").lazy(), on="stay_id")
            .with_columns(pl.when((pl.col("itemid") == sc["urine_negative_itemid"]) & (pl.col("value") > 0)).then(-pl.col("value")).otherwise(pl.col("value")).alias("value"))
            .group_by("stay_id", "charttime")
            .agg(pl.col("value").sum().alias("urineoutput"))
            .collect(engine="streaming")
        )
        pieces.append(mc.bucket(mc.urine_output_24h(uo, hr), st, "stay_id", "charttime", "uo_24hr", "_sofa_uo_24h", "max", grid))
    # ---- vasoactive drips
    vaso_any = pl.DataFrame(schema={"stay_id": pl.Int64, "hour_icu": pl.Int32})
    if table_path(root, "inputevents") is not None:
        agents = cdb["vasopressors"]
        items_v = [int(i) for a in agents.values() for i in a["itemid"]]
        inp = scan(root, "inputevents")
        have = inp.collect_schema().names()
        raw = (
            inp.select(
                _int("stay_id").alias("stay_id"), _int("itemid").alias("itemid"), _ts("starttime").alias("starttime"), _ts("endtime").alias("endtime"),
                _num("rate").alias("rate"), pl.col("rateuom"), (_num("patientweight") if "patientweight" in have else pl.lit(None, dtype=pl.Float64)).alias("patientweight"),
            )
            .filter(pl.col("itemid").is_in(items_v))
            .join(st.select("stay_id").lazy(), on="stay_id")
            .collect(engine="streaming")
        )
        iv = mc.vasoactive_intervals(raw, agents).join(st.select("stay_id", "intime"), on="stay_id").select(
            "stay_id", "drug", _hours_of(pl.col("starttime")).alias("start_h"), _hours_of(pl.col("endtime")).alias("end_h"), "rate", "ne_factor"
        )
        vh, vaso_any = vasopressor_hourly(iv.lazy(), max(d.vaso_grid_end, int(st["grid_end"].max() or 0)), lo)
        vh = vh.collect(engine="streaming").join(st.select("stay_id", "grid_end"), on="stay_id").filter(pl.col("hour_icu") <= pl.col("grid_end")).drop("grid_end")
        pieces.append(vh)
        vaso_any = vaso_any.collect(engine="streaming")
    ventilation = vent.join(st.select("stay_id", "intime"), on="stay_id").select("stay_id", _hours_of(pl.col("starttime")).alias("start_h"), _hours_of(pl.col("endtime")).alias("end_h"))
    # hours of the ICU stay for Sepsis-3: first to last heart rate (mimic-code icustay_times / icustay_hourly)
    icu_hours = hr.join(st.select("stay_id", "intime"), on="stay_id").select(
        "stay_id",
        mc.hour_of(_hours_of(pl.col("intime_hr"))).alias("icu_first_hour"),
        mc.hour_of(_hours_of(pl.col("outtime_hr"))).alias("icu_last_hour"),
    )
    return pieces, vaso_any, ventilation, icu_hours


def prepare(root, d: CohortDefinition, concepts: dict, dictionary: Dictionary, scope: str = "suspected", derived: dict | None = None) -> Prepared:
    """Stays, suspected-infection events and hourly values (contract variables and SOFA inputs).

    ``scope``: ``suspected`` reads the hourly tables for the candidate stays with a suspected
    infection (the ingest), ``all`` for every candidate stay (the concordance harness).
    ``derived``: the database's bring-your-own mimic-code tables (``adapters.derived``): its
    suspected infections replace ours, its Sepsis-3 stays get hourly values too.
    """
    cdb = concepts["mimic_iv"]
    for t in REQUIRED:
        if table_path(root, t) is None:
            raise UserInputError(Path(root) / TABLES[t], None, "required MIMIC-IV table is missing (expected .csv.gz, .csv or .parquet)")
    stays = load_stays(root)
    log.info("%d ICU stays", stays.height)
    cand = stays.filter(pl.col("age") >= d.min_age)
    if d.first_stay_only:
        cand = cand.filter(pl.col("stay_rank") == 1)
    abx = _antibiotics(root, stays, cand, d, concepts)
    si, micro = _suspicion(root, cand, abx, d, concepts)
    given = None
    if derived:
        from .derived import load_derived

        given = load_derived(derived, cand)
        si = given.get("si_events", si)
    keep = si.select("stay_id") if given is None else pl.concat([si.select("stay_id"), given["sepsis"].select("stay_id")])
    ev_stays = cand if scope == "all" else cand.join(keep.unique(), on="stay_id")
    ev_stays = stay_grid(ev_stays, d, right_closed=True)
    log.info("%d candidate stays, %d with suspected infection", cand.height, si["stay_id"].n_unique())

    # ---- contract variables (one lazy plan per table)
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
        pieces.append(aggregate_hourly(pl.concat(events), specs, grid, right_closed=True, grid_end=ev_stays).collect(engine="streaming"))
    sofa_pieces, vaso_any, ventilation, icu_hours = _sofa_inputs(root, ev_stays, d, cdb)
    stays = stays.join(icu_hours, on="stay_id", how="left")
    cand = cand.join(icu_hours, on="stay_id", how="left")
    # pf_ratio of the contract = arterial PaO2/FiO2 (the SOFA input), not a separate derivation
    pieces = [p.filter(pl.col("variable") != "pf_ratio") for p in pieces] + sofa_pieces
    hourly = pl.concat([p.select("stay_id", pl.col("hour_icu").cast(pl.Int32), "variable", pl.col("value").cast(pl.Float64)) for p in pieces])
    return Prepared(stays, cand, si, hourly, vaso_any, ventilation, micro, {"derived": given} if given else {})


def concordance_frames(root, config: dict, concepts: dict, dictionary: Dictionary) -> dict:
    """Our definitions on every candidate stay, for the mimic-code concordance harness:
    ``stays`` (``stay_id, origin``), ``si`` (suspected-infection events), ``sep`` (Sepsis-3 stays,
    before the onset window), ``filled`` / ``observed`` (hourly SOFA, doses, ventilation)."""
    from .common import sepsis3_cohort

    d = CohortDefinition.from_config(config)
    check_concepts(concepts, "mimic_iv", dictionary)
    prep = prepare(root, d, concepts, dictionary, scope="all")
    sep, observed, filled, _, stats = sepsis3_cohort(
        prep.cand, prep.hourly, d, concepts, dictionary, si_events=prep.si_events, ventilation=prep.ventilation, right_closed=True, all_stays=True
    )
    return {"stays": prep.cand.select("stay_id", "origin"), "si": prep.si_events, "sep": sep, "filled": filled, "observed": observed, "stats": stats}


def ingest(root: str | Path, database: str, config: dict, concepts: dict, dictionary: Dictionary, derived: dict | None = None) -> IngestResult:
    """Read MIMIC-IV from ``root`` and return the contract files of the configured cohort.

    ``derived``: the database's ``derived`` setting (bring-your-own mimic-code tables, see
    ``sepsis_cs.adapters.derived``): Sepsis-3 and the hourly SOFA are then read, not computed.
    """
    d = CohortDefinition.from_config(config)
    check_concepts(concepts, "mimic_iv", dictionary)
    cdb = concepts["mimic_iv"]
    prep = prepare(root, d, concepts, dictionary, derived=derived)
    stays, cand = prep.stays, prep.cand

    # ---- corticosteroids (eMAR administrations; prescriptions where eMAR does not document the care)
    cs_events, emar_stays, cs_stats = read_cs_events(root, cand, stays, concepts)
    stays = _add_static(root, stays, cand, cdb)
    cohort, ts, attrition, stats = build_cohort(
        database=database, stays=stays, hourly=prep.hourly, vaso_any=prep.vaso_any, abx=None, cultures=prep.micro,
        cs_events=cs_events, cs_home=pl.DataFrame(schema={"stay_id": pl.Int64}), concepts=concepts, dictionary=dictionary, d=d,
        ventilation=prep.ventilation, source_regex=cdb.get("infection_source"), si_events=prep.si_events, right_closed=True,
        derived=prep.stats.get("derived"),
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
