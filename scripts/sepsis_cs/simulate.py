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
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from .contract import CORE_COLUMNS
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
    window_start_h: int = -24
    window_end_h: int = 72
    cs_window_end_h: float = 24.0

    @classmethod
    def from_config(cls, db: dict, config: dict) -> "SimulationSettings":
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in db.items() if k in names}
        tw = config.get("time_window", {})
        kwargs.setdefault("window_start_h", int(tw.get("start_h", -24)))
        kwargs.setdefault("window_end_h", int(tw.get("end_h", 72)))
        kwargs.setdefault("cs_window_end_h", float(config.get("cs_window", {}).get("end_h", 24)))
        return cls(**kwargs)


def database_seed(seed: int, database: str) -> int:
    """A stable per-database seed (independent of Python's hash randomisation)."""
    return (int(seed) * 1_000_003 + zlib.crc32(database.encode())) % (2**32)


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate(settings: SimulationSettings, seed: int, database: str = "simulated"):
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

    # ------------------------------------------------------------------ treatment assignment
    def z(x):
        return (x - x.mean()) / (x.std() + 1e-12)

    prop_logit = (
        -1.25
        + 0.55 * severity
        + 0.9 * pressor
        + 0.5 * z(np.log(base["lactate"]))
        + 0.8 * comorb["copd"]
        + 0.5 * mech_vent
        + 1.0 * comorb["cs_before_t0"]
    )
    propensity = _logistic(prop_logit)
    cs = rng.random(n) < propensity
    cs_hour = np.clip(rng.gamma(2.0, per_k(_CS_HOUR, log=True) / 2.0), 0, settings.cs_window_end_h)
    cs_hour = np.where(cs, np.floor(cs_hour * 4) / 4, np.nan)
    drug_idx = rng.choice(3, size=n, p=_DRUG_P)
    hc_eq = np.select(
        [drug_idx == 0, drug_idx == 1, drug_idx == 2],
        [np.full(n, 200.0), rng.choice([40.0, 80.0], n) * 5.0, rng.choice([6.0, 10.0, 20.0], n) * 26.67],
    )

    # ------------------------------------------------------------------ outcome model
    # the effect is causal truth, not a covariate: phenotype_separation does not pull it together
    effect = np.asarray([CS_EFFECT_LOGIT[p] for p in PHENOTYPES], dtype=float)[k]
    # effect modification within phenotype: stronger benefit with higher inflammation
    effect = effect - 0.25 * np.where(effect < 0, z(np.log(base["crp"])), 0.0)
    if settings.effect_model == "common":
        effect = np.full(n, effect.mean())
    elif settings.effect_model == "none" or settings.outcome_model == "noise":
        effect = np.zeros(n)
    elif settings.effect_model != "heterogeneous":
        raise ValueError(f"unknown effect_model {settings.effect_model!r}")
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
    p0 = _logistic(logit0)
    p1 = _logistic(logit0 + effect)
    died = rng.random(n) < np.where(cs, p1, p0)

    # response as experienced (CS shifts recovery speed in the direction of its effect)
    realised_response = response - np.where(cs, effect, 0.0) * 0.6

    # ------------------------------------------------------------------ trajectories
    hours = np.arange(settings.window_start_h, settings.window_end_h + 1)
    nh = len(hours)
    icu_in = -rng.uniform(0, 18, n)  # ICU admission, hours before time zero
    # stay length after t0 (h); deaths occur earlier on average
    # under the noise outcome, nothing observed (stay length, late worsening) depends on death either
    shapes_death = died if settings.outcome_model != "noise" else np.zeros(n, dtype=bool)
    los_after = np.where(
        shapes_death,
        24 * rng.gamma(1.6, 3.0 + 0.8 * np.clip(-severity, -1, 2) + 1.0, n),
        24 * rng.gamma(2.2, 2.2 + 0.6 * np.clip(severity, -1, 2), n) + 18,
    )
    los_after = np.maximum(los_after, 6.0)
    icu_los_days = (los_after - icu_in) / 24.0
    present = (hours[None, :] >= np.floor(icu_in)[:, None]) & (hours[None, :] <= los_after[:, None])

    h = hours[None, :].astype(float)
    pre = np.exp(np.minimum(h, 0) / 7.0)  # deterioration before t0 (1 at t0)
    rate = 0.035 * np.exp(0.45 * realised_response)[:, None]
    post = np.exp(-rate * np.maximum(h, 0))
    # non-responders who die deteriorate again late
    worsening = np.where(shapes_death, 0.35, 0.0)[:, None] * np.clip((h - 24) / 48.0, 0, 1) * (realised_response < 0)[:, None]
    shape = np.where(h < 0, pre, post + worsening)
    cs_on = np.where(cs, 1.0, 0.0)[:, None] * (h >= np.nan_to_num(cs_hour, nan=1e9)[:, None])

    wide = {}
    for var in _PHYS:
        normal = _NORMAL[var]
        traj = normal + (base[var][:, None] - normal) * shape
        wide[var] = traj
    # CS acts on haemodynamics in the direction of its effect
    benefit_strength = np.clip(-effect, -1.5, 2.0)[:, None]
    wide["map"] = wide["map"] + 5.0 * benefit_strength * cs_on * (1 - np.exp(-(h - np.nan_to_num(cs_hour, nan=0)[:, None]) / 6.0))
    ne = base["norepinephrine_eq"][:, None] * np.where(h < 0, pre, np.exp(-rate * 0.8 * np.maximum(h, 0)))
    ne = ne * np.exp(-0.5 * benefit_strength * cs_on * np.clip((h - np.nan_to_num(cs_hour, nan=0)[:, None]) / 12.0, 0, 2))
    wide["norepinephrine_eq"] = np.where(ne < 0.01, 0.0, ne)

    # measurement noise and plausibility clipping
    for var in wide:
        lo, hi = _RANGES[var]
        noise_sd = {"gcs": 0.6, "temperature": 0.2}.get(var, 0.06 * np.abs(wide[var]).mean())
        noisy = wide[var] + rng.normal(0, 1, wide[var].shape) * (noise_sd if var != "norepinephrine_eq" else 0.0)
        wide[var] = np.clip(noisy, lo, hi)
    wide["gcs"] = np.round(wide["gcs"])

    # SOFA from the latent (noise-added) state, every hour
    sofa_frame = add_sofa(
        pl.DataFrame({v: wide[v].ravel() for v in ("pf_ratio", "platelets", "bilirubin", "map", "norepinephrine_eq", "gcs", "creatinine")})
    )
    sofa_wide = {c: sofa_frame[c].to_numpy().reshape(n, nh).astype(float) for c in (*SOFA_COMPONENTS, "sofa")}
    t0_idx = int(np.where(hours == 0)[0][0])

    # ------------------------------------------------------------------ observation process
    observed = {}
    for var in _VITALS:
        miss = settings.vital_missing_rate * (1.3 - 0.3 * np.tanh(severity))[:, None]
        obs = present & (rng.random((n, nh)) >= miss)
        if var == "norepinephrine_eq":
            obs = present  # infusion pumps are charted continuously
        observed[var] = obs
    observed["gcs"] = present & (np.mod(hours[None, :] - rng.integers(0, 4, n)[:, None], 4) == 0)
    lab_interval = settings.lab_interval_scale * np.select(
        [severity > 0.8, severity > -0.3], [6.0, 12.0], default=20.0
    ) * per_k([1.3, 1.0, 1.0, 1.0])
    for var in _LABS:
        interval = lab_interval * (0.6 if var == "lactate" else 1.0)
        offset = rng.uniform(0, interval)
        phase = np.mod(hours[None, :] - (offset[:, None]), interval[:, None])
        obs = (phase < 1.0) & present
        # an admission panel just before time zero in most stays (labs can precede ICU admission)
        first = rng.random(n) < (0.9 if var != "pf_ratio" else 0.6)
        adm_hour = rng.integers(-6, 1, n)
        obs |= first[:, None] & (hours[None, :] == adm_hour[:, None])
        if var == "pf_ratio":
            obs &= (mech_vent[:, None] == 1) | (rng.random((n, nh)) < 0.3)
        observed[var] = obs
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

    # ------------------------------------------------------------------ identifiers and cohort
    n_repeat = int(round(settings.repeat_stay_share * n))
    n_patients = n - n_repeat
    patient_of_stay = np.concatenate([np.arange(n_patients), rng.choice(n_patients, n_repeat, replace=False)])
    patient_of_stay = rng.permutation(patient_of_stay)
    id_base = 10_000_000 * (1 + zlib.crc32(database.encode()) % 89)
    stay_ids = np.array([str(id_base + 2 * i + 1) for i in range(n)])
    patient_ids = np.array([str(id_base + 5_000_000 + int(p)) for p in patient_of_stay])

    death_day = np.where(died, los_after / 24.0 + rng.exponential(2.0, n) * (rng.random(n) < 0.2), np.nan)
    post_discharge_death = (~died) & (rng.random(n) < 0.02)
    mortality_28d = ((died & (death_day <= 28)) | post_discharge_death).astype(np.int8)
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
            "hospital_mortality": died.astype(np.int8),
            "mortality_28d": mortality_28d,
            "shock_reversal_7d": shock_reversal,
            "icu_los_days": icu_los_days.round(3),
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
        pl.col("cs_hydrocortisone_eq_mg_24h").fill_nan(None),
        pl.col("shock_reversal_7d").fill_nan(None).cast(pl.Int8),
        pl.col("lactate_t0").fill_nan(None),
        pl.col("map_t0").fill_nan(None),
        pl.col("gcs_t0").fill_nan(None),
    )
    cohort = cohort.select([c for c in CORE_COLUMNS] + [c for c in cohort.columns if c not in CORE_COLUMNS])

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
        },
        strict=False,
    )
    return cohort.sort("stay_id"), ts, truth.sort("stay_id")
