"""MIMIC-IV concepts of MIT-LCP mimic-code, re-implemented with polars.

Each function reproduces the logic of one concept of mimic-code (``mimic-iv/concepts``; checked
against the DuckDB dialect at commit 8bcbd190, MIT licence) on frames that the adapter has already
read lazily, filtered to the needed items and stays, and collected.  No SQL is copied: the rules
are restated here, and ``sepsis_cs.reference`` builds mimic-code itself to compare.

Times are datetimes until :func:`to_hours` turns them into hours since the stay's *origin*: the
clock hour of ICU admission (``intime`` truncated to the hour).  The hours of a stay are clock
hours, right-closed as in mimic-code's ``icustay_hourly``: hour ``k`` is ``(origin + k h,
origin + (k + 1) h]`` and its ``endtime`` is ``origin + (k + 1) h`` (:func:`hour_of`).

Concepts (mimic-code file in brackets):

- :func:`antibiotic` [medication/antibiotic.sql], :func:`specimens` and :func:`suspicion_of_infection`
  [sepsis/suspicion_of_infection.sql];
- :func:`bg_pao2fio2` [measurement/bg.sql, arterial specimens only as in score/sofa.sql];
- :func:`gcs` [measurement/gcs.sql], :func:`mean_bp` [measurement/vitalsign.sql];
- :func:`urine_output_24h` [measurement/urine_output.sql, urine_output_rate.sql];
- :func:`vasoactive_intervals` [medication/norepinephrine.sql ... vasopressin.sql, with rate units converted];
- :func:`ventilation` [measurement/oxygen_delivery.sql, ventilator_setting.sql, treatment/ventilation.sql].
"""

from __future__ import annotations

import re

import polars as pl

H = pl.duration(hours=1)


# ----------------------------------------------------------------------------- time grid
def to_hours(ts: pl.Expr, origin: str = "origin") -> pl.Expr:
    """Hours from the stay's origin (float)."""
    return (ts - pl.col(origin)).dt.total_seconds(fractional=True) / 3600.0


def hour_of(t_h: pl.Expr, right_closed: bool = True) -> pl.Expr:
    """Hour of the stay holding time ``t_h``: ``(k, k + 1]`` (right-closed, MIMIC-IV) or ``[k, k + 1)``."""
    return ((t_h.ceil() - 1) if right_closed else t_h.floor()).cast(pl.Int32)


def bucket(frame: pl.DataFrame, stays: pl.DataFrame, key: str, time_col: str, value: str, variable: str, agg: str, grid: tuple[int, int]) -> pl.DataFrame:
    """Events ``key, time_col, value`` -> ``stay_id, hour_icu, variable, value`` (hourly ``agg``).

    ``stays`` maps ``key`` (stay_id, hadm_id or subject_id) to ``stay_id, origin``; hours outside
    ``grid`` (relative to each stay's origin) are dropped.
    """
    lo, hi = grid
    cols = ["stay_id", "origin", "grid_end"] if key == "stay_id" else [key, "stay_id", "origin", "grid_end"]
    ev = (
        frame.filter(pl.col(value).is_not_null())
        .join(stays.select([c for c in cols if c in stays.columns]), on=key)
        .with_columns(hour_of(to_hours(pl.col(time_col))).alias("hour_icu"))
        .filter((pl.col("hour_icu") >= lo) & (pl.col("hour_icu") <= pl.col("grid_end") if "grid_end" in stays.columns else pl.col("hour_icu") <= hi))
    )
    stat = {"min": pl.col(value).min(), "max": pl.col(value).max()}[agg]
    return ev.group_by("stay_id", "hour_icu").agg(stat.cast(pl.Float64).alias("value")).select(
        "stay_id", "hour_icu", pl.lit(variable).alias("variable"), "value"
    )


