"""eICU-CRD (v2.0) -> cohort contract.

Times in eICU are minute offsets from ICU unit admission; they become hours (``/60``).  Every
raw table is read with one lazy polars plan and collected with the streaming engine.  Tables
that are absent are skipped with a warning (the public demo copy used in tests lacks ``lab``,
``vitalPeriodic`` and ``nurseCharting``; the adapter reads them when present).

Specific choices (documented in docs/databases.md):

- suspected infection: cultures from ``microLab`` and ``treatment`` ('cultures'), antibiotics from
  ``medication`` (names) and ``treatment`` ('therapeutic antibacterials').  Cultures are sparse in
  eICU, so with ``cohort_definition.infection_fallback: diagnosis`` a stay without a culture-antibiotic
  pair is suspected of infection at the first ``diagnosis`` string mentioning sepsis, or at ICU
  admission when the APACHE admission diagnosis is 'Sepsis, ...'; time zero then carries the
  suffix ``_dx_fallback``.  The SOFA criterion is applied in both cases.
- CS (:func:`read_cs_events`): ``medication`` orders matched by generic or brand name or by HICL code
  (many rows have an empty name), cancelled orders (``drugordercancelled``), PRN orders and
  non-systemic routes excluded, expanded into scheduled doses by their frequency; ``treatment``
  entries per ``cohort_definition.eicu_treatment_glucocorticoids`` (no dose); corticosteroid
  infusions (``infusiondrug``, no dose).  Home glucocorticoids (``admissiondrug``) mark prevalent use
  (``cs_before_t0``).  Hospitals that never fill ``medication`` (in the whole database) cannot show
  CS: excluded from the CS comparison with ``exclude_hospitals_without_medication``.
- mortality: ``hospitaldischargestatus``; 28-day mortality from the hospital discharge offset: a
  death in hospital within 28 days of time zero is 1; survivors discharged earlier are counted as
  alive (``cohort_definition.assume_alive_after_discharge``; false makes them missing) since eICU
  has no follow-up after discharge.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import polars as pl

from ..dictionary import Dictionary
from ..errors import UserInputError
from .tables import EICU_TABLES, eicu_path
from .common import (
    CohortDefinition,
    IngestResult,
    aggregate_hourly,
    build_cohort,
    check_concepts,
    convert_expr,
    stay_grid,
    suspicion_events,
    variable_specs,
    vasopressor_hourly,
)
from .exposure import EVENT_SCHEMA, AdministrationSettings, dose_mg, expand_orders, glucocorticoids, match_cs_drug

log = logging.getLogger("sepsis_cs")

TABLES = EICU_TABLES
REQUIRED = ("patient", "medication", "diagnosis")
#: table -> (offset column, default value column)
TIME_VALUE = {
    "lab": ("labresultoffset", "labresult"),
    "vitalPeriodic": ("observationoffset", None),
    "vitalAperiodic": ("observationoffset", None),
    "nurseCharting": ("nursingchartoffset", "nursingchartvalue"),
    "respiratoryCharting": ("respchartoffset", "respchartvalue"),
    "intakeOutput": ("intakeoutputoffset", "cellvaluenumeric"),
    "physicalExam": ("physicalexamoffset", "physicalexamvalue"),
}


def table_path(root: str | Path, table: str) -> Path | None:
    """File of a table (original or lower-case name; .parquet, .csv.gz or .csv), None when absent."""
    return eicu_path(root, table)


def scan(root, table: str) -> pl.LazyFrame:
    p = table_path(root, table)
    if p is None:
        raise UserInputError(Path(root) / f"{table}.csv.gz", None, "required eICU table is missing (expected .csv.gz, .csv or .parquet)")
    if p.suffix == ".parquet":
        return pl.scan_parquet(p).with_columns(pl.all().cast(pl.String))
    return pl.scan_csv(p, infer_schema=False)


def _num(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().str.strip_chars_end("%").cast(pl.Float64, strict=False)


def _sid() -> pl.Expr:
    return pl.col("patientunitstayid").cast(pl.Int64, strict=False).alias("stay_id")


def _hours(col: str) -> pl.Expr:
    return (pl.col(col).cast(pl.Float64, strict=False) / 60.0).alias("t_h")


def load_stays(root, d: CohortDefinition) -> pl.DataFrame:
    p = scan(root, "patient")
    have = p.collect_schema().names()
    for c in ("patientunitstayid", "uniquepid", "age", "gender", "unitdischargeoffset", "hospitaldischargeoffset", "hospitaldischargestatus"):
        if c not in have:
            raise UserInputError(table_path(root, "patient"), c, "required column is missing (eICU-CRD schema)")
    s = p.select(
        _sid(),
        pl.col("uniquepid").alias("patient_id"),
        pl.when(pl.col("age").str.contains(">")).then(pl.lit(90.0)).otherwise(pl.col("age").cast(pl.Float64, strict=False)).alias("age"),
        pl.col("gender").replace_strict({"Female": "F", "Male": "M"}, default=None).alias("sex"),
        _num("admissionweight").alias("weight"),
        (_num("unitdischargeoffset") / 60.0).alias("icu_out_h"),
        (_num("hospitaldischargeoffset") / 60.0).alias("hosp_out_h"),
        pl.col("hospitaldischargestatus"),
        pl.col("unitdischargestatus"),
        pl.col("apacheadmissiondx"),
        pl.col("hospitaldischargeyear").cast(pl.Int64, strict=False).alias("year"),
        pl.col("patienthealthsystemstayid").cast(pl.Int64, strict=False).alias("hsid"),
        _num("hospitaladmitoffset").alias("hadm_off"),
        (pl.col("unitvisitnumber") if "unitvisitnumber" in have else pl.lit(None)).cast(pl.Int64, strict=False).alias("unit_visit"),
    ).collect(engine="streaming")
    expired = pl.col("hospitaldischargestatus") == "Expired"
    s = s.with_columns(
        pl.when(expired).then(pl.lit(1, dtype=pl.Int8)).when(pl.col("hospitaldischargestatus") == "Alive").then(pl.lit(0, dtype=pl.Int8)).alias("hospital_mortality"),
        pl.when(expired).then(pl.col("hosp_out_h")).alias("death_h"),
        (pl.lit(math.inf) if d.assume_alive_after_discharge else pl.col("hosp_out_h")).alias("alive_known_until_h"),
        (pl.col("unitdischargestatus") == "Expired").fill_null(False).alias("died_in_icu"),
    )
    s = s.join(first_stay_rank(s, d.first_stay_ties), on="stay_id", how="left")
    s = s.with_columns(pl.when(pl.col("alive_known_until_h").is_nan()).then(None).otherwise(pl.col("alive_known_until_h")).alias("alive_known_until_h"))
    return s


def first_stay_rank(s: pl.DataFrame, ties: str = "identifier") -> pl.DataFrame:
    """Order of each patient's ICU stays by time: ``stay_id, stay_rank, first_stay_ambiguous``.

    eICU keeps no dates: a patient's hospital stays are ordered by discharge year, then age (the
    youngest age of the hospital stay); unit stays within a hospital stay by the time since hospital
    admission (``-hospitaladmitoffset``), then ``unitvisitnumber``.  When the earliest hospital stays
    tie on year and age no time tells which came first: ``first_stay_ambiguous`` marks the patient's
    stays, and ``ties`` decides: ``identifier`` (rank them by hospital stay identifier, a documented
    arbitrary choice) or ``exclude`` (no stay of that patient ranks first).
    """
    h = s.group_by("patient_id", "hsid").agg(pl.col("year").min(), pl.col("age").min().alias("h_age"))
    h = h.with_columns(pl.len().over("patient_id", "year", "h_age").alias("_tied"))
    h = h.with_columns(
        pl.struct(pl.col("year").fill_null(0), pl.col("h_age").fill_null(0)).rank("min").over("patient_id").alias("_h_rank")
    ).with_columns(((pl.col("_h_rank") == 1) & (pl.col("_tied") > 1)).any().over("patient_id").alias("first_stay_ambiguous"))
    x = s.select("stay_id", "patient_id", "hsid", "hadm_off", "unit_visit").join(h, on=["patient_id", "hsid"], how="left")
    order = pl.struct(
        pl.col("year").fill_null(0), pl.col("h_age").fill_null(0), pl.col("hsid").fill_null(0),
        (-pl.col("hadm_off")).fill_null(0), pl.col("unit_visit").fill_null(0), pl.col("stay_id"),
    )
    x = x.with_columns(order.rank("ordinal").over("patient_id").cast(pl.Int64).alias("stay_rank"))
    if ties == "exclude":
        x = x.with_columns(pl.when(pl.col("first_stay_ambiguous")).then(pl.lit(0, dtype=pl.Int64)).otherwise(pl.col("stay_rank")).alias("stay_rank"))
    return x.select("stay_id", "stay_rank", "first_stay_ambiguous")


def _long_events(root, table: str, sources: list[tuple[str, dict]], stays: pl.DataFrame) -> pl.LazyFrame:
    """Rows of a long table (label column + value column) matching the concepts' labels."""
    tcol, vdefault = TIME_VALUE[table]
    parts = []
    base = scan(root, table).with_columns(_sid()).join(stays.select("stay_id").lazy(), on="stay_id")
    for var, src in sources:
        lab = pl.col(src["label_column"])
        cond = lab.is_in(src["labels"]) if "labels" in src else lab.str.contains(src["label_regex"])
        vcol = src.get("value_from", src.get("value_column", vdefault))
        if "value_regex" in src:
            raw = pl.col(vcol).str.extract(src["value_regex"]).cast(pl.Float64, strict=False)
        else:
            raw = _num(vcol)
        val = _convert(raw, src)
        parts.append(base.filter(cond).select("stay_id", _hours(tcol), pl.lit(var).alias("variable"), val.alias("value")))
    return pl.concat(parts)


