"""Ground-truth simulator: septic ICU stays with latent phenotypes and a heterogeneous CS effect.

The generator writes the canonical contract (cohort + hourly time series) and a separate
truth table that only validation steps read.  Its design, in the spirit of Seymour et al.
(JAMA 2019):

* four latent phenotypes -- ``alpha`` (mild), ``beta`` (older, chronic/renal),
  ``gamma`` (inflammatory/pulmonary), ``delta`` (hepatic/shock) -- with distinct static
  profiles and hourly trajectories over the time window (default -24..72 h);
* a latent severity ``s`` and a latent response ``rho`` that is revealed gradually by the
  post-time-zero trajectories (so late data carry privileged information);
* corticosteroids (CS) given with a propensity that depends on severity markers
  (:data:`PLANTED_CONFOUNDERS`), at a phenotype-dependent hour within the CS window;
* a heterogeneous CS effect on the log-odds of death (:data:`CS_EFFECT_LOGIT`): benefit in
  gamma and delta, null in alpha, harm in beta; the same sign acts on the MAP/vasopressor
  trajectories after CS start;
* realistic missingness: labs sparser than vitals, sparser still in less severe stays.

A second "database" with covariate shift (``shift``), other measurement frequency
(``lab_interval_scale``) or an unrelated outcome mechanism (``outcome_model: unrelated``)
comes from the same generator.

``design: trial`` turns it into a randomised trial (issue 17): CS assigned at time zero with probability
:data:`TRIAL_PROPENSITY` whatever the patient's state (no confounding), first dose within the first hour,
no CS in the control arm; ``resolution: daily`` keeps only a handful of daily case-report-form measures
(:data:`DAILY_VARIABLES` at hours 0, 24, 48, ...: day ``d`` at hour ``24 d``) instead of the hourly series;
``followup_h: 2160`` gives 90-day mortality (``mortality_90d``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from .contract import CORE_COLUMNS, OPTIONAL_OUTCOMES, TIMING_COLUMNS
from .sofa import SOFA_COMPONENTS, add_sofa

PHENOTYPES = ("alpha", "beta", "gamma", "delta")
BASE_PHENOTYPE_PROBS = np.array([0.33, 0.27, 0.25, 0.15])
SHIFTED_PHENOTYPE_PROBS = np.array([0.18, 0.32, 0.20, 0.30])

#: true CS effect on the log-odds of death, per phenotype (negative = benefit)
CS_EFFECT_LOGIT = {"alpha": 0.0, "beta": 0.6, "gamma": -1.0, "delta": -1.3}
#: phenotypes in which CS truly lowers mortality
BENEFITING_PHENOTYPES = ("gamma", "delta")
#: static covariates that drive CS assignment (planted confounders)
PLANTED_CONFOUNDERS = ("sofa_t0", "vasopressor_t0", "lactate_t0", "copd", "mechanical_ventilation_t0", "cs_before_t0")
#: static covariates that drive mortality directly (planted prognostic variables)
PLANTED_PROGNOSTIC = ("age", "lactate_t0", "sofa_t0", "malignancy", "gcs_t0")

# Baseline (time-zero) physiology per phenotype: (alpha, beta, gamma, delta), spread, scale.
# scale "lin": value = mean + sd * z; "log": value = mean * exp(sd * z)
_PHYS = {
    "map": ((82.0, 74.0, 72.0, 60.0), 6.0, "lin", -1),
    "heart_rate": ((90.0, 86.0, 110.0, 114.0), 9.0, "lin", +1),
    "temperature": ((37.3, 36.9, 38.9, 37.9), 0.45, "lin", +1),
    "resp_rate": ((19.0, 20.0, 29.0, 24.0), 3.0, "lin", +1),
    "gcs": ((14.3, 13.2, 12.5, 10.5), 1.3, "lin", -1),
    "lactate": ((1.3, 1.8, 2.3, 5.2), 0.28, "log", +1),
    "crp": ((55.0, 80.0, 230.0, 140.0), 0.3, "log", +1),
    "wbc": ((10.5, 10.0, 20.0, 15.0), 0.22, "log", +1),
    "creatinine": ((0.85, 3.2, 1.15, 2.0), 0.22, "log", +1),
    "bilirubin": ((0.65, 0.8, 0.9, 4.8), 0.3, "log", +1),
    "platelets": ((250.0, 210.0, 270.0, 75.0), 0.25, "log", -1),
    "pf_ratio": ((370.0, 300.0, 150.0, 255.0), 0.18, "log", -1),
    "glucose": ((125.0, 175.0, 140.0, 115.0), 0.2, "log", +1),
    "urine_output": ((85.0, 30.0, 60.0, 35.0), 0.35, "log", -1),
}
# normal values toward which a variable recovers (and from which it deteriorated before t0)
_NORMAL = {
    "map": 85.0, "heart_rate": 80.0, "temperature": 37.0, "resp_rate": 16.0, "gcs": 15.0,
    "lactate": 1.0, "crp": 20.0, "wbc": 8.0, "creatinine": 0.9, "bilirubin": 0.6,
    "platelets": 250.0, "pf_ratio": 420.0, "glucose": 110.0, "urine_output": 90.0,
}
_RANGES = {
    "map": (20, 190), "heart_rate": (25, 240), "temperature": (31, 42.5), "resp_rate": (4, 65),
    "gcs": (3, 15), "lactate": (0.2, 29), "crp": (0.5, 690), "wbc": (0.2, 190), "creatinine": (0.15, 19),
    "bilirubin": (0.1, 49), "platelets": (2, 1400), "pf_ratio": (25, 690), "glucose": (20, 1400),
    "urine_output": (0, 1900), "norepinephrine_eq": (0, 4.9),
}
_VITALS = ("map", "heart_rate", "temperature", "resp_rate", "urine_output", "norepinephrine_eq")
_LABS = ("lactate", "crp", "wbc", "creatinine", "bilirubin", "platelets", "pf_ratio", "glucose")

_COMORB = {  # probabilities per phenotype
    "chronic_kidney_disease": (0.05, 0.55, 0.08, 0.12),
    "liver_disease": (0.03, 0.05, 0.05, 0.45),
    "diabetes": (0.15, 0.45, 0.20, 0.20),
    "copd": (0.08, 0.20, 0.35, 0.08),
    "heart_failure": (0.05, 0.40, 0.10, 0.10),
    "immunosuppression": (0.05, 0.10, 0.25, 0.12),
    "malignancy": (0.10, 0.20, 0.15, 0.20),
    "cs_before_t0": (0.03, 0.06, 0.12, 0.05),
}
_SOURCES = ("pulmonary", "abdominal", "urinary", "other")
_SOURCE_P = ((0.20, 0.20, 0.45, 0.15), (0.30, 0.15, 0.35, 0.20), (0.70, 0.10, 0.08, 0.12), (0.15, 0.45, 0.20, 0.20))
_ADMISSION = ("medical", "surgical_emergency", "surgical_elective")
_ADMISSION_P = ((0.70, 0.15, 0.15), (0.80, 0.12, 0.08), (0.85, 0.10, 0.05), (0.55, 0.38, 0.07))
_AGE = ((55.0, 15.0), (73.0, 9.0), (61.0, 13.0), (58.0, 12.0))
_VENT = (0.12, 0.25, 0.72, 0.45)
_PRESSOR = (0.18, 0.32, 0.42, 0.92)
_NOREPI = (0.06, 0.08, 0.10, 0.32)  # mean dose when on vasopressor
_CS_HOUR = (10.0, 12.0, 8.0, 4.0)  # mean CS start hour after time zero
_BASE_LOGIT = (-0.6, 0.2, 0.0, 0.5)  # phenotype-specific baseline risk (log-odds offset)
# --- hourly treatment and event processes after time zero (target-trial simulator)
#: persistence (hourly AR(1) coefficient) of the post-time-zero deterioration d_t (stationary SD 1)
TV_PERSISTENCE = 0.96
#: effect of d_t on what clinicians see: MAP falls (mmHg per SD), lactate and vasopressor dose rise (log scale)
TV_MAP, TV_LACTATE, TV_NE = 8.0, 0.35, 0.8
#: log hazard ratio of death per SD of d_t (the post-time-zero state drives death)
TV_DEATH = 1.2
#: intercept of the clinicians' hourly CS-start log-odds (see ``cs_logit`` in :func:`simulate`)
CS_HAZARD_INTERCEPT = -4.6
#: scale of the cumulative hazard of death by day 28 relative to -log(1 - static risk)
DEATH_HAZARD_SCALE = 1.8
#: hazard of death after ICU discharge relative to in the ICU
AFTER_ICU_HAZARD = 0.3
#: trial-sized effects (``effect_size: trial``): population-mean hazard ratio and shrinkage of heterogeneity
TRIAL_MEAN_HR = 0.9
TRIAL_HETEROGENEITY = 0.3
#: hours over which the hazard of death is spread as calibrated (28 days); longer follow-up continues its decay
CALIBRATION_H = 672
#: ``design: trial``: probability of randomisation to CS; the first dose follows within the first hour
TRIAL_PROPENSITY = 0.5
#: ``resolution: daily``: the case-report-form measures kept, one value a day (day d at hour 24 d)
DAILY_VARIABLES = ("sofa", "lactate", "creatinine", "bilirubin", "platelets", "crp")
#: hours of follow-up that make the 90-day mortality known
H90 = 2160
_DRUGS = ("hydrocortisone", "methylprednisolone", "dexamethasone")
_DRUG_P = (0.8, 0.12, 0.08)


@dataclass(frozen=True)
class SimulationSettings:
    """Parameters of one simulated database (config ``databases.<name>`` with ``type: simulated``)."""

    n_stays: int = 3000
    shift: float = 0.0  # 0 = reference population; 1 = strong covariate shift
    lab_interval_scale: float = 1.0  # >1: labs measured less often
    vital_missing_rate: float = 0.05
    outcome_model: str = "standard"  # standard | unrelated | noise (death independent of every covariate and of CS)
    #: 1 = the planted phenotypes; 0 = one population (every phenotype-specific parameter of the covariates
    #: and of the baseline risk pulled to its population mean); in between = overlapping phenotypes
    phenotype_separation: float = 1.0
    #: CS effect on the log-odds of death: heterogeneous (by phenotype and CRP, CS_EFFECT_LOGIT) | common
    #: (every stay gets the population-mean effect of the heterogeneous model) | none
    effect_model: str = "heterogeneous"
    repeat_stay_share: float = 0.08  # share of stays that are a patient's second stay
    #: planted (CS_EFFECT_LOGIT, odds/hazard ratios 0.27-1.8) | trial (mean hazard ratio TRIAL_MEAN_HR,
    #: heterogeneity shrunk by TRIAL_HETEROGENEITY, close to APROCCHSS/ADRENAL)
    effect_size: str = "planted"
    #: follow-up simulated after time zero (h); vital status is known to its end (followup_end_h)
    followup_h: int = 672
    #: clinicians start CS only in the ICU and within this many hours of time zero
    cs_max_h: int = 96
    #: grace periods (h) for which the truth table gets the per-protocol 28-day risks
    #: (risk28_cs_natural_g<G>, risk28_cs_uniform_g<G>, risk28_no_cs_g<G>; see _per_protocol_risks)
    truth_grace_h: tuple = (6, 12, 24, 48)
    #: observational (clinicians start CS from what they see) | trial (randomised at time zero, TRIAL_PROPENSITY)
    design: str = "observational"
    #: hourly (the full hourly series) | daily (DAILY_VARIABLES once a day, from time zero on)
    resolution: str = "hourly"
    window_start_h: int = -24
    window_end_h: int = 72
    cs_window_end_h: float = 24.0

    @classmethod
    def from_config(cls, db: dict, config: dict) -> "SimulationSettings":
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in db.items() if k in names}
        if "truth_grace_h" in kwargs:
            kwargs["truth_grace_h"] = tuple(int(g) for g in kwargs["truth_grace_h"])
        tw = db.get("time_window") or config.get("time_window", {})  # a database's own window first
        kwargs.setdefault("window_start_h", int(tw.get("start_h", -24)))
        kwargs.setdefault("window_end_h", int(tw.get("end_h", 72)))
        kwargs.setdefault("cs_window_end_h", float(config.get("cs_window", {}).get("end_h", 24)))
        return cls(**kwargs)


def database_seed(seed: int, database: str) -> int:
    """A stable per-database seed (independent of Python's hash randomisation)."""
    return (int(seed) * 1_000_003 + zlib.crc32(database.encode())) % (2**32)


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def _first_crossing(cum: np.ndarray, e: np.ndarray) -> np.ndarray:
    """First time (h) at which a cumulative hazard given at hour boundaries reaches ``e`` (inf if never)."""
    hit = cum >= e[:, None]
    ever = hit[:, -1]
    j = np.where(ever, hit.argmax(axis=1), 1)
    j = np.maximum(j, 1)
    lo = np.take_along_axis(cum, (j - 1)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(cum, j[:, None], axis=1)[:, 0]
    frac = np.where(hi > lo, (e - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    return np.where(ever, j - 1 + np.clip(frac, 0, 1), np.inf)


def _cum_at(cum: np.ndarray, lam: np.ndarray, at_h: np.ndarray) -> np.ndarray:
    """Cumulative hazard at continuous times ``at_h`` (hazard constant within each hour)."""
    horizon = lam.shape[1]
    at = np.clip(np.nan_to_num(at_h, nan=horizon, posinf=horizon), 0, horizon)
    j = np.minimum(np.floor(at).astype(int), horizon - 1)
    base = np.take_along_axis(cum, j[:, None], axis=1)[:, 0]
    rate = np.take_along_axis(lam, j[:, None], axis=1)[:, 0]
    return np.where(at >= horizon, cum[:, -1], base + (at - j) * rate)


def _death_time(cum: np.ndarray, lam: np.ndarray, start_h: np.ndarray, effect: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Death time (h, inf if none by the horizon) when CS multiplies the hazard by exp(effect) from start_h on."""
    c_start = _cum_at(cum, lam, start_h)[:, None]
    treated = np.maximum(cum - c_start, 0.0)
    cum_t = np.minimum(cum, c_start) + np.exp(effect)[:, None] * treated
    return _first_crossing(cum_t, e)


def _risk_after_start(cum: np.ndarray, lam: np.ndarray, at_h: np.ndarray, effect: np.ndarray) -> np.ndarray:
    """Risk of death by the horizon when CS starts at ``at_h`` (inf or NaN: never)."""
    c_s = _cum_at(cum, lam, at_h)
    total = c_s + np.exp(effect) * (cum[:, -1] - c_s)
    return 1 - np.exp(-total)


def _per_protocol_risks(avail, eligible, start_times, grace_h, cum, lam, effect):
    """Risks of death by the horizon under the two strategies of the target trial, for every stay.

    ``avail[i, u]``: clinicians' hazard of starting CS in hour ``u`` (0 where the stay has left the ICU);
    ``start_times[i, u]``: the start time within that hour.  Strategies (the estimand of
    clone-censor-weight with a grace period, Webster-Clark et al. 2024):

    * *CS within G, natural timing*: during hours 0..G-2 CS starts as clinicians start it; a stay still in
      the ICU and untreated at hour G-1 starts then (dying or leaving the ICU first is compatible);
    * *CS within G, uniform timing*: in each hour u < G that a stay spends in the ICU untreated, CS starts
      with probability 1 / (G - u) (start time uniform over the grace period; certain by hour G-1);
    * *no CS within G*: no CS in hours 0..G-1; usual care afterwards (clinicians' hazard from hour G on).
    """
    n, m = avail.shape
    g = int(grace_h)
    risk_never = 1 - np.exp(-cum[:, -1])
    # no CS within G
    surv = np.ones(n)
    risk_no = np.zeros(n)
    for u in range(g, m):
        p = surv * avail[:, u]
        risk_no += p * _risk_after_start(cum, lam, start_times[:, u], effect)
        surv = surv - p
    risk_no += surv * risk_never
    # CS within G, natural timing
    surv = np.ones(n)
    risk_cs = np.zeros(n)
    for u in range(0, min(g - 1, m)):
        p = surv * avail[:, u]
        risk_cs += p * _risk_after_start(cum, lam, start_times[:, u], effect)
        surv = surv - p
    last = min(g - 1, m - 1)
    forced = np.where(eligible[:, last], _risk_after_start(cum, lam, start_times[:, last], effect), risk_never)
    risk_cs += surv * forced
    # CS within G, uniform timing: each hour in the ICU untreated, start with probability 1 / (hours left)
    surv = np.ones(n)
    risk_uni = np.zeros(n)
    for u in range(0, min(g, m)):
        p = surv * eligible[:, u] / (g - u)
        risk_uni += p * _risk_after_start(cum, lam, start_times[:, u], effect)
        surv = surv - p
    risk_uni += surv * risk_never
    return risk_cs, risk_uni, risk_no


def simulate(settings: SimulationSettings, seed: int, database: str = "simulated", internals: dict | None = None):
    """Simulate one database.

    Returns
    -------
    cohort : pl.DataFrame
        One row per stay, contract columns.
    timeseries : pl.DataFrame
        Long format ``stay_id, hour, variable, value``.
    truth : pl.DataFrame
        ``stay_id, phenotype, severity, response, propensity, p_death_cs, p_death_no_cs, ite``
        where ``ite = p_death_no_cs - p_death_cs`` (positive = CS lowers the risk of death).
    """
    rng = np.random.default_rng(database_seed(seed, database))
    if settings.design not in ("observational", "trial"):
        raise ValueError(f"unknown design {settings.design!r}")
    if settings.resolution not in ("hourly", "daily"):
        raise ValueError(f"unknown resolution {settings.resolution!r}")
    # draws of the trial design and the daily case-report forms: their own stream (the default data stay as they were)
    rng_trial = np.random.default_rng([database_seed(seed, database), 17])
    n = int(settings.n_stays)
    sh = float(settings.shift)

    # ------------------------------------------------------------------ latent structure
    probs = (1 - sh) * BASE_PHENOTYPE_PROBS + sh * SHIFTED_PHENOTYPE_PROBS
    k = rng.choice(4, size=n, p=probs / probs.sum())
    severity = rng.normal(0.35 * sh, 1.0, n)
    response = rng.normal(0.0, 1.0, n)  # revealed by post-t0 trajectories

    sep = float(settings.phenotype_separation)
    if not 0.0 <= sep <= 1.0:
        raise ValueError(f"phenotype_separation must be in [0, 1], got {sep}")
    mix_w = probs / probs.sum()

    def separated(values, log: bool = False) -> np.ndarray:
        """Phenotype-specific parameters pulled toward their population mean (``phenotype_separation``)."""
        v = np.asarray(values, dtype=float)
        if sep == 1.0:
            return v
        if log:
            mix = np.exp(mix_w @ np.log(v))
            return mix * (v / mix) ** sep
        mix = mix_w @ v
        return mix + sep * (v - mix)

    def per_k(values, log: bool = False) -> np.ndarray:
        return separated(values, log)[k]

    # ------------------------------------------------------------------ static covariates
    age_mu, age_sd = (separated(col) for col in np.array(_AGE).T)
    age = np.clip(rng.normal(age_mu[k] + 6 * sh, age_sd[k]), 18, 100).round(0)
    sex = np.where(rng.random(n) < 0.56, "M", "F")
    weight = np.clip(rng.normal(np.where(sex == "M", 84, 71), 15), 35, 220).round(1)
    adm_idx = np.empty(n, dtype=int)
    src_idx = np.empty(n, dtype=int)
    for j in range(4):
        m = k == j
        adm_idx[m] = rng.choice(3, size=m.sum(), p=_ADMISSION_P[j] if sep == 1.0 else separated(np.array(_ADMISSION_P))[j])
        src_idx[m] = rng.choice(4, size=m.sum(), p=_SOURCE_P[j] if sep == 1.0 else separated(np.array(_SOURCE_P))[j])
    comorb = {name: (rng.random(n) < per_k(p)).astype(np.int8) for name, p in _COMORB.items()}
    mech_vent = (rng.random(n) < _logistic(np.log(per_k(_VENT) / (1 - per_k(_VENT))) + 0.5 * severity)).astype(np.int8)
    pressor = (rng.random(n) < _logistic(np.log(per_k(_PRESSOR) / (1 - per_k(_PRESSOR))) + 0.6 * severity)).astype(np.int8)

    # ------------------------------------------------------------------ baseline physiology at t0
    base = {}
    for var, (means, sd, scale, worse) in _PHYS.items():
        z = rng.normal(0, 1, n) + 0.35 * worse * severity
        mu = per_k(means, log=scale == "log")
        base[var] = mu + sd * z if scale == "lin" else mu * np.exp(sd * z)
    base["norepinephrine_eq"] = np.where(pressor == 1, per_k(_NOREPI, log=True) * np.exp(0.5 * rng.normal(0, 1, n) + 0.25 * severity), 0.0)

    # ------------------------------------------------------------------ CS effect (causal truth)
    def z(x):
        return (x - x.mean()) / (x.std() + 1e-12)

    # the effect is causal truth, not a covariate: phenotype_separation does not pull it together.
    # It acts on the hazard of death from CS start on (log hazard ratio).
    effect = np.asarray([CS_EFFECT_LOGIT[p] for p in PHENOTYPES], dtype=float)[k]
    # effect modification within phenotype: stronger benefit with higher inflammation
    effect = effect - 0.25 * np.where(effect < 0, z(np.log(base["crp"])), 0.0)
    if settings.effect_size == "trial":
        # trial-sized: population-mean log hazard ratio log(TRIAL_MEAN_HR), heterogeneity shrunk
        effect = np.log(TRIAL_MEAN_HR) + TRIAL_HETEROGENEITY * (effect - effect.mean())
    elif settings.effect_size != "planted":
        raise ValueError(f"unknown effect_size {settings.effect_size!r}")
    if settings.effect_model == "common":
        effect = np.full(n, effect.mean())
    elif settings.effect_model == "none" or settings.outcome_model == "noise":
        effect = np.zeros(n)
    elif settings.effect_model != "heterogeneous":
        raise ValueError(f"unknown effect_model {settings.effect_model!r}")

    # ------------------------------------------------------------------ static risk of death
    if settings.outcome_model == "standard":
        logit0 = (
            -1.75
            + per_k(_BASE_LOGIT)
            + 0.55 * severity
            + 0.035 * (age - 62)
            + 0.55 * np.log(base["lactate"] / 2.0)
            - 0.12 * (base["gcs"] - 13)
            + 0.6 * comorb["malignancy"]
            - 0.65 * response
        )
    elif settings.outcome_model == "unrelated":
        logit0 = (
            -1.2
            - 0.03 * (age - 62)
            + 0.9 * z(base["temperature"])
            + 0.7 * z(np.log(base["platelets"]))
            - 0.6 * comorb["copd"]
            - 0.65 * response
        )
    elif settings.outcome_model == "noise":
        logit0 = np.full(n, -1.2)
    else:
        raise ValueError(f"unknown outcome_model {settings.outcome_model!r}")
    noise_outcome = settings.outcome_model == "noise"

    # ------------------------------------------------------------------ time-varying latent state after t0
    horizon = int(settings.followup_h)
    cs_max = int(min(settings.cs_max_h, horizon))
    t_grid = np.arange(horizon + 1)  # hour boundaries 0..horizon
    # deterioration process d_t (AR(1), stationary SD 1, d_0 = 0): vasopressor escalation, rising lactate,
    # falling MAP; it drives both the clinicians' CS decisions and death (time-varying confounding)
    phi = TV_PERSISTENCE
    eps = rng.normal(0.0, np.sqrt(1 - phi**2), (n, horizon))
    d = np.zeros((n, horizon + 1))
    for t in range(1, horizon + 1):
        d[:, t] = phi * d[:, t - 1] + eps[:, t - 1]
    d_var = 1 - phi ** (2 * t_grid)

    # ------------------------------------------------------------------ untreated trajectories
    hours = np.arange(settings.window_start_h, max(settings.window_end_h, cs_max) + 1)
    nh = len(hours)
    icu_in = -rng.uniform(0, 18, n)  # ICU admission, hours before time zero
    h = hours[None, :].astype(float)
    hpos = np.clip(hours, 0, horizon)
    d_h = np.where(h >= 0, d[:, hpos], 0.0)
    pre = np.exp(np.minimum(h, 0) / 7.0)  # deterioration before t0 (1 at t0)
    rate = 0.035 * np.exp(0.45 * response)[:, None]
    post = np.exp(-rate * np.maximum(h, 0))
    shape = np.where(h < 0, pre, post)
    wide = {}
    for var in _PHYS:
        normal = _NORMAL[var]
        wide[var] = normal + (base[var][:, None] - normal) * shape
    wide["map"] = wide["map"] - TV_MAP * d_h
    wide["lactate"] = wide["lactate"] * np.exp(TV_LACTATE * d_h)
    wide["heart_rate"] = wide["heart_rate"] + 5.0 * d_h
    wide["urine_output"] = wide["urine_output"] * np.exp(-0.2 * d_h)
    ne = base["norepinephrine_eq"][:, None] * np.where(h < 0, pre, np.exp(-rate * 0.8 * np.maximum(h, 0)))
    # escalation: dose rises with deterioration; new vasopressor need when d is high
    ne = ne * np.exp(TV_NE * d_h) + 0.12 * np.log1p(np.exp(3.0 * (d_h - 1.2))) / 3.0 * (h >= 0)
    wide["norepinephrine_eq"] = ne
    # measurement noise and plausibility clipping (the values clinicians see)
    for var in wide:
        lo, hi = _RANGES[var]
        noise_sd = {"gcs": 0.6, "temperature": 0.2}.get(var, 0.06 * np.abs(wide[var]).mean())
        noisy = wide[var] + rng.normal(0, 1, wide[var].shape) * (noise_sd if var != "norepinephrine_eq" else 0.0)
        wide[var] = np.clip(noisy, lo, hi)
    wide["gcs"] = np.round(wide["gcs"])
    wide["norepinephrine_eq"] = np.where(wide["norepinephrine_eq"] < 0.01, 0.0, wide["norepinephrine_eq"])
    t0_idx = int(np.where(hours == 0)[0][0])

    # ------------------------------------------------------------------ observation process (before presence)
    observed = {}
    for var in _VITALS:
        miss = settings.vital_missing_rate * (1.3 - 0.3 * np.tanh(severity))[:, None]
        observed[var] = rng.random((n, nh)) >= miss
        if var == "norepinephrine_eq":
            observed[var] = np.ones((n, nh), dtype=bool)  # infusion pumps are charted continuously
    observed["gcs"] = np.mod(hours[None, :] - rng.integers(0, 4, n)[:, None], 4) == 0
    lab_interval = settings.lab_interval_scale * np.select(
        [severity > 0.8, severity > -0.3], [6.0, 12.0], default=20.0
    ) * per_k([1.3, 1.0, 1.0, 1.0])
    for var in _LABS:
        interval = lab_interval * (0.6 if var == "lactate" else 1.0)
        offset = rng.uniform(0, interval)
        phase = np.mod(hours[None, :] - (offset[:, None]), interval[:, None])
        obs = phase < 1.0
        # an admission panel just before time zero in most stays (labs can precede ICU admission)
        first = rng.random(n) < (0.9 if var != "pf_ratio" else 0.6)
        adm_hour = rng.integers(-6, 1, n)
        obs |= first[:, None] & (hours[None, :] == adm_hour[:, None])
        if var == "pf_ratio":
            obs &= (mech_vent[:, None] == 1) | (rng.random((n, nh)) < 0.3)
        observed[var] = obs

    def locf(var):
        """Last observed value at each hour (what a clinician sees), NaN before the first value."""
        vals = np.where(observed[var], wide[var], np.nan)
        idx = np.where(observed[var], np.arange(nh)[None, :], 0)
        np.maximum.accumulate(idx, axis=1, out=idx)
        out = np.take_along_axis(vals, idx, axis=1)
        out[~np.maximum.accumulate(observed[var], axis=1)] = np.nan
        return out

    # ------------------------------------------------------------------ clinicians' hourly CS decision
    cols = slice(t0_idx, t0_idx + cs_max)
    seen_ne = wide["norepinephrine_eq"][:, cols]
    seen_map = np.nan_to_num(locf("map")[:, cols], nan=75.0)
    seen_lac = np.nan_to_num(locf("lactate")[:, cols], nan=1.5)
    hour_cs = np.arange(cs_max)[None, :]
    cs_logit = (
        CS_HAZARD_INTERCEPT
        - 0.035 * hour_cs
        + 2.0 * np.minimum(seen_ne, 1.0)
        + 0.5 * (seen_ne > 0)
        - 0.03 * (seen_map - 75.0)
        + 0.45 * np.log(seen_lac)
        + 0.9 * comorb["copd"][:, None]
        + 0.4 * mech_vent[:, None]
        + 0.3 * comorb["immunosuppression"][:, None]
        + 1.2 * comorb["cs_before_t0"][:, None]
    )
    cs_hazard = _logistic(cs_logit)  # per hour, among stays alive, in the ICU and not yet on CS
    cs_u = rng.random((n, cs_max))
    cs_quarter = rng.integers(0, 4, (n, cs_max)) / 4.0  # start within the hour

    # ------------------------------------------------------------------ death and ICU discharge hazards
    hb = np.arange(horizon)
    base_shape = (hb + 8.0) ** -0.6
    base_shape = base_shape / base_shape[:CALIBRATION_H].sum()  # calibrated over 28 days; decays on beyond
    p_static = _logistic(logit0)
    total = -np.log1p(-np.clip(p_static, 1e-6, 0.999)) * DEATH_HAZARD_SCALE
    tv = np.exp(TV_DEATH * d[:, :horizon] - 0.5 * TV_DEATH**2 * d_var[None, :horizon]) if not noise_outcome else 1.0
    lam_icu = total[:, None] * base_shape[None, :] * tv  # hourly hazard of death in the ICU, untreated
    # ICU discharge (alive) from recovery: not affected by CS in this simulator
    dis_logh = (-4.3 - 0.35 * severity + 0.35 * response - 0.4 * (k == 3))[:, None] - 0.6 * np.clip(d[:, :horizon], -3, 3)
    ramp = np.clip((hb - 4.0) / 20.0, 0.0, 1.0)
    dis_haz = np.exp(dis_logh) * ramp[None, :]
    dis_cum = np.concatenate([np.zeros((n, 1)), np.cumsum(dis_haz, axis=1)], axis=1)
    icu_exit = _first_crossing(dis_cum, rng.exponential(1.0, n))  # potential ICU discharge (if alive), h
    ward_h = 24.0 * rng.gamma(2.0, 2.5, n)
    hosp_exit = icu_exit + ward_h  # potential hospital discharge (if alive), h
    loc = np.where(hb[None, :] + 0.5 < icu_exit[:, None], 1.0, AFTER_ICU_HAZARD)
    lam = lam_icu * (1.0 if noise_outcome else loc)
    lam_cum = np.concatenate([np.zeros((n, 1)), np.cumsum(lam, axis=1)], axis=1)
    in_hosp = hb[None, :] + 0.5 < hosp_exit[:, None]
    lam_hosp_cum = np.concatenate([np.zeros((n, 1)), np.cumsum(lam * in_hosp, axis=1)], axis=1)

    # ------------------------------------------------------------------ realised CS start and death
    eligible_hour = (hour_cs + cs_quarter) < icu_exit[:, None]  # CS is started in the ICU only
    starts = (cs_u < cs_hazard) & eligible_hour
    any_start = starts.any(axis=1)
    first_hour = np.where(any_start, starts.argmax(axis=1), 0)
    start_h = np.where(any_start, first_hour + cs_quarter[np.arange(n), first_hour], np.inf)
    trial = settings.design == "trial"
    if trial:  # randomised at time zero whatever the patient's state; first dose within the hour; no CS in the control arm
        arm = rng_trial.random(n) < TRIAL_PROPENSITY
        dose_h = rng_trial.integers(0, 4, n) / 4.0
        start_h = np.where(arm, dose_h, np.inf)
    death_e = rng.exponential(1.0, n)
    death_h = _death_time(lam_cum, lam, start_h, effect, death_e)
    if not trial:
        start_h = np.where(start_h < death_h, start_h, np.inf)  # a stay that dies first never starts
    # (trial: analysed as randomised; the rare death before the first dose keeps its arm)
    cs_first = np.where(np.isfinite(start_h), start_h, np.nan)
    cs = np.isfinite(start_h) & (start_h <= settings.cs_window_end_h)
    cs_hour = np.where(cs, start_h, np.nan)
    died = np.isfinite(death_h)
    died_28 = died & (death_h <= CALIBRATION_H)
    died_hosp = died & (death_h < hosp_exit)
    icu_end = np.minimum(icu_exit, death_h)
    drug_idx = rng.choice(3, size=n, p=_DRUG_P)
    hc_eq = np.select(
        [drug_idx == 0, drug_idx == 1, drug_idx == 2],
        [np.full(n, 200.0), rng.choice([40.0, 80.0], n) * 5.0, rng.choice([6.0, 10.0, 20.0], n) * 26.67],
    )

    # ------------------------------------------------------------------ truth: potential risks
    cs_avail = cs_hazard * eligible_hour  # hazard of a natural start at each hour (alive and in the ICU)

    p0 = 1 - np.exp(-lam_hosp_cum[:, -1])  # hospital death, never CS
    p1 = 1 - np.exp(-lam_hosp_cum[:, -1] * np.exp(effect))  # hospital death, CS from time zero
    truth_cols = {}
    if trial:  # the trial's own contrast: CS at the randomised dose time vs never, hospital death, 28 and 90 days
        p1 = _risk_after_start(lam_hosp_cum, lam * in_hosp, dose_h, effect)
        h28 = min(CALIBRATION_H, horizon)
        truth_cols["p_death28_cs"] = _risk_after_start(lam_cum[:, : h28 + 1], lam[:, :h28], dose_h, effect)
        truth_cols["p_death28_no_cs"] = 1 - np.exp(-lam_cum[:, h28])
        if horizon >= H90:
            truth_cols["p_death90_cs"] = _risk_after_start(lam_cum[:, : H90 + 1], lam[:, :H90], dose_h, effect)
            truth_cols["p_death90_no_cs"] = 1 - np.exp(-lam_cum[:, H90])
    start_times = hour_cs + cs_quarter
    for g in settings.truth_grace_h:
        g = int(g)
        risk_cs, risk_uni, risk_no = _per_protocol_risks(cs_avail, eligible_hour, start_times, g, lam_cum, lam, effect)
        truth_cols[f"risk28_cs_natural_g{g}"] = risk_cs
        truth_cols[f"risk28_cs_uniform_g{g}"] = risk_uni
        truth_cols[f"risk28_no_cs_g{g}"] = risk_no
    if internals is not None:  # for checks of the target-trial machinery against the true CS hazard
        internals.update(cs_hazard=cs_hazard, eligible_hour=eligible_hour, start_times=start_times, death_h=death_h,
                         lam_cum=lam_cum, lam=lam, effect=effect, death_e=death_e, cs_u=cs_u)
    propensity = 1 - np.prod(1 - cs_avail[:, : int(np.ceil(settings.cs_window_end_h))], axis=1)
    if trial:
        propensity = np.full(n, TRIAL_PROPENSITY)

    # ------------------------------------------------------------------ trajectories as observed (CS acts)
    exit_h = np.where(np.isfinite(death_h), np.minimum(death_h, icu_exit), icu_exit)
    present = (hours[None, :] >= np.floor(icu_in)[:, None]) & (hours[None, :] <= exit_h[:, None])
    cs_on = (h >= start_h[:, None]).astype(float)
    since = np.where(np.isfinite(start_h), start_h, 0.0)[:, None]
    benefit_strength = np.clip(-effect, -1.5, 2.0)[:, None]
    wide["map"] = np.clip(wide["map"] + 5.0 * benefit_strength * cs_on * (1 - np.exp(-(h - since) / 6.0)), *_RANGES["map"])
    wide["norepinephrine_eq"] = wide["norepinephrine_eq"] * np.exp(-0.5 * benefit_strength * cs_on * np.clip((h - since) / 12.0, 0, 2))
    wide["norepinephrine_eq"] = np.where(wide["norepinephrine_eq"] < 0.01, 0.0, np.minimum(wide["norepinephrine_eq"], _RANGES["norepinephrine_eq"][1]))
    out_cols = hours <= settings.window_end_h
    hours = hours[out_cols]
    nh = len(hours)
    present = present[:, out_cols]
    wide = {v: w[:, out_cols] for v, w in wide.items()}
    observed = {v: o[:, out_cols] & present for v, o in observed.items()}

    # SOFA from the latent (noise-added) state, every hour
    sofa_frame = add_sofa(
        pl.DataFrame({v: wide[v].ravel() for v in ("pf_ratio", "platelets", "bilirubin", "map", "norepinephrine_eq", "gcs", "creatinine")})
    )
    sofa_wide = {c: sofa_frame[c].to_numpy().reshape(n, nh).astype(float) for c in (*SOFA_COMPONENTS, "sofa")}
    for comp in (*SOFA_COMPONENTS, "sofa"):
        observed[comp] = present

    # ------------------------------------------------------------------ static "at time zero" values
    def last_obs_t0(var, lookback=6):
        vals = np.full(n, np.nan)
        for offset in range(lookback, -1, -1):
            idx = t0_idx - offset
            m = observed[var][:, idx]
            vals = np.where(m, wide[var][:, idx], vals)
        return vals

    lactate_t0 = last_obs_t0("lactate")
    map_t0 = last_obs_t0("map", lookback=2)
    gcs_t0 = last_obs_t0("gcs", lookback=4)
    sofa_t0 = sofa_wide["sofa"][:, t0_idx]

    if settings.resolution == "daily":  # case-report forms: DAILY_VARIABLES once a day while in the ICU, day d at hour 24 d
        day_hour = (hours[None, :] >= 0) & (np.mod(hours[None, :], 24) == 0)
        observed = {v: present & day_hour & (rng_trial.random((n, nh)) >= 0.03) for v in DAILY_VARIABLES}

    # ------------------------------------------------------------------ identifiers and cohort
    n_repeat = int(round(settings.repeat_stay_share * n))
    n_patients = n - n_repeat
    patient_of_stay = np.concatenate([np.arange(n_patients), rng.choice(n_patients, n_repeat, replace=False)])
    patient_of_stay = rng.permutation(patient_of_stay)
    id_base = 10_000_000 * (1 + zlib.crc32(database.encode()) % 89)
    stay_ids = np.array([str(id_base + 2 * i + 1) for i in range(n)])
    patient_ids = np.array([str(id_base + 5_000_000 + int(p)) for p in patient_of_stay])

    realised_response = response - np.where(cs, effect, 0.0) * 0.6
    reversal_p = _logistic(0.9 - 0.6 * severity + 0.8 * realised_response - 0.9 * per_k([0, 0, 0, 1]))
    shock_reversal = np.where(pressor == 1, (rng.random(n) < reversal_p).astype(float), np.nan)

    cohort = pl.DataFrame(
        {
            "stay_id": stay_ids,
            "patient_id": patient_ids,
            "database": [database] * n,
            "time_zero": ["simulated_sepsis_onset"] * n,
            "cs": cs,
            "cs_start_h": cs_hour,
            "cs_drug": pl.Series([_DRUGS[d] if c else None for c, d in zip(cs, drug_idx)], dtype=pl.String),
            "cs_hydrocortisone_eq_mg_24h": np.where(cs, hc_eq.round(1), np.nan),
            "hospital_mortality": died_hosp.astype(np.int8),
            "mortality_28d": died_28.astype(np.int8),
            "shock_reversal_7d": shock_reversal,
            "icu_los_days": ((np.minimum(icu_end, horizon) - icu_in) / 24.0).round(3),
            "cs_first_h": cs_first,
            "death_h": np.where(died, death_h, np.nan).round(2),
            "icu_discharge_h": np.where(icu_end <= horizon, icu_end, np.nan).round(2),
            "hospital_discharge_h": np.where(died_hosp, death_h, np.where(hosp_exit < horizon, hosp_exit, np.nan)).round(2),
            "followup_end_h": np.full(n, float(horizon)),
            "age": age,
            "sex": sex,
            "weight": weight,
            "admission_type": pl.Series([_ADMISSION[i] for i in adm_idx], dtype=pl.String),
            "infection_source": pl.Series([_SOURCES[i] for i in src_idx], dtype=pl.String),
            **{name: v for name, v in comorb.items()},
            "mechanical_ventilation_t0": mech_vent,
            "vasopressor_t0": pressor,
            "sofa_t0": sofa_t0,
            "gcs_t0": gcs_t0,
            "lactate_t0": np.round(lactate_t0, 2),
            "map_t0": np.round(map_t0, 1),
        },
        strict=False,
    ).with_columns(
        pl.col("cs_start_h").fill_nan(None),
        *(pl.col(c).fill_nan(None) for c in ("cs_first_h", "death_h", "icu_discharge_h", "hospital_discharge_h")),
        pl.col("cs_hydrocortisone_eq_mg_24h").fill_nan(None),
        pl.col("shock_reversal_7d").fill_nan(None).cast(pl.Int8),
        pl.col("lactate_t0").fill_nan(None),
        pl.col("map_t0").fill_nan(None),
        pl.col("gcs_t0").fill_nan(None),
    )
    if horizon >= H90:  # vital status known to day 90
        cohort = cohort.with_columns(pl.Series("mortality_90d", (died & (death_h <= H90)).astype(np.int8)))
    first = [*CORE_COLUMNS, *(c for c in OPTIONAL_OUTCOMES if c in cohort.columns), *TIMING_COLUMNS]
    cohort = cohort.select(first + [c for c in cohort.columns if c not in first])

    # ------------------------------------------------------------------ long time series
    decimals = {"temperature": 1, "norepinephrine_eq": 3, "lactate": 1, "creatinine": 2, "bilirubin": 1, "wbc": 1}
    parts = []
    stay_rep = np.repeat(stay_ids, nh)
    hour_rep = np.tile(hours.astype(np.int32), n)
    for var, obs in observed.items():
        values = sofa_wide[var] if var in sofa_wide else wide[var]
        flat = obs.ravel()
        parts.append(
            pl.DataFrame(
                {
                    "stay_id": stay_rep[flat],
                    "hour": hour_rep[flat],
                    "variable": np.full(int(flat.sum()), var),
                    "value": np.round(values.ravel()[flat], decimals.get(var, 0 if var.startswith("sofa") or var == "gcs" else 1)),
                }
            )
        )
    ts = pl.concat(parts).with_columns(pl.col("hour").cast(pl.Int32)).sort(["stay_id", "variable", "hour"])

    truth = pl.DataFrame(
        {
            "stay_id": stay_ids,
            "phenotype": pl.Series([PHENOTYPES[i] for i in k], dtype=pl.String),
            "severity": severity,
            "response": response,
            "propensity": propensity,
            "p_death_cs": p1,
            "p_death_no_cs": p0,
            "ite": p0 - p1,
            "cs_effect_logit": effect,
            **truth_cols,
        },
        strict=False,
    )
    return cohort.sort("stay_id"), ts, truth.sort("stay_id")
