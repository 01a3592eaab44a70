"""Database-independent part of the adapters: cohort definition, hourly series, CS exposure.

The adapters (``mimic_iv``, ``eicu``) turn raw tables into a few standard frames, all times in
hours relative to ICU admission (``t_h``, float) or the hour of the stay (``hour_icu``, integer,
``floor(t_h)``):

- ``stays``: one row per ICU stay: ``stay_id`` (Int64), ``patient_id``, ``stay_rank`` (1 = the
  patient's first stay), ``age``, ``sex``, ``icu_out_h``, ``hospital_mortality``, ``death_h``,
  ``alive_known_until_h`` (survival is known up to this hour: +inf with death-record linkage),
  ``died_in_icu`` and optional static covariates (weight, comorbidities, admission_type...);
- ``hourly``: long ``stay_id, hour_icu, variable, value`` aggregated per hour (:func:`aggregate_hourly`),
  helper variables (``_pao2``...) included;
- ``vaso_any``: ``stay_id, hour_icu`` hours with any vasopressor running (rates that could not be
  converted to norepinephrine equivalents included);
- ``abx`` / ``cultures``: ``stay_id, t_h`` (cultures also ``specimen``); ``infection_dx``:
  ``stay_id, t_h, source`` (diagnosis-based fallback, eICU);
- ``cs_events``: ``stay_id, t_h, drug, dose_mg, evidence`` systemic corticosteroid administrations
  (and orders as evidence of prior use), see :mod:`.exposure`; ``cs_home``: ``stay_id`` of stays with
  a glucocorticoid among home medications; ``hosp_out_h`` and ``followup_end_h`` in ``stays`` give the
  contract's event times.

:func:`build_cohort` applies the configured cohort definition and returns the contract files
plus an attrition table.  Sepsis-3 follows Singer et al. (2016) as operationalised by Seymour et
al. (2016) and the PhysioNet 2019 challenge (Reyna et al.): suspected infection = culture then
antibiotic within 72 h or antibiotic then culture within 24 h (time = the earlier of the two); SOFA
rise >= 2 within [-48 h, +24 h] of it; onset = the earlier of the infection time and the first hour
meeting the SOFA criterion.  Time zero is the start of the hour of onset (hourly grid of the stay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..contract import CORE_COLUMNS, TIMING_COLUMNS
from ..dictionary import Dictionary
from ..errors import ConfigError
from ..io import read_yaml
from ..sofa import SOFA_COMPONENTS, add_sofa
from .exposure import cs_exposure, doses_per_day, event_times, exposure_criteria, exposure_stats, match_cs_drug  # noqa: F401

HOURS_28D = 28 * 24
HOURS_7D = 7 * 24


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class CohortDefinition:
    """Settings of config ``cohort_definition`` (see config/schema/config.schema.yaml)."""

    concepts: str = "config/concepts.yaml"
    min_age: float = 18
    first_stay_only: bool = True
    culture_then_abx_h: float = 72
    abx_then_culture_h: float = 24
    onset_search_start_h: float = -24
    onset_search_end_h: float = 24
    sofa_before_h: int = 48
    sofa_after_h: int = 24
    sofa_min_rise: int = 2
    sofa_baseline: str = "zero"  # zero | window_min
    onset: str = "earliest"  # earliest | infection | sofa
    infection_fallback: str = "diagnosis"  # none | diagnosis (eICU)
    septic_shock: bool = False
    shock_lactate_mmol_l: float = 2.0
    min_icu_stay_after_t0_h: float = 4
    require_at_risk_until_cs_window_end: bool = False
    late_cs_start: str = "untreated"  # untreated | exclude
    cs_chronic_lookback_h: float = 168
    assume_alive_after_discharge: bool = True
    time_window: tuple[int, int] = (-24, 72)
    cs_window: tuple[float, float] = (0.0, 24.0)
    # CS exposure (new-user, administered-drug design; see adapters/exposure.py)
    prevalent_cs: str = "exclude"  # exclude | separate | include
    cs_min_hc_eq_mg_day: float | None = None
    exclude_hospitals_without_medication: bool = True
    eicu_treatment_glucocorticoids: str = "systemic"  # systemic | all | none

    @classmethod
    def from_config(cls, config: dict) -> "CohortDefinition":
        c = dict(config.get("cohort_definition") or {})
        si = c.pop("suspected_infection", {}) or {}
        sofa = c.pop("sofa", {}) or {}
        search = c.pop("onset_search", {}) or {}
        tw = config.get("time_window", {}) or {}
        cw = config.get("cs_window", {}) or {}
        kw = {k: v for k, v in c.items() if k in cls.__dataclass_fields__}
        return cls(
            **kw,
            culture_then_abx_h=float(si.get("culture_then_abx_h", 72)),
            abx_then_culture_h=float(si.get("abx_then_culture_h", 24)),
            onset_search_start_h=float(search.get("start_h", -24)),
            onset_search_end_h=float(search.get("end_h", 24)),
            sofa_before_h=int(sofa.get("before_h", 48)),
            sofa_after_h=int(sofa.get("after_h", 24)),
            sofa_min_rise=int(sofa.get("min_rise", 2)),
            sofa_baseline=sofa.get("baseline", "zero"),
            time_window=(int(tw.get("start_h", -24)), int(tw.get("end_h", 72))),
            cs_window=(float(cw.get("start_h", 0)), float(cw.get("end_h", 24))),
        )

    @property
    def grid(self) -> tuple[int, int]:
        """Hours of the stay (relative to ICU admission) for which hourly values are kept."""
        lo = math.floor(self.onset_search_start_h) + min(self.time_window[0], -self.sofa_before_h)
        hi = math.ceil(self.onset_search_end_h) + max(self.time_window[1], self.sofa_after_h) + 1
        return lo, hi

    @property
    def vaso_grid_end(self) -> int:
        """Last hour of the stay with vasopressor data needed (shock reversal within 7 days)."""
        return math.ceil(self.onset_search_end_h) + HOURS_7D + 2


@dataclass
class IngestResult:
    cohort: pl.DataFrame
    timeseries: pl.DataFrame
    attrition: pl.DataFrame
    stats: dict
    extra: dict = field(default_factory=dict)


def load_concepts(path: str | Path) -> dict:
    """Read the concept dictionary (config/concepts.yaml) or raise a one-line ConfigError."""
    path = Path(path)
    raw = read_yaml(path, "concept dictionary")
    if not isinstance(raw, dict):
        raise ConfigError(path, None, "expected a mapping with mimic_iv, eicu, corticosteroids, antibiotics")
    for key in ("corticosteroids", "antibiotics", "locf_h"):
        if key not in raw:
            raise ConfigError(path, key, "required section is missing")
    return raw


def check_concepts(concepts: dict, db_type: str, dictionary: Dictionary, path: str = "config/concepts.yaml") -> None:
    """Every mapped variable must be a dictionary variable or a declared helper."""
    helpers = concepts.get("helpers", {})
    section = concepts.get(db_type)
    if not isinstance(section, dict) or not isinstance(section.get("hourly"), dict):
        raise ConfigError(path, f"{db_type}.hourly", "expected a mapping variable -> list of sources")
    for var, sources in section["hourly"].items():
        if var not in dictionary.hourly and var not in helpers:
            raise ConfigError(path, f"{db_type}.hourly.{var}", "not an hourly variable of the data dictionary nor a helper")
        if not isinstance(sources, list) or not all(isinstance(s, dict) and "table" in s for s in sources):
            raise ConfigError(path, f"{db_type}.hourly.{var}", "expected a list of sources, each with a 'table'")


# ----------------------------------------------------------------------------- conversions
def convert_expr(value: pl.Expr, source: dict) -> pl.Expr:
    """Apply a concept source's unit conversion to an expression."""
    if source.get("convert") == "fahrenheit_to_celsius":
        value = (value - 32.0) * (5.0 / 9.0)
    elif source.get("convert") is not None:
        raise ConfigError("config/concepts.yaml", "convert", f"unknown conversion {source['convert']!r}; expected fahrenheit_to_celsius")
    factor = float(source.get("factor", 1.0))
    offset = float(source.get("offset", 0.0))
    if factor != 1.0:
        value = value * factor
    if offset != 0.0:
        value = value + offset
    return value


