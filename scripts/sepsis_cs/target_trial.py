"""Target-trial emulation of early corticosteroids by clone-censor-weight (docs/target-trial.md).

The protocol (config ``target_trial``) compares two strategies from time zero:

* **CS within G** -- start a systemic glucocorticoid (optionally at >= ``min_dose_mg`` hydrocortisone
  equivalent per 24 h) within the grace period of G hours, unless death or ICU discharge comes first;
* **no CS within G** -- no CS in the first G hours; usual care afterwards.

Every eligible stay (prevalent users out) is cloned into both arms and censored when its data deviate
from the arm's strategy: the no-CS clone at CS start within G, the CS clone at hour G-1 if still
untreated in the ICU (or at a start below the dose threshold).  Censoring is informative, so each clone is
weighted by the inverse probability of remaining uncensored, from a pooled logistic model of CS start on
stay-hours (time-varying SOFA, norepinephrine-equivalent dose, lactate, MAP, ventilation, plus baseline
covariates).  The estimand is the one clone-censor-weight identifies with a grace period (Cain et al.
2010; Webster-Clark et al. 2024): during hours 0..G-2 CS starts as clinicians start it; a stay still
untreated in the ICU at hour G-1 starts then.  Time is in whole hours; within an hour, a CS start
precedes death (a clone that starts CS in hour t is not at risk of death in hour t in the no-CS arm).

All functions are pure: they take polars/numpy data and return numbers and frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from .contract import TIMING_COLUMNS

#: event-time columns without which the trial cannot be emulated
REQUIRED_TIMING = ("cs_first_h", "death_h", "icu_discharge_h", "followup_end_h")
#: columns the hourly series may give; ventilation falls back to the static flag
DEFAULT_TIME_VARYING = ("sofa", "norepinephrine_eq", "lactate", "map", "mechanical_ventilation")
LOG_VARIABLES = ("lactate", "crp", "bilirubin", "creatinine")


@dataclass(frozen=True)
class Protocol:
    """The target-trial protocol (config ``target_trial``)."""

    grace_h: int = 24
    grace_sensitivity_h: tuple = (6, 12, 24, 48)
    followup_days: int = 28
    min_dose_mg: float | None = None
    dose_sensitivity_mg: float | None = 200.0
    exclude_prevalent: bool = True
    loss_to_followup: str = "alive"  # alive | censor
    time_varying: tuple = DEFAULT_TIME_VARYING
    baseline: tuple = ()
    #: timing of CS within the grace period in the CS arm: uniform (each untreated hour, start with probability
    #: 1 / hours left) | natural (as clinicians start it; untreated at hour G-1 start then)
    cs_timing: str = "uniform"
    #: form of the hourly covariates in the weight model (WEIGHT_MODELS): splines | linear
    weight_model: str = "splines"
    #: hourly covariates clipped to their [q, 1 - q] quantiles over the stay-hours at risk (0: none)
    clip_quantile: float = 0.01
    #: 1 = no truncation (primary); a quantile < 1 truncates the final weights per arm
    truncate_quantile: float = 1.0
    #: sensitivity analysis: the primary estimate with weights truncated at this quantile (None: skip)
    truncate_sensitivity_quantile: float | None = 0.99
    n_boot: int = 20
    #: confidence intervals: wald (estimate +- t_{B-1} x bootstrap SE) | percentile (bootstrap quantiles)
    ci_method: str = "wald"
    min_cell_count: int = 10
    notes: list = field(default_factory=list)

    @property
    def horizon_h(self) -> int:
        return int(self.followup_days) * 24

    @classmethod
    def from_config(cls, cfg: dict, min_cell_count: int = 10) -> "Protocol":
        return cls(
            grace_h=int(cfg.get("grace_h", 24)),
            grace_sensitivity_h=tuple(int(g) for g in cfg.get("grace_sensitivity_h", (6, 12, 24, 48))),
            followup_days=int(cfg.get("followup_days", 28)),
            min_dose_mg=cfg.get("min_dose_mg"),
            dose_sensitivity_mg=cfg.get("dose_sensitivity_mg", 200.0),
            exclude_prevalent=bool(cfg.get("exclude_prevalent", True)),
            loss_to_followup=cfg.get("loss_to_followup", "alive"),
            time_varying=tuple(cfg.get("time_varying", DEFAULT_TIME_VARYING)),
            baseline=tuple(cfg.get("baseline", ())),
            cs_timing=cfg.get("cs_timing", "uniform"),
            weight_model=cfg.get("weight_model", "splines"),
            clip_quantile=float(cfg.get("clip_quantile", 0.01)),
            truncate_quantile=float(cfg.get("truncate_quantile", 1.0)),
            truncate_sensitivity_quantile=(None if cfg.get("truncate_sensitivity_quantile", 0.99) is None
                                           else float(cfg.get("truncate_sensitivity_quantile", 0.99))),
            n_boot=int(cfg.get("n_boot", 20)),
            ci_method=cfg.get("ci_method", "wald"),
            min_cell_count=int(min_cell_count),
        )


# ----------------------------------------------------------------------------- data
def missing_requirements(cohort: pl.DataFrame) -> str | None:
    """One line saying why the trial cannot be emulated on this cohort, or None."""
    absent = [c for c in REQUIRED_TIMING if c not in cohort.columns]
    if absent:
        return (
            f"target trial not emulated: the cohort lacks the event-time column(s) {', '.join(absent)} "
            "(docs/data-contract.md, optional event times)"
        )
    if cohort["followup_end_h"].null_count() == cohort.height:
        return "target trial not emulated: followup_end_h is empty (end of known vital status unknown)"
    return None


@dataclass
class TrialData:
    """Per-stay arrays and the stay-hour panel of the eligible stays."""

    stay_id: np.ndarray
    patient: np.ndarray  # integer patient index (bootstrap unit)
    cs_first: np.ndarray  # first CS start (h), inf if none
    dose: np.ndarray  # hydrocortisone-eq mg/24h of the first CS (NaN unknown)
    death: np.ndarray  # death time (h), inf if none recorded
    icu_end: np.ndarray  # ICU discharge (h), inf if unknown
    fu_end: np.ndarray  # end of follow-up for death (h)
    hosp_end: np.ndarray  # hospital discharge (h), inf if unknown
    cs_naive: np.ndarray  # the workflow's 0-24 h CS flag
    X_base: np.ndarray  # baseline covariates (standardised, missing -> 0 plus indicators)
    base_names: list
    panel_stay: np.ndarray  # stay index of each stay-hour row
    panel_hour: np.ndarray
    X_tv: np.ndarray  # design of the time-varying covariates of each row (weight_model; standardised)
    tv_names: list
    n_excluded_prevalent: int = 0
    tv_raw: np.ndarray | None = None  # the hourly covariates as carried forward (log scale for LOG_VARIABLES; NaN = none yet)
    tv_raw_names: list = field(default_factory=list)
    weight_model: str = "splines"
    clip_quantile: float = 0.0
    reference_h: int = 24  # the primary grace period (stay-hours at risk within it place the design's knots)


def _standardise(a: np.ndarray) -> np.ndarray:
    mu = np.nanmean(a, axis=0) if a.size else 0.0
    sd = np.nanstd(a, axis=0) if a.size else 1.0
    sd = np.where(sd > 0, sd, 1.0)
    return np.nan_to_num((a - mu) / sd, nan=0.0)


def _num(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64).fill_null(np.nan).to_numpy()


#: Harrell's knot positions (quantiles) of restricted cubic splines with 4 knots (Regression Modeling Strategies, 2015)
SPLINE_KNOT_QUANTILES = (0.05, 0.35, 0.65, 0.95)


def spline_knots(x: np.ndarray, quantiles=SPLINE_KNOT_QUANTILES) -> np.ndarray:
    """Knots at (interpolated) quantiles of ``x``, as Hmisc's ``rcspline.eval``; distinct ones only (fewer than 3
    distinct knots: none, the term stays linear)."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.zeros(0)
    k = np.unique(np.quantile(x, quantiles))
    return k if len(k) >= 3 else np.zeros(0)