def _convert(raw: pl.Expr, src: dict) -> pl.Expr:
    return convert_expr(raw, src)


def _wide_events(root, table: str, sources: list[tuple[str, dict]], stays: pl.DataFrame) -> pl.LazyFrame:
    tcol, _ = TIME_VALUE[table]
    base = scan(root, table).with_columns(_sid()).join(stays.select("stay_id").lazy(), on="stay_id")
    parts = [base.select("stay_id", _hours(tcol), pl.lit(var).alias("variable"), _convert(_num(src["column"]), src).alias("value")) for var, src in sources]
    return pl.concat(parts)


def _vasopressors(root, stays: pl.DataFrame, cdb: dict, grid_end: int, grid_start: int):
    """Drips of ``infusiondrug`` -> hourly norepinephrine equivalents, SOFA drip rates, hours on a vasopressor.

    Each charted rate holds until the next chart of the same drug (a rate of 0 ends it) or ``hold_h``
    hours; rates are converted to the agent's unit by the concept dictionary's ``vasopressors``
    entries; a running drip no entry can convert has an unknown dose (``rate`` null), never zero.
    """
    vp = cdb["vasopressors"]
    hold = float(vp.get("hold_h", 2))
    agents = cdb["vasopressor_agents"]
    any_re = "|".join(a["name_regex"].replace("(?i)", "") for a in agents.values())
    inf = (
        scan(root, "infusiondrug")
        .with_columns(_sid())
        .join(stays.select("stay_id", pl.col("weight").alias("adm_weight")).lazy(), on="stay_id")
        .filter(pl.col("drugname").str.contains("(?i)" + any_re))
        .select(
            "stay_id", "drugname", _hours("infusionoffset"), _num("drugrate").alias("rate"),
            pl.coalesce(_num("patientweight"), pl.col("adm_weight")).alias("w"), _num("drugamount").alias("amount"), _num("volumeoffluid").alias("volume"),
        )
        .collect(engine="streaming")
    )
    # concentration (mg or units per ml): drugamount / volumeoffluid, else "<n> mg|units ... <m> ml" in the name
    name_conc = pl.col("drugname").str.extract(r"(?i)([0-9.]+)\s*(?:mg|units?)\b").cast(pl.Float64, strict=False) / pl.col("drugname").str.extract(
        r"(?i)([0-9.]+)\s*ml\b"
    ).cast(pl.Float64, strict=False)
    conc = pl.coalesce(pl.when(pl.col("volume") > 0).then(pl.col("amount") / pl.col("volume")), name_conc)
    weight = pl.when(pl.col("w").is_between(25, 300)).then(pl.col("w"))
    rate = pl.lit(None, dtype=pl.Float64)
    for spec in vp.values():
        if not isinstance(spec, dict):
            continue
        r = pl.col("rate")
        if spec.get("from_ml_per_hr"):
            r = r * conc / 60.0 * float(spec.get("amount_scale", 1))
        r = r * float(spec.get("scale", 1.0))
        if spec.get("per_weight"):
            r = r / weight
        rate = pl.when(pl.col("drugname").str.contains(spec["name_regex"])).then(r).otherwise(rate)
    agent = pl.lit(None, dtype=pl.String)
    factor = pl.lit(None, dtype=pl.Float64)
    for a, spec in reversed(list(agents.items())):
        hit = pl.col("drugname").str.contains(spec["name_regex"])
        agent = pl.when(hit).then(pl.lit(a)).otherwise(agent)
        factor = pl.when(hit).then(pl.lit(float(spec["factor"]))).otherwise(factor)
    inf = inf.with_columns(rate.alias("rate_agent"), agent.alias("drug"), factor.alias("ne_factor")).sort("stay_id", "drugname", "t_h")
    # an interval lasts until the next chart of the same drug (any rate, 0 included) or hold_h
    nxt = pl.col("t_h").shift(-1).over("stay_id", "drugname")
    iv = inf.with_columns(pl.col("t_h").alias("start_h"), pl.min_horizontal(nxt.fill_null(pl.col("t_h") + hold), pl.col("t_h") + hold).alias("end_h"))
    iv = iv.filter(pl.col("drug").is_not_null() & (pl.col("rate").is_null() | (pl.col("rate") > 0)))
    vh, anyv = vasopressor_hourly(iv.lazy().select("stay_id", "drug", "start_h", "end_h", pl.col("rate_agent").alias("rate"), "ne_factor"), grid_end, grid_start)
    return vh.collect(), anyv.collect()