def variable_specs(dictionary: Dictionary, concepts: dict) -> pl.DataFrame:
    """Plausible range and hourly aggregation of every dictionary hourly variable and helper."""
    rows = []
    for v in dictionary.hourly.values():
        lo, hi = v.range if v.range else (-math.inf, math.inf)
        rows.append((v.name, lo, hi, v.aggregation))
    for name, h in (concepts.get("helpers") or {}).items():
        lo, hi = h.get("range", [-math.inf, math.inf])
        rows.append((name, float(lo), float(hi), h.get("aggregation", "mean")))
    return pl.DataFrame(rows, schema={"variable": pl.String, "lo": pl.Float64, "hi": pl.Float64, "agg": pl.String}, orient="row")


def aggregate_hourly(events: pl.LazyFrame, specs: pl.DataFrame, grid: tuple[int, int]) -> pl.LazyFrame:
    """Events ``stay_id, t_h, variable, value`` -> one value per stay, hour of stay and variable.

    Values outside the plausible range are dropped first (plausibility filter); each variable is
    aggregated with its dictionary ``aggregation``; only hours within ``grid`` are kept.
    Urine output (``sum``) is the volume charted in that hour, i.e. mL/h.
    """
    lo, hi = grid
    ev = (
        events.with_columns(pl.col("t_h").floor().cast(pl.Int32).alias("hour_icu"))
        .filter(pl.col("hour_icu").is_between(lo, hi) & pl.col("value").is_not_null() & pl.col("value").is_finite())
        .join(specs.lazy(), on="variable", how="inner")
        .filter(pl.col("value").is_between(pl.col("lo"), pl.col("hi")))
    )
    stat = {
        "mean": pl.col("value").mean(),
        "min": pl.col("value").min(),
        "max": pl.col("value").max(),
        "sum": pl.col("value").sum(),
        "median": pl.col("value").median(),
        "last": pl.col("value").sort_by("t_h").last(),
        "first": pl.col("value").sort_by("t_h").first(),
    }
    # one group-by per aggregation, each computing only its own statistic (cheaper than all of them)
    parts = [
        ev.filter(pl.col("agg") == name).group_by("stay_id", "hour_icu", "variable").agg(expr.cast(pl.Float64).alias("value"))
        for name, expr in stat.items()
        if name in set(specs["agg"])
    ]
    return pl.concat(parts).select("stay_id", "hour_icu", "variable", "value")