def restricted_cubic_spline(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Non-linear columns of a restricted cubic spline (linear beyond the outer knots; Harrell's parameterisation).

    Returns ``len(knots) - 2`` columns; the linear term ``x`` is not included.
    """
    k = len(knots)
    if k < 3:
        return np.zeros((len(x), 0))
    t = knots
    scale = (t[-1] - t[0]) ** 2

    def cube(v):
        return np.maximum(v, 0.0) ** 3

    cols = [
        (cube(x - t[j]) - cube(x - t[-2]) * (t[-1] - t[j]) / (t[-1] - t[-2]) + cube(x - t[-1]) * (t[-2] - t[j]) / (t[-1] - t[-2])) / scale
        for j in range(k - 2)
    ]
    return np.column_stack(cols)


def _linear_terms(name: str, a: np.ndarray, ref: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Main effect of one hourly covariate (the first pass's model)."""
    return [(name, a)]


def _spline_terms(name: str, a: np.ndarray, ref: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """An hourly covariate as a restricted cubic spline (4 knots at Harrell's quantiles); binary ones as is.

    The vasopressor dose gets an any-vasopressor indicator and a spline of the dose with knots at quantiles
    of the positive doses (starting a vasopressor is a clinical step of its own, not a dose increment).
    """
    if len(np.unique(a[ref])) <= 2:
        return [(name, a)]
    out = []
    if name == "norepinephrine_eq":
        on = a > 0
        out.append(("any_vasopressor", on.astype(float)))
        knots = spline_knots(a[ref & on])
    else:
        knots = spline_knots(a[ref])
    out.append((name, a))
    basis = restricted_cubic_spline(a, knots)
    out += [(f"{name}_rcs{j + 1}", basis[:, j]) for j in range(basis.shape[1])]
    return out


#: forms of the hourly covariates in the weight models (config target_trial.weight_model)
WEIGHT_MODELS = {"splines": _spline_terms, "linear": _linear_terms}


def tv_design_matrix(raw: np.ndarray, names: list, model: str, reference: np.ndarray | None = None,
                     clip_quantile: float = 0.0) -> tuple[np.ndarray, list]:
    """Design of the weight models' hourly covariates.

    Per covariate: a missing-value indicator (no value yet; the median stands in for the value), then the terms
    of ``model``.  ``reference`` (boolean, rows) are the stay-hours whose distribution places the quantiles,
    knots, median and standardisation (the stay-hours at risk of CS start; all rows when None).  With
    ``clip_quantile`` q > 0, a non-binary covariate is clipped to its [q, 1 - q] quantiles first, so the fitted
    hazard of a rare extreme value is not a linear extrapolation of the fit's tail (a weight resting on one
    extrapolated stay-hour can dominate an arm).
    """
    if model not in WEIGHT_MODELS:
        raise ValueError(f"unknown weight_model {model!r} (one of {', '.join(WEIGHT_MODELS)})")
    ref = np.ones(raw.shape[0], dtype=bool) if reference is None else reference
    cols, out_names = [], []
    for j, name in enumerate(names):
        a = raw[:, j]
        r = a[ref & np.isfinite(a)]
        if len(r) == 0:
            continue
        if np.isnan(a).any():
            cols.append(np.isnan(a).astype(float))
            out_names.append(f"{name}_missing")
            a = np.where(np.isnan(a), np.median(r), a)
        if clip_quantile > 0 and len(np.unique(r)) > 2:
            lo, hi = np.quantile(r, [clip_quantile, 1 - clip_quantile])
            a = np.clip(a, lo, hi)
        for term, v in WEIGHT_MODELS[model](name, a, ref):
            cols.append(v)
            out_names.append(term)
    if not cols:
        return np.zeros((raw.shape[0], 0)), []
    X = np.column_stack(cols)
    mu, sd = X[ref].mean(axis=0), X[ref].std(axis=0)
    return (X - mu) / np.where(sd > 0, sd, 1.0), out_names


def reference_rows(data: TrialData) -> np.ndarray:
    """Stay-hours at risk of CS start within the primary grace period: they place the design's quantiles and
    knots (the same design then serves the sensitivity analyses' grace periods)."""
    return at_risk(data, data.reference_h)


def with_weight_model(data: TrialData, model: str, clip_quantile: float | None = None) -> TrialData:
    """The same trial data with the hourly covariates designed for another weight model (or clipping)."""
    clip = data.clip_quantile if clip_quantile is None else clip_quantile
    if model == data.weight_model and clip == data.clip_quantile and data.X_tv is not None:
        return data
    X, names = tv_design_matrix(data.tv_raw, data.tv_raw_names, model, reference_rows(data), clip)
    return replace(data, X_tv=X, tv_names=names, weight_model=model, clip_quantile=clip)


def prepare(cohort: pl.DataFrame, ts: pl.DataFrame, protocol: Protocol, max_hour: int) -> TrialData:
    """Eligible stays and the stay-hour panel for hours 0..max_hour-1 (LOCF of the hourly series).

    Rows exist for every eligible stay and hour up to ``max_hour``; whether a row is at risk of CS
    start is decided by :func:`at_risk` (it depends on the stay's events).
    """
    df = cohort
    n_prev = 0
    if protocol.exclude_prevalent and "cs_before_t0" in df.columns:
        prev = df["cs_before_t0"].fill_null(0) == 1
        n_prev = int(prev.sum())
        df = df.filter(~prev)
    df = df.sort("stay_id")
    n = df.height
    inf = np.inf

    def times(col: str) -> np.ndarray:
        if col not in df.columns:
            return np.full(n, inf)
        return np.nan_to_num(_num(df[col]), nan=inf)

    fu = np.nan_to_num(_num(df["followup_end_h"]), nan=0.0)
    dose = _num(df["cs_hydrocortisone_eq_mg_24h"]) if "cs_hydrocortisone_eq_mg_24h" in df.columns else np.full(n, np.nan)
    patients = df["patient_id"].cast(pl.String).to_numpy()
    _, pidx = np.unique(patients, return_inverse=True)

    # baseline covariates: configured list, or every numeric static covariate measured at time zero
    skip = {"stay_id", "patient_id", "database", "time_zero", "cs", "cs_start_h", "cs_drug", "cs_hydrocortisone_eq_mg_24h",
            "hospital_mortality", "mortality_28d", "mortality_90d", "shock_reversal_7d", "icu_los_days", "cs_before_t0", *TIMING_COLUMNS}
    base_cols = [c for c in (protocol.baseline or df.columns) if c in df.columns and c not in skip]
    cols, names = [], []
    for c in base_cols:
        s = df[c]
        if s.dtype == pl.String or s.dtype == pl.Categorical:
            for lev in sorted(v for v in s.drop_nulls().unique().to_list())[1:]:
                cols.append((s == lev).fill_null(False).cast(pl.Float64).to_numpy())
                names.append(f"{c}={lev}")
            continue
        if not s.dtype.is_numeric() and s.dtype != pl.Boolean:
            continue
        v = _num(s)
        if np.all(np.isnan(v)) or np.nanstd(v) == 0:
            continue
        if c.split("_t0")[0] in LOG_VARIABLES:
            v = np.log(np.clip(v, 1e-3, None))
        cols.append(v)
        names.append(c)
        if np.isnan(v).any():
            cols.append(np.isnan(v).astype(float))
            names.append(f"{c}_missing")
    X_base = _standardise(np.column_stack(cols)) if cols else np.zeros((n, 0))

    # stay-hour panel with last-observation-carried-forward values (pre-time-zero values carry in)
    ids = df["stay_id"].cast(pl.String)
    hours = np.arange(max_hour)
    tv_present = sorted(set(ts["variable"].unique().to_list()) & set(protocol.time_varying)) if ts.height else []
    tv_cols, tv_names = [], []
    if tv_present:
        lz = ts.lazy().filter(pl.col("variable").is_in(tv_present)).with_columns(
            pl.col("stay_id").cast(pl.String), pl.col("hour").cast(pl.Int32)
        )
        pre = (  # last value before time zero carries into hour 0
            lz.filter(pl.col("hour") < 0).sort("hour").group_by(["stay_id", "variable"])
            .agg(pl.col("value").last()).with_columns(pl.lit(-1, dtype=pl.Int32).alias("hour"))
        )
        post = lz.filter((pl.col("hour") >= 0) & (pl.col("hour") < max_hour)).group_by(["stay_id", "variable", "hour"]).agg(
            pl.col("value").last()
        )
        long = pl.concat([pre.select("stay_id", "variable", "hour", "value"), post.select("stay_id", "variable", "hour", "value")]).collect()
        wide = long.pivot(on="variable", index=["stay_id", "hour"], values="value") if long.height else None
        full = pl.DataFrame({"stay_id": np.repeat(ids.to_numpy(), max_hour + 1), "hour": np.tile(np.arange(-1, max_hour), n).astype(np.int32)})
        present = [v for v in tv_present if wide is not None and v in wide.columns]
        if present:
            panel = (
                full.join(wide, on=["stay_id", "hour"], how="left")
                .sort(["stay_id", "hour"])
                .with_columns([pl.col(v).forward_fill().over("stay_id") for v in present])
                .filter(pl.col("hour") >= 0)
            )
        for v in present:
            a = _num(panel[v])
            if v in LOG_VARIABLES:
                a = np.log(np.clip(a, 1e-3, None))
            if np.all(np.isnan(a)):
                continue
            tv_cols.append(a)
            tv_names.append(v)
    if "mechanical_ventilation" in protocol.time_varying and "mechanical_ventilation" not in tv_present \
            and "mechanical_ventilation_t0" in df.columns:
        tv_cols.append(np.repeat(np.nan_to_num(_num(df["mechanical_ventilation_t0"])), max_hour))
        tv_names.append("mechanical_ventilation_t0 (static)")
    tv_raw = np.column_stack(tv_cols) if tv_cols else np.zeros((n * max_hour, 0))
    data = TrialData(
        stay_id=ids.to_numpy(),
        patient=pidx,
        cs_first=times("cs_first_h"),
        dose=dose,
        death=times("death_h"),
        icu_end=times("icu_discharge_h"),
        fu_end=fu,
        hosp_end=times("hospital_discharge_h"),
        cs_naive=df["cs"].fill_null(False).to_numpy().astype(bool),
        X_base=X_base,
        base_names=names,
        panel_stay=np.repeat(np.arange(n), max_hour),
        panel_hour=np.tile(hours, n),
        X_tv=None,
        tv_names=[],
        n_excluded_prevalent=n_prev,
        tv_raw=tv_raw,
        tv_raw_names=tv_names,
        weight_model=protocol.weight_model,
        clip_quantile=protocol.clip_quantile,
        reference_h=min(int(protocol.grace_h), int(max_hour)),
    )
    return with_weight_model(data, protocol.weight_model)


# ----------------------------------------------------------------------------- weight models
def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-3, max_iter: int = 30,
                 start: np.ndarray | None = None) -> np.ndarray:
    """Logistic regression by Newton-Raphson with frequency weights ``w`` and a small ridge.

    ``X`` must include an intercept column (index 0, not penalised); the ridge is ``ridge`` times the total
    weight.  ``start`` (e.g. the full-data fit when refitting on a bootstrap resample) warm-starts Newton's
    method; the optimum does not depend on it.  Returns the coefficients.
    """
    beta = np.zeros(X.shape[1])
    ybar = np.clip(np.sum(w * y) / max(np.sum(w), 1e-12), 1e-6, 1 - 1e-6)
    beta[0] = math.log(ybar / (1 - ybar))
    if start is not None and len(start) == X.shape[1] and np.all(np.isfinite(start)):
        beta = np.asarray(start, dtype=float).copy()
    pen = np.full(X.shape[1], ridge * max(np.sum(w), 1.0))
    pen[0] = 0.0

    def objective(b):
        eta = X @ b
        return float(np.sum(w * (y * eta - np.logaddexp(0.0, eta))) - 0.5 * np.sum(pen * b * b))

    current = objective(beta)
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))
        grad = X.T @ (w * (y - p)) - pen * beta
        H = (X * (w * p * (1 - p))[:, None]).T @ X + np.diag(pen)
        step = np.linalg.solve(H + 1e-9 * np.eye(len(beta)), grad)
        scale = 1.0
        while scale > 1e-4:  # backtracking: the penalised log-likelihood never decreases
            trial = objective(beta + scale * step)
            if trial >= current - 1e-10:
                break
            scale /= 2
        beta = beta + scale * step
        improved = trial - current
        current = trial
        if np.max(np.abs(scale * step)) < 1e-7 or abs(improved) < 1e-10 * max(1.0, abs(current)):
            break
    return beta