# ----------------------------------------------------------------------------- infection
def antibiotic(rx: pl.DataFrame, icu: pl.DataFrame, spec: dict) -> pl.DataFrame:
    """Systemic antibiotic prescriptions [antibiotic.sql].

    ``rx``: ``subject_id, hadm_id, drug, route, drug_type, starttime, stoptime``; ``icu``: every ICU
    stay ``stay_id, hadm_id, intime_raw, outtime``.  Drug names contain one of ``spec['names']``;
    excluded: ``drug_type`` BASE (a missing drug_type counts as MAIN), routes listed in
    ``route_exclude`` or containing ``route_exclude_contains``, drug names containing
    ``drug_exclude_contains``, and rows without a route (mimic-code joins on the route).
    ``stay_id`` = the ICU stay of the same admission during which the antibiotic started, else null.
    """
    names = "|".join(re.escape(n.lower()) for n in spec["names"])
    drug = pl.col("drug").str.to_lowercase()
    route = pl.col("route").str.to_lowercase()
    keep = (
        drug.str.contains(names)
        & pl.col("route").is_not_null()
        & (pl.col("drug_type").fill_null("MAIN") != "BASE")
        & ~pl.col("route").is_in(spec.get("route_exclude", []))
    )
    for s in spec.get("route_exclude_contains", []):
        keep = keep & ~route.str.contains(re.escape(s.lower()))
    for s in spec.get("drug_exclude_contains", []):
        keep = keep & ~drug.str.contains(re.escape(s.lower()))
    ab = rx.filter(keep & pl.col("starttime").is_not_null())
    during = (
        ab.select("hadm_id", "starttime")
        .unique()
        .join(icu.select("hadm_id", "stay_id", "intime_raw", "outtime"), on="hadm_id")
        .filter((pl.col("starttime") >= pl.col("intime_raw")) & (pl.col("starttime") < pl.col("outtime")))
        .group_by("hadm_id", "starttime")
        .agg(pl.col("stay_id").min())
    )
    return ab.join(during, on=["hadm_id", "starttime"], how="left").select("subject_id", "hadm_id", "stay_id", "drug", "starttime", "stoptime")


def specimens(micro: pl.DataFrame, spec: dict | None = None) -> pl.DataFrame:
    """One row per ``micro_specimen_id`` (any specimen counts as a culture, as in mimic-code).

    With ``spec`` (the ``cultures`` section of the concept dictionary, preset ``strict``) a specimen
    is not a culture when its type matches ``exclude_specimen_regex`` or every test on it matches
    ``exclude_test_regex`` (screening swabs, surveillance specimens, serologies).
    """
    agg = [
        pl.col("subject_id").max(),
        pl.col("hadm_id").max(),
        pl.col("chartdate").max(),
        pl.col("charttime").max(),
        pl.col("spec_type_desc").max(),
    ]
    out = micro.group_by("micro_specimen_id").agg(*agg)
    if spec:
        st = micro.group_by("micro_specimen_id").agg(
            pl.col("spec_type_desc").fill_null("").str.contains(spec["exclude_specimen_regex"]).any().alias("_bad_type"),
            pl.col("test_name").fill_null("").str.contains(spec["exclude_test_regex"]).all().alias("_bad_tests"),
        )
        out = out.join(st, on="micro_specimen_id").filter(~(pl.col("_bad_type") | pl.col("_bad_tests"))).drop("_bad_type", "_bad_tests")
    return out