def vasopressor_hourly(intervals: pl.LazyFrame, grid_end: int, grid_start: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Infusion intervals -> hourly norepinephrine equivalents and hours with any vasopressor.

    ``intervals``: ``stay_id, start_h, end_h, drug, rate_ne`` (``rate_ne`` null when the rate could
    not be converted).  Each drug's hourly maximum is summed over drugs.
    """
    iv = intervals.filter(pl.col("end_h") > pl.col("start_h")).with_columns(
        pl.int_ranges(
            pl.col("start_h").floor().cast(pl.Int32).clip(grid_start - 1, grid_end + 1),
            pl.col("end_h").ceil().cast(pl.Int32).clip(grid_start - 1, grid_end + 1),
        ).alias("hour_icu")
    )
    iv = iv.explode("hour_icu").filter(pl.col("hour_icu").is_between(grid_start, grid_end))
    per_drug = iv.group_by("stay_id", "hour_icu", "drug").agg(pl.col("rate_ne").max())
    ne = (
        per_drug.filter(pl.col("rate_ne") > 0)
        .group_by("stay_id", "hour_icu")
        .agg(pl.col("rate_ne").sum().alias("value"))
        .with_columns(pl.lit("norepinephrine_eq").alias("variable"), pl.col("hour_icu").cast(pl.Int32))
        .select("stay_id", "hour_icu", "variable", pl.col("value").cast(pl.Float64))
    )
    anyv = iv.select("stay_id", pl.col("hour_icu").cast(pl.Int32)).unique()
    return ne, anyv


# ----------------------------------------------------------------------------- hourly SOFA
def wide_locf(
    hourly: pl.DataFrame, stays: pl.DataFrame, grid: tuple[int, int], locf_h: dict, ranges: dict | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Observed and forward-filled wide hourly frames on the full grid of each stay.

    Derives ``gcs`` (sum of the three components when no total is charted) and ``pf_ratio``
    (PaO2 / FiO2 with the last FiO2 of the previous 6 h, 21 % when none) before filling.
    Returns ``(observed, filled)``; ``filled`` carries each variable forward ``locf_h[var]`` hours.
    """
    lo, hi = grid
    base = stays.select("stay_id").with_columns(pl.int_ranges(lo, hi + 1, dtype=pl.Int32).alias("hour_icu")).explode("hour_icu")
    obs = hourly.pivot(on="variable", index=["stay_id", "hour_icu"], values="value") if hourly.height else hourly.select("stay_id", "hour_icu")
    wide = base.join(obs, on=["stay_id", "hour_icu"], how="left").sort("stay_id", "hour_icu")
    needed = ["map", "heart_rate", "temperature", "resp_rate", "gcs", "lactate", "crp", "wbc", "creatinine", "bilirubin",
              "platelets", "pf_ratio", "glucose", "norepinephrine_eq", "urine_output",
              "_pao2", "_fio2", "_gcs_eye", "_gcs_verbal", "_gcs_motor"]
    wide = wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in needed if c not in wide.columns])
    comp = pl.col("_gcs_eye") + pl.col("_gcs_verbal") + pl.col("_gcs_motor")
    fio2 = pl.col("_fio2").forward_fill(limit=6).over("stay_id").fill_null(21.0)
    wide = wide.with_columns(
        pl.coalesce(pl.col("gcs"), comp).alias("gcs"),
        pl.coalesce(pl.col("pf_ratio"), pl.col("_pao2") / (fio2 / 100.0)).alias("pf_ratio"),
    )
    value_cols = [c for c in wide.columns if c not in ("stay_id", "hour_icu") and not c.startswith("_")]
    # plausibility filter again after derivation (pf_ratio) and for sources aggregated elsewhere (vasopressors)
    for c, (lo_v, hi_v) in (ranges or {}).items():
        if c in value_cols:
            wide = wide.with_columns(pl.when(pl.col(c).is_between(lo_v, hi_v)).then(pl.col(c)).alias(c))
    observed = wide.select("stay_id", "hour_icu", *value_cols)
    filled = observed.with_columns(
        [pl.col(c).forward_fill(limit=int(locf_h.get(c, 0))).over("stay_id") if locf_h.get(c, 0) else pl.col(c) for c in value_cols]
    )
    # no vasopressor row = no vasopressor
    filled = filled.with_columns(pl.col("norepinephrine_eq").fill_null(0.0))
    return observed, add_sofa(filled)