def predict_logistic(X: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))


def at_risk(data: TrialData, grace_h: int) -> np.ndarray:
    """Panel rows (hour < grace_h) at risk of CS start: alive, in the ICU, in follow-up, not yet on CS."""
    s, t = data.panel_stay, data.panel_hour
    return (
        (t < grace_h)
        & (data.death[s] > t)
        & (data.icu_end[s] > t)
        & (data.fu_end[s] > t)
        & (np.floor(data.cs_first[s]) >= t)
    )


def _time_terms(hour: np.ndarray, grace_h: int, model: str = "linear") -> np.ndarray:
    """Terms of the hour in the weight models: ``linear`` (hour, hour squared, log hour; the first pass) or,
    for ``splines``, a restricted cubic spline with 4 knots at Harrell's quantiles of the hours 0..G-1."""
    x = hour / max(grace_h, 1)
    if model == "splines":
        knots = spline_knots(np.arange(grace_h) / max(grace_h, 1))
        return np.column_stack([x, restricted_cubic_spline(x, knots)])
    return np.column_stack([x, x**2, np.log1p(hour) / math.log1p(max(grace_h, 1))])


@dataclass
class HazardFit:
    """Fitted hazards of CS start on the stay-hour rows at risk (denominator) and of time only (numerator)."""

    rows: np.ndarray  # indices into the panel
    h_any: np.ndarray  # P(start in hour | history)
    h_high: np.ndarray  # P(start at a qualifying dose in hour | history)
    num_any: np.ndarray  # (grace_h,) time-only hazard at each hour (stabilisation)
    num_high: np.ndarray
    coef: dict = field(default_factory=dict)  # fitted coefficients (warm starts of bootstrap refits)


