"""Sequential Organ Failure Assessment (SOFA) as in MIT-LCP mimic-code's ``score/sofa.sql``.

Shared by the simulator and the database adapters so that the score is computed one way
everywhere.  :func:`add_sofa` scores the six components of each row (one stay-hour) from the
inputs present; :func:`sofa_worst` turns hourly components into the score of the previous
``window_h`` hours (24 in mimic-code: each component's worst over the hour and the 23 before it,
a component never measured in the window counts 0).

Inputs (columns of the wide frame; each optional, a component is null when its inputs are):

==================  =============================================================================
component           inputs, in order of preference
==================  =============================================================================
respiration         ``_sofa_pf_vent`` / ``_sofa_pf_novent`` (hourly minimum PaO2/FiO2 of arterial gases
                    taken during / outside invasive ventilation: 3-4 points only with ventilation);
                    else ``pf_ratio`` with ``mechanical_ventilation`` (0/1) for the same rule;
                    else ``pf_ratio`` alone (fallback: 3-4 points without a ventilation input)
coagulation         ``_sofa_platelets`` else ``platelets`` (minimum)
liver               ``_sofa_bilirubin`` else ``bilirubin`` (maximum)
cardiovascular      ``_rate_norepinephrine``, ``_rate_epinephrine``, ``_rate_dopamine``,
                    ``_rate_dobutamine`` (ug/kg/min) and ``_unknown_<agent>`` (1 = that agent runs
                    at a dose that could not be converted: norepinephrine/epinephrine score at least
                    3, dopamine/dobutamine at least 2); else ``norepinephrine_eq`` (fallback:
                    > 0.1 -> 4, > 0 -> 3); then ``_sofa_map`` else ``map`` < 70 -> 1
central nervous     ``_sofa_gcs`` else ``gcs`` (minimum)
renal               ``_sofa_creatinine`` else ``creatinine`` (maximum) and ``_sofa_uo_24h`` (urine
                    output of the last 24 h, mL/day; < 500 -> 3, < 200 -> 4) when present
==================  =============================================================================

The simulator passes ``pf_ratio, platelets, bilirubin, map, norepinephrine_eq, gcs, creatinine``,
so its SOFA uses the fallbacks (unchanged by the mimic-code rules: its tiers coincide with them).
"""

from __future__ import annotations

import polars as pl

SOFA_COMPONENTS = ("sofa_resp", "sofa_coag", "sofa_liver", "sofa_cardio", "sofa_cns", "sofa_renal")
AGENTS = ("norepinephrine", "epinephrine", "dopamine", "dobutamine")
_I8 = pl.Int8


def _lit(v: int) -> pl.Expr:
    return pl.lit(v, dtype=_I8)


def _pick(cols: set[str], *names: str) -> pl.Expr | None:
    for n in names:
        if n in cols:
            return pl.col(n)
    return None


def _steps(x: pl.Expr, cuts: list[float], scores: list[int], below: bool) -> pl.Expr:
    """Score by thresholds; ``below`` means lower values are worse."""
    expr = _lit(0)
    for cut, score in zip(cuts, scores):  # mildest first, so the worst matching threshold wins
        cond = (x < cut) if below else (x >= cut)
        expr = pl.when(cond).then(_lit(score)).otherwise(expr)
    return pl.when(x.is_null()).then(None).otherwise(expr)


def _respiration(cols: set[str]) -> pl.Expr:
    if "_sofa_pf_vent" in cols or "_sofa_pf_novent" in cols:
        vent = pl.col("_sofa_pf_vent") if "_sofa_pf_vent" in cols else pl.lit(None, dtype=pl.Float64)
        novent = pl.col("_sofa_pf_novent") if "_sofa_pf_novent" in cols else pl.lit(None, dtype=pl.Float64)
    elif "pf_ratio" in cols and "mechanical_ventilation" in cols:
        on = pl.col("mechanical_ventilation").fill_null(0) > 0
        vent = pl.when(on).then(pl.col("pf_ratio"))
        novent = pl.when(~on).then(pl.col("pf_ratio"))
    elif "pf_ratio" in cols:
        return _steps(pl.col("pf_ratio"), [400, 300, 200, 100], [1, 2, 3, 4], below=True)
    else:
        return pl.lit(None, dtype=_I8)
    return (
        pl.when(vent < 100).then(_lit(4))
        .when(vent < 200).then(_lit(3))
        .when((novent < 300) | (vent < 300)).then(_lit(2))
        .when((novent < 400) | (vent < 400)).then(_lit(1))
        .when(pl.coalesce(vent, novent).is_null()).then(None)
        .otherwise(_lit(0))
    )


def _cardiovascular(cols: set[str]) -> pl.Expr:
    mbp = _pick(cols, "_sofa_map", "map")
    mbp = mbp if mbp is not None else pl.lit(None, dtype=pl.Float64)
    rates = {a: (pl.col(f"_rate_{a}") if f"_rate_{a}" in cols else pl.lit(None, dtype=pl.Float64)) for a in AGENTS}
    unknown = {a: (pl.col(f"_unknown_{a}").fill_null(0) > 0 if f"_unknown_{a}" in cols else pl.lit(False)) for a in AGENTS}
    if any(f"_rate_{a}" in cols or f"_unknown_{a}" in cols for a in AGENTS):
        dop, epi, nor, dob = rates["dopamine"], rates["epinephrine"], rates["norepinephrine"], rates["dobutamine"]
        return (
            pl.when((dop > 15) | (epi > 0.1) | (nor > 0.1)).then(_lit(4))
            .when((dop > 5) | (epi <= 0.1) | (nor <= 0.1) | unknown["norepinephrine"] | unknown["epinephrine"]).then(_lit(3))
            .when((dop > 0) | (dob > 0) | unknown["dopamine"] | unknown["dobutamine"]).then(_lit(2))
            .when(mbp < 70).then(_lit(1))
            .when(pl.coalesce(mbp, dop, dob, epi, nor).is_null()).then(None)
            .otherwise(_lit(0))
        )
    ne = pl.col("norepinephrine_eq") if "norepinephrine_eq" in cols else pl.lit(None, dtype=pl.Float64)
    return (
        pl.when(ne > 0.1).then(_lit(4))
        .when(ne > 0).then(_lit(3))
        .when(mbp < 70).then(_lit(1))
        .when(mbp.is_not_null()).then(_lit(0))
        .otherwise(None)
    )


def _cns(cols: set[str]) -> pl.Expr:
    # mimic-code: 13-14 -> 1, 10-12 -> 2, 6-9 -> 3, < 6 -> 4 on integer GCS; as thresholds so that
    # non-integer values (simulator, hourly means) fall in the band below them
    g = _pick(cols, "_sofa_gcs", "gcs")
    return _steps(g, [15, 13, 10, 6], [1, 2, 3, 4], below=True) if g is not None else pl.lit(None, dtype=_I8)


def _renal(cols: set[str]) -> pl.Expr:
    cr = _pick(cols, "_sofa_creatinine", "creatinine")
    cr = cr if cr is not None else pl.lit(None, dtype=pl.Float64)
    uo = pl.col("_sofa_uo_24h") if "_sofa_uo_24h" in cols else pl.lit(None, dtype=pl.Float64)
    return (
        pl.when(cr >= 5.0).then(_lit(4))
        .when(uo < 200).then(_lit(4))
        .when(cr >= 3.5).then(_lit(3))
        .when(uo < 500).then(_lit(3))
        .when(cr >= 2.0).then(_lit(2))
        .when(cr >= 1.2).then(_lit(1))
        .when(pl.coalesce(uo, cr).is_null()).then(None)
        .otherwise(_lit(0))
    )


def sofa_component_exprs(columns) -> dict[str, pl.Expr]:
    """Expressions of the six components from the input columns present (see the module docstring)."""
    cols = set(columns)
    plt = _pick(cols, "_sofa_platelets", "platelets")
    bili = _pick(cols, "_sofa_bilirubin", "bilirubin")
    none = pl.lit(None, dtype=_I8)
    return {
        "sofa_resp": _respiration(cols),
        "sofa_coag": _steps(plt, [150, 100, 50, 20], [1, 2, 3, 4], below=True) if plt is not None else none,
        "sofa_liver": _steps(bili, [1.2, 2.0, 6.0, 12.0], [1, 2, 3, 4], below=False) if bili is not None else none,
        "sofa_cardio": _cardiovascular(cols),
        "sofa_cns": _cns(cols),
        "sofa_renal": _renal(cols),
    }


def add_sofa(wide: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """Add the six components of each row and their sum ``sofa`` (a missing component counts 0)."""
    cols = wide.collect_schema().names() if isinstance(wide, pl.LazyFrame) else wide.columns
    out = wide.with_columns(**{k: v.cast(_I8) for k, v in sofa_component_exprs(cols).items()})
    return out.with_columns(pl.sum_horizontal([pl.col(c).fill_null(0) for c in SOFA_COMPONENTS]).cast(_I8).alias("sofa"))


def sofa_worst(hourly: pl.DataFrame, window_h: int = 24, by: str = "stay_id", order: str = "hour_icu") -> pl.DataFrame:
    """SOFA of the last ``window_h`` hours: each component's worst over the hour and the
    ``window_h - 1`` hours before it (rows of consecutive hours per stay), summed with a component
    never measured in the window counting 0 (``sofa_24hours`` of mimic-code).  ``sofa_known`` is true
    when at least one component was measured in the window.  ``window_h = 1`` keeps each hour's own
    components.
    """
    h = hourly.sort(by, order)
    if window_h > 1:
        h = h.with_columns([pl.col(c).cast(pl.Int16).rolling_max(window_h, min_samples=1).over(by).cast(_I8).alias(c) for c in SOFA_COMPONENTS])
    return h.with_columns(
        pl.sum_horizontal([pl.col(c).fill_null(0) for c in SOFA_COMPONENTS]).cast(_I8).alias("sofa"),
        pl.any_horizontal([pl.col(c).is_not_null() for c in SOFA_COMPONENTS]).alias("sofa_known"),
    )