# ----------------------------------------------------------------------------- Sepsis-3
def suspected_infection(abx: pl.DataFrame, cultures: pl.DataFrame, d: CohortDefinition) -> pl.DataFrame:
    """First suspected-infection time per stay within the onset search window.

    Culture then antibiotic within ``culture_then_abx_h`` -> the culture time; antibiotic then
    culture within ``abx_then_culture_h`` -> the antibiotic time.  Returns ``stay_id, si_h, culture_h``.
    """
    pairs = abx.select("stay_id", pl.col("t_h").alias("abx_h")).join(
        cultures.select("stay_id", pl.col("t_h").alias("culture_h")), on="stay_id", how="inner"
    )
    pairs = pairs.with_columns((pl.col("abx_h") - pl.col("culture_h")).alias("gap"))
    ok = ((pl.col("gap") >= 0) & (pl.col("gap") <= d.culture_then_abx_h)) | ((pl.col("gap") < 0) & (-pl.col("gap") <= d.abx_then_culture_h))
    si = pairs.filter(ok).with_columns(pl.min_horizontal("abx_h", "culture_h").alias("si_h"))
    si = si.filter(pl.col("si_h").is_between(d.onset_search_start_h, d.onset_search_end_h, closed="left"))
    return si.sort("stay_id", "si_h", "culture_h").group_by("stay_id", maintain_order=True).first().select("stay_id", "si_h", "culture_h")


def sofa_onset(si: pl.DataFrame, filled: pl.DataFrame, d: CohortDefinition) -> pl.DataFrame:
    """First hour in [si - before_h, si + after_h] with SOFA rise >= ``sofa_min_rise``.

    Baseline ``zero``: SOFA >= min_rise (Sepsis-3: baseline assumed 0 without known prior organ
    dysfunction).  ``window_min``: SOFA minus the lowest SOFA so far in the window.
    Returns ``stay_id, sofa_h`` (integer hour of the stay) for stays meeting the criterion.
    """
    w = filled.select("stay_id", "hour_icu", "sofa").join(si.select("stay_id", "si_h"), on="stay_id", how="inner")
    w = w.filter(
        (pl.col("hour_icu") >= (pl.col("si_h") - d.sofa_before_h).floor()) & (pl.col("hour_icu") <= (pl.col("si_h") + d.sofa_after_h).floor())
    ).sort("stay_id", "hour_icu")
    if d.sofa_baseline == "window_min":
        rise = pl.col("sofa") - pl.col("sofa").cum_min().over("stay_id")
    else:
        rise = pl.col("sofa")
    hit = w.filter(rise.cast(pl.Int32) >= d.sofa_min_rise)
    return hit.group_by("stay_id").agg(pl.col("hour_icu").min().alias("sofa_h"))


def onset_hour(si_h: pl.Expr, sofa_h: pl.Expr, how: str) -> pl.Expr:
    if how == "infection":
        return si_h.floor().cast(pl.Int32)
    if how == "sofa":
        return sofa_h.cast(pl.Int32)
    return pl.min_horizontal(si_h.floor(), sofa_h.cast(pl.Float64)).cast(pl.Int32)