#: ridge of the weight models (times the total weight of the stay-hours): a guard against separation in
#: small databases, negligible shrinkage on thousands of stay-hours
WEIGHT_MODEL_RIDGE = 1e-4


def fit_hazards(data: TrialData, grace_h: int, freq: np.ndarray, min_dose: float | None,
                start: HazardFit | None = None) -> HazardFit:
    """Pooled logistic models of CS start on stay-hours 0..grace_h-1 (rows after the grace period unused).

    ``freq`` are per-stay frequency weights (bootstrap counts; ones for the point estimate); ``start``, a
    previous fit of the same design whose coefficients warm-start this one.
    """
    rows = np.flatnonzero(at_risk(data, grace_h))
    s, t = data.panel_stay[rows], data.panel_hour[rows]
    y = (np.floor(data.cs_first[s]) == t).astype(float)
    w = freq[s].astype(float)
    T = _time_terms(t, grace_h, data.weight_model)
    one = np.ones((len(rows), 1))
    X = np.hstack([one, T, data.X_tv[rows], data.X_base[s]])
    X0 = np.hstack([one, T])
    keep = w > 0
    init = start.coef if start is not None else {}
    b_any = fit_logistic(X[keep], y[keep], w[keep], ridge=WEIGHT_MODEL_RIDGE, start=init.get("any"))
    b_num = fit_logistic(X0[keep], y[keep], w[keep], ridge=WEIGHT_MODEL_RIDGE, start=init.get("num"))
    h_any = predict_logistic(X, b_any)
    hours = np.arange(grace_h)
    num_any = predict_logistic(np.hstack([np.ones((grace_h, 1)), _time_terms(hours, grace_h, data.weight_model)]), b_num)
    coef = {"any": b_any, "num": b_num}
    if min_dose is None:
        return HazardFit(rows, h_any, h_any, num_any, num_any, coef)
    # share of starts at a qualifying dose (unknown dose counts as qualifying), among starts
    starters = np.flatnonzero(data.cs_first < np.inf)
    high = ~(data.dose[starters] < float(min_dose))
    wf = freq[starters].astype(float)
    Xs = np.hstack([np.ones((len(starters), 1)), data.X_base[starters]])
    if wf.sum() == 0 or high[wf > 0].all() or not high[wf > 0].any():
        share = np.full(data.X_base.shape[0], float(np.average(high, weights=wf)) if wf.sum() else 1.0)
        share0 = share
    else:
        share = predict_logistic(np.hstack([np.ones((len(data.X_base), 1)), data.X_base]), fit_logistic(Xs, high.astype(float), wf))
        share0 = float(np.average(high, weights=wf))
    return HazardFit(rows, h_any, h_any * share[s], num_any, num_any * float(np.mean(share0)), coef)