def _antibiotics_cultures(root, cand: pl.DataFrame, d: CohortDefinition, concepts: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Antibiotics ``stay_id, t_h, stop_h`` (medication by name or HICL code, non-cancelled, systemic
    route; treatment 'antibacterials') and cultures ``stay_id, t_h, specimen`` (microLab, treatment
    'cultures'; surveillance/screening dropped under ``cultures: diagnostic``)."""
    ab, cdb = concepts["antibiotics"], concepts["eicu"]
    names = "(?i)(" + "|".join(re.escape(n) for n in ab["names"]) + ")"
    hicl = [str(c) for c in cdb.get("medication", {}).get("antibiotic_hicl", [])]
    med = (
        scan(root, "medication").with_columns(_sid()).join(cand.select("stay_id").lazy(), on="stay_id")
        .filter(pl.col("drugordercancelled").fill_null("No").str.to_lowercase().is_in(["no", "false"]))
        .filter(
            (pl.col("drugname").fill_null("").str.contains(names) | pl.col("drughiclseqno").is_in(hicl))
            & ~pl.col("routeadmin").fill_null("").str.contains(ab["eicu_route_exclude"])
        )
        .select("stay_id", _hours("drugstartoffset"), (pl.col("drugstopoffset").cast(pl.Float64, strict=False) / 60.0).alias("stop_h"))
    )
    abx_parts, cult_parts = [med], []
    if table_path(root, "treatment") is not None:
        tr = scan(root, "treatment").with_columns(_sid()).join(cand.select("stay_id").lazy(), on="stay_id")
        abx_parts.append(
            tr.filter(pl.col("treatmentstring").str.contains(ab["eicu_treatment_regex"])).select("stay_id", _hours("treatmentoffset"), pl.lit(None, dtype=pl.Float64).alias("stop_h"))
        )
        cult_parts.append(
            tr.filter(pl.col("treatmentstring").str.contains(ab["eicu_culture_regex"]))
            .select("stay_id", _hours("treatmentoffset"), pl.col("treatmentstring").str.split("|").list.last().alias("specimen"))
        )
    if table_path(root, "microLab") is not None:
        cult_parts.append(
            scan(root, "microLab").with_columns(_sid()).join(cand.select("stay_id").lazy(), on="stay_id")
            .select("stay_id", _hours("culturetakenoffset"), pl.col("culturesite").alias("specimen"))
        )
    abx = pl.concat(abx_parts).filter(pl.col("t_h").is_not_null()).unique().sort("stay_id", "t_h").collect(engine="streaming")
    cultures = (
        pl.concat(cult_parts).filter(pl.col("t_h").is_not_null()).unique().sort("stay_id", "t_h").collect(engine="streaming")
        if cult_parts else pl.DataFrame(schema={"stay_id": pl.Int64, "t_h": pl.Float64, "specimen": pl.String})
    )
    if d.cultures == "diagnostic":
        cultures = cultures.filter(~pl.col("specimen").fill_null("").str.contains(concepts["cultures"]["eicu_exclude_regex"]))
    return abx, cultures


def sepsis_diagnoses(dx: pl.DataFrame, cand: pl.DataFrame, cdb: dict) -> pl.DataFrame:
    """Diagnosis-based suspected infection (fallback): ``diagnosis`` strings naming sepsis at their
    offset, and an APACHE admission diagnosis of sepsis at ICU admission; SIRS without infection
    (``sepsis_diagnosis_exclude_regex``) is not sepsis.  Returns ``stay_id, t_h, text``."""
    inc, exc = cdb["sepsis_diagnosis_regex"], cdb.get("sepsis_diagnosis_exclude_regex")
    ok = lambda c: pl.col(c).fill_null("").str.contains(inc) & (~pl.col(c).fill_null("").str.contains(exc) if exc else pl.lit(True))  # noqa: E731
    return pl.concat(
        [
            dx.filter(ok("diagnosisstring")).select("stay_id", "t_h", pl.col("diagnosisstring").alias("text")),
            cand.filter(ok("apacheadmissiondx")).select("stay_id", pl.lit(0.0).alias("t_h"), pl.col("apacheadmissiondx").alias("text")),
        ]
    )


def ingest(root: str | Path, database: str, config: dict, concepts: dict, dictionary: Dictionary) -> IngestResult:
    """Read eICU-CRD from ``root`` and return the contract files of the configured cohort."""
    d = CohortDefinition.from_config(config)
    check_concepts(concepts, "eicu", dictionary)
    cdb = concepts["eicu"]
    for t in REQUIRED:
        if table_path(root, t) is None:
            raise UserInputError(Path(root) / f"{t}.csv.gz", None, "required eICU table is missing (expected .csv.gz, .csv or .parquet)")
    absent = [t for t in TABLES if table_path(root, t) is None]
    if absent:
        log.warning("eICU tables absent (their concepts are skipped): %s", ", ".join(absent))
    stays = load_stays(root, d)
    cand = stays.filter(pl.col("age") >= d.min_age)
    if d.first_stay_only:
        cand = cand.filter(pl.col("stay_rank") == 1)

    # ---- antibiotics (medication by name or HICL code, treatment), cultures, diagnosis fallback
    abx, cultures = _antibiotics_cultures(root, cand, d, concepts)
    dx = (
        scan(root, "diagnosis").with_columns(_sid()).join(cand.select("stay_id").lazy(), on="stay_id")
        .select("stay_id", _hours("diagnosisoffset"), pl.col("diagnosisstring"))
        .collect(engine="streaming")
    )
    infection_dx = sepsis_diagnoses(dx, cand, cdb)

    si_ids = suspicion_events(abx, cultures.select("stay_id", "t_h"), d).select("stay_id")
    if d.infection_fallback == "diagnosis":
        si_ids = pl.concat([si_ids, infection_dx.select("stay_id")])
    ev_stays = stay_grid(cand.join(si_ids.unique(), on="stay_id"), d)
    log.info("%d candidate stays, %d with suspected infection", cand.height, ev_stays.height)

    # ---- hourly events
    specs = variable_specs(dictionary, concepts)
    grid = d.grid
    by_table: dict[str, list] = {}
    for var, sources in cdb["hourly"].items():
        for src in sources:
            by_table.setdefault(src["table"], []).append((var, src))
    events = []
    for table, srcs in by_table.items():
        if table_path(root, table) is None:
            continue
        if table not in TIME_VALUE:
            raise UserInputError("config/concepts.yaml", f"eicu.hourly ({table})", f"unknown eICU table; expected one of {sorted(TIME_VALUE)}")
        wide = [(v, s) for v, s in srcs if "column" in s]
        long = [(v, s) for v, s in srcs if "column" not in s]
        if wide:
            events.append(_wide_events(root, table, wide, ev_stays))
        if long:
            events.append(_long_events(root, table, long, ev_stays))
    pieces = [aggregate_hourly(pl.concat(events), specs, grid, grid_end=ev_stays).collect(engine="streaming")] if events else []
    if table_path(root, "infusiondrug") is not None:
        vh, vaso_any = _vasopressors(root, ev_stays, cdb, max(d.vaso_grid_end, int(ev_stays["grid_end"].max() or 0)), grid[0])
        pieces.append(vh.join(ev_stays.select("stay_id", "grid_end"), on="stay_id").filter(pl.col("hour_icu") <= pl.col("grid_end")).drop("grid_end"))
    else:
        vaso_any = pl.DataFrame(schema={"stay_id": pl.Int64, "hour_icu": pl.Int32})
    hourly = (
        pl.concat([p.select("stay_id", pl.col("hour_icu").cast(pl.Int32), "variable", pl.col("value").cast(pl.Float64)) for p in pieces])
        if pieces else pl.DataFrame(schema={"stay_id": pl.Int64, "hour_icu": pl.Int32, "variable": pl.String, "value": pl.Float64})
    )

    # ---- CS exposure
    cs_events, cs_home, no_med, cs_stats = read_cs_events(root, ev_stays, concepts, d)
    stays = stays.with_columns(pl.col("hosp_out_h").alias("followup_end_h"))  # no follow-up after discharge

    ventilation = None
    if table_path(root, "treatment") is not None:
        ventilation = (
            scan(root, "treatment").with_columns(_sid()).join(ev_stays.select("stay_id").lazy(), on="stay_id")
            .filter(pl.col("treatmentstring").str.contains(cdb["ventilation_regex"]))
            .select("stay_id", _hours("treatmentoffset").alias("start_h"))
            .with_columns((pl.col("start_h") + 24.0).alias("end_h"))
            .collect(engine="streaming")
        )

    stays = _add_static(root, stays, ev_stays, cdb, dx, infection_dx)
    cohort, ts, attrition, stats = build_cohort(
        database=database, stays=stays, hourly=hourly, vaso_any=vaso_any, abx=abx, cultures=cultures.select("stay_id", "t_h"),
        cs_events=cs_events, cs_home=cs_home, concepts=concepts, dictionary=dictionary, d=d,
        infection_dx=infection_dx.select("stay_id", "t_h"), ventilation=ventilation,
        no_medication=no_med, no_medication_note=cs_stats.pop("_note"),
    )
    stats.update(cs_stats)
    extra = {}
    if table_path(root, "apachePatientResult") is not None:
        extra["apache_iv"] = apache_predictions(root, cohort["stay_id"])
        stats["n_apache_iv_predictions"] = extra["apache_iv"].height
    stats["eicu_tables_absent"] = ", ".join(absent) if absent else ""
    return IngestResult(cohort, ts, attrition, stats, extra)


def apache_predictions(root, stay_ids: pl.Series) -> pl.DataFrame:
    """APACHE IV predicted hospital mortality of the cohort's stays (-1 = not computed -> dropped)."""
    a = (
        scan(root, "apachePatientResult")
        .filter(pl.col("apacheversion") == "IV")
        .select(_sid(), _num("predictedhospitalmortality").alias("score"))
        .filter(pl.col("score").is_between(0, 1))
        .collect(engine="streaming")
        .with_columns(pl.col("stay_id").cast(pl.String))
    )
    a = a.join(pl.DataFrame({"stay_id": stay_ids.cast(pl.String)}), on="stay_id").group_by("stay_id").agg(pl.col("score").max())
    return a.select("stay_id", pl.col("score").round(6), pl.lit("apache_iv").alias("name")).sort("stay_id")


def _add_static(root, stays: pl.DataFrame, ev_stays: pl.DataFrame, cdb: dict, dx: pl.DataFrame, infection_dx: pl.DataFrame) -> pl.DataFrame:
    out = stays
    texts = [dx.select("stay_id", pl.col("diagnosisstring").alias("text"))]
    if table_path(root, "pastHistory") is not None:
        texts.append(
            scan(root, "pastHistory").with_columns(_sid()).join(ev_stays.select("stay_id").lazy(), on="stay_id")
            .select("stay_id", pl.col("pasthistorypath").alias("text")).collect(engine="streaming")
        )
    text = pl.concat(texts)
    for name, regex in cdb.get("comorbidities", {}).items():
        ids = text.filter(pl.col("text").fill_null("").str.contains(regex))["stay_id"].unique()
        out = out.with_columns(pl.col("stay_id").is_in(ids.implode()).cast(pl.Int8).alias(name))
    # infection source: APACHE admission diagnosis 'Sepsis, <site>', else the sepsis diagnosis strings
    src = cdb.get("infection_source", {})
    per = infection_dx.sort("stay_id", "t_h")
    cat = pl.lit("other")
    for name in ("urinary", "abdominal", "pulmonary"):
        if name in src:
            cat = pl.when(pl.col("text").fill_null("").str.contains(src[name])).then(pl.lit(name)).otherwise(cat)
    per = per.with_columns(cat.alias("infection_source")).group_by("stay_id").agg(
        pl.col("infection_source").filter(pl.col("infection_source") != "other").first(), pl.len()
    )
    out = out.join(per.select("stay_id", "infection_source"), on="stay_id", how="left").with_columns(pl.col("infection_source").fill_null("other"))
    # admission type: APACHE admission diagnosis operative / elective flags
    if table_path(root, "admissionDx") is not None:
        ad = scan(root, "admissionDx").with_columns(_sid()).join(ev_stays.select("stay_id").lazy(), on="stay_id").select("stay_id", "admitdxpath").collect(engine="streaming")
        oper = ad.filter(pl.col("admitdxpath").str.contains(r"\|All Diagnosis\|Operative"))["stay_id"].unique()
        elective = ad.filter(pl.col("admitdxpath").str.contains(r"\|Elective\|Yes"))["stay_id"].unique()
        out = out.with_columns(
            pl.when(pl.col("stay_id").is_in(oper.implode()) & pl.col("stay_id").is_in(elective.implode()))
            .then(pl.lit("surgical_elective"))
            .when(pl.col("stay_id").is_in(oper.implode()))
            .then(pl.lit("surgical_emergency"))
            .otherwise(pl.lit("medical"))
            .alias("admission_type")
        )
    # The APACHE IV score is NOT a covariate: it summarises the worst values of the first ICU day, i.e.
    # data after time zero (and after CS starts). APACHE IV enters as an external model instead
    # (results/{database}/external/apache_iv.csv).
    return out


# ----------------------------------------------------------------------------- corticosteroids
#: treatment strings that name a systemic route or a systemic glucocorticoid regimen
TREATMENT_SYSTEMIC = r"(?i)(systemic glucocorticoid|\|parenteral|\|oral|\|stress doses)"
#: treatment strings of a glucocorticoid that are not systemic
TREATMENT_NOT_SYSTEMIC = r"(?i)(inhal|topical|nasal|ophth|intra-?articular)"


def read_cs_events(root, stays: pl.DataFrame, concepts: dict, d: CohortDefinition) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict]:
    """CS events of ``stays`` (see :mod:`.exposure`), home glucocorticoids, stays of hospitals without
    medication data, and statistics (``_note``: the attrition note of the hospital step).

    - ``medication``: orders (name, brand or HICL code) not cancelled, systemic route, expanded into
      doses from ``drugstartoffset`` to ``drugstopoffset`` by ``frequency``; dose from ``dosage``
      (``"50 mg"``, or ``"50 3"`` = unit code 3 = mg); PRN orders (``prn`` = Yes or a PRN frequency)
      per ``cs_administration.prn_orders``;
    - ``treatment`` (no dose): ``eicu_treatment_glucocorticoids: systemic`` keeps entries naming a systemic
      route or regimen ('systemic glucocorticoid', '|parenteral', '|oral', '|stress doses') or a drug
      ('...|glucocorticoids|hydrocortisone'); ``all`` also the route-less 'glucocorticoid administration'
      / 'glucocorticoids' entries; ``none`` ignores the table; inhaled/topical/nasal never count;
    - ``infusiondrug``: corticosteroid infusions (no dose: rate units vary);
    - ``admissiondrug``: glucocorticoids among home medications (eye drops, creams... excluded by name).
    """
    settings = AdministrationSettings.from_concepts(concepts)
    ids = stays.select("stay_id").lazy()
    not_route = concepts["cs_route_exclude"]
    not_name = concepts["cs_name_exclude"]
    hicl = concepts["eicu"].get("medication", {}).get("hicl", {})
    hmap = pl.DataFrame(
        [(str(code), drug) for drug, codes in hicl.items() for code in codes], schema={"drughiclseqno": pl.String, "hicl_drug": pl.String}, orient="row"
    )
    stats: dict = {}
    med = (
        scan(root, "medication")
        .with_columns(_sid())
        .join(ids, on="stay_id", how="semi")
        .filter(pl.col("drugordercancelled").fill_null("No").str.to_lowercase().is_in(["no", "false"]))
        .join(hmap.lazy(), on="drughiclseqno", how="left")
        .with_columns(pl.coalesce(match_cs_drug(pl.col("drugname").fill_null(""), concepts), pl.col("hicl_drug")).alias("drug"))
        .filter(pl.col("drug").is_not_null())
        .filter(~pl.col("routeadmin").fill_null("").str.contains(not_route) & ~pl.col("drugname").fill_null("").str.contains(not_name))
        .select(
            "stay_id", _hours("drugstartoffset").alias("start_h"), _hours("drugstopoffset").alias("stop_h"), "drug",
            dose_mg(pl.col("dosage").fill_null("")).alias("dose_mg"), "frequency", pl.lit(None, dtype=pl.Float64).alias("per_day"),
            (pl.col("prn").fill_null("").str.to_lowercase() == "yes").alias("prn"),
        )
        .collect(engine="streaming")
    )
    stats["n_cs_medication_orders"] = med.height
    stats["n_cs_medication_orders_prn"] = int(med["prn"].sum())
    parts = [expand_orders(med, settings)]
    policy = d.eicu_treatment_glucocorticoids
    if table_path(root, "treatment") is not None and policy != "none":
        tr = (
            scan(root, "treatment").with_columns(_sid()).join(ids, on="stay_id", how="semi")
            .filter(pl.col("treatmentstring").str.contains("(?i)glucocorticoid") & ~pl.col("treatmentstring").str.contains(TREATMENT_NOT_SYSTEMIC))
            .select("stay_id", _hours("treatmentoffset"), "treatmentstring", match_cs_drug(pl.col("treatmentstring"), concepts).alias("drug"))
            .collect(engine="streaming")
        )
        systemic = pl.col("treatmentstring").str.contains(TREATMENT_SYSTEMIC) | pl.col("drug").is_not_null()
        stats["n_cs_treatment_entries_routeless"] = int(tr.select((~systemic).sum()).item())
        if policy == "systemic":
            tr = tr.filter(systemic)
        parts.append(tr.select("stay_id", "t_h", "drug", pl.lit(None, dtype=pl.Float64).alias("dose_mg"), pl.lit("administration").alias("evidence")))
    if table_path(root, "infusiondrug") is not None:
        # continuous corticosteroid infusions (e.g. hydrocortisone drips; none in the demo); rate units vary: no dose
        parts.append(
            scan(root, "infusiondrug").with_columns(_sid()).join(ids, on="stay_id", how="semi")
            .with_columns(match_cs_drug(pl.col("drugname").fill_null(""), concepts).alias("drug"))
            .filter(pl.col("drug").is_not_null())
            .select("stay_id", _hours("infusionoffset"), "drug", pl.lit(None, dtype=pl.Float64).alias("dose_mg"), pl.lit("administration").alias("evidence"))
            .collect(engine="streaming")
        )
    events = pl.concat([p.select(*EVENT_SCHEMA).cast(EVENT_SCHEMA) for p in parts], how="vertical").filter(pl.col("t_h").is_not_null())

    home = pl.DataFrame(schema={"stay_id": pl.Int64})
    if table_path(root, "admissiondrug") is not None:
        gc = glucocorticoids(concepts)
        codes = [str(c) for drug, cs in hicl.items() if drug in gc for c in cs]
        home = (
            scan(root, "admissiondrug").with_columns(_sid()).join(ids, on="stay_id", how="semi")
            .with_columns(match_cs_drug(pl.col("drugname").fill_null(""), concepts).alias("drug"))
            .filter((pl.col("drug").is_in(gc) | pl.col("drughiclseqno").is_in(codes)) & ~pl.col("drugname").fill_null("").str.contains(not_name))
            .select("stay_id").unique().collect(engine="streaming")
        )

    # hospitals that never fill `medication` in the whole database (a stay without hospitalid is its own group)
    no_med = None
    stats["_note"] = ""
    if "hospitalid" in scan(root, "patient").collect_schema().names():
        hosp = scan(root, "patient").select(_sid(), pl.col("hospitalid"))
        with_med = scan(root, "medication").select(_sid()).unique().join(hosp, on="stay_id").select("hospitalid").unique()
        no_med_hosp = hosp.join(with_med, on="hospitalid", how="anti", nulls_equal=True).collect(engine="streaming")
        n_hosp = hosp.select(pl.col("hospitalid").drop_nulls().n_unique()).collect().item()
        n_no = no_med_hosp["hospitalid"].drop_nulls().n_unique()
        stats.update(n_hospitals=n_hosp, n_hospitals_without_medication=n_no, n_icu_stays_hospitals_without_medication=no_med_hosp.height)
        stats["_note"] = f"{n_no} of {n_hosp} hospitals never fill the medication table (whole database): CS cannot be verified there"
        no_med = no_med_hosp.select("stay_id").join(stays.select("stay_id"), on="stay_id", how="semi")
    else:
        log.warning("patient.hospitalid absent: hospitals without medication data cannot be identified")
    return events, home, no_med, stats