# ----------------------------------------------------------------------------- outcomes
def shock_reversal(vaso_any: pl.DataFrame, cohort: pl.DataFrame) -> pl.DataFrame:
    """Vasopressor-free for 24 consecutive hours completed within 7 days of time zero.

    Only for stays with a vasopressor running at time zero (hours -1..1); null otherwise.  Hours
    after death in the ICU are not vasopressor-free; hours after ICU discharge alive are.
    """
    rows = []
    v = vaso_any.join(cohort.select("stay_id", "t0_h"), on="stay_id").with_columns((pl.col("hour_icu") - pl.col("t0_h")).alias("h"))
    by_stay = {k[0]: set(g["h"].to_list()) for k, g in v.group_by("stay_id")}
    for r in cohort.select("stay_id", "t0_h", "icu_out_h", "died_in_icu").iter_rows(named=True):
        hours = by_stay.get(r["stay_id"], set())
        if not ({-1, 0, 1} & hours):
            rows.append((r["stay_id"], None, 0))
            continue
        horizon = HOURS_7D
        if r["died_in_icu"]:
            horizon = min(horizon, int(math.floor(r["icu_out_h"] - r["t0_h"])))
        run, reversed_ = 0, 0
        for h in range(0, max(horizon, 0)):
            run = 0 if h in hours else run + 1
            if run >= 24:
                reversed_ = 1
                break
        rows.append((r["stay_id"], reversed_, 1))
    return pl.DataFrame(rows, schema={"stay_id": pl.Int64, "shock_reversal_7d": pl.Int8, "vasopressor_t0": pl.Int8}, orient="row")


# ----------------------------------------------------------------------------- the cohort
def infection_source_from_cultures(cultures: pl.DataFrame, t0: pl.DataFrame, source_regex: dict) -> pl.DataFrame:
    """Infection source from the specimen types of cultures taken within 24 h of time zero.

    Priority pulmonary > abdominal > urinary; 'other' when cultures exist but none matches (blood
    cultures alone do not locate the source) and for stays without such cultures.
    """
    cat = pl.lit("other")
    for name in ("urinary", "abdominal", "pulmonary"):
        if name in source_regex:
            cat = pl.when(pl.col("specimen").fill_null("").str.contains(source_regex[name])).then(pl.lit(name)).otherwise(cat)
    prio = {"pulmonary": 0, "abdominal": 1, "urinary": 2, "other": 3}
    m = (
        cultures.join(t0, on="stay_id")
        .filter((pl.col("t_h") - pl.col("t0_h")).abs() <= 24)
        .with_columns(cat.alias("infection_source"))
        .with_columns(pl.col("infection_source").replace_strict(prio, return_dtype=pl.Int8).alias("_p"))
        .sort("stay_id", "_p")
        .group_by("stay_id", maintain_order=True)
        .first()
    )
    return t0.select("stay_id").join(m.select("stay_id", "infection_source"), on="stay_id", how="left").with_columns(
        pl.col("infection_source").fill_null("other")
    )


def _attrition_row(rows: list, step: str, n: int, note: str = "") -> None:
    prev = rows[-1]["n_stays"] if rows else n
    rows.append({"step": step, "n_stays": n, "n_excluded": prev - n, "note": note})