# ----------------------------------------------------------------------------- clones and weights
@dataclass
class Clones:
    """Both arms' clones: exit hour, event flag, and weight per hour 0..grace_h (last = after the grace period)."""

    exit_hour: np.ndarray  # (2, n) first hour the clone is no longer in the risk set, or horizon
    event: np.ndarray  # (2, n) death counted at hour exit_hour
    weights: np.ndarray  # (2, n, grace_h + 1) cumulative weight through hour t (t < grace_h); [..., grace_h] final
    censored_at: np.ndarray  # (2, n) artificial censoring hour (-1 none)


ARMS = ("cs", "no_cs")


def build_clones(data: TrialData, grace_h: int, hz: HazardFit, protocol: Protocol, min_dose: float | None,
                 stabilised: bool = True) -> Clones:
    """Clone, censor at deviation, weight by the inverse probability of remaining uncensored."""
    n = len(data.stay_id)
    G = int(grace_h)
    H = protocol.horizon_h
    start_hour = np.where(np.isfinite(data.cs_first), np.floor(data.cs_first), np.inf)
    qualifying = np.ones(n, dtype=bool) if min_dose is None else ~(data.dose < float(min_dose))

    # per-row factors of the unstabilised weights (regime probability / observed probability), rows at risk
    s, t = data.panel_stay[hz.rows], data.panel_hour[hz.rows]
    started = start_hour[s] == t
    # no-CS arm: remains uncensored through hour t with probability 1 - h_any
    f_no = np.where(started, 1.0, 1 / (1 - hz.h_any))
    # CS arm: the strategy's probability of starting in hour t, q_t; natural: q_t = h_t before hour G-1
    # (with a dose threshold, starts below it are blocked); uniform: q_t = 1 / (G - t); at hour G-1 q = 1
    hours = np.arange(G)
    if protocol.cs_timing == "natural":
        q_row = np.where(t == G - 1, 1.0, hz.h_high)
        q_num = np.where(hours == G - 1, 1.0, hz.num_high)
    elif protocol.cs_timing == "uniform":
        q_row = 1.0 / (G - t)
        q_num = 1.0 / (G - hours)
    else:
        raise ValueError(f"unknown cs_timing {protocol.cs_timing!r}")
    f_cs = np.where(started, q_row / hz.h_high, (1 - q_row) / (1 - hz.h_any))
    # stabilisation: the same factors from the time-only model, a function of the hour alone (so it cancels
    # in each hour's weighted hazard and only rescales the weights to mean ~1)
    c_no = np.cumprod(1 - hz.num_any)
    c_cs = np.cumprod(np.where(hours == G - 1, hz.num_high, (1 - hz.num_any) / np.maximum(1 - q_num, 1e-12)))
    W = np.ones((2, n, G + 1))
    for a, f, c in ((0, f_cs, c_cs), (1, f_no, c_no)):
        step = np.ones((n, G))
        step[s, t] = f
        W[a, :, :G] = np.cumprod(step, axis=1) * (c[None, :] if stabilised else 1.0)
        W[a, :, G] = W[a, :, G - 1]

    # artificial censoring hours
    cens = np.full((2, n), -1)
    in_icu_last = (data.death > G - 1) & (data.icu_end > G - 1) & (data.fu_end > G - 1)
    untreated_last = start_hour > G - 1
    cs_cens = np.where(start_hour < G - 1, np.where(qualifying, -1, start_hour), -1)
    cs_cens = np.where(untreated_last & in_icu_last, G - 1, cs_cens)
    cs_cens = np.where((start_hour == G - 1) & ~qualifying, G - 1, cs_cens)
    cens[0] = cs_cens
    cens[1] = np.where(start_hour < G, start_hour, -1)

    # follow-up for death
    death_hour = np.where(data.death <= H, np.floor(data.death), np.inf)
    if protocol.loss_to_followup == "censor":
        ltfu = np.where(data.fu_end < min(H, np.inf), np.floor(data.fu_end), np.inf)
    else:
        ltfu = np.full(n, np.inf)
    exit_hour = np.zeros((2, n))
    event = np.zeros((2, n), dtype=bool)
    for a in range(2):
        c = np.where(cens[a] >= 0, cens[a], np.inf)
        stop = np.minimum(np.minimum(c, ltfu), H)
        ev = death_hour < stop  # a death in the hour of censoring is not counted (start precedes death)
        exit_hour[a] = np.where(ev, death_hour, stop)
        event[a] = ev
    # truncation of the final weights at an upper quantile, per arm
    q = protocol.truncate_quantile
    if q and q < 1:
        for a in range(2):
            cap = np.quantile(W[a, :, G], q)
            W[a] = np.minimum(W[a], cap)
    return Clones(exit_hour=exit_hour, event=event, weights=W, censored_at=cens)


def cumulative_incidence(cl: Clones, arm: int, horizon_h: int, freq: np.ndarray) -> np.ndarray:
    """Weighted Kaplan-Meier risk of death at hours 1..horizon_h for one arm (index 0 = cs, 1 = no_cs)."""
    G = cl.weights.shape[2] - 1
    exit_h = cl.exit_hour[arm]
    ev = cl.event[arm]
    W = cl.weights[arm] * freq[:, None]
    hazard = np.zeros(horizon_h)
    # hours within the grace period: weights vary with the hour
    for t in range(min(G, horizon_h)):
        in_risk = exit_h >= t
        at = W[:, t] * (in_risk & ~((exit_h == t) & ~ev))
        den = at.sum()
        hazard[t] = (at * ((exit_h == t) & ev)).sum() / den if den > 0 else 0.0
    if horizon_h > G:
        wf = W[:, G]
        eh = np.clip(exit_h, 0, horizon_h).astype(int)
        # risk set at hour t >= G: clones with exit_hour > t, or exit_hour == t with an event
        exits_any = np.bincount(eh, weights=wf, minlength=horizon_h + 1)
        exits_ev = np.bincount(eh[ev], weights=wf[ev], minlength=horizon_h + 1)
        still = wf[exit_h >= G].sum()
        for t in range(G, horizon_h):
            den = still - (exits_any[t] - exits_ev[t])
            hazard[t] = exits_ev[t] / den if den > 0 else 0.0
            still -= exits_any[t]
    return 1 - np.cumprod(1 - hazard)


