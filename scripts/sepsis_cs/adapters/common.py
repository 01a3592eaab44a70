"""Database-independent part of the adapters: cohort definition, hourly series, CS exposure.

The adapters (``mimic_iv``, ``eicu``) turn raw tables into a few standard frames, all times in
hours relative to the stay's origin (``t_h``, float: ICU admission in eICU, the clock hour of ICU
admission in MIMIC-IV) or the hour of the stay (``hour_icu``, integer; see :func:`hour_index`):

- ``stays``: one row per ICU stay: ``stay_id`` (Int64), ``patient_id``, ``stay_rank`` (1 = the
  patient's first stay), ``age``, ``sex``, ``icu_out_h``, ``hospital_mortality``, ``death_h``,
  ``alive_known_until_h`` (survival is known up to this hour: +inf with death-record linkage),
  ``died_in_icu`` and optional static covariates (weight, comorbidities, admission_type...);
- ``hourly``: long ``stay_id, hour_icu, variable, value`` aggregated per hour (:func:`aggregate_hourly`),
  helper variables (``_pao2``, SOFA inputs ``_sofa_*``, drip rates ``_rate_*``...) included;
- ``vaso_any``: ``stay_id, hour_icu`` hours with any vasopressor running (rates that could not be
  converted to norepinephrine equivalents included);
- ``abx`` / ``cultures``: ``stay_id, t_h`` (cultures also ``specimen``), or the suspected-infection
  events directly (``si_events``, MIMIC-IV); ``infection_dx``: ``stay_id, t_h`` (diagnosis-based
  fallback, eICU);
- ``cs_events``: ``stay_id, t_h, drug, dose_mg, evidence`` systemic corticosteroid administrations
  (and orders as evidence of prior use), see :mod:`.exposure`; ``cs_home``: ``stay_id`` of stays with
  a glucocorticoid among home medications; ``hosp_out_h`` and ``followup_end_h`` in ``stays`` give the
  contract's event times.

:func:`build_cohort` applies the configured cohort definition and returns the contract files
plus an attrition table.  The default definition (``preset: mimic_code``) follows MIT-LCP
mimic-code's ``sepsis3.sql``: a suspected infection (an antibiotic started during the ICU stay with
a culture up to 72 h before or 24 h after it; time = the culture when it came first, else the
antibiotic) and a SOFA score (worst of the last 24 h, ``sofa.sql``) >= 2 at some hour of the ICU
stay from 48 h before to 24 h after it; the first such suspected infection counts.  Onset = the
earlier of the infection time and that SOFA hour (Reyna et al. 2019); time zero = the start of the
hour of onset, clipped to ``onset_search.start_h`` (counted) and required to be at most
``onset_search.end_h`` hours after ICU admission (an attrition step).
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
from ..sofa import SOFA_COMPONENTS, add_sofa, sofa_worst
from .exposure import cs_exposure, doses_per_day, event_times, exposure_criteria, exposure_stats, match_cs_drug  # noqa: F401

HOURS_28D = 28 * 24
HOURS_7D = 7 * 24


# ----------------------------------------------------------------------------- configuration
#: Named cohort definitions; keys set in the config override them (docs/databases.md).
PRESETS = {
    # MIT-LCP mimic-code: any microbiology specimen is a culture, any antibiotic prescription counts
    "mimic_code": {"cultures": "all", "min_antibiotic_course_h": 0.0},
    # screening swabs, surveillance specimens and serologies are not cultures; an antibiotic counts only
    # as part of a course of >= 72 h (or one cut short by death or hospital discharge)
    "strict": {"cultures": "diagnostic", "min_antibiotic_course_h": 72.0},
}


@dataclass(frozen=True)
class CohortDefinition:
    """Settings of config ``cohort_definition`` (see config/schema/config.schema.yaml)."""

    concepts: str = "config/concepts.yaml"
    preset: str = "mimic_code"
    min_age: float = 18
    first_stay_only: bool = True
    first_stay_ties: str = "identifier"  # identifier | exclude (eICU: stays no time can order)
    culture_then_abx_h: float = 72
    abx_then_culture_h: float = 24
    antibiotic_during_icu: bool = True
    cultures: str = "all"  # all | diagnostic
    min_antibiotic_course_h: float = 0.0
    onset_search_start_h: float = -24
    onset_search_end_h: float = 24
    sofa_before_h: int = 48
    sofa_after_h: int = 24
    sofa_min_rise: int = 2
    sofa_baseline: str = "zero"  # zero | window_min
    sofa_window_h: int = 24
    ventilation_source: str = "chartevents"  # chartevents | procedureevents | either (MIMIC-IV)
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
        preset = c.get("preset") or "mimic_code"
        if preset not in PRESETS:
            raise ConfigError("config", "cohort_definition.preset", f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
        p = PRESETS[preset]

        def pick(section: dict, key: str):
            return section[key] if section.get(key) is not None else p[key]

        kw = {k: v for k, v in c.items() if k in cls.__dataclass_fields__ and v is not None}
        kw["preset"] = preset
        return cls(
            **kw,
            culture_then_abx_h=float(si.get("culture_then_abx_h", 72)),
            abx_then_culture_h=float(si.get("abx_then_culture_h", 24)),
            antibiotic_during_icu=bool(si.get("antibiotic_during_icu", True)),
            cultures=pick(si, "cultures"),
            min_antibiotic_course_h=float(pick(si, "min_antibiotic_course_h")),
            onset_search_start_h=float(search.get("start_h", -24)),
            onset_search_end_h=float(search.get("end_h", 24)),
            sofa_before_h=int(sofa.get("before_h", 48)),
            sofa_after_h=int(sofa.get("after_h", 24)),
            sofa_min_rise=int(sofa.get("min_rise", 2)),
            sofa_baseline=sofa.get("baseline", "zero"),
            sofa_window_h=int(sofa.get("window_h", 24)),
            time_window=(int(tw.get("start_h", -24)), int(tw.get("end_h", 72))),
            cs_window=(float(cw.get("start_h", 0)), float(cw.get("end_h", 24))),
        )

    @property
    def grid(self) -> tuple[int, int]:
        """Hours of the stay (relative to its origin) for which hourly values are kept at least; the
        hourly SOFA also covers the whole ICU stay (``grid_end`` of :func:`stay_grid`)."""
        lo = math.floor(self.onset_search_start_h) + min(self.time_window[0], -self.sofa_before_h)
        hi = math.ceil(self.onset_search_end_h) + max(self.time_window[1], self.sofa_after_h) + 1
        return lo, hi

    @property
    def vaso_grid_end(self) -> int:
        """Last hour of the stay with vasopressor data needed (shock reversal within 7 days)."""
        return math.ceil(self.onset_search_end_h) + HOURS_7D + 2


def hour_index(t_h: pl.Expr, right_closed: bool = False) -> pl.Expr:
    """Hour of the stay holding time ``t_h``: ``[k, k + 1)`` (eICU), or ``(k, k + 1]`` (MIMIC-IV, clock
    hours as mimic-code's ``icustay_hourly``: a value charted at 14:00 belongs to the hour ending 14:00)."""
    return ((t_h.ceil() - 1) if right_closed else t_h.floor()).cast(pl.Int32)


def stay_grid(stays: pl.DataFrame, d: CohortDefinition, right_closed: bool = False) -> pl.DataFrame:
    """``stays`` plus ``grid_end``: the last hour of the stay's hourly grid, the later of the definition's
    grid end and the hour of ICU discharge (Sepsis-3 can be met at any hour of the ICU stay)."""
    hi = d.grid[1]
    end = hour_index(pl.col("icu_out_h"), right_closed).fill_null(hi)
    return stays.with_columns(pl.max_horizontal(end, pl.lit(hi)).clip(upper_bound=hi + 24 * 365).cast(pl.Int32).alias("grid_end"))


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
    elif source.get("convert") == "fraction_to_percent":
        # FiO2: (0.2, 1] is a fraction, [20, 100] a percentage, anything else no FiO2 (mimic-code bg.sql)
        value = pl.when((value > 0.2) & (value <= 1.0)).then(value * 100.0).when(value.is_between(20, 100)).then(value)
    elif source.get("convert") is not None:
        raise ConfigError(
            "config/concepts.yaml", "convert", f"unknown conversion {source['convert']!r}; expected fahrenheit_to_celsius or fraction_to_percent"
        )
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


def aggregate_hourly(
    events: pl.LazyFrame, specs: pl.DataFrame, grid: tuple[int, int], right_closed: bool = False, grid_end: pl.DataFrame | None = None
) -> pl.LazyFrame:
    """Events ``stay_id, t_h, variable, value`` -> one value per stay, hour of stay and variable.

    Values outside the plausible range are dropped first (plausibility filter); each variable is
    aggregated with its dictionary ``aggregation``; only hours within ``grid`` are kept, or up to each
    stay's ``grid_end`` when that frame (``stay_id, grid_end``) is given.
    Urine output (``sum``) is the volume charted in that hour, i.e. mL/h.
    """
    lo, hi = grid
    ev = events.with_columns(hour_index(pl.col("t_h"), right_closed).alias("hour_icu")).filter(
        (pl.col("hour_icu") >= lo) & pl.col("value").is_not_null() & pl.col("value").is_finite()
    )
    if grid_end is None:
        ev = ev.filter(pl.col("hour_icu") <= hi)
    else:
        ev = ev.join(grid_end.select("stay_id", "grid_end").lazy(), on="stay_id").filter(pl.col("hour_icu") <= pl.col("grid_end")).drop("grid_end")
    ev = ev.join(specs.lazy(), on="variable", how="inner").filter(pl.col("value").is_between(pl.col("lo"), pl.col("hi")))
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


SOFA_AGENTS = ("norepinephrine", "epinephrine", "dopamine", "dobutamine")


def _long(frame: pl.LazyFrame, variable: str, value: pl.Expr) -> pl.LazyFrame:
    return frame.select("stay_id", pl.col("hour_icu").cast(pl.Int32), pl.lit(variable).alias("variable"), value.cast(pl.Float64).alias("value"))


def vasopressor_hourly(intervals: pl.LazyFrame, grid_end: int, grid_start: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Drip intervals -> hourly norepinephrine equivalents, drip rates and hours with a vasopressor.

    ``intervals``: ``stay_id, drug, start_h, end_h, rate, ne_factor``: ``rate`` in the drug's unit
    (null when it could not be converted), ``ne_factor`` its norepinephrine equivalent per unit
    (0 for inotropes such as dobutamine, which count for SOFA but are not vasopressors).
    Returns ``(hourly, vaso_any)``; ``hourly`` (long) holds

    - ``norepinephrine_eq``: the hour's highest total dose running at one time (mimic-code
      ``norepinephrine_equivalent_dose``: sum over drugs at each moment; a new row of the same drug
      supersedes an overlapping earlier one), null for hours in which a vasopressor runs at an
      unknown dose (not zero, not a partial sum);
    - ``_rate_<agent>`` for the SOFA agents: the highest rate running at the end of the hour (as
      mimic-code's ``sofa.sql`` reads the drips), ``_unknown_<agent>`` = 1 for hours in which that
      agent runs at an unknown dose;

    ``vaso_any``: ``stay_id, hour_icu`` hours with any vasopressor (``ne_factor > 0``) running.
    """
    lo, hi = grid_start, grid_end
    iv = intervals.filter(pl.col("end_h") > pl.col("start_h"))
    # hours overlapping [start, end): k with start < k + 1 and end > k
    span = pl.int_ranges(pl.col("start_h").floor().cast(pl.Int32).clip(lo - 1, hi + 1), pl.col("end_h").ceil().cast(pl.Int32).clip(lo - 1, hi + 1))
    over = iv.with_columns(span.alias("hour_icu")).explode("hour_icu").filter(pl.col("hour_icu").is_between(lo, hi))
    # hours whose end (k + 1) lies in (start, end]
    at_end = pl.int_ranges(pl.col("start_h").floor().cast(pl.Int32).clip(lo - 1, hi + 1), pl.col("end_h").floor().cast(pl.Int32).clip(lo - 1, hi + 1))
    ends = iv.with_columns(at_end.alias("hour_icu")).explode("hour_icu").filter(pl.col("hour_icu").is_between(lo, hi))
    parts = []
    for agent in SOFA_AGENTS:
        a = ends.filter((pl.col("drug") == agent) & pl.col("rate").is_not_null()).group_by("stay_id", "hour_icu").agg(pl.col("rate").max())
        parts.append(_long(a, f"_rate_{agent}", pl.col("rate")))
        u = over.filter((pl.col("drug") == agent) & pl.col("rate").is_null()).select("stay_id", "hour_icu").unique()
        parts.append(_long(u, f"_unknown_{agent}", pl.lit(1.0)))
    # total dose at each moment: same-drug rows truncated at the next row's start, then a sweep over drug changes
    ne = iv.filter(pl.col("ne_factor") > 0).sort("stay_id", "drug", "start_h")
    nxt = pl.col("start_h").shift(-1).over("stay_id", "drug")
    ne = ne.with_columns(pl.min_horizontal(pl.col("end_h"), nxt.fill_null(pl.col("end_h"))).alias("end_h")).filter(pl.col("end_h") > pl.col("start_h"))
    unknown = ne.filter(pl.col("rate").is_null()).with_columns(span.alias("hour_icu")).explode("hour_icu").select("stay_id", "hour_icu").unique()
    dose = (pl.col("rate") * pl.col("ne_factor")).fill_null(0.0)
    steps = pl.concat(
        [ne.select("stay_id", pl.col("start_h").alias("t"), dose.alias("d")), ne.select("stay_id", pl.col("end_h").alias("t"), (-dose).alias("d"))]
    )
    seg = (
        steps.group_by("stay_id", "t").agg(pl.col("d").sum()).sort("stay_id", "t")
        .with_columns(pl.col("d").cum_sum().over("stay_id").round(6).alias("level"), pl.col("t").shift(-1).over("stay_id").alias("t_end"))
        .filter(pl.col("t_end").is_not_null() & (pl.col("t_end") > pl.col("t")))
        .select("stay_id", pl.col("t").alias("start_h"), pl.col("t_end").alias("end_h"), "level")
    )
    ne_h = (
        seg.with_columns(span.alias("hour_icu")).explode("hour_icu").filter(pl.col("hour_icu").is_between(lo, hi))
        .group_by("stay_id", "hour_icu").agg(pl.col("level").max())
        .filter(pl.col("level") > 0)
        .join(unknown, on=["stay_id", "hour_icu"], how="anti")
    )
    parts.append(_long(ne_h, "norepinephrine_eq", pl.col("level").round(4)))
    anyv = over.filter(pl.col("ne_factor") > 0).select("stay_id", pl.col("hour_icu").cast(pl.Int32)).unique()
    return pl.concat(parts), anyv


def ventilation_hourly(intervals: pl.DataFrame, stays: pl.DataFrame, grid: tuple[int, int], right_closed: bool = False) -> pl.DataFrame:
    """Hourly ``mechanical_ventilation`` (1 = an invasive ventilation episode ``start_h, end_h`` overlaps
    the hour, 0 = none) for the hours of the ICU stay within each stay's grid (``grid_end``)."""
    lo, _ = grid
    first = hour_index(pl.lit(0.0), right_closed)
    base = stays.select(
        "stay_id", pl.int_ranges(pl.max_horizontal(first, pl.lit(lo)), pl.min_horizontal(hour_index(pl.col("icu_out_h"), right_closed), pl.col("grid_end")) + 1).alias("hour_icu")
    ).explode("hour_icu").drop_nulls()
    span = pl.int_ranges(pl.col("start_h").floor().cast(pl.Int32), pl.col("end_h").ceil().cast(pl.Int32))
    on = intervals.filter(pl.col("end_h") > pl.col("start_h")).select("stay_id", span.alias("hour_icu")).explode("hour_icu").unique().with_columns(pl.lit(1.0).alias("v"))
    out = base.with_columns(pl.col("hour_icu").cast(pl.Int32)).join(on.with_columns(pl.col("hour_icu").cast(pl.Int32)), on=["stay_id", "hour_icu"], how="left")
    return out.select("stay_id", "hour_icu", pl.lit("mechanical_ventilation").alias("variable"), pl.col("v").fill_null(0.0).alias("value"))


# ----------------------------------------------------------------------------- hourly SOFA
def wide_locf(
    hourly: pl.DataFrame,
    stays: pl.DataFrame,
    grid: tuple[int, int],
    locf_h: dict,
    ranges: dict | None = None,
    sofa_window_h: int = 24,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Observed and forward-filled wide hourly frames on the grid of each stay.

    ``stays`` gives ``stay_id`` and optionally ``grid_end`` (:func:`stay_grid`; else ``grid[1]``).
    Derives ``gcs`` (sum of the three components when no total is charted) and ``pf_ratio`` (when not
    given: PaO2 / FiO2 with the last FiO2 of the previous 4 hours, as mimic-code's bg.sql; no FiO2 ->
    no ratio).  The hourly SOFA is scored from the observed hour's inputs (``sepsis_cs.sofa``) and
    is the worst of the last ``sofa_window_h`` hours (:func:`sofa_worst`), never a carried-forward
    value.  Returns ``(observed, filled)``: ``filled`` carries each contract variable forward
    ``locf_h[var]`` hours (time-zero covariates) and holds the SOFA columns and ``sofa_known``.
    """
    lo, hi = grid
    end = pl.col("grid_end") if "grid_end" in stays.columns else pl.lit(hi)
    base = stays.select("stay_id", pl.int_ranges(lo, end + 1, dtype=pl.Int32).alias("hour_icu")).explode("hour_icu")
    obs = hourly.pivot(on="variable", index=["stay_id", "hour_icu"], values="value") if hourly.height else hourly.select("stay_id", "hour_icu")
    wide = base.join(obs, on=["stay_id", "hour_icu"], how="left").sort("stay_id", "hour_icu")
    needed = ["map", "heart_rate", "temperature", "resp_rate", "gcs", "lactate", "crp", "wbc", "creatinine", "bilirubin",
              "platelets", "pf_ratio", "glucose", "norepinephrine_eq", "urine_output",
              "_pao2", "_fio2", "_gcs_eye", "_gcs_verbal", "_gcs_motor"]
    wide = wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in needed if c not in wide.columns])
    comp = pl.col("_gcs_eye") + pl.col("_gcs_verbal") + pl.col("_gcs_motor")
    fio2 = pl.col("_fio2").forward_fill(limit=4).over("stay_id")
    wide = wide.with_columns(
        pl.coalesce(pl.col("gcs"), comp).alias("gcs"),
        pl.coalesce(pl.col("pf_ratio"), pl.col("_pao2") / (fio2 / 100.0)).alias("pf_ratio"),
    )
    sofa_cols = ["sofa", *SOFA_COMPONENTS]
    value_cols = [c for c in wide.columns if c not in ("stay_id", "hour_icu", *sofa_cols) and not c.startswith("_")]
    # plausibility filter again after derivation (pf_ratio) and for sources aggregated elsewhere (vasopressors)
    for c, (lo_v, hi_v) in (ranges or {}).items():
        if c in value_cols:
            wide = wide.with_columns(pl.when(pl.col(c).is_between(lo_v, hi_v)).then(pl.col(c)).alias(c))
    scored = sofa_worst(add_sofa(wide), sofa_window_h).select("stay_id", "hour_icu", *sofa_cols, "sofa_known")
    observed = wide.select("stay_id", "hour_icu", *value_cols)
    filled = observed.with_columns(
        [pl.col(c).forward_fill(limit=int(locf_h.get(c, 0))).over("stay_id") if locf_h.get(c, 0) else pl.col(c) for c in value_cols]
    )
    # no vasopressor row = no vasopressor; a vasopressor at an unknown dose stays unknown
    unknown = [c for c in wide.columns if c.startswith("_unknown_")]
    running_unknown = pl.any_horizontal([wide[c].fill_null(0) > 0 for c in unknown]) if unknown else pl.lit(False)
    filled = filled.with_columns(running_unknown.alias("_u")).with_columns(
        pl.when(pl.col("_u")).then(pl.col("norepinephrine_eq")).otherwise(pl.col("norepinephrine_eq").fill_null(0.0)).alias("norepinephrine_eq")
    ).drop("_u")
    filled = filled.join(scored, on=["stay_id", "hour_icu"], how="left")
    return observed, filled


# ----------------------------------------------------------------------------- Sepsis-3
def suspicion_events(abx: pl.DataFrame, cultures: pl.DataFrame, d: CohortDefinition) -> pl.DataFrame:
    """Suspected-infection events, one per antibiotic with a culture (mimic-code's rule on hours).

    A culture up to ``culture_then_abx_h`` before the antibiotic -> the earliest such culture's time;
    else a culture up to ``abx_then_culture_h`` after it -> the antibiotic's time.  ``abx``:
    ``stay_id, t_h``; ``cultures``: ``stay_id, t_h``.  Returns ``stay_id, si_h, abx_h, culture_h``.
    """
    a = abx.select("stay_id", pl.col("t_h").alias("abx_h")).unique().with_row_index("ab_id")
    p = a.join(cultures.select("stay_id", pl.col("t_h").alias("culture_h")), on="stay_id").with_columns(
        (pl.col("abx_h") - pl.col("culture_h")).alias("gap")
    )
    before = p.filter(pl.col("gap").is_between(0, d.culture_then_abx_h)).group_by("ab_id").agg(pl.col("culture_h").min().alias("c_before"))
    after = p.filter((pl.col("gap") < 0) & (-pl.col("gap") <= d.abx_then_culture_h)).group_by("ab_id").agg(pl.col("culture_h").min().alias("c_after"))
    out = a.join(before, on="ab_id", how="left").join(after, on="ab_id", how="left").filter(pl.col("c_before").is_not_null() | pl.col("c_after").is_not_null())
    return out.select(
        "stay_id", pl.coalesce("c_before", "abx_h").alias("si_h"), "abx_h", pl.coalesce("c_before", "c_after").alias("culture_h")
    ).sort("stay_id", "si_h")


def antibiotic_course_ok(abx: pl.DataFrame, stays: pl.DataFrame, min_h: float, bridge_h: float = 24.0) -> pl.DataFrame:
    """Antibiotic rows that belong to a course of at least ``min_h`` hours.

    ``abx``: ``stay_id, t_h, stop_h`` (stop null = a single dose).  Prescriptions of a stay less than
    ``bridge_h`` apart form one course; a row qualifies when its course lasts ``min_h`` hours from
    the row's start, or when the course runs until death or hospital discharge (``stays``: optional
    ``death_h``, ``hosp_out_h``), which cut it short.  Returns the qualifying rows of ``abx``.
    """
    if min_h <= 0 or abx.height == 0:
        return abx
    x = abx.with_columns(pl.coalesce("stop_h", "t_h").alias("stop_h")).sort("stay_id", "t_h")
    reach = pl.col("stop_h").cum_max().over("stay_id")
    x = x.with_columns(((pl.col("t_h") - reach.shift(1).over("stay_id")) > bridge_h).fill_null(True).cast(pl.Int32).cum_sum().over("stay_id").alias("course"))
    x = x.with_columns(pl.col("stop_h").max().over("stay_id", "course").alias("course_end"))
    cols = [c for c in ("death_h", "hosp_out_h") if c in stays.columns]
    cut = pl.lit(False)
    if cols:
        x = x.join(stays.select("stay_id", *cols), on="stay_id", how="left")
        end_of_follow = pl.min_horizontal([pl.col(c) for c in cols])
        cut = (pl.col("course_end") >= end_of_follow - bridge_h).fill_null(False)
    return x.filter((pl.col("course_end") - pl.col("t_h") >= min_h) | cut).select(abx.columns)


def sepsis3_onset(si: pl.DataFrame, sofa: pl.DataFrame, stays: pl.DataFrame, d: CohortDefinition, right_closed: bool = False) -> pl.DataFrame:
    """Sepsis-3 as mimic-code's ``sepsis3.sql``: the first suspected infection with a SOFA rise of
    ``sofa_min_rise`` at an hour of the ICU stay whose end lies from ``sofa_before_h`` before to
    ``sofa_after_h`` after it; the earliest such hour is the SOFA time.

    ``si``: ``stay_id, si_h`` (optional ``abx_h, culture_h``, ``si_kind``); ``sofa``: ``stay_id,
    hour_icu, sofa`` (24-h worst); ``stays``: ``stay_id, icu_out_h``.  Baseline ``zero``: SOFA >= the
    rise (Sepsis-3 without known prior dysfunction); ``window_min``: minus the lowest SOFA so far
    in the window.  Returns ``stay_id, si_h, ..., sofa_h`` (hour of the stay), one row per stay.
    """
    # hours of the ICU stay: from the hour holding ICU admission to the hour holding discharge, or the
    # adapter's ``icu_first_hour`` / ``icu_last_hour`` (MIMIC-IV: first and last heart rate, as mimic-code)
    first = pl.col("icu_first_hour") if "icu_first_hour" in stays.columns else pl.lit(None, dtype=pl.Int32)
    last = pl.col("icu_last_hour") if "icu_last_hour" in stays.columns else pl.lit(None, dtype=pl.Int32)
    bounds = stays.select(
        "stay_id", pl.coalesce(first, pl.lit(0)).alias("_first"), pl.coalesce(last, hour_index(pl.col("icu_out_h"), right_closed)).alias("_last")
    )
    s = sofa.select("stay_id", "hour_icu", "sofa").join(bounds, on="stay_id").filter(
        (pl.col("hour_icu") >= pl.col("_first")) & (pl.col("hour_icu") <= pl.col("_last"))
    )
    keys = [c for c in ("si_h", "abx_h", "culture_h") if c in si.columns]
    ev = si.with_row_index("_ev")
    w = ev.select("_ev", "stay_id", "si_h").join(s, on="stay_id").filter(
        (pl.col("hour_icu") + 1 >= pl.col("si_h") - d.sofa_before_h) & (pl.col("hour_icu") + 1 <= pl.col("si_h") + d.sofa_after_h)
    ).sort("_ev", "hour_icu")
    rise = pl.col("sofa") - pl.col("sofa").cum_min().over("_ev") if d.sofa_baseline == "window_min" else pl.col("sofa")
    hit = w.filter(rise.cast(pl.Int32) >= d.sofa_min_rise).group_by("_ev").agg(pl.col("hour_icu").min().alias("sofa_h"))
    out = ev.join(hit, on="_ev").sort(["stay_id", *keys], nulls_last=False).group_by("stay_id", maintain_order=True).first()
    return out.drop("_ev")


def onset_hour(si_h: pl.Expr, sofa_h: pl.Expr, how: str, right_closed: bool = False) -> pl.Expr:
    """Hour of onset: of the infection time, of the SOFA criterion, or the earlier of the two."""
    si_hour = hour_index(si_h, right_closed)
    if how == "infection":
        return si_hour
    if how == "sofa":
        return sofa_h.cast(pl.Int32)
    return pl.min_horizontal(si_hour, sofa_h.cast(pl.Int32)).cast(pl.Int32)


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


def _si_note(d: CohortDefinition, infection_dx) -> str:
    parts = [f"culture up to {d.culture_then_abx_h:g} h before or {d.abx_then_culture_h:g} h after an antibiotic"]
    if d.antibiotic_during_icu:
        parts.append("antibiotic started during the ICU stay")
    parts.append("any specimen is a culture" if d.cultures == "all" else "screening, surveillance and serology specimens are not cultures")
    if d.min_antibiotic_course_h > 0:
        parts.append(f"antibiotic course >= {d.min_antibiotic_course_h:g} h (or cut short by death/discharge)")
    if d.infection_fallback == "diagnosis" and infection_dx is not None:
        parts.append("sepsis diagnosis / APACHE admission diagnosis where no culture-antibiotic pair (eICU fallback)")
    return f"preset {d.preset}: " + "; ".join(parts)


def sepsis3_cohort(
    s: pl.DataFrame,
    hourly: pl.DataFrame,
    d: CohortDefinition,
    concepts: dict,
    dictionary: Dictionary,
    *,
    abx: pl.DataFrame | None = None,
    cultures: pl.DataFrame | None = None,
    si_events: pl.DataFrame | None = None,
    infection_dx: pl.DataFrame | None = None,
    ventilation: pl.DataFrame | None = None,
    right_closed: bool = False,
    all_stays: bool = False,
    derived: dict | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int, dict]:
    """Suspected infection, hourly SOFA and Sepsis-3 onset of the stays ``s``.

    Returns ``(sep, observed, filled, n_suspected, stats)``: ``sep`` = the Sepsis-3 stays, with
    ``t0_h`` (hour of the stay), ``si_h``, ``sofa_h``, ``si_kind``, ``culture_h``, ``onset_clipped``
    and ``onset_late`` (onset after ``onset_search.end_h``: not in the cohort);
    ``observed``/``filled`` = the wide hourly frames (:func:`wide_locf`) of the suspected stays (of
    every stay with ``all_stays``).  ``stats`` holds ``n_suspected_infection_*``, ``n_sepsis``,
    ``n_onset_after_window`` and ``n_time_zero_clipped``.  ``derived`` (``adapters.derived.load_derived``):
    Sepsis-3, and the hourly SOFA when given, are taken from a mimic-code build instead.
    """
    stats: dict = {}
    ids = s.select("stay_id")
    in_icu = pl.col("t_h").is_between(0, pl.col("icu_out_h"), closed="left")
    if si_events is None:
        a = abx.join(s.select("stay_id", "icu_out_h"), on="stay_id")
        if d.antibiotic_during_icu:
            a = a.filter(in_icu)
        if d.min_antibiotic_course_h > 0 and "stop_h" in a.columns:
            a = antibiotic_course_ok(a, s, d.min_antibiotic_course_h)
        si_events = suspicion_events(a, cultures.select("stay_id", "t_h"), d)
    si = si_events.join(ids, on="stay_id").with_columns(pl.lit("culture_antibiotic").alias("si_kind"))
    for c in ("abx_h", "culture_h"):
        if c not in si.columns:
            si = si.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    stats["n_suspected_infection_culture_abx"] = si["stay_id"].n_unique()
    if d.infection_fallback == "diagnosis" and infection_dx is not None and infection_dx.height:
        fb = (
            infection_dx.join(ids, on="stay_id").join(si.select("stay_id").unique(), on="stay_id", how="anti")
            .select("stay_id", pl.col("t_h").alias("si_h"), pl.lit(None, dtype=pl.Float64).alias("abx_h"),
                    pl.lit(None, dtype=pl.Float64).alias("culture_h"), pl.lit("diagnosis").alias("si_kind"))
            .unique()
        )
        stats["n_suspected_infection_diagnosis_fallback"] = fb["stay_id"].n_unique()
        si = pl.concat([si.select(fb.columns), fb], how="vertical_relaxed")
    si = si.select("stay_id", "si_h", "abx_h", "culture_h", "si_kind").sort("stay_id", "si_h", "abx_h", "culture_h", nulls_last=False)
    septic_given = derived["sepsis"].join(ids, on="stay_id") if derived else None
    suspected = si.select("stay_id") if septic_given is None else pl.concat([si.select("stay_id"), septic_given.select("stay_id")])
    n_suspected = suspected["stay_id"].n_unique()

    grid = d.grid
    sub = stay_grid(s if all_stays else s.join(suspected.unique(), on="stay_id"), d, right_closed)
    h = hourly.join(sub.select("stay_id"), on="stay_id")
    if ventilation is not None:
        h = pl.concat([h.filter(pl.col("variable") != "mechanical_ventilation"), ventilation_hourly(ventilation, sub, grid, right_closed)], how="vertical_relaxed")
    ranges = {v.name: v.range for v in dictionary.hourly.values() if v.range}
    observed, filled = wide_locf(h, sub, grid, concepts.get("locf_h", {}), ranges, d.sofa_window_h)
    if derived and "sofa" in derived:
        from .derived import replace_sofa

        filled = replace_sofa(filled, derived["sofa"])
    if septic_given is not None:
        sep = septic_given.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("abx_h"), pl.lit(None, dtype=pl.Float64).alias("culture_h"), pl.lit("culture_antibiotic").alias("si_kind")
        )
    else:
        sep = sepsis3_onset(si, filled, sub, d, right_closed)
    stats["n_sepsis"] = sep.height
    lo = math.floor(d.onset_search_start_h)
    sep = sep.with_columns(onset_hour(pl.col("si_h"), pl.col("sofa_h"), d.onset, right_closed).alias("t0_h"))
    sep = sep.with_columns((pl.col("t0_h") > math.floor(d.onset_search_end_h)).alias("onset_late"), (pl.col("t0_h") < lo).alias("onset_clipped"))
    stats["n_onset_after_window"] = int(sep["onset_late"].sum())
    stats["n_time_zero_clipped"] = int(sep["onset_clipped"].sum())
    sep = sep.with_columns(pl.max_horizontal(pl.col("t0_h"), pl.lit(lo)).cast(pl.Int32).alias("t0_h"))
    return sep, observed, filled, n_suspected, stats


def build_cohort(
    *,
    database: str,
    stays: pl.DataFrame,
    hourly: pl.DataFrame,
    vaso_any: pl.DataFrame,
    abx: pl.DataFrame | None,
    cultures: pl.DataFrame | None,
    cs_events: pl.DataFrame,
    cs_home: pl.DataFrame,
    concepts: dict,
    dictionary: Dictionary,
    d: CohortDefinition,
    infection_dx: pl.DataFrame | None = None,
    ventilation: pl.DataFrame | None = None,
    source_regex: dict | None = None,
    si_events: pl.DataFrame | None = None,
    right_closed: bool = False,
    derived: dict | None = None,
    no_medication: pl.DataFrame | None = None,
    no_medication_note: str = "",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict]:
    """Apply the cohort definition; returns ``(cohort, timeseries, attrition, stats)``.

    Suspected infection comes from ``si_events`` (``stay_id, si_h, abx_h, culture_h``; MIMIC-IV builds
    them as mimic-code does) or from ``abx`` and ``cultures`` (:func:`suspicion_events`; ``abx`` may
    carry ``stop_h`` for the minimum antibiotic course).  ``right_closed``: the adapter's hours are
    ``(k, k + 1]`` (:func:`hour_index`).  ``cs_events`` / ``cs_home``: the CS exposure frames of
    :mod:`.exposure`; ``no_medication``: ``stay_id`` of stays whose hospital never records medications
    (eICU), with the attrition note.
    """
    att: list[dict] = []
    stats: dict = {"n_icu_stays_raw": stays.height}
    _attrition_row(att, "ICU stays in the database", stays.height)
    s = stays.filter(pl.col("age") >= d.min_age)
    _attrition_row(att, f"adults (age >= {d.min_age:g})", s.height)
    if d.first_stay_only:
        note = ""
        if "first_stay_ambiguous" in s.columns:  # eICU: no dates, stays ordered by year, age, offsets
            amb = s.filter(pl.col("first_stay_ambiguous"))["patient_id"].n_unique()
            stats["n_first_stay_ambiguous"] = amb
            note = (
                "by time (discharge year, age, offsets); patients whose first hospital stays tie on year and age: "
                + ("first by hospital stay identifier" if d.first_stay_ties == "identifier" else "excluded")
            )
        s = s.filter(pl.col("stay_rank") == 1)
        _attrition_row(att, "first ICU stay of each patient", s.height, note)
    sep, observed, filled, si_stays, extra = sepsis3_cohort(
        s, hourly, d, concepts, dictionary, abx=abx, cultures=cultures, si_events=si_events, infection_dx=infection_dx,
        ventilation=ventilation, right_closed=right_closed, derived=derived,
    )
    stats.update(extra)
    sep = sep.filter(~pl.col("onset_late"))
    _attrition_row(att, "suspected infection during the ICU stay" if d.antibiotic_during_icu else "suspected infection", si_stays, _si_note(d, infection_dx))
    base = "assumed 0" if d.sofa_baseline == "zero" else "lowest SOFA in the window"
    _attrition_row(
        att, f"Sepsis-3: SOFA >= {d.sofa_min_rise} within -{d.sofa_before_h}/+{d.sofa_after_h} h of suspected infection", stats["n_sepsis"],
        "read from the database's mimic-code sepsis3 table (derived)" if derived else
        f"SOFA = worst of the last {d.sofa_window_h} h (mimic-code sofa.sql), baseline {base}; first qualifying suspected infection",
    )
    _attrition_row(
        att, f"Sepsis-3 onset at most {d.onset_search_end_h:g} h after ICU admission", sep.height,
        f"onset = {d.onset}; time zero = start of the hour of onset, onsets before {d.onset_search_start_h:g} h clipped to it (n_time_zero_clipped)",
    )
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
    # SOFA (worst of the last sofa.window_h hours) only where a component was measured in that window
    sofa_long = (
        fill0.filter(pl.col("hour").is_between(tw0, tw1) & pl.col("sofa_known"))
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
    if source_regex and cultures is not None and "specimen" in cultures.columns and "infection_source" not in c.columns:
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
