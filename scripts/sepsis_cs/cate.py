"""Who benefits from corticosteroids: conditional average treatment effect (CATE) learners.

Benefit is the *absolute risk reduction* of the outcome with CS,
``benefit(x) = P(death | no CS, x) - P(death | CS, x)`` (positive = CS helps), the same sign as
the simulator's ``ite``.  The estimand of every learner is the CATE on this risk-difference
scale, ``tau(x) = E[Y(0) - Y(1) | X = x]``, for stays with the baseline features ``x``.

Inputs are **baseline** features only (static covariates and pre-time-zero summaries, see
:func:`baseline_columns`): CS starts within 0-24 h, so anything measured after time zero can
be a consequence of the treatment and would bias the effect.

Learners (hand-written on scikit-learn estimators; nuisances cross-fitted by patient):

* ``t_learner``  -- one outcome model per arm, ``mu0(x) - mu1(x)``.
* ``x_learner``  -- imputed effects ``mu0(x) - y`` (treated) and ``y - mu1(x)`` (controls)
  regressed on ``x`` and blended with the propensity (Kunzel et al. 2019).
* ``dr_learner`` -- AIPW pseudo-outcome regressed on ``x`` (Kennedy 2023).

**Honest cross-fitting** (:func:`crossfit_cate`).  The stays are split into ``K`` patient-level
folds.  For each fold ``k`` the learner -- including its own nuisance models, cross-fitted inside
the training part -- is fitted on the stays of the other folds only, and predicts the benefit of
the stays of fold ``k``.  The *evaluation* nuisances of fold ``k`` (propensity ``e``, arm models
``mu0``/``mu1`` and a common log-odds-ratio model) are fitted on the same training part, so the
AIPW score ``gamma`` of a held-out stay,
``gamma = mu0 - mu1 + (1 - t)(y - mu0)/(1 - e) - t (y - mu1)/e``, never involves a model that saw
that stay's fold: conditionally on the training folds it is an unbiased score of ``tau(x)`` when
either nuisance is right, and independent of the benefit predicted for the other held-out stays.
Every benefit metric (:mod:`sepsis_cs.benefit`) is computed on these held-out pairs.

Fitting uses only stays inside the overlap region of the propensity score; stays outside are
given an estimate but no class and no evaluation.

**Per-stay intervals** (:func:`bootstrap_se`): a patient-level bootstrap of the *whole* learner
(propensity and outcome models refitted in every resample, two-fold cross-fitting inside) gives
the standard error of the estimated benefit; ``lo``/``hi`` = benefit +- z * se.  They target
``tau(x)`` (not an individual's realised effect, which for a binary outcome is -1, 0 or 1) and
ignore the regularisation bias of the learners, so their coverage is not guaranteed: it is
measured on the simulator (``supervised_summary``) and reported.  Group-level statements
(BLP, GATES, RATE) carry the inference; per-stay classes come only from :mod:`sepsis_cs.benefit`.

Why not econml: ``econml==0.17.0`` resolves with our numpy/scikit-learn, but brings numba,
llvmlite, lightgbm, shap and sparse for three learners that take ~200 lines here; hand-written
learners also let cross-fitting and the bootstrap respect patients (``StratifiedGroupKFold``).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.model_selection import StratifiedGroupKFold

from .errors import ConfigError
from .metrics import patient_bootstrap

LEARNERS = ("t_learner", "x_learner", "dr_learner")
_WINDOW = re.compile(r"__[a-z]+_(m?\d+)_(m?\d+)$")
#: the treatment column is multiplied by this before the penalised common-odds-ratio fit, so that
#: the ridge penalty on its coefficient is negligible (the odds ratio itself is not shrunk)
_T_SCALE = 30.0


def _hour(tag: str) -> int:
    return -int(tag[1:]) if tag.startswith("m") else int(tag)


def baseline_columns(columns: list[str]) -> list[str]:
    """Static covariates and window summaries that end at or before time zero."""
    out = []
    for c in columns:
        m = _WINDOW.search(c)
        if m is None:
            if "__" not in c:
                out.append(c)
        elif _hour(m.group(2)) <= 0:
            out.append(c)
    return out


# ----------------------------------------------------------------------------- folds and nuisances
def patient_folds(t, y, groups, n_folds: int, seed: int) -> np.ndarray:
    """Fold of every stay, stratified by treatment x outcome, patients kept whole."""
    strata = 2 * np.asarray(t, int) + np.asarray(y, int)
    fold = np.full(len(strata), -1, int)
    k = int(min(n_folds, len(np.unique(np.asarray(groups).astype(str)))))
    if k < 2:
        return np.zeros(len(strata), int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a stratum smaller than k: folds still valid
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for j, (_, te) in enumerate(cv.split(np.zeros(len(strata)), strata, groups)):
            fold[te] = j
    return fold


def _classifier(kind: str, C: float, seed: int):
    if kind == "logistic":
        return LogisticRegression(C=C, max_iter=2000, random_state=seed)
    if kind == "hist_gb":
        return HistGradientBoostingClassifier(learning_rate=0.05, max_iter=150, max_depth=3, min_samples_leaf=30, early_stopping=False, random_state=seed)
    raise ConfigError("config", "supervised.cate.outcome_learner", f"unknown learner '{kind}'; expected logistic or hist_gb")


def _fit_prob(kind: str, C: float, seed: int, Z, target, rows):
    """Fit a classifier of ``target`` on ``Z[rows]`` (rows may repeat); returns ``predict(idx) -> P(target = 1)``.
    Fewer than two classes in ``rows``: the constant rate."""
    rows = np.asarray(rows, int)
    yt = np.asarray(target, int)[rows]
    if len(rows) == 0 or np.unique(yt).size < 2:
        const = float(yt.mean()) if len(rows) else 0.5
        return lambda idx: np.full(len(idx), const)
    est = _classifier(kind, C, seed).fit(Z[rows], yt)
    return lambda idx: est.predict_proba(Z[idx])[:, 1]


def _arm_models(kind, C, seed, Z, y, t, rows):
    """Outcome models of the untreated (``mu0``) and treated (``mu1``) stays among ``rows``."""
    t = np.asarray(t, int)
    return _fit_prob(kind, C, seed, Z, y, rows[t[rows] == 0]), _fit_prob(kind, C, seed, Z, y, rows[t[rows] == 1])


def crossfit_propensity(Z: np.ndarray, t, fold: np.ndarray, C: float, seed: int) -> np.ndarray:
    """Cross-fitted P(CS | baseline) with a penalised logistic model (fallback when phase 2's
    ``propensity.parquet`` is not produced by the workflow)."""
    ps = np.zeros(len(t))
    for k in np.unique(fold):
        te = np.where(fold == k)[0]
        ps[te] = _fit_prob("logistic", C, seed, Z, t, np.where(fold != k)[0])(te)
    return ps


def overlap_mask(ps, trim: float) -> np.ndarray:
    ps = np.asarray(ps, float)
    return (ps >= trim) & (ps <= 1 - trim)


def aipw_benefit(y, t, ps, mu0, mu1, clip: float) -> np.ndarray:
    """Doubly robust (AIPW) score of the benefit, one per stay (its mean is the ATE)."""
    y = np.asarray(y, float)
    t = np.asarray(t, float)
    e = np.clip(np.asarray(ps, float), clip, 1 - clip)
    return (mu0 + (1 - t) * (y - mu0) / (1 - e)) - (mu1 + t * (y - mu1) / e)


def common_log_odds_ratio(Z, y, t, rows, C: float, seed: int) -> float:
    """Log odds ratio of CS in a penalised logistic model ``y ~ Z + t`` fitted on ``rows`` (the
    covariates are shrunk, the treatment coefficient practically not: it enters as ``t * 30``)."""
    rows = np.asarray(rows, int)
    yt = np.asarray(y, int)[rows]
    tt = np.asarray(t, float)[rows]
    if np.unique(yt).size < 2 or np.unique(tt).size < 2:
        return 0.0
    A = np.column_stack([Z[rows], _T_SCALE * tt])
    est = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(A, yt)
    return float(est.coef_[0, -1] * _T_SCALE)


def risk_based_benefit(mu0, log_or: float) -> np.ndarray:
    """Benefit implied by baseline risk alone if CS had the same odds ratio for everyone
    (the "risk-based" benefit of the PATH statement, Kent et al. 2020): ``mu0 - expit(logit(mu0) + log_or)``."""
    m = np.clip(np.asarray(mu0, float), 1e-6, 1 - 1e-6)
    return m - expit(logit(m) + log_or)


# ----------------------------------------------------------------------------- learners
MIN_FIT_ROWS = 5  # fewer rows than this in an arm: a constant (the arm mean) instead of a regression


def _ridge_fit(Z, target, rows, alpha=None):
    """Ridge regression of ``target`` on ``Z[rows]`` (alpha by generalised CV when not given);
    returns ``predict(idx)``.  Too few rows: the mean."""
    rows = np.asarray(rows, int)
    if len(rows) < MIN_FIT_ROWS:
        const = float(np.mean(target[rows])) if len(rows) else 0.0
        return lambda idx: np.full(len(idx), const)
    if alpha is None:
        alpha = float(RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(Z[rows], target[rows]).alpha_) if len(rows) >= 2 * MIN_FIT_ROWS else 1e3
    r = Ridge(alpha=alpha).fit(Z[rows], target[rows])
    return lambda idx: r.predict(Z[idx])


def _inner_nuisances(Z, y, t, groups, rows, kind, C, n_inner: int, seed: int):
    """Propensity and arm-model predictions for ``rows``, cross-fitted in ``n_inner`` patient folds
    of ``rows`` (in-sample when ``n_inner`` < 2).  Returns ``(e, mu0, mu1)`` aligned with ``rows``."""
    rows = np.asarray(rows, int)
    e, m0, m1 = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
    inner = patient_folds(t[rows], y[rows], groups[rows], n_inner, seed) if n_inner >= 2 else np.zeros(len(rows), int)
    for j in np.unique(inner):
        te = rows[inner == j]
        tr = rows[inner != j] if n_inner >= 2 else rows
        e[inner == j] = _fit_prob("logistic", C, seed, Z, t, tr)(te)
        f0, f1 = _arm_models(kind, C, seed, Z, y, t, tr)
        m0[inner == j], m1[inner == j] = f0(te), f1(te)
    return e, m0, m1


def fit_learner(learner: str, Z, y, t, groups, rows, *, kind: str = "logistic", C: float = 0.05, n_inner: int = 4,
                seed: int = 0, clip: float = 0.05, alphas: dict | None = None):
    """Fit one learner on the stays ``rows`` only (its nuisances cross-fitted in ``n_inner`` patient
    folds of ``rows``); returns ``predict(idx) -> benefit``.  ``alphas`` fixes the ridge penalties
    (the bootstrap reuses those of the main fit)."""
    if learner not in LEARNERS:
        raise ConfigError("config", "supervised.cate.learners", f"unknown learner '{learner}'; expected one of {', '.join(LEARNERS)}")
    y = np.asarray(y, int)
    t = np.asarray(t, int)
    rows = np.asarray(rows, int)
    alphas = {} if alphas is None else alphas
    if learner == "t_learner":
        f0, f1 = _arm_models(kind, C, seed, Z, y, t, rows)
        return lambda idx: f0(idx) - f1(idx)
    e, m0, m1 = _inner_nuisances(Z, y, t, groups, rows, kind, C, n_inner, seed)
    if learner == "x_learner":
        treated = t[rows] == 1
        d = np.zeros(len(y))
        d[rows] = np.where(treated, m0 - y[rows], y[rows] - m1)  # imputed individual effects (benefit sign)
        g1 = _ridge_fit(Z, d, rows[treated], alphas.get("treated"))
        g0 = _ridge_fit(Z, d, rows[~treated], alphas.get("untreated"))
        ps = _fit_prob("logistic", C, seed, Z, t, rows)

        def predict(idx):
            w = np.clip(ps(idx), clip, 1 - clip)
            return w * g0(idx) + (1 - w) * g1(idx)

        return predict
    pseudo = np.zeros(len(y))
    pseudo[rows] = aipw_benefit(y[rows], t[rows], e, m0, m1, clip)
    return _ridge_fit(Z, pseudo, rows, alphas.get("pseudo"))


def _ridge_alphas(learner, Z, y, t, groups, rows, kind, C, n_inner, seed, clip) -> dict:
    """The ridge penalties a learner chooses on ``rows`` (kept fixed in the bootstrap)."""
    if learner == "t_learner":
        return {}
    e, m0, m1 = _inner_nuisances(Z, y, t, groups, rows, kind, C, n_inner, seed)
    cv = lambda r, v: float(RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(Z[r], v).alpha_) if len(r) >= 2 * MIN_FIT_ROWS else 1e3
    if learner == "x_learner":
        treated = t[rows] == 1
        return {"treated": cv(rows[treated], (m0 - y[rows])[treated]), "untreated": cv(rows[~treated], (y[rows] - m1)[~treated])}
    return {"pseudo": cv(rows, aipw_benefit(y[rows], t[rows], e, m0, m1, clip))}


def crossfit_cate(
    learner: str,
    Z: np.ndarray,
    y,
    t,
    in_overlap,
    groups,
    *,
    outcome_learner: str = "logistic",
    C: float = 0.05,
    n_folds: int = 5,
    seed: int = 0,
    clip: float = 0.05,
) -> pd.DataFrame:
    """Held-out benefit of every stay and the held-out evaluation scores (see module docstring).

    Returns columns (row order of ``Z``): ``benefit`` (predicted by a learner fitted on the other
    folds), ``fold``, ``ps_eval``, ``mu0``, ``mu1`` (evaluation nuisances from the other folds),
    ``gamma`` (AIPW score), ``risk_based`` (benefit implied by ``mu0`` and a common odds ratio
    fitted on the other folds), ``log_or`` (that common log odds ratio).
    """
    y = np.asarray(y, int)
    t = np.asarray(t, int)
    ov = np.asarray(in_overlap, bool)
    groups = np.asarray(groups)
    n = len(y)
    fold = patient_folds(t, y, groups, n_folds, seed)
    out = {c: np.full(n, np.nan) for c in ("benefit", "ps_eval", "mu0", "mu1", "risk_based", "log_or")}
    n_inner = max(2, len(np.unique(fold)) - 1)
    for k in np.unique(fold):
        test = np.where(fold == k)[0]
        train = np.where(ov & (fold != k))[0]
        if len(np.unique(fold)) < 2:  # a single fold: no held-out evaluation possible, fit on all (in-sample)
            train = np.where(ov)[0]
        out["ps_eval"][test] = _fit_prob("logistic", C, seed, Z, t, train)(test)
        f0, f1 = _arm_models(outcome_learner, C, seed, Z, y, t, train)
        out["mu0"][test], out["mu1"][test] = f0(test), f1(test)
        lor = common_log_odds_ratio(Z, y, t, train, C, seed)
        out["log_or"][test] = lor
        out["risk_based"][test] = risk_based_benefit(out["mu0"][test], lor)
        out["benefit"][test] = fit_learner(learner, Z, y, t, groups, train, kind=outcome_learner, C=C, n_inner=n_inner, seed=seed + 1 + int(k), clip=clip)(test)
    res = pd.DataFrame(out)
    res["fold"] = fold
    res["gamma"] = aipw_benefit(y, t, res["ps_eval"], res["mu0"], res["mu1"], clip)
    return res


def bootstrap_se(
    learner: str,
    Z: np.ndarray,
    y,
    t,
    in_overlap,
    groups,
    *,
    outcome_learner: str = "logistic",
    C: float = 0.05,
    n_boot: int = 50,
    seed: int = 0,
    clip: float = 0.05,
) -> np.ndarray:
    """Patient-level bootstrap standard error of the benefit of every stay, refitting the whole
    learner (propensity, arm models, effect regressions; two-fold cross-fitting inside each
    resample) on resampled overlap stays.  Ridge penalties are those chosen on the full data.
    (In-sample nuisances inside a resample are cheaper but gave visibly narrower intervals.)"""
    y = np.asarray(y, int)
    t = np.asarray(t, int)
    groups = np.asarray(groups)
    ov_idx = np.where(np.asarray(in_overlap, bool))[0]
    if n_boot < 2 or len(ov_idx) == 0:
        return np.full(len(y), np.nan)
    alphas = _ridge_alphas(learner, Z, y, t, groups, ov_idx, outcome_learner, C, 2, seed, clip)
    every = np.arange(len(y))
    reps = []
    for b, idx in enumerate(patient_bootstrap(groups[ov_idx], n_boot, seed + 7)):
        rows = ov_idx[idx]
        if min(int((t[rows] == 1).sum()), int((t[rows] == 0).sum())) < MIN_FIT_ROWS:
            continue
        reps.append(fit_learner(learner, Z, y, t, groups, rows, kind=outcome_learner, C=C, n_inner=2, seed=seed + 100 + b, clip=clip, alphas=alphas)(every))
    return np.std(np.vstack(reps), axis=0, ddof=1) if len(reps) > 1 else np.full(len(y), np.nan)


def estimate_cate(
    learner: str,
    Z: np.ndarray,
    y,
    t,
    ps,
    in_overlap,
    groups,
    *,
    outcome_learner: str = "logistic",
    C: float = 0.05,
    n_folds: int = 5,
    n_boot: int = 50,
    seed: int = 0,
    clip: float = 0.05,
    level: float = 0.95,
) -> pd.DataFrame:
    """Held-out benefit, evaluation scores and a per-stay interval (:func:`crossfit_cate` and
    :func:`bootstrap_se`).  ``ps`` (phase 2's propensity) only defines ``in_overlap`` upstream and
    is returned as ``ps``; the evaluation uses ``ps_eval``, refitted without the held-out fold."""
    res = crossfit_cate(learner, Z, y, t, in_overlap, groups, outcome_learner=outcome_learner, C=C, n_folds=n_folds, seed=seed, clip=clip)
    se = bootstrap_se(learner, Z, y, t, in_overlap, groups, outcome_learner=outcome_learner, C=C, n_boot=n_boot, seed=seed, clip=clip)
    z = norm.ppf(0.5 + level / 2)
    res["se"] = se
    res["lo"] = res["benefit"] - z * se
    res["hi"] = res["benefit"] + z * se
    res["ps"] = np.asarray(ps, float)
    return res


# ----------------------------------------------------------------------------- assembling inputs
def cate_columns(spec, available: list[str], selected_path=None) -> list[str]:
    """Baseline columns for effect estimation: the selected outcome and treatment variables
    (union) restricted to baseline; all baseline columns when the selection leaves none."""
    from .features import resolve_features

    base = baseline_columns(available)
    if spec == "selected":
        chosen = set(resolve_features(spec, available, selected_path, "outcome")) | set(resolve_features(spec, available, selected_path, "treatment"))
        cols = [c for c in base if c in chosen]
        return cols or base
    cols = [c for c in resolve_features(spec, available, selected_path, "outcome") if c in set(base)]
    return cols or base


def cate_design(features, cohort, columns: list[str], dictionary, outcome: str):
    """Preprocessed baseline matrix ``Z`` and ``stay_id, y, t, patient_id`` of stays with a known
    outcome.  The preprocessing (median imputation + indicators, scaling, one-hot) is
    unsupervised: it never sees the outcome or the treatment."""
    import polars as pl

    from .features import categorical_columns, model_frame
    from .preprocess import make_preprocessor

    lab = cohort.select("stay_id", "patient_id", pl.col("cs").cast(pl.Int64).alias("_t"), pl.col(outcome).alias("_y")).filter(pl.col("_y").is_not_null())
    feats = features.join(lab.select("stay_id"), on="stay_id", how="semi").sort("stay_id")
    lab = lab.join(feats.select("stay_id"), on="stay_id", how="semi").sort("stay_id")
    X = model_frame(feats, columns, dictionary)
    cat = categorical_columns(columns, dictionary)
    num = [c for c in columns if c not in cat]
    Z = make_preprocessor(num, cat).fit_transform(X)
    return np.asarray(Z, float), lab["stay_id"].to_numpy(), lab["_y"].cast(pl.Int64).to_numpy(), lab["_t"].to_numpy(), lab["patient_id"].cast(pl.String).to_numpy()


def load_propensity(path, stay_ids) -> tuple[np.ndarray, np.ndarray]:
    """``ps, in_overlap`` of phase 2's propensity.parquet in the order of ``stay_ids``."""
    import polars as pl

    from .errors import UserInputError
    from .io import read_parquet

    df = read_parquet(path)
    for c in ("stay_id", "ps", "in_overlap"):
        if c not in df.columns:
            raise UserInputError(path, c, "missing column; expected stay_id, ps, in_overlap")
    m = pl.DataFrame({"stay_id": stay_ids}).join(df.with_columns(pl.col("stay_id").cast(pl.String)), on="stay_id", how="left")
    if m["ps"].null_count():
        raise UserInputError(path, "ps", f"{m['ps'].null_count()} cohort stays without a propensity score")
    return m["ps"].to_numpy().astype(float), m["in_overlap"].fill_null(False).to_numpy().astype(bool)