def build_cohort(
    *,
    database: str,
    stays: pl.DataFrame,
    hourly: pl.DataFrame,
    vaso_any: pl.DataFrame,
    abx: pl.DataFrame,
    cultures: pl.DataFrame,
    cs_events: pl.DataFrame,
    cs_home: pl.DataFrame,
    concepts: dict,
    dictionary: Dictionary,
    d: CohortDefinition,
    infection_dx: pl.DataFrame | None = None,
    ventilation: pl.DataFrame | None = None,
    source_regex: dict | None = None,
    no_medication: pl.DataFrame | None = None,
    no_medication_note: str = "",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict]:
    """Apply the cohort definition; returns ``(cohort, timeseries, attrition, stats)``.

    ``cs_events`` / ``cs_home``: the CS exposure frames of :mod:`.exposure`; ``no_medication``:
    ``stay_id`` of stays whose hospital never records medications (eICU), with the attrition note.
    """
    att: list[dict] = []
    stats: dict = {"n_icu_stays_raw": stays.height}
    _attrition_row(att, "ICU stays in the database", stays.height)
    s = stays.filter(pl.col("age") >= d.min_age)
    _attrition_row(att, f"adults (age >= {d.min_age:g})", s.height)
    if d.first_stay_only:
        s = s.filter(pl.col("stay_rank") == 1)
        _attrition_row(att, "first ICU stay of each patient", s.height)
    ids = s.select("stay_id")

    si = suspected_infection(abx.join(ids, on="stay_id"), cultures.select("stay_id", "t_h").join(ids, on="stay_id"), d).with_columns(
        pl.lit("culture_antibiotic").alias("si_kind")
    )
    stats["n_suspected_infection_culture_abx"] = si.height
    if d.infection_fallback == "diagnosis" and infection_dx is not None and infection_dx.height:
        fb = (
            infection_dx.join(ids, on="stay_id")
            .filter(pl.col("t_h").is_between(d.onset_search_start_h, d.onset_search_end_h, closed="left"))
            .sort("stay_id", "t_h")
            .group_by("stay_id", maintain_order=True)
            .first()
            .select("stay_id", pl.col("t_h").alias("si_h"), pl.lit(None, dtype=pl.Float64).alias("culture_h"), pl.lit("diagnosis").alias("si_kind"))
            .join(si.select("stay_id"), on="stay_id", how="anti")
        )
        stats["n_suspected_infection_diagnosis_fallback"] = fb.height
        si = pl.concat([si, fb], how="vertical_relaxed")
        note = "culture + antibiotic, or sepsis diagnosis / APACHE admission diagnosis where no culture-antibiotic pair (fallback)"
    else:
        note = "culture then antibiotic within {:g} h or antibiotic then culture within {:g} h".format(d.culture_then_abx_h, d.abx_then_culture_h)
    _attrition_row(att, f"suspected infection {d.onset_search_start_h:g} to {d.onset_search_end_h:g} h of ICU admission", si.height, note)

    grid = d.grid
    sub = s.join(si.select("stay_id"), on="stay_id")
    ranges = {v.name: v.range for v in dictionary.hourly.values() if v.range}
    observed, filled = wide_locf(hourly.join(sub.select("stay_id"), on="stay_id"), sub, grid, concepts.get("locf_h", {}), ranges)
    so = sofa_onset(si, filled, d)
    sep = si.join(so, on="stay_id", how="inner").with_columns(onset_hour(pl.col("si_h"), pl.col("sofa_h"), d.onset).alias("t0_h"))
    sep = sep.filter(pl.col("t0_h").is_between(math.floor(d.onset_search_start_h), math.ceil(d.onset_search_end_h)))
    stats["n_sepsis"] = sep.height
    base = "assumed 0" if d.sofa_baseline == "zero" else "lowest SOFA in the window"
    _attrition_row(att, f"Sepsis-3: SOFA rise >= {d.sofa_min_rise} within -{d.sofa_before_h}/+{d.sofa_after_h} h of suspected infection", sep.height, f"baseline {base}; onset = {d.onset}")
    time_zero = "sepsis3_onset"
    if d.septic_shock:
        w = filled.join(sep.select("stay_id", pl.col("t0_h").alias("onset")), on="stay_id")
        shock = (
            w.filter((pl.col("hour_icu") >= pl.col("onset")) & (pl.col("hour_icu") <= pl.col("onset") + d.sofa_after_h))
            .filter((pl.col("norepinephrine_eq") > 0) & (pl.col("lactate") > d.shock_lactate_mmol_l))
            .group_by("stay_id")
            .agg(pl.col("hour_icu").min().alias("shock_h"))
        )
        sep = sep.join(shock, on="stay_id").with_columns(pl.col("shock_h").cast(pl.Int32).alias("t0_h")).drop("shock_h")
        time_zero = "septic_shock_onset"
        stats["n_septic_shock"] = sep.height
        _attrition_row(att, f"septic shock: vasopressor and lactate > {d.shock_lactate_mmol_l:g} mmol/L within {d.sofa_after_h} h of onset", sep.height, "time zero = shock onset")

    c = s.join(sep.select("stay_id", "t0_h", "si_kind", "culture_h"), on="stay_id")
    c = c.filter(pl.col("icu_out_h") - pl.col("t0_h") >= d.min_icu_stay_after_t0_h)
    _attrition_row(att, f"ICU stay >= {d.min_icu_stay_after_t0_h:g} h after time zero", c.height)

    # CS exposure (new users, administered drug) and its steps: hospitals without medication data,
    # prevalent users, minimum dose, landmark, late starters (adapters/exposure.py)
    cs = cs_exposure(cs_events, cs_home, c.select("stay_id", "t0_h"), concepts, d)
    c = c.join(cs, on="stay_id", how="left").with_columns(pl.col("cs").fill_null(False), pl.col("cs_before_t0").fill_null(0).cast(pl.Int8))
    c, steps, cs_stats = exposure_criteria(c, d, no_medication, no_medication_note)
    for step, n, note in steps:
        _attrition_row(att, step, n, note)
    stats.update(cs_stats)

    # outcomes
    death_rel = pl.col("death_h") - pl.col("t0_h")
    known = pl.col("alive_known_until_h") - pl.col("t0_h")
    c = c.with_columns(
        pl.when(pl.col("death_h").is_not_null())
        .then((death_rel <= HOURS_28D).cast(pl.Int8))
        .when(known >= HOURS_28D)
        .then(pl.lit(0, dtype=pl.Int8))
        .otherwise(None)
        .alias("mortality_28d"),
        (pl.col("icu_out_h").clip(lower_bound=0) / 24.0).round(4).alias("icu_los_days"),
    )
    sr = shock_reversal(vaso_any.join(c.select("stay_id"), on="stay_id"), c)
    c = c.join(sr, on="stay_id", how="left")

    # time series relative to time zero
    tw0, tw1 = d.time_window
    t0 = c.select("stay_id", "t0_h")
    hourly_vars = list(dictionary.hourly)
    obs_long = (
        observed.join(t0, on="stay_id")
        .with_columns((pl.col("hour_icu") - pl.col("t0_h")).alias("hour"))
        .filter(pl.col("hour").is_between(tw0, tw1))
        .unpivot(index=["stay_id", "hour"], on=[v for v in hourly_vars if v in observed.columns and v not in ("sofa", *SOFA_COMPONENTS)], variable_name="variable", value_name="value")
        .filter(pl.col("value").is_not_null())
    )
    fill0 = filled.join(t0, on="stay_id").with_columns((pl.col("hour_icu") - pl.col("t0_h")).alias("hour"))
    sofa_cols = [v for v in ("sofa", *SOFA_COMPONENTS) if v in hourly_vars]
    # SOFA only where at least one component is known
    sofa_long = (
        fill0.filter(pl.col("hour").is_between(tw0, tw1) & pl.any_horizontal([pl.col(x).is_not_null() for x in SOFA_COMPONENTS]))
        .unpivot(index=["stay_id", "hour"], on=sofa_cols, variable_name="variable", value_name="value")
        .filter(pl.col("value").is_not_null())
        .with_columns(pl.col("value").cast(pl.Float64))
    )
    ts = pl.concat([obs_long, sofa_long]).select(
        pl.col("stay_id").cast(pl.String), pl.col("hour").cast(pl.Int32), "variable", pl.col("value").cast(pl.Float64).round(4)
    ).sort("stay_id", "variable", "hour")

    # static covariates at time zero (last value within the LOCF limit, hour 0)
    at0 = fill0.filter(pl.col("hour") == 0).select(
        "stay_id",
        pl.col("sofa").cast(pl.Float64).alias("sofa_t0"),
        pl.col("gcs").alias("gcs_t0"),
        pl.col("lactate").alias("lactate_t0"),
        pl.col("map").alias("map_t0"),
    )
    c = c.join(at0, on="stay_id", how="left")
    if ventilation is not None:
        vent = (
            ventilation.join(t0, on="stay_id")
            .filter((pl.col("start_h") <= pl.col("t0_h") + 1) & (pl.col("end_h") >= pl.col("t0_h")))
            .select("stay_id")
            .unique()
        )
        c = c.with_columns(pl.col("stay_id").is_in(vent["stay_id"].implode()).cast(pl.Int8).alias("mechanical_ventilation_t0"))
    if source_regex and "specimen" in cultures.columns and "infection_source" not in c.columns:
        c = c.join(infection_source_from_cultures(cultures, t0, source_regex), on="stay_id", how="left")

    c, n_clipped = event_times(c)
    timing = [col for col in TIMING_COLUMNS if col in c.columns]
    static = [v for v in dictionary.static if v in c.columns]
    cohort = c.with_columns(
        pl.col("stay_id").cast(pl.String),
        pl.col("patient_id").cast(pl.String),
        pl.lit(database).alias("database"),
        pl.when(pl.col("si_kind") == "diagnosis").then(pl.lit(time_zero + "_dx_fallback")).otherwise(pl.lit(time_zero)).alias("time_zero"),
        pl.col("cs").fill_null(False),
        pl.col("cs_before_t0").fill_null(0).cast(pl.Int8),
    )
    cohort = cohort.select(*CORE_COLUMNS, *timing, *[v for v in static if v not in CORE_COLUMNS]).sort("stay_id")
    # drop static covariates that are entirely missing (the contract forbids them)
    keep = (*CORE_COLUMNS, *timing, "age", "sex")
    cohort = cohort.select([col for col in cohort.columns if col in keep or cohort[col].null_count() < cohort.height])
    stats.update(
        n_cohort=cohort.height,
        n_cs=int(cohort["cs"].sum()),
        n_cs_before_t0=int(c["cs_before_t0"].sum()),
        n_cs_late_start=int(c["cs_late"].fill_null(False).sum()),
        n_time_zero_dx_fallback=int((cohort["time_zero"].str.ends_with("_dx_fallback")).sum()),
        n_event_times_clipped_to_t0=n_clipped,
        **exposure_stats(cohort),
    )
    attrition = pl.DataFrame(att, schema={"step": pl.String, "n_stays": pl.Int64, "n_excluded": pl.Int64, "note": pl.String})
    return cohort, ts, attrition, stats


def suppress_attrition(att: pl.DataFrame, min_cell_count: int) -> pl.DataFrame:
    """Attrition counts as text, with small exclusions combined so that no count under
    ``min_cell_count`` is shown or derivable (a shown exclusion is the difference of two shown
    stay counts, so hiding the small exclusion alone would not protect it).

    A step that excludes between 1 and ``min_cell_count - 1`` stays is merged with the next step:
    its stay count is hidden ("-") and its exclusions are added to the next step's, whose note names
    the merged steps. A small exclusion at the last step is merged backwards the same way.
    """
    from ..io import format_count

    k = min_cell_count
    rows = [dict(r) for r in att.iter_rows(named=True)]
    for r in rows:
        r["_excl"] = int(r["n_excluded"] or 0)
        r["_hidden"] = False
        r["_merged"] = []
    i = 0
    while i < len(rows):
        r = rows[i]
        if 0 < r["_excl"] < k:
            if i + 1 < len(rows):  # merge forward
                nxt = rows[i + 1]
                nxt["_excl"] += r["_excl"]
                nxt["_merged"] = r["_merged"] + [r["step"]] + nxt["_merged"]
                r["_hidden"] = True
            else:  # last step: merge the previous shown step into this one
                j = max((j for j in range(i) if not rows[j]["_hidden"] and j > 0), default=None)
                if j is None:
                    r["_hidden"] = True
                    break
                prev = rows[j]
                r["_excl"] += prev["_excl"]
                r["_merged"] = prev["_merged"] + [prev["step"]] + r["_merged"]
                prev["_hidden"] = True
                continue  # re-check this step with the combined count
        i += 1
    out = []
    for r in rows:
        note = r.get("note") or ""
        if r["_hidden"]:
            n_stays, excl, note = "-", "in next step", (note + "; " if note else "") + "small exclusion combined with the next step"
        else:
            n_stays, excl = format_count(r["n_stays"], k), format_count(r["_excl"], k)
            if r["_merged"]:
                note = (note + "; " if note else "") + "excluded count includes: " + "; ".join(r["_merged"])
        out.append({"step": r["step"], "n_stays": n_stays, "n_excluded": excl, "note": note})
    return pl.DataFrame(out, schema={"step": pl.String, "n_stays": pl.String, "n_excluded": pl.String, "note": pl.String})