def suspicion_of_infection(abx: pl.DataFrame, spec: pl.DataFrame, culture_then_abx_h: float = 72, abx_then_culture_h: float = 24) -> pl.DataFrame:
    """Suspected infection per antibiotic row [suspicion_of_infection.sql].

    A culture (any time, same patient) up to ``culture_then_abx_h`` before the antibiotic (strictly
    before it), or up to ``abx_then_culture_h`` after it (strictly after); cultures with a date only
    are compared by calendar day (72 h -> 3 days, 24 h -> 1 day).  Time = the earliest such culture
    before the antibiotic, else the antibiotic.  Returns ``subject_id, stay_id, antibiotic_time,
    culture_time, si_time`` for antibiotics with a culture.
    """
    days_before = int(-(-culture_then_abx_h // 24))
    days_after = int(-(-abx_then_culture_h // 24))
    a = abx.select("subject_id", "stay_id", pl.col("starttime").alias("abx_time")).with_row_index("ab_id")
    s = spec.select(
        "subject_id", "micro_specimen_id", pl.col("charttime").alias("ct"), pl.col("chartdate").cast(pl.Datetime("us")).alias("cd")
    )
    p = a.join(s, on="subject_id").with_columns(pl.col("abx_time").dt.truncate("1d").alias("abx_day"))
    ct, cd, t = pl.col("ct"), pl.col("cd"), pl.col("abx_time")
    before = (ct.is_not_null() & (t > ct) & (t <= ct + pl.duration(hours=culture_then_abx_h))) | (
        ct.is_null() & (pl.col("abx_day") >= cd) & (pl.col("abx_day") <= cd + pl.duration(days=days_before))
    )
    after = (ct.is_not_null() & (t >= ct - pl.duration(hours=abx_then_culture_h)) & (t < ct)) | (
        ct.is_null() & (pl.col("abx_day") >= cd - pl.duration(days=days_after)) & (pl.col("abx_day") <= cd)
    )
    # earliest culture per antibiotic: by date, then time (a dated culture without a time comes after the
    # timed ones of that day, DuckDB's default null order in mimic-code), then specimen
    first = lambda cond, name: (
        p.filter(cond).sort(["ab_id", "cd", "ct", "micro_specimen_id"], nulls_last=[False, False, True, False]).group_by("ab_id", maintain_order=True).first()
        .select("ab_id", pl.coalesce("ct", "cd").alias(name))
    )
    out = a.join(first(before, "last72"), on="ab_id", how="left").join(first(after, "next24"), on="ab_id", how="left")
    out = out.filter(pl.col("last72").is_not_null() | pl.col("next24").is_not_null())
    return out.select(
        "subject_id", "stay_id", pl.col("abx_time"),
        pl.coalesce("last72", "next24").alias("culture_time"),
        pl.coalesce("last72", "abx_time").alias("si_time"),
    )


# ----------------------------------------------------------------------------- SOFA inputs
def fio2_percent(v: pl.Expr, low_fraction: float = 0.2) -> pl.Expr:
    """FiO2 in % from a value recorded as % or as a fraction (mimic-code bg.sql rules):
    (low_fraction, 1] -> x 100; (1, 20) -> invalid; [20, 100] -> as is; else invalid."""
    return (
        pl.when((v > low_fraction) & (v <= 1.0)).then(v * 100.0)
        .when((v >= 20) & (v <= 100)).then(v)
        .otherwise(None)
    )


def bg_pao2fio2(lab: pl.DataFrame, ce_fio2: pl.DataFrame, items: dict) -> pl.DataFrame:
    """PaO2/FiO2 of blood gases [bg.sql]: one row per ``specimen_id`` with a PaO2; FiO2 from the same
    specimen, else the last charted FiO2 of the patient in the 4 h before; no FiO2 -> no ratio (no
    room-air default).  Returns ``subject_id, charttime, specimen, pao2fio2ratio``.

    ``lab``: ``subject_id, specimen_id, charttime, itemid, value, valuenum`` of the bg items;
    ``ce_fio2``: ``subject_id, charttime, valuenum`` of the charted FiO2.
    """
    bg = lab.group_by("specimen_id").agg(
        pl.col("subject_id").max(),
        pl.col("charttime").max(),
        pl.col("value").filter(pl.col("itemid") == items["specimen"]).max().alias("specimen"),
        pl.col("valuenum").filter(pl.col("itemid") == items["pao2"]).max().alias("po2"),
        fio2_percent(pl.col("valuenum"), 0.2).filter(pl.col("itemid") == items["fio2"]).max().alias("fio2"),
    ).filter(pl.col("po2").is_not_null())
    fc = (
        ce_fio2.filter((pl.col("valuenum") > 0) & (pl.col("valuenum") <= 100))
        .group_by("subject_id", "charttime")
        .agg(fio2_percent(pl.col("valuenum"), 0.2 - 1e-9).max().alias("fio2_chartevents"))
        .filter(pl.col("fio2_chartevents") > 0)
        .sort("charttime")
    )
    bg = bg.sort("charttime").join_asof(
        fc.rename({"charttime": "fio2_time"}), left_on="charttime", right_on="fio2_time", by="subject_id", strategy="backward", tolerance="4h", check_sortedness=False
    )
    ratio = pl.when(pl.col("fio2").is_not_null()).then(100 * pl.col("po2") / pl.col("fio2")).otherwise(100 * pl.col("po2") / pl.col("fio2_chartevents"))
    return bg.select("subject_id", "charttime", "specimen", ratio.alias("pao2fio2ratio"))


def gcs(ce: pl.DataFrame, items: dict, ett_text: str = "No Response-ETT") -> pl.DataFrame:
    """Glasgow coma scale per charting time [gcs.sql].

    Components charted at the same time; a missing component takes the previous charting's (within
    6 h), else the normal value (motor 6, verbal 5, eyes 4).  Verbal "No Response-ETT" (intubated)
    counts as 0 and makes the total 15 (mimic-code's convention: GCS is not assessable, so normal).
    ``ce``: ``stay_id, charttime, itemid, value, valuenum``.  Returns ``stay_id, charttime, gcs``.
    """
    it = pl.col("itemid")
    ett = (it == items["verbal"]) & (pl.col("value") == ett_text)
    b = (
        ce.filter(it.is_in([items["motor"], items["verbal"], items["eyes"]]))
        .group_by("stay_id", "charttime")
        .agg(
            pl.col("valuenum").filter(it == items["motor"]).max().alias("m"),
            pl.when(ett).then(0.0).otherwise(pl.col("valuenum")).filter(it == items["verbal"]).max().alias("v"),
            pl.col("valuenum").filter(it == items["eyes"]).max().alias("e"),
        )
        .sort("stay_id", "charttime")
    )
    prev_ok = pl.col("charttime").shift(1).over("stay_id") > pl.col("charttime") - pl.duration(hours=6)
    b = b.with_columns([pl.when(prev_ok).then(pl.col(c).shift(1).over("stay_id")).alias(c + "p") for c in ("m", "v", "e")])
    m, v, e, mp, vp, ep = (pl.col(c) for c in ("m", "v", "e", "mp", "vp", "ep"))
    total = (
        pl.when(v == 0).then(15.0)
        .when(v.is_null() & (vp == 0)).then(15.0)
        .when(vp == 0).then(m.fill_null(6) + v.fill_null(5) + e.fill_null(4))
        .otherwise(pl.coalesce(m, mp, pl.lit(6.0)) + pl.coalesce(v, vp, pl.lit(5.0)) + pl.coalesce(e, ep, pl.lit(4.0)))
    )
    return b.select("stay_id", "charttime", total.alias("gcs"))


def mean_bp(ce: pl.DataFrame, itemids: list[int]) -> pl.DataFrame:
    """Mean arterial pressure per charting time: the average of the MAP items charted then, values
    in (0, 300) [vitalsign.sql].  Returns ``stay_id, charttime, mbp``."""
    return (
        ce.filter(pl.col("itemid").is_in(itemids) & (pl.col("valuenum") > 0) & (pl.col("valuenum") < 300))
        .group_by("stay_id", "charttime")
        .agg(pl.col("valuenum").mean().alias("mbp"))
    )


def urine_output_24h(uo: pl.DataFrame, first_hr: pl.DataFrame) -> pl.DataFrame:
    """Urine output over the last 24 h, scaled to 24 h [urine_output_rate.sql, used by sofa.sql].

    ``uo``: ``stay_id, charttime, urineoutput`` (already summed per charting time, irrigant in
    negative); ``first_hr``: ``stay_id, intime_hr`` (first heart rate, the start of observation).
    At each charting time t: volume and observed time (time since the previous charting, summed)
    of the chartings in [t - 23 h, t]; ``uo_24hr = volume / time x 24`` when the observed time
    (rounded to 0.01 h) is 22-30 h, else null.  Returns ``stay_id, charttime, uo_24hr``.
    """
    u = uo.join(first_hr, on="stay_id").sort("stay_id", "charttime")
    prev = pl.col("charttime").shift(1).over("stay_id")
    u = u.with_columns(
        ((pl.col("charttime") - pl.coalesce(prev, pl.col("intime_hr"))).dt.total_seconds() / 60.0).floor().alias("tm")
    )
    u = u.with_columns(
        pl.col("urineoutput").rolling_sum_by("charttime", window_size="23h", closed="both").over("stay_id").alias("vol"),
        (pl.col("tm").rolling_sum_by("charttime", window_size="23h", closed="both").over("stay_id") / 60.0).round(2).alias("hrs"),
    )
    return u.select(
        "stay_id", "charttime", pl.when(pl.col("hrs").is_between(22, 30)).then(pl.col("vol") / pl.col("hrs") * 24).alias("uo_24hr")
    )


# rate unit -> (target unit, factor, divide by weight)
RATE_UNITS = {
    ("mcg/kg/min", "mcg/kg/min"): (1.0, False),
    ("mg/kg/min", "mcg/kg/min"): (1000.0, False),
    ("mcg/min", "mcg/kg/min"): (1.0, True),
    ("mg/min", "mcg/kg/min"): (1000.0, True),
    ("units/hour", "units/hour"): (1.0, False),
    ("units/min", "units/hour"): (60.0, False),
}


def convert_rate(rate: pl.Expr, uom: pl.Expr, target: str, weight: pl.Expr) -> pl.Expr:
    """A drip rate in ``target`` units from its charted unit; null when the unit is not convertible
    (counted as an unknown dose, not as zero, by the caller)."""
    out = pl.lit(None, dtype=pl.Float64)
    for (src, tgt), (factor, per_kg) in RATE_UNITS.items():
        if tgt != target:
            continue
        val = rate * factor
        if per_kg:
            val = val / pl.when(weight > 0).then(weight)
        out = pl.when(uom == src).then(val).otherwise(out)
    return out


def vasoactive_intervals(inp: pl.DataFrame, agents: dict) -> pl.DataFrame:
    """Vasoactive drips from ``inputevents`` [norepinephrine.sql ... vasopressin.sql].

    ``inp``: ``stay_id, itemid, starttime, endtime, rate, rateuom, patientweight``; ``agents``: the
    concept dictionary's ``vasopressors`` (agent -> itemid list, ``rate_unit``, ``factor`` = its
    norepinephrine equivalent per unit).  Rates are converted to the agent's unit (mg -> mcg, per-minute
    doses divided by the charted weight, vasopressin units/min -> units/hour); ``rate`` is null when
    the unit cannot be converted.  Returns ``stay_id, drug, starttime, endtime, rate, ne_factor``.
    """
    rows = [(int(i), a, s.get("rate_unit", "mcg/kg/min"), float(s["factor"])) for a, s in agents.items() for i in s["itemid"]]
    amap = pl.DataFrame(rows, schema={"itemid": pl.Int64, "drug": pl.String, "unit": pl.String, "ne_factor": pl.Float64}, orient="row")
    x = inp.join(amap, on="itemid")
    conv = pl.lit(None, dtype=pl.Float64)
    for unit in amap["unit"].unique().to_list():
        conv = pl.when(pl.col("unit") == unit).then(convert_rate(pl.col("rate"), pl.col("rateuom"), unit, pl.col("patientweight"))).otherwise(conv)
    return x.select("stay_id", "drug", "starttime", "endtime", conv.alias("rate"), "ne_factor")


# ----------------------------------------------------------------------------- ventilation
def ventilation(ce: pl.DataFrame, spec: dict) -> pl.DataFrame:
    """Ventilation episodes [oxygen_delivery.sql, ventilator_setting.sql, ventilation.sql].

    Status per charting time from the O2 delivery devices and ventilator modes (``spec``: the
    concept dictionary's ``ventilation`` section); consecutive chartings of one status form an
    episode, broken by another status or by 14 clock hours without a charting of that status; an
    episode ends at its last charting (or the next charting, when it is within 14 h); single-charting
    episodes are dropped.  Returns ``stay_id, starttime, endtime, status``.

    ``ce``: ``stay_id, charttime, storetime, itemid, value`` of the device, mode and setting items.
    """
    it = pl.col("itemid")
    ce = ce.filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
    settings = ce.filter(it.is_in(spec["setting_itemids"] + [spec["mode_itemid"], spec["mode_hamilton_itemid"]]))
    modes = settings.group_by("stay_id", "charttime").agg(
        pl.col("value").filter(it == spec["mode_itemid"]).max().alias("mode"),
        pl.col("value").filter(it == spec["mode_hamilton_itemid"]).max().alias("mode_h"),
    )
    dev = ce.filter(it == spec["device_itemid"]).sort(["stay_id", "charttime", "storetime", "value"], descending=[False, False, True, True], nulls_last=True)
    dev = dev.with_columns(pl.int_range(pl.len()).over("stay_id", "charttime").alias("rn"))
    devs = dev.group_by("stay_id", "charttime").agg(
        pl.col("value").filter(pl.col("rn") == 0).first().alias("d1"), pl.col("value").filter(pl.col("rn") < 4).alias("dall")
    )
    # oxygen_delivery.sql keeps a charting time only when an O2 flow is charted then (its full join is
    # filtered on the flow side), so devices charted without a flow are not seen
    flow_times = ce.filter(it.is_in(spec["flow_itemids"])).select("stay_id", "charttime").unique()
    devs = devs.join(flow_times, on=["stay_id", "charttime"], how="semi")
    tm = pl.concat([settings.select("stay_id", "charttime"), flow_times]).unique()
    x = tm.join(modes, on=["stay_id", "charttime"], how="left").join(devs, on=["stay_id", "charttime"], how="left")
    d1, mode, mh = pl.col("d1"), pl.col("mode"), pl.col("mode_h")
    anydev = lambda names: pl.col("dall").list.eval(pl.element().is_in(names)).list.any().fill_null(False)
    status = (
        pl.when(d1.is_in(spec["tracheostomy_devices"])).then(pl.lit("Tracheostomy"))
        .when(d1.is_in(spec["invasive_devices"]) | mode.is_in(spec["invasive_modes"]) | mh.is_in(spec["invasive_modes_hamilton"])).then(pl.lit("InvasiveVent"))
        .when(anydev(spec["noninvasive_devices"]) | mh.is_in(spec["noninvasive_modes_hamilton"])).then(pl.lit("NonInvasiveVent"))
        .when(d1.is_in(spec["hfnc_devices"])).then(pl.lit("HFNC"))
        .when(d1.is_in(spec["oxygen_devices"])).then(pl.lit("SupplementalOxygen"))
        .when(d1.is_in(["None"])).then(pl.lit("None"))
    )
    v = x.with_columns(status.alias("status")).filter(pl.col("status").is_not_null()).sort("stay_id", "charttime")
    hours = lambda a, b: ((b.dt.truncate("1h") - a.dt.truncate("1h")).dt.total_seconds() / 3600.0)
    v = v.with_columns(
        pl.col("charttime").shift(1).over("stay_id", "status").alias("lag_same"),
        pl.col("status").shift(1).over("stay_id").alias("lag_status"),
        pl.col("charttime").shift(-1).over("stay_id").alias("lead"),
    )
    new = pl.col("lag_status").is_null() | (hours(pl.col("lag_same"), pl.col("charttime")) >= 14) | (pl.col("lag_status") != pl.col("status"))
    v = v.with_columns(new.fill_null(True).cast(pl.Int32).cum_sum().over("stay_id").alias("seq"))
    end = pl.when(pl.col("lead").is_null() | (hours(pl.col("charttime"), pl.col("lead")) >= 14)).then(pl.col("charttime")).otherwise(pl.col("lead"))
    ep = v.group_by("stay_id", "seq").agg(
        pl.col("charttime").min().alias("starttime"), pl.col("charttime").max().alias("_last"), end.max().alias("endtime"), pl.col("status").max()
    )
    return ep.filter(pl.col("starttime") != pl.col("_last")).select("stay_id", "starttime", "endtime", "status").sort("stay_id", "starttime")