def effective_sample_size(w: np.ndarray) -> float:
    w = w[w > 0]
    return float(w.sum() ** 2 / (w**2).sum()) if len(w) else 0.0


def emulate(data: TrialData, protocol: Protocol, grace_h: int, min_dose: float | None, freq: np.ndarray | None = None,
            stabilised: bool = True, start: HazardFit | None = None) -> dict:
    """One clone-censor-weight estimate: risks per arm at the horizon, RD, RR, curves, clones.

    ``start``: a fit of the same weight models (e.g. on the full data) that warm-starts the refits.
    """
    n = len(data.stay_id)
    freq = np.ones(n) if freq is None else freq
    hz = fit_hazards(data, grace_h, freq, min_dose, start)
    cl = build_clones(data, grace_h, hz, protocol, min_dose, stabilised)
    H = protocol.horizon_h
    ci = [cumulative_incidence(cl, a, H, freq) for a in range(2)]
    r1, r0 = ci[0][-1], ci[1][-1]
    return {"risk_cs": r1, "risk_no_cs": r0, "rd": r1 - r0, "rr": r1 / r0 if r0 > 0 else np.nan,
            "curves": ci, "clones": cl, "hazards": hz}


# ----------------------------------------------------------------------------- naive analyses
def naive_estimates(data: TrialData, horizon_h: int, freq: np.ndarray, protocol: Protocol) -> dict:
    """The workflow's 0-24 h contrast (CS flag vs not): crude and baseline-IPTW risk differences."""
    y = (data.death <= horizon_h).astype(float)
    if protocol.loss_to_followup == "censor":
        known = (data.death <= horizon_h) | (data.fu_end >= horizon_h)
    else:
        known = np.ones(len(y), dtype=bool)
    a = data.cs_naive
    w = freq * known

    def wmean(v, ww):
        return float(np.sum(v * ww) / np.sum(ww)) if np.sum(ww) > 0 else np.nan

    crude = wmean(y, w * a) - wmean(y, w * ~a)
    X = np.hstack([np.ones((len(y), 1)), data.X_base])
    ps = np.clip(predict_logistic(X, fit_logistic(X[w > 0], a[w > 0].astype(float), w[w > 0], ridge=1e-2)), 0.01, 0.99)
    pa = wmean(a.astype(float), w)
    iw = np.where(a, pa / ps, (1 - pa) / (1 - ps))
    iptw = wmean(y, w * iw * a) - wmean(y, w * iw * ~a)
    return {"naive_rd": crude, "naive_iptw_rd": iptw}