def public_stats(stats: dict, min_cell_count: int, attrition: pl.DataFrame | None = None) -> dict:
    """Ingest statistics for summary JSON: counts under ``min_cell_count`` become null, and so does any
    count equal to a stay count that the suppressed attrition table hides (it would reveal the small
    exclusion next to it)."""
    from ..io import suppress_count

    hidden: set[int] = set()
    if attrition is not None:
        shown = suppress_attrition(attrition, min_cell_count)
        hidden = {int(n) for n, s in zip(attrition["n_stays"], shown["n_stays"]) if s == "-"}
        # the own exclusion count of a step merged with another would reveal the small one by difference
        hidden |= {int(n) for n, s in zip(attrition["n_excluded"], shown["n_excluded"]) if n and s != str(n)}
    out = {}
    for k, v in stats.items():
        if k.startswith("n_") and isinstance(v, int):
            v = None if v in hidden else suppress_count(v, min_cell_count)
        out[k] = v
    # a summary of fewer than min_cell_count stays is withheld
    for k, n in SUMMARY_COUNTS.items():
        if k in out and int(stats.get(n) or 0) < min_cell_count:
            out[k] = None
    return out


#: summary statistic -> the count of stays it summarises (public_stats withholds it under min_cell_count)
SUMMARY_COUNTS = {"cs_hydrocortisone_eq_mg_24h_median": "n_cs_dose_known"}


def run_ingest(ingest, smk) -> "IngestResult":
    """Shared body of the adapter scripts: run ``ingest`` and write the contract files, the
    suppressed attrition table and the public ingest statistics; returns the result for extras."""
    import time

    from ..dictionary import load_dictionary
    from ..io import write_csv, write_json, write_parquet

    t0 = time.perf_counter()
    definition = {k: smk.params[k] for k in ("cohort_definition", "time_window", "cs_window")}
    res = ingest(smk.params.path, smk.wildcards.database, definition, load_concepts(smk.input.concepts), load_dictionary(smk.input.dictionary))
    write_parquet(res.cohort, smk.output.cohort)
    write_parquet(res.timeseries, smk.output.timeseries)
    write_csv(suppress_attrition(res.attrition, smk.params.min_cell_count), smk.output.attrition)
    stats = public_stats(res.stats, smk.params.min_cell_count, res.attrition)
    stats["ingest_seconds"] = round(time.perf_counter() - t0, 2)
    write_json(stats, smk.output.stats)
    return res
