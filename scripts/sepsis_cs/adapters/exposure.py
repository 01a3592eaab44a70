"""Corticosteroid exposure as a new-user, administered-drug design, and the cohort's event times.

Database-independent part of the CS exposure (issue 13); the adapters (``mimic_iv``, ``eicu``) read
their raw tables into one standard frame of **CS events**, all times in hours since ICU admission:

``stay_id, t_h, drug, dose_mg, evidence``

- ``drug``: contract spelling (:func:`match_cs_drug`), null for an unnamed glucocorticoid (eICU
  treatment strings such as 'systemic glucocorticoid');
- ``dose_mg``: the dose of that administration in mg of the drug itself (null when unknown);
- ``evidence``: ``administration`` (a dose given: MIMIC-IV eMAR, or one scheduled dose of an order
  where the database only has orders, see :func:`expand_orders`) or ``order`` (an order without
  proof of administration, used only as evidence of prior use).

:func:`cs_exposure` turns the events into the per-stay exposure columns and :func:`exposure_criteria`
applies the exposure steps of the cohort definition (hospitals without medication data, prevalent
users, minimum dose, landmark, late starters) with their attrition rows.  :func:`event_times` adds the
contract's optional event-time columns (:data:`sepsis_cs.contract.TIMING_COLUMNS`).

Design (docs/databases.md, "Corticosteroid exposure"):

- **treated** = a systemic glucocorticoid administered within ``cs_window``; fludrocortisone (a
  mineralocorticoid, ``glucocorticoid: false`` in the concept dictionary) counts only with one, so the
  treatment start is the first *glucocorticoid* administration;
- **prevalent users** = a systemic glucocorticoid administered (or, where the adapter supplies them,
  ordered) within ``cs_chronic_lookback_h`` hours before time zero, or among home medications;
- **dose** = Σ dose × hydrocortisone-equivalent factor of the administrations in the first 24 h of
  treatment, after removing duplicates (same stay, drug and dose within ``duplicate_window_h``);
- orders (databases or admissions without administration records) become administrations by their
  frequency (:func:`parse_frequency`): every scheduled dose from the order start to its stop, a
  replacement order of the same drug ending the previous one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import polars as pl

log = logging.getLogger("sepsis_cs")

EVENT_SCHEMA = {"stay_id": pl.Int64, "t_h": pl.Float64, "drug": pl.String, "dose_mg": pl.Float64, "evidence": pl.String}
ORDER_SCHEMA = {
    "stay_id": pl.Int64, "start_h": pl.Float64, "stop_h": pl.Float64, "drug": pl.String, "dose_mg": pl.Float64,
    "frequency": pl.String, "per_day": pl.Float64, "prn": pl.Boolean,
}


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class AdministrationSettings:
    """How administrations are read (concept dictionary section ``cs_administration``)."""

    emar_given_regex: str = r"(?i)^(delayed |partial )?(administered|started|restarted)( in other location| bolus from iv drip)?$"
    duplicate_window_h: float = 1.0
    prn_orders: str = "ignore"  # ignore | count
    order_default_duration_h: float = 24.0
    order_max_days: float = 14.0
    orders_mark_prior_use: bool = True
    emar_coverage: str = "care_unit"  # care_unit | admission (MIMIC-IV)

    @classmethod
    def from_concepts(cls, concepts: dict) -> AdministrationSettings:
        c = concepts.get("cs_administration") or {}
        kw = {k: v for k, v in c.items() if k in cls.__dataclass_fields__}
        return cls(**kw)


def glucocorticoids(concepts: dict) -> list[str]:
    """Drugs of the concept dictionary that are glucocorticoids (all but ``glucocorticoid: false``)."""
    return [d for d, v in concepts["corticosteroids"].items() if v.get("glucocorticoid", True)]


# ----------------------------------------------------------------------------- drug names
def match_cs_drug(name: pl.Expr, concepts: dict) -> pl.Expr:
    """Corticosteroid drug name (contract spelling) from a free-text drug name, else null.

    Prednisolone is tested before prednisone and methylprednisolone before both, so that
    the longer names win.
    """
    order = ["methylprednisolone", "prednisolone", "prednisone", "hydrocortisone", "dexamethasone", "fludrocortisone"]
    order += [d for d in concepts["corticosteroids"] if d not in order]
    lower = name.str.to_lowercase()
    expr = pl.lit(None, dtype=pl.String)
    for drug in reversed(order):
        if drug not in concepts["corticosteroids"]:
            continue
        names = concepts["corticosteroids"][drug]["names"]
        pattern = "(" + "|".join(n.replace("-", "-?").replace("+", r"\+") for n in names) + ")"
        expr = pl.when(lower.str.contains(pattern)).then(pl.lit(drug)).otherwise(expr)
    return expr


def dose_mg(text: pl.Expr, unit: pl.Expr | None = None) -> pl.Expr:
    """Dose in mg from free text (``"50 mg"``, ``"0.1 MG"``, ``"1 g"``, ``"500 mcg"``; eICU ``"100 3"``).

    With ``unit`` the number is read from ``text`` and the unit from ``unit``.  eICU writes some doses
    as ``"<number> <unit code>"``; code 3 is mg (checked on the demo: 1,436 rows with 'MG' in the drug
    name against none contradicting).  A range (``"40-80 mg"``) gives its first number (a lower bound).
    Anything else (mL, tablets, drops, units) is null.
    """
    number = r"([0-9]*\.?[0-9]+)"
    if unit is None:
        value = text.str.extract(r"^\s*" + number, 1).cast(pl.Float64, strict=False)
        unit_txt = (
            pl.when(text.str.contains(r"^\s*[0-9]*\.?[0-9]+\s+3\s*$"))
            .then(pl.lit("mg"))
            .otherwise(text.str.extract(r"(?i)^\s*[0-9]*\.?[0-9]+(?:\s*-\s*[0-9]*\.?[0-9]+)?\s*([a-z]+)", 1))
        )
    else:
        value = text.str.extract(r"^\s*" + number, 1).cast(pl.Float64, strict=False)
        unit_txt = unit
    u = unit_txt.str.to_lowercase().str.strip_chars()
    factor = (
        pl.when(u.is_in(["mg", "mgs", "milligram", "milligrams"])).then(1.0)
        .when(u.is_in(["g", "gm", "gram", "grams"])).then(1000.0)
        .when(u.is_in(["mcg", "ug", "microgram", "micrograms"])).then(0.001)
    )
    return value * factor


# ----------------------------------------------------------------------------- frequency parser
@dataclass(frozen=True)
class FrequencyRule:
    """One entry of :data:`FREQUENCY_RULES`.

    ``value``: doses per day, or how to compute them from the first capture group ``n`` of
    ``pattern``: ``("every_h", 24)`` = 24 / n (every n hours), ``("every_min", 1440)``,
    ``("every_day", 1)`` = 1 / n, ``("per_day", 1)`` = n, ``("per_week", 1/7)`` = n / 7,
    ``"count_times"`` = the number of clock times listed (``0600,1400,2200``).
    """

    name: str
    pattern: str
    kind: str  # scheduled | once | prn | continuous | unknown
    value: float | tuple | str | None = None


_TIMES_IN_PARENS = r"\(\s*\d{2,4}(?:\s*[;, ]\s*\d{2,4})+\s*\)"
#: ordered registry (first match wins) applied to the upper-cased, trimmed frequency text.  Extend it by
#: inserting a rule; tests/data/frequency_strings.csv holds every frequency string of both demos with
#: its expected reading.
FREQUENCY_RULES: list[FrequencyRule] = [
    # no evidence the drug is given at a known rate
    FrequencyRule("prn", r"PRN|AS NEEDED|ONDEM|ON DEMAND|SLIDING SCALE|CORRECTIONAL|PACU USE ONLY|^(?:BID|TID|QID|QD|UD|Q\d+H)P$|MRP$|^MR ?X\d", "prn"),
    FrequencyRule("continuous", r"CONT|INFUS|DRIP|TITRAT|TPN", "continuous"),
    FrequencyRule("protocol", r"PROTOCOL|AS ?-?DIR|DIRECTED|SEE ?ADMIN|SEEINSTR|USER SPECIFIED|PER ORDERS|^UDP?$|PYXIS|PYXVEND|STK-MED|^\.DISP$|DIALYSIS|\bHD\b|^WARFARIN$|^\d{1,3}$|QSHIFT|^DAYS$|PROCEDURAL SEDATION|^X(?:[2-9]|\d{2,})$|^2X$", "unknown"),
    # days of the week before 'once' ('Once per day on Mon Wed Fri')
    FrequencyRule("three_per_week", r"MWF|MON WED FRI|QMOWEFR", "scheduled", 3 / 7),
    FrequencyRule("n_per_week", r"(\d)\s*X\s*/\s*WEEK", "scheduled", ("per_week", 1 / 7)),
    FrequencyRule("weekly", r"WEEKLY|^Q(?:MON|TUES?|WED|THU|THUR|THURS|FRI|SAT|SUN)$", "scheduled", 1 / 7),
    # a single dose
    FrequencyRule(
        "once",
        r"ONCE|ONE ?TIME|^ONE(?: 1)?$|1X ?ONLY|^1X$|^X ?1\b|^X1|\bNOW\b|\bSTAT\b|^OTO?$|^OTCOND$|PYX1TIME|ON ?CALL|^OC,|PRE-?OP|POST-?OP\b|-PROC ONCE|"
        r"GIVE IN|^TO OR$|^PROCEDURE|VACCINE|\bFOR 1 DOSE",
        "once",
        1.0,
    ),
    # listed clock times: 'Q4H LIMITED (00;04;12;16)', 'BID (09 17)', '0600,1400,2200'
    FrequencyRule("times_in_parens", _TIMES_IN_PARENS, "scheduled", "count_times"),
    FrequencyRule("clock_times", r"^\d{4}(?:\s*,\s*\d{4})+$", "scheduled", "count_times"),
    FrequencyRule("every_other_day", r"EVERY OTHER DAY|\bQOD\b", "scheduled", 0.5),
    FrequencyRule("every_n_days", r"Q\s*(\d+)\s*DAYS?\b", "scheduled", ("every_day", 1.0)),
    FrequencyRule("every_n_min", r"(?:Q|EVERY)\s*(\d+)\s*(?:MIN|M)\b|Q(\d+)MIN", "scheduled", ("every_min", 1440.0)),
    FrequencyRule("every_n_h", r"(?:Q|EVERY)\s*(\d+(?:\.\d+)?)\s*(?:H|HR|HRS|HOUR|HOURS)|^R?Q\s*(\d{1,2})$|^(\d{1,2})H$|^H(\d{1,2})$", "scheduled", ("every_h", 24.0)),
    FrequencyRule("n_per_day", r"(\d)\s*(?:X|TIMES)\s*(?:/\s*DAY|DAILY|PER DAY|A DAY)", "scheduled", ("per_day", 1.0)),
    FrequencyRule("qid", r"QID|ACHS|AC\s*[+/&-]\s*HS|BEFORE MEALS (?:&|AND) NIGHTLY|FOUR TIMES", "scheduled", 4.0),
    FrequencyRule("tid", r"TID|THREE TIMES", "scheduled", 3.0),
    FrequencyRule("bid", r"BID|TWICE|\bB\.I\.D", "scheduled", 2.0),
    FrequencyRule("with_meals", r"^AC$|WITH MEALS|W/MEALS", "scheduled", 3.0),
    FrequencyRule(
        "daily",
        r"DAILY|QDAY|\bQD\b|^QD\d|^Q\s*24$|\bQAM\b|\bQPM\b|Q\s*HS|^HS|NIGHTLY|BEDTIME|EVENING|MORNING|BREAKFAST|BRKFST|LUNCH|"
        r"DINNER|SUPPER|NOON|^Q\d{4}$|^\d{4}$|^AMAC$|^QAC\b|HSINSULIN|^QPM",
        "scheduled",
        1.0,
    ),
]
FREQUENCY_KINDS = ("scheduled", "once", "prn", "continuous", "unknown")


def _rule_value(rule: FrequencyRule, freq: pl.Expr) -> pl.Expr:
    v = rule.value
    if v is None:
        return pl.lit(None, dtype=pl.Float64)
    if isinstance(v, (int, float)):
        return pl.lit(float(v))
    if v == "count_times":
        inner = pl.coalesce(freq.str.extract("(" + _TIMES_IN_PARENS + ")", 1), freq)
        return inner.str.count_matches(r"\d{2,4}").cast(pl.Float64)
    how, factor = v
    groups = pl.coalesce([freq.str.extract(rule.pattern, i) for i in range(1, rule.pattern.count("(\\d") + 1)])
    n = groups.cast(pl.Float64, strict=False)
    if how in ("every_h", "every_min", "every_day"):
        return pl.when(n > 0).then(factor / n)
    return n * factor  # per_day, per_week


def parse_frequency(freq: pl.Expr) -> pl.Expr:
    """Read a free-text order frequency; returns a struct ``kind, doses_per_day, max_doses``.

    ``kind``: scheduled (repeated every 24 / doses_per_day h), once (one dose), prn (as needed: no
    evidence of any dose), continuous (infusion), unknown (as directed, protocol, dispensing-cabinet
    codes, empty).  ``doses_per_day`` is null for prn, continuous and unknown; 1 for once.
    ``max_doses``: the 'X n' limit of the order ('Q8H X3'), null when absent.
    """
    f = freq.str.to_uppercase().str.strip_chars().str.replace_all(r"\s+", " ")
    kind = pl.lit("unknown")
    per_day = pl.lit(None, dtype=pl.Float64)
    for rule in reversed(FREQUENCY_RULES):
        hit = f.str.contains(rule.pattern)
        kind = pl.when(hit).then(pl.lit(rule.kind)).otherwise(kind)
        per_day = pl.when(hit).then(_rule_value(rule, f)).otherwise(per_day)
    per_day = pl.when(kind.is_in(["scheduled", "once"])).then(per_day)
    kind = pl.when(f.is_null() | (f == "")).then(pl.lit("unknown")).when((kind == "scheduled") & per_day.is_null()).then(pl.lit("unknown")).otherwise(kind)
    max_doses = f.str.extract(r"(?:^|[^0-9A-Z])X ?(\d+)\b", 1).cast(pl.Int64, strict=False)
    return pl.struct(kind.alias("kind"), per_day.round(6).alias("doses_per_day"), max_doses.alias("max_doses"))


def doses_per_day(freq: pl.Expr) -> pl.Expr:
    """Administrations per day of a free-text frequency (1 for a single dose), null when unknown or PRN."""
    return parse_frequency(freq).struct.field("doses_per_day")


# ----------------------------------------------------------------------------- orders -> administrations
def expand_orders(orders: pl.DataFrame, settings: AdministrationSettings, keep: tuple[str, ...] = ()) -> pl.DataFrame:
    """Order-based CS records -> the administrations they imply (``evidence = administration``).

    ``orders``: :data:`ORDER_SCHEMA` (``per_day``: the database's own doses per day, used when the
    frequency text is unknown, e.g. MIMIC-IV ``doses_per_24_hrs``; ``prn``: the database's PRN flag).

    - scheduled: a dose at the start and every 24 / doses_per_day h while before the order's stop
      (a stop at or before the start, or none, = ``order_default_duration_h``), at most the 'X n'
      limit and ``order_max_days`` days;
    - a later repeating order of the same drug **replaces** an earlier one: the earlier stops when the
      later starts (change orders are not double counted; orders starting at the same time add up,
      e.g. a 20 mg and a 10 mg tablet order);
    - once, continuous and unknown frequencies: one dose at the start (continuous and unknown: a
      lower bound);
    - PRN: no evidence of any dose: dropped (``prn_orders: ignore``) or one dose at the start (``count``).

    ``keep``: further columns of ``orders`` carried to every dose.
    """
    schema = {**EVENT_SCHEMA, **{k: orders.schema[k] for k in keep}}
    if orders.height == 0:
        return pl.DataFrame(schema=schema)
    o = orders.with_columns(parse_frequency(pl.col("frequency")).alias("_f")).unnest("_f")
    o = o.with_columns(
        (pl.col("prn").fill_null(False) | (pl.col("kind") == "prn")).alias("is_prn"),
        # the database's own doses per day when the text says nothing usable
        pl.when((pl.col("kind") == "unknown") & (pl.col("per_day") > 0)).then(pl.lit("scheduled")).otherwise(pl.col("kind")).alias("kind"),
        pl.coalesce(pl.col("doses_per_day"), pl.when(pl.col("per_day") > 0).then(pl.col("per_day"))).alias("doses_per_day"),
    )
    if settings.prn_orders == "ignore":
        o = o.filter(~pl.col("is_prn"))
    o = o.with_columns(pl.when(pl.col("is_prn")).then(pl.lit("once")).otherwise(pl.col("kind")).alias("kind"))
    if o.height == 0:
        return pl.DataFrame(schema=schema)
    repeating = pl.col("kind").is_in(["scheduled", "continuous", "unknown"])
    stop = pl.when(pl.col("stop_h") > pl.col("start_h")).then(pl.col("stop_h")).otherwise(pl.col("start_h") + settings.order_default_duration_h)
    o = o.sort("stay_id", "drug", "start_h").with_columns(stop.alias("stop_h"))
    # replacement: the next repeating order of the same drug starting strictly later
    nxt = (
        o.filter(repeating)
        .select("stay_id", "drug", "start_h")
        .unique()
        .sort("stay_id", "drug", "start_h")
        .with_columns(pl.col("start_h").shift(-1).over("stay_id", "drug").alias("next_start_h"))
    )
    o = o.join(nxt, on=["stay_id", "drug", "start_h"], how="left", nulls_equal=True)
    o = o.with_columns(
        pl.when(repeating & pl.col("next_start_h").is_not_null()).then(pl.min_horizontal("stop_h", "next_start_h")).otherwise(pl.col("stop_h")).alias("stop_h")
    )
    interval = 24.0 / pl.col("doses_per_day")
    n_sched = ((pl.col("stop_h") - pl.col("start_h")) / interval).ceil().cast(pl.Int64)
    cap = (settings.order_max_days * 24.0 / interval).ceil().cast(pl.Int64)
    n = (
        pl.when(pl.col("kind") == "scheduled")
        .then(pl.min_horizontal(n_sched, cap, pl.col("max_doses").fill_null(10**9)).clip(lower_bound=1))
        .otherwise(pl.lit(1, dtype=pl.Int64))
    )
    out = (
        o.with_columns(n.alias("_n"), pl.when(pl.col("kind") == "scheduled").then(interval).otherwise(0.0).alias("_dt"))
        .with_columns(pl.int_ranges(0, pl.col("_n")).alias("_k"))
        .explode("_k")
        .select(
            "stay_id",
            (pl.col("start_h") + pl.col("_k") * pl.col("_dt")).alias("t_h"),
            "drug",
            "dose_mg",
            pl.lit("administration").alias("evidence"),
            *keep,
        )
    )
    return out.cast(schema)


def deduplicate(events: pl.DataFrame, window_h: float) -> pl.DataFrame:
    """An administration of the same stay, drug and dose as the previous record, less than ``window_h``
    hours after it, is a duplicate (duplicated order rows, a dose charted twice) and is dropped;
    different doses at the same time are kept (e.g. 20 mg + 10 mg tablets).  ``window_h`` 0 keeps all."""
    if events.height == 0:
        return events
    key = ["stay_id", "drug", "dose_mg"]
    e = events.sort([*key, "t_h"], nulls_last=True)
    gap = pl.col("t_h") - pl.col("t_h").shift(1).over(key)
    return e.filter(gap.is_null() | (gap >= window_h) | (window_h <= 0))


# ----------------------------------------------------------------------------- per-stay exposure
def cs_exposure(
    events: pl.DataFrame,
    home: pl.DataFrame,
    t0: pl.DataFrame,
    concepts: dict,
    d,
) -> pl.DataFrame:
    """Per stay: ``cs, cs_start_h, cs_drug, cs_hydrocortisone_eq_mg_24h, cs_late, cs_before_t0, cs_first_h``.

    ``events``: CS events (:data:`EVENT_SCHEMA`, times since ICU admission); ``home``: ``stay_id`` of
    stays with a systemic glucocorticoid among home medications; ``t0``: ``stay_id, t0_h``;
    ``d``: the :class:`~sepsis_cs.adapters.common.CohortDefinition`.  Times are returned relative to time zero.

    - start = first glucocorticoid administration at or after ``min(cs_window.start_h, 0)``;
      ``cs`` = start within ``cs_window``; ``cs_late`` = start after it (within the time window);
    - ``cs_drug`` = the first named glucocorticoid of the first 24 h of treatment,
      ``cs_hydrocortisone_eq_mg_24h`` = Σ dose × ``hc_equivalent`` of the (de-duplicated)
      administrations of every CS in [start, start + 24 h): a lower bound when some doses are unknown,
      null when none is known; both null for untreated stays (the contract);
    - ``cs_before_t0`` = a glucocorticoid administration or order in the ``cs_chronic_lookback_h``
      hours before time zero, or a home glucocorticoid;
    - ``cs_first_h`` = first glucocorticoid administration at or after time zero (whatever the window).
    """
    settings = AdministrationSettings.from_concepts(concepts)
    lo, hi = d.cs_window
    anchor = min(lo, 0.0)
    gc = glucocorticoids(concepts)
    factors = pl.DataFrame(
        {"drug": list(concepts["corticosteroids"]), "hc": [float(v["hc_equivalent"]) for v in concepts["corticosteroids"].values()]}
    )
    e = (
        events.cast(EVENT_SCHEMA)
        .join(t0.select("stay_id", "t0_h"), on="stay_id", how="inner")
        .with_columns((pl.col("t_h") - pl.col("t0_h")).alias("rel"))
        .join(factors, on="drug", how="left")
        # an unnamed entry (eICU 'systemic glucocorticoid') is a glucocorticoid
        .with_columns((pl.col("drug").is_null() | pl.col("drug").is_in(gc)).alias("is_gc"))
    )
    adm = deduplicate(e.filter(pl.col("evidence") == "administration"), settings.duplicate_window_h)
    prior = e.filter(pl.col("is_gc") & (pl.col("rel") < anchor) & (pl.col("rel") >= -d.cs_chronic_lookback_h)).select("stay_id")
    start = adm.filter(pl.col("is_gc") & (pl.col("rel") >= anchor)).group_by("stay_id").agg(pl.col("rel").min().alias("start_h"))
    first0 = adm.filter(pl.col("is_gc") & (pl.col("rel") >= 0)).group_by("stay_id").agg(pl.col("rel").min().alias("cs_first_h"))
    window = adm.join(start, on="stay_id").filter((pl.col("rel") >= pl.col("start_h")) & (pl.col("rel") < pl.col("start_h") + 24))
    per_stay = (
        window.sort("stay_id", "rel", "drug", nulls_last=True)
        .group_by("stay_id", maintain_order=True)
        .agg(
            pl.col("drug").filter(pl.col("is_gc") & pl.col("drug").is_not_null()).first().alias("first_drug"),
            pl.when((pl.col("dose_mg") * pl.col("hc")).is_not_null().any()).then((pl.col("dose_mg") * pl.col("hc")).sum()).alias("hc_eq"),
        )
    )
    out = t0.select("stay_id").join(start, on="stay_id", how="left").join(per_stay, on="stay_id", how="left").join(first0, on="stay_id", how="left")
    treated = pl.col("start_h").is_not_null() & (pl.col("start_h") >= lo) & (pl.col("start_h") <= hi)
    prior_ids = pl.concat([prior, home.select(pl.col("stay_id").cast(pl.Int64))]).unique()
    out = out.with_columns(
        treated.alias("cs"),
        pl.when(treated).then(pl.col("start_h")).alias("cs_start_h"),
        # the contract: no CS drug or dose for untreated stays (late starters keep only cs_first_h)
        pl.when(treated).then(pl.col("first_drug")).alias("cs_drug"),
        pl.when(treated).then(pl.col("hc_eq").round(2)).alias("cs_hydrocortisone_eq_mg_24h"),
        (pl.col("start_h").is_not_null() & (pl.col("start_h") > hi) & (pl.col("start_h") <= d.time_window[1])).alias("cs_late"),
        pl.col("stay_id").is_in(prior_ids["stay_id"].implode()).cast(pl.Int8).alias("cs_before_t0"),
    )
    cols = ["stay_id", "cs", "cs_start_h", "cs_drug", "cs_hydrocortisone_eq_mg_24h", "cs_late", "cs_before_t0", "cs_first_h"]
    if lo < 0:
        # cs_first_h counts from time zero and must equal cs_start_h for treated stays: undefined here
        log.warning("cs_window.start_h < 0: the event-time column cs_first_h is left out")
        cols.remove("cs_first_h")
    return out.select(cols)


# ----------------------------------------------------------------------------- cohort steps
def exposure_criteria(c: pl.DataFrame, d, no_medication: pl.DataFrame | None = None, note_no_medication: str = "") -> tuple[pl.DataFrame, list[tuple[str, int, str]], dict]:
    """The exposure steps of the cohort definition, in order; returns the cohort, attrition rows
    ``(step, n_stays, note)`` and statistics.

    1. ``exclude_hospitals_without_medication`` (eICU): stays of hospitals that never record medications
       (``no_medication``: their ``stay_id``) cannot show CS, so they leave the CS comparison;
    2. ``prevalent_cs``: ``exclude`` drops prevalent users (``cs_before_t0 = 1``); ``separate`` and
       ``include`` keep them (``separate``: downstream contrasts leave them out, see docs/databases.md);
    3. ``cs_min_hc_eq_mg_day``: treated stays below this hydrocortisone-equivalent dose of the first
       24 h of treatment, or with no known dose, are neither treated nor untreated: excluded;
    4. ``require_at_risk_until_cs_window_end`` (landmark) and ``late_cs_start: exclude``.
    """
    rows: list[tuple[str, int, str]] = []
    stats: dict = {}
    if no_medication is not None:
        hit = pl.col("stay_id").is_in(no_medication["stay_id"].implode())
        stats["n_cohort_hospitals_without_medication"] = int(c.select(hit.sum()).item())
        if d.exclude_hospitals_without_medication:
            c = c.filter(~hit)
            rows.append(("hospital records medications (CS exposure verifiable)", c.height, note_no_medication))
    prevalent = pl.col("cs_before_t0").fill_null(0) == 1
    stats["n_cs_prevalent_users"] = int(c.select(prevalent.sum()).item())
    look = f"{d.cs_chronic_lookback_h:g}"
    if d.prevalent_cs == "exclude":
        c = c.filter(~prevalent)
        rows.append(
            (f"no systemic glucocorticoid in the {look} h before time zero (new users)", c.height, "prevalent users excluded (prevalent_cs: exclude); home medication where recorded")
        )
    else:
        what = "kept as a separate group, left out of the CS contrasts" if d.prevalent_cs == "separate" else "kept and analysed with the others"
        rows.append((f"prevalent users (systemic glucocorticoid in the {look} h before time zero)", c.height, f"{what} (prevalent_cs: {d.prevalent_cs}; cs_before_t0 = 1)"))
        if d.prevalent_cs == "separate":
            # the phases after the ingest do not read prevalent_cs yet (docs/databases.md, "Exposure steps")
            log.warning(
                "prevalent_cs: separate keeps the prevalent CS users with cs_before_t0 = 1; only the target trial "
                "(target_trial.exclude_prevalent) leaves them out so far, the other analyses include them in the CS contrasts"
            )
    if d.cs_min_hc_eq_mg_day is not None:
        low = pl.col("cs") & (pl.col("cs_hydrocortisone_eq_mg_24h").is_null() | (pl.col("cs_hydrocortisone_eq_mg_24h") < d.cs_min_hc_eq_mg_day))
        stats["n_cs_below_min_dose"] = int(c.select(low.sum()).item())
        c = c.filter(~low)
        rows.append(
            (f"CS started at >= {d.cs_min_hc_eq_mg_day:g} mg/day hydrocortisone-equivalent, or no CS", c.height, "treated stays below the minimum dose or with no known dose are excluded")
        )
    if d.require_at_risk_until_cs_window_end:
        at_risk = pl.col("cs") | (pl.col("icu_out_h") - pl.col("t0_h") >= d.cs_window[1])
        c = c.filter(at_risk)
        rows.append((f"untreated stays still in the ICU {d.cs_window[1]:g} h after time zero", c.height, "landmark: avoids immortal-time bias"))
    if d.late_cs_start == "exclude":
        c = c.filter(~pl.col("cs_late").fill_null(False))
        rows.append(("no CS start after the CS window (grace period)", c.height, "late starters are neither treated nor untreated"))
    return c, rows, stats


def exposure_stats(cohort: pl.DataFrame) -> dict:
    """Dose summary of the treated stays (median hydrocortisone-equivalent mg of the first 24 h)."""
    dose = cohort.filter(pl.col("cs"))["cs_hydrocortisone_eq_mg_24h"].drop_nulls()
    return {
        "n_cs_dose_known": int(dose.len()),
        "cs_hydrocortisone_eq_mg_24h_median": None if dose.len() == 0 else round(float(dose.median()), 1),
    }


# ----------------------------------------------------------------------------- event times
def event_times(c: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The contract's optional event-time columns, hours from time zero (``t0_h``).

    Reads the stays' ``death_h``, ``icu_out_h``, ``hosp_out_h``, ``followup_end_h`` (hours since ICU
    admission; ``cs_first_h`` is already relative); follow-up of a recorded death ends at the death.
    Times before time zero (inconsistent source records) are set to 0 and counted.
    """
    rel = {
        "death_h": pl.col("death_h") - pl.col("t0_h"),
        "icu_discharge_h": pl.col("icu_out_h") - pl.col("t0_h"),
        "hospital_discharge_h": pl.col("hosp_out_h") - pl.col("t0_h"),
        "followup_end_h": pl.coalesce(pl.col("death_h"), pl.col("followup_end_h")) - pl.col("t0_h"),
    }
    rel = {k: v for k, v in rel.items() if all(x in c.columns for x in v.meta.root_names())}
    c = c.with_columns([v.cast(pl.Float64).alias(k) for k, v in rel.items()])
    cols = list(rel)
    n_neg = int(c.select(pl.sum_horizontal([(pl.col(k) < 0).fill_null(False).cast(pl.Int64) for k in cols]).sum()).item()) if cols else 0
    # cs_first_h is left as computed: it must equal cs_start_h exactly for treated stays
    c = c.with_columns([pl.col(k).clip(lower_bound=0.0).round(4) for k in cols])
    return c, n_neg