# ----------------------------------------------------------------------------- bootstrap and summaries
def e_value(rr: float, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """E-value of a risk ratio and of its confidence limit closest to the null (VanderWeele & Ding 2017)."""
    def ev(r):
        if r is None or not np.isfinite(r) or r <= 0:
            return np.nan
        r = 1 / r if r < 1 else r
        return float(r + math.sqrt(r * (r - 1)))

    point = ev(rr)
    if lo is None or hi is None or not np.isfinite(lo) or not np.isfinite(hi):
        return point, np.nan
    if lo <= 1 <= hi:
        return point, 1.0
    return point, ev(hi if rr < 1 else lo)


def patient_bootstrap_counts(patient: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Per-stay frequency weights of ``n_boot`` patient-level bootstrap resamples."""
    rng = np.random.default_rng(seed)
    n_pat = int(patient.max()) + 1 if len(patient) else 0
    out = []
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, n_pat, n_pat), minlength=n_pat)
        out.append(counts[patient].astype(float))
    return out


#: statistics of the bootstrap and the scale of their Wald intervals (ratios on the log scale)
BOOT_KEYS = ("rd", "rr", "risk_cs", "risk_no_cs", "naive_rd", "naive_iptw_rd")
LOG_SCALE = {"rr"}


def confidence_interval(estimate: float, replicates: np.ndarray, method: str, log: bool = False,
                        level: float = 0.95) -> tuple[float, float, float]:
    """(lower, upper, SE) of a bootstrap confidence interval.

    ``wald``: estimate +- t_{B-1} x the bootstrap SE (on the log scale for ratios).  The t quantile with B-1
    degrees of freedom widens the interval for the Monte-Carlo error of an SE from few resamples (B = 20:
    2.09 instead of 1.96).  ``percentile``: the bootstrap quantiles (needs hundreds of resamples to be
    stable).  The SE returned is on the scale of the estimate (not log).
    """
    from scipy.stats import t as student_t

    v = replicates[np.isfinite(replicates)]
    if log:
        v = v[v > 0]
    if len(v) < 2 or not np.isfinite(estimate):
        return np.nan, np.nan, np.nan
    se = float(np.std(v, ddof=1))
    if method == "percentile":
        a = (1 - level) / 2
        return float(np.quantile(v, a)), float(np.quantile(v, 1 - a)), se
    if method != "wald":
        raise ValueError(f"unknown ci_method {method!r} (wald | percentile)")
    q = float(student_t.ppf(0.5 + level / 2, len(v) - 1))
    if log:
        if estimate <= 0:
            return np.nan, np.nan, se
        se_log = float(np.std(np.log(v), ddof=1))
        return float(estimate * np.exp(-q * se_log)), float(estimate * np.exp(q * se_log)), se
    return float(estimate - q * se), float(estimate + q * se), se


def bootstrap(data: TrialData, protocol: Protocol, grace_h: int, min_dose: float | None, seed: int,
              point: dict | None = None, start: HazardFit | None = None) -> dict:
    """CIs from a patient-level bootstrap of the whole procedure (weight models refitted on each resample).

    ``point``: the full-data estimates the Wald intervals are centred on (computed when absent); ``start``:
    the full-data weight-model fit, a warm start of every refit.  ``protocol.ci_method`` picks the interval.
    """
    if point is None:
        est = emulate(data, protocol, grace_h, min_dose)
        point = {**{k: est[k] for k in ("rd", "rr", "risk_cs", "risk_no_cs")},
                 **naive_estimates(data, protocol.horizon_h, np.ones(len(data.stay_id)), protocol)}
        start = start or est["hazards"]
    rows = []
    for freq in patient_bootstrap_counts(data.patient, protocol.n_boot, seed):
        est = emulate(data, protocol, grace_h, min_dose, freq, start=start)
        nv = naive_estimates(data, protocol.horizon_h, freq, protocol)
        rows.append((est["rd"], est["rr"], est["risk_cs"], est["risk_no_cs"], nv["naive_rd"], nv["naive_iptw_rd"]))
    a = np.array(rows, dtype=float).reshape(-1, len(BOOT_KEYS))
    out = {}
    for j, key in enumerate(BOOT_KEYS):
        lo, hi, se = confidence_interval(point[key], a[:, j], protocol.ci_method, key in LOG_SCALE)
        out[f"{key}_lo"], out[f"{key}_hi"], out[f"{key}_se"] = lo, hi, se
    out["n_boot"] = int(len(a))
    out["ci_method"] = protocol.ci_method
    return out


def weight_diagnostics(cl: Clones, freq: np.ndarray | None = None) -> pl.DataFrame:
    """ESS and weight distribution per arm and hour of the grace period (uncensored clones in follow-up)."""
    G = cl.weights.shape[2] - 1
    rows = []
    for a, arm in enumerate(ARMS):
        for t in range(G + 1):
            alive = cl.exit_hour[a] >= min(t, G)
            w = cl.weights[a, alive, t]
            rows.append({
                "arm": arm, "hour": t if t < G else G, "n_clones": int(alive.sum()), "ess": effective_sample_size(w),
                "mean": float(w.mean()) if len(w) else np.nan, "p01": float(np.quantile(w, 0.01)) if len(w) else np.nan,
                "median": float(np.median(w)) if len(w) else np.nan, "p99": float(np.quantile(w, 0.99)) if len(w) else np.nan,
                "max": float(w.max()) if len(w) else np.nan,
            })
    return pl.DataFrame(rows)


def primary_analysis(data: TrialData, protocol: Protocol, seed: int) -> dict:
    """Main estimate (grace_h, min_dose_mg) with bootstrap CIs, naive contrasts, E-value and ESS."""
    G = protocol.grace_h
    est = emulate(data, protocol, G, protocol.min_dose_mg)
    nv = naive_estimates(data, protocol.horizon_h, np.ones(len(data.stay_id)), protocol)
    point = {**{k: est[k] for k in ("rd", "rr", "risk_cs", "risk_no_cs")}, **nv}
    boot = bootstrap(data, protocol, G, protocol.min_dose_mg, seed, point, est["hazards"]) if protocol.n_boot > 0 else {}
    cl = est["clones"]
    final = [cl.weights[a, :, G] * (cl.censored_at[a] < 0) for a in range(2)]
    ev, ev_ci = e_value(est["rr"], boot.get("rr_lo"), boot.get("rr_hi"))
    out = {
        "grace_h": G,
        "cs_timing": protocol.cs_timing,
        "weight_model": data.weight_model,
        "truncate_quantile": protocol.truncate_quantile,
        "followup_days": protocol.followup_days,
        "n_eligible": len(data.stay_id),
        "n_excluded_prevalent": data.n_excluded_prevalent,
        "risk_cs": est["risk_cs"], "risk_no_cs": est["risk_no_cs"], "rd": est["rd"], "rr": est["rr"],
        **{k: v for k, v in boot.items()},
        **nv,
        "e_value": ev, "e_value_ci": ev_ci,
        "ess_cs": effective_sample_size(final[0]), "ess_no_cs": effective_sample_size(final[1]),
        "n_uncensored_cs": int((cl.censored_at[0] < 0).sum()), "n_uncensored_no_cs": int((cl.censored_at[1] < 0).sum()),
        "max_weight_cs": float(final[0].max()) if len(final[0]) else np.nan,
        "max_weight_no_cs": float(final[1].max()) if len(final[1]) else np.nan,
    }
    return {"summary": out, "estimate": est}


def sensitivity(data: TrialData, protocol: Protocol, cluster_labels: pl.DataFrame | None) -> pl.DataFrame:
    """Point estimates for each grace period, with/without the dose threshold, the other CS timing, truncated
    weights, the other weight model, and per cluster."""
    rows = []

    def add(analysis: str, value: str, d: TrialData, grace: int, dose, **changes):
        p = replace(protocol, **changes) if changes else protocol
        if len(d.stay_id) == 0:
            return
        e = emulate(d, p, grace, dose)
        cl = e["clones"]
        rows.append({"analysis": analysis, "setting": value, "n_stays": len(d.stay_id), "grace_h": grace,
                     "risk_cs": e["risk_cs"], "risk_no_cs": e["risk_no_cs"], "rd": e["rd"], "rr": e["rr"],
                     "ess_cs": effective_sample_size(cl.weights[0, :, grace] * (cl.censored_at[0] < 0)),
                     "ess_no_cs": effective_sample_size(cl.weights[1, :, grace] * (cl.censored_at[1] < 0))})

    for g in protocol.grace_sensitivity_h:
        if g <= data.panel_hour.max() + 1:
            add("grace period", f"{g} h", data, g, protocol.min_dose_mg)
    if protocol.dose_sensitivity_mg is not None:
        other = None if protocol.min_dose_mg is not None else protocol.dose_sensitivity_mg
        add("dose threshold", "none" if other is None else f">= {other:g} mg/24 h", data, protocol.grace_h, other)
    other_timing = "natural" if protocol.cs_timing == "uniform" else "uniform"
    add("CS timing in grace", other_timing, data, protocol.grace_h, protocol.min_dose_mg, cs_timing=other_timing)
    q = protocol.truncate_sensitivity_quantile
    if q is not None and q != protocol.truncate_quantile:
        add("weight truncation", "none" if q >= 1 else f"at the {100 * q:g}th percentile", data, protocol.grace_h,
            protocol.min_dose_mg, truncate_quantile=q)
    if data.tv_raw is not None:
        for model in WEIGHT_MODELS:
            if model != data.weight_model:
                add("weight model", model, with_weight_model(data, model), protocol.grace_h, protocol.min_dose_mg)
    if cluster_labels is not None:
        lab = dict(zip(cluster_labels["stay_id"].cast(pl.String).to_list(), cluster_labels["cluster"].to_list()))
        codes = np.array([lab.get(s) for s in data.stay_id], dtype=object)
        for c in sorted({x for x in codes if x is not None}, key=str):
            add("pooled cluster", str(c), subset(data, codes == c), protocol.grace_h, protocol.min_dose_mg)
    return pl.DataFrame(rows)


def subset(data: TrialData, keep: np.ndarray) -> TrialData:
    """The trial data restricted to some stays (panel rows follow)."""
    idx = np.flatnonzero(keep)
    remap = -np.ones(len(data.stay_id), dtype=int)
    remap[idx] = np.arange(len(idx))
    rows = keep[data.panel_stay]
    _, pidx = np.unique(data.patient[idx], return_inverse=True)
    return TrialData(
        stay_id=data.stay_id[idx], patient=pidx, cs_first=data.cs_first[idx], dose=data.dose[idx], death=data.death[idx],
        icu_end=data.icu_end[idx], fu_end=data.fu_end[idx], hosp_end=data.hosp_end[idx], cs_naive=data.cs_naive[idx],
        X_base=data.X_base[idx], base_names=data.base_names, panel_stay=remap[data.panel_stay[rows]],
        panel_hour=data.panel_hour[rows], X_tv=data.X_tv[rows], tv_names=data.tv_names,
        n_excluded_prevalent=0, tv_raw=None if data.tv_raw is None else data.tv_raw[rows], tv_raw_names=data.tv_raw_names,
        weight_model=data.weight_model, clip_quantile=data.clip_quantile, reference_h=data.reference_h,
    )


def hospital_mortality_estimate(data: TrialData, protocol: Protocol, cl: Clones) -> dict:
    """Secondary outcome: death before hospital discharge within follow-up (same clones and weights)."""
    if not np.isfinite(data.hosp_end).any():
        return {"rd_hospital": np.nan, "note_hospital": "hospital_discharge_h absent: secondary outcome not estimated"}
    H = protocol.horizon_h
    in_hosp_death = (data.death <= H) & (data.death <= data.hosp_end)
    death_hour = np.where(in_hosp_death, np.floor(data.death), np.inf)
    ev = np.zeros_like(cl.event)
    ex = cl.exit_hour.copy()
    for a in range(2):
        c = np.where(cl.censored_at[a] >= 0, cl.censored_at[a], np.inf)
        stop = np.minimum(c, H)
        e = death_hour < stop
        # other deaths end follow-up without the event (alive-discharged stays stay event-free)
        other = (data.death <= H) & ~in_hosp_death & (np.floor(data.death) < stop)
        ex[a] = np.where(e, death_hour, np.where(other, H, stop))
        ev[a] = e
    cl2 = Clones(exit_hour=ex, event=ev, weights=cl.weights, censored_at=cl.censored_at)
    r = [cumulative_incidence(cl2, a, H, np.ones(len(data.stay_id)))[-1] for a in range(2)]
    return {"risk_hospital_cs": r[0], "risk_hospital_no_cs": r[1], "rd_hospital": r[0] - r[1]}


def protocol_table(protocol: Protocol, s: dict, k: int) -> pl.DataFrame:
    """Hernan & Robins' target-trial table filled from the configuration, with counts (suppressed under k)."""
    from .io import format_count

    dose = "any dose" if protocol.min_dose_mg is None else f">= {protocol.min_dose_mg:g} mg/24 h hydrocortisone-equivalent"
    timing = ("start time uniform over the hours left in the grace period" if protocol.cs_timing == "uniform"
              else "start as clinicians do; untreated at the last grace hour: start then")
    rows = [
        ("Eligibility", "the cohort at time zero" + ("; prevalent CS users (cs_before_t0 = 1) excluded" if protocol.exclude_prevalent else ""),
         f"{format_count(s['n_eligible'], k)} eligible; {format_count(s['n_excluded_prevalent'], k)} prevalent users excluded"),
        ("Treatment strategies", f"(1) start a systemic glucocorticoid ({dose}) within {protocol.grace_h} h of time zero ({timing}), "
         f"unless death or ICU discharge comes first; (2) no glucocorticoid within {protocol.grace_h} h, usual care afterwards",
         f"clones uncensored: {format_count(s['n_uncensored_cs'], k)} (1), {format_count(s['n_uncensored_no_cs'], k)} (2)"),
        ("Assignment", "both strategies at time zero (cloning); censoring at deviation; inverse-probability-of-censoring weights "
         "from time-varying and baseline confounders", f"ESS {s['ess_cs']:.0f} (1), {s['ess_no_cs']:.0f} (2)"),
        ("Time zero", "sepsis onset (the cohort's time zero); grace period counts from it", ""),
        ("Follow-up", f"from time zero to death, {protocol.followup_days} days, or end of known vital status "
         f"({'counted alive' if protocol.loss_to_followup == 'alive' else 'censored'} after followup_end_h)", ""),
        ("Outcome", f"death within {protocol.followup_days} days (primary); death before hospital discharge (secondary)", ""),
        ("Causal contrast", "per-protocol effect (risk difference and ratio at the end of follow-up)", ""),
        ("Analysis", f"weighted Kaplan-Meier per arm; patient-level bootstrap ({s.get('n_boot', 0)} resamples) of the whole procedure", ""),
    ]
    return pl.DataFrame(rows, schema=["element", "specification", "counts"], orient="row")


def incidence_figure(est: dict, horizon_h: int, title: str):
    """Weighted cumulative incidence of death per strategy."""
    from .plotting import figure

    fig, ax = figure(7.0, 4.2)
    days = np.arange(1, horizon_h + 1) / 24.0
    for curve, label in zip(est["curves"], ("CS within grace period", "no CS within grace period")):
        ax.step(days, curve, where="post", label=label)
    ax.set_xlabel("days from time zero")
    ax.set_ylabel("cumulative incidence of death")
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False)
    return fig


def weights_figure(diag: pl.DataFrame, title: str):
    """ESS per arm and hour of the grace period, and the 99th percentile of the weights."""
    from .plotting import figure

    fig, axes = figure(8.0, 3.6, ncols=2)
    for arm in ARMS:
        d = diag.filter(pl.col("arm") == arm)
        axes[0].plot(d["hour"], d["ess"], label=arm)
        axes[1].plot(d["hour"], d["p99"], label=arm)
    axes[0].set_xlabel("hour")
    axes[0].set_ylabel("effective sample size")
    axes[1].set_xlabel("hour")
    axes[1].set_ylabel("99th percentile of weights")
    axes[1].set_yscale("log")
    axes[0].legend(frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig
