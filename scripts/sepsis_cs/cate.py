"""Who benefits from corticosteroids: conditional average treatment effect (CATE) learners.

Benefit is the *absolute risk reduction* of the outcome with CS,
``benefit(x) = P(death | no CS, x) - P(death | CS, x)`` (positive = CS helps), the same sign as
the simulator's ``ite``.

Inputs are **baseline** features only (static covariates and pre-time-zero summaries, see
:func:`baseline_columns`): CS starts within 0-24 h, so anything measured after time zero can
be a consequence of the treatment and would bias the effect.

Learners (hand-written on scikit-learn estimators; all nuisances cross-fitted by patient):

* ``t_learner``  -- one outcome model per arm, ``mu0(x) - mu1(x)``.
* ``x_learner``  -- imputed effects ``mu0(x) - y`` (treated) and ``y - mu1(x)`` (controls)
  regressed on ``x`` and blended with the propensity (Kunzel et al. 2019).
* ``dr_learner`` -- AIPW pseudo-outcome regressed on ``x`` (Kennedy 2023).

Fitting uses only stays inside the overlap region of the propensity score; stays outside are
given an estimate but classed ``outside_overlap``.  Per-stay uncertainty is a patient-level
bootstrap of the final stage (the arm models for the T-learner, the effect regressions for
the X- and DR-learners) with the cross-fitted nuisances held fixed, which ignores nuisance
estimation error (so it is somewhat optimistic).

Why not econml: ``econml==0.17.0`` resolves with our numpy/scikit-learn, but brings numba,
llvmlite, lightgbm, shap and sparse for three learners that take ~150 lines here; hand-written
learners also let cross-fitting and the bootstrap respect patients (``StratifiedGroupKFold``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.model_selection import StratifiedGroupKFold

from . import metrics as M
from .errors import ConfigError
from .metrics import patient_bootstrap

LEARNERS = ("t_learner", "x_learner", "dr_learner")
CLASSES = ("cs_sensitive", "cs_resistant", "possibly_harmed", "outside_overlap")
_WINDOW = re.compile(r"__[a-z]+_(m?\d+)_(m?\d+)$")


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


# ----------------------------------------------------------------------------- nuisances
def patient_folds(t, y, groups, n_folds: int, seed: int) -> np.ndarray:
    """Fold of every stay, stratified by treatment x outcome, patients kept whole."""
    strata = 2 * np.asarray(t, int) + np.asarray(y, int)
    fold = np.full(len(strata), -1, int)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, te) in enumerate(cv.split(np.zeros(len(strata)), strata, groups)):
        fold[te] = k
    return fold


def _classifier(kind: str, C: float, seed: int):
    if kind == "logistic":
        return LogisticRegression(C=C, max_iter=2000, random_state=seed)
    if kind == "hist_gb":
        return HistGradientBoostingClassifier(learning_rate=0.05, max_iter=150, max_depth=3, min_samples_leaf=30, early_stopping=False, random_state=seed)
    raise ConfigError("config", "cate.outcome_learner", f"unknown learner '{kind}'; expected logistic or hist_gb")


def _fit_predict(kind, C, seed, Z, target, fit_mask, pred_idx=None):
    target = np.asarray(target, int)
    if np.unique(target[fit_mask]).size < 2:
        return np.full(len(Z) if pred_idx is None else len(pred_idx), float(target[fit_mask].mean()) if fit_mask.any() else 0.5)
    est = _classifier(kind, C, seed).fit(Z[fit_mask], target[fit_mask])
    return est.predict_proba(Z if pred_idx is None else Z[pred_idx])[:, 1]


def _fit_predict_rows(kind, C, seed, Z, target, rows):
    """Fit on ``Z[rows]`` (rows may repeat, as in a bootstrap sample) and predict every row of ``Z``."""
    yt = np.asarray(target, int)[rows]
    if np.unique(yt).size < 2:
        return np.full(len(Z), float(yt.mean()))
    return _classifier(kind, C, seed).fit(Z[rows], yt).predict_proba(Z)[:, 1]


def crossfit_propensity(Z: np.ndarray, t, fold: np.ndarray, C: float, seed: int) -> np.ndarray:
    """Cross-fitted P(CS | baseline) with a penalised logistic model (fallback when phase 2's
    ``propensity.parquet`` is not produced by the workflow)."""
    t = np.asarray(t, int)
    ps = np.zeros(len(t))
    for k in np.unique(fold):
        te = fold == k
        ps[te] = _fit_predict("logistic", C, seed, Z, t, ~te, np.where(te)[0])
    return ps


def overlap_mask(ps, trim: float) -> np.ndarray:
    ps = np.asarray(ps, float)
    return (ps >= trim) & (ps <= 1 - trim)


def crossfit_outcomes(Z, y, t, fold, fit_mask, kind, C, seed):
    """Cross-fitted ``mu0(x) = P(y | no CS, x)`` and ``mu1(x) = P(y | CS, x)`` for every stay."""
    t = np.asarray(t, int)
    mu0, mu1 = np.zeros(len(t)), np.zeros(len(t))
    for k in np.unique(fold):
        te = np.where(fold == k)[0]
        tr = (fold != k) & fit_mask
        mu0[te] = _fit_predict(kind, C, seed, Z, y, tr & (t == 0), te)
        mu1[te] = _fit_predict(kind, C, seed, Z, y, tr & (t == 1), te)
    return mu0, mu1


def aipw_benefit(y, t, ps, mu0, mu1, clip: float) -> np.ndarray:
    """Doubly robust (AIPW) pseudo-outcome of the benefit, one per stay (its mean is the ATE)."""
    y = np.asarray(y, float)
    t = np.asarray(t, float)
    e = np.clip(np.asarray(ps, float), clip, 1 - clip)
    return (mu0 + (1 - t) * (y - mu0) / (1 - e)) - (mu1 + t * (y - mu1) / e)


# ----------------------------------------------------------------------------- learners
MIN_FIT_ROWS = 5  # fewer rows than this in an arm: a constant (the arm mean) instead of a regression


def _ridge_alpha(Z, target, mask) -> float:
    if mask.sum() < 2 * MIN_FIT_ROWS:
        return 1e3
    return float(RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(Z[mask], target[mask]).alpha_)


def _ridge(Z, target, mask, alpha, pred=None):
    n_pred = len(Z) if pred is None else len(pred)
    if mask.sum() < MIN_FIT_ROWS:
        return np.full(n_pred, float(target[mask].mean()) if mask.any() else 0.0)
    r = Ridge(alpha=alpha).fit(Z[mask], target[mask])
    return r.predict(Z if pred is None else Z[pred])


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
    clip: float = 0.02,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per-stay estimated benefit with a bootstrap standard error and normal CI.

    ``Z`` is the preprocessed baseline design matrix (imputed, scaled; no outcome or treatment
    information).  Returns columns ``benefit, se, lo, hi, mu0, mu1, pseudo, fold`` in the row
    order of ``Z``; ``pseudo`` is the AIPW pseudo-outcome used to evaluate every learner.
    """
    if learner not in LEARNERS:
        raise ConfigError("config", "cate.learners", f"unknown learner '{learner}'; expected one of {', '.join(LEARNERS)}")
    y = np.asarray(y, int)
    t = np.asarray(t, int)
    ps = np.asarray(ps, float)
    ov = np.asarray(in_overlap, bool)
    groups = np.asarray(groups)
    fold = patient_folds(t, y, groups, n_folds, seed)
    mu0, mu1 = crossfit_outcomes(Z, y, t, fold, ov, outcome_learner, C, seed)
    pseudo = aipw_benefit(y, t, ps, mu0, mu1, clip)
    e = np.clip(ps, clip, 1 - clip)
    ov_idx = np.where(ov)[0]
    reps = []

    if learner == "t_learner":
        point = mu0 - mu1
        for b, idx in enumerate(patient_bootstrap(groups[ov_idx], n_boot, seed + 7)):
            rows = ov_idx[idx]
            r0, r1 = rows[t[rows] == 0], rows[t[rows] == 1]
            if len(r0) < MIN_FIT_ROWS or len(r1) < MIN_FIT_ROWS:
                continue
            reps.append(_fit_predict_rows(outcome_learner, C, seed + b, Z, y, r0) - _fit_predict_rows(outcome_learner, C, seed + b, Z, y, r1))

    elif learner == "x_learner":
        d1 = mu0 - y  # treated: counterfactual risk without CS minus observed outcome
        d0 = y - mu1  # controls: observed outcome minus counterfactual risk with CS
        m1, m0 = ov & (t == 1), ov & (t == 0)
        a1, a0 = _ridge_alpha(Z, d1, m1), _ridge_alpha(Z, d0, m0)
        tau1, tau0 = np.zeros(len(y)), np.zeros(len(y))
        for k in np.unique(fold):
            te = np.where(fold == k)[0]
            tau1[te] = _ridge(Z, d1, m1 & (fold != k), a1, te)
            tau0[te] = _ridge(Z, d0, m0 & (fold != k), a0, te)
        point = e * tau0 + (1 - e) * tau1
        for idx in patient_bootstrap(groups[ov_idx], n_boot, seed + 7):
            rows = ov_idx[idx]
            r1, r0 = rows[t[rows] == 1], rows[t[rows] == 0]
            if len(r0) < MIN_FIT_ROWS or len(r1) < MIN_FIT_ROWS:
                continue
            b1 = Ridge(alpha=a1).fit(Z[r1], d1[r1]).predict(Z)
            b0 = Ridge(alpha=a0).fit(Z[r0], d0[r0]).predict(Z)
            reps.append(e * b0 + (1 - e) * b1)

    else:  # dr_learner
        a = _ridge_alpha(Z, pseudo, ov)
        point = np.zeros(len(y))
        for k in np.unique(fold):
            te = np.where(fold == k)[0]
            point[te] = _ridge(Z, pseudo, ov & (fold != k), a, te)
        for idx in patient_bootstrap(groups[ov_idx], n_boot, seed + 7):
            rows = ov_idx[idx]
            reps.append(Ridge(alpha=a).fit(Z[rows], pseudo[rows]).predict(Z))

    se = np.std(np.vstack(reps), axis=0, ddof=1) if len(reps) > 1 else np.full(len(y), np.nan)
    z = norm.ppf(0.5 + level / 2)
    return pd.DataFrame({"benefit": point, "se": se, "lo": point - z * se, "hi": point + z * se, "mu0": mu0, "mu1": mu1, "pseudo": pseudo, "fold": fold})


def classify_benefit(lo, hi, in_overlap, delta: float) -> np.ndarray:
    """``cs_sensitive`` if lo > delta; ``possibly_harmed`` if hi < -delta; else ``cs_resistant``;
    stays outside the overlap region are ``outside_overlap`` (no claim is made for them)."""
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    cls = np.where(lo > delta, "cs_sensitive", np.where(hi < -delta, "possibly_harmed", "cs_resistant"))
    return np.where(np.asarray(in_overlap, bool), cls, "outside_overlap").astype(object)


# ----------------------------------------------------------------------------- evaluation
def _concordance_ordinal(score, outcome) -> float:
    """Harrell's C between a continuous score and an ordinal outcome (ties in score = 1/2)."""
    score = np.asarray(score, float)
    outcome = np.asarray(outcome)
    levels = np.unique(outcome)
    conc = comp = 0.0
    for i, hi_l in enumerate(levels):
        for lo_l in levels[:i]:
            a, b = score[outcome == hi_l], score[outcome == lo_l]
            if len(a) == 0 or len(b) == 0:
                continue
            auc = M.auroc(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])
            conc += auc * len(a) * len(b)
            comp += len(a) * len(b)
    return conc / comp if comp else float("nan")


def match_on_benefit(benefit, t, y, seed: int):
    """1:1 pairs of a treated and an untreated stay matched on predicted benefit.

    The larger arm is randomly subsampled to the size of the smaller one; both are sorted by
    predicted benefit and paired by rank (optimal 1-D matching of the two samples).
    Returns (predicted pair benefit = mean of the two, observed pair benefit =
    ``y_untreated - y_treated`` in {-1, 0, 1}).
    """
    rng = np.random.default_rng(seed)
    benefit = np.asarray(benefit, float)
    t = np.asarray(t, int)
    y = np.asarray(y, int)
    i1, i0 = np.where(t == 1)[0], np.where(t == 0)[0]
    n = min(len(i1), len(i0))
    i1 = np.sort(rng.choice(i1, n, replace=False))
    i0 = np.sort(rng.choice(i0, n, replace=False))
    i1 = i1[np.argsort(benefit[i1], kind="stable")]
    i0 = i0[np.argsort(benefit[i0], kind="stable")]
    return (benefit[i1] + benefit[i0]) / 2, y[i0] - y[i1]


def c_for_benefit(benefit, t, y, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float, float]:
    """c-for-benefit (van Klaveren et al. 2018) with a bootstrap-over-pairs CI.

    Valid as a discrimination measure for benefit in randomised data; on observational data the
    matched pairs remain confounded, so read it together with the AIPW-based Qini curve.
    """
    pred, obs = match_on_benefit(benefit, t, y, seed)
    est = _concordance_ordinal(pred, obs)
    rng = np.random.default_rng(seed + 1)
    reps = []
    for _ in range(n_boot):
        i = rng.integers(0, len(pred), len(pred))
        reps.append(_concordance_ordinal(pred[i], obs[i]))
    r = np.asarray(reps)
    r = r[np.isfinite(r)]
    a = (1 - level) / 2
    lo, hi = np.quantile(r, [a, 1 - a]) if len(r) else (np.nan, np.nan)
    return float(est), float(lo), float(hi)


def qini_curve(benefit, pseudo, n_points: int = 50) -> pd.DataFrame:
    """Cumulative gain of treating the stays ranked by predicted benefit, estimated with the
    AIPW pseudo-outcome: ``gain(f) = sum_{top f} pseudo / N`` (prevented events per stay),
    against random ranking ``f * mean(pseudo)``."""
    benefit = np.asarray(benefit, float)
    pseudo = np.asarray(pseudo, float)
    order = np.argsort(-benefit, kind="stable")
    cum = np.r_[0.0, np.cumsum(pseudo[order])] / len(pseudo)
    ks = np.unique(np.linspace(0, len(pseudo), n_points + 1).round().astype(int))
    frac = ks / len(pseudo)
    return pd.DataFrame({"fraction_treated": frac, "gain": cum[ks], "random": frac * cum[-1]})


def auuc(curve: pd.DataFrame) -> float:
    """Area between the Qini (uplift) curve and the random line (trapezoids over the fraction)."""
    d = (curve["gain"] - curve["random"]).to_numpy()
    f = curve["fraction_treated"].to_numpy()
    return float(np.sum((d[1:] + d[:-1]) / 2 * np.diff(f)))


def calibration_for_benefit(benefit, pseudo, groups, n_bins: int, n_boot: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """Mean predicted vs AIPW-estimated observed benefit per quantile group of predicted benefit."""
    benefit = np.asarray(benefit, float)
    pseudo = np.asarray(pseudo, float)
    edges = np.unique(np.quantile(benefit, np.linspace(0, 1, n_bins + 1)))
    b = np.clip(np.searchsorted(edges, benefit, side="right") - 1, 0, len(edges) - 2)
    reps = []
    for idx in patient_bootstrap(groups, n_boot, seed):
        reps.append([pseudo[idx][b[idx] == g].mean() if np.any(b[idx] == g) else np.nan for g in range(len(edges) - 1)])
    reps = np.asarray(reps)
    a = (1 - level) / 2
    rows = []
    for g in range(len(edges) - 1):
        m = b == g
        r = reps[:, g][np.isfinite(reps[:, g])] if len(reps) else np.array([])
        rows.append(
            {
                "group": g + 1,
                "n": int(m.sum()),
                "predicted": float(benefit[m].mean()),
                "observed": float(pseudo[m].mean()),
                "observed_lo": float(np.quantile(r, a)) if len(r) else np.nan,
                "observed_hi": float(np.quantile(r, 1 - a)) if len(r) else np.nan,
            }
        )
    # no group when every predicted benefit is the same (tiny data): an empty table with its columns
    return pd.DataFrame(rows, columns=["group", "n", "predicted", "observed", "observed_lo", "observed_hi"])


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


# ----------------------------------------------------------------------------- phase evaluation
def evaluate_learners(frames: dict, patient_of: dict, n_bins: int, n_boot: int, seed: int, primary: str, min_cell_count: int):
    """Evaluation table, calibration-for-benefit table, Qini curves and flat summary of all learners.

    ``frames[learner]`` has ``stay_id, t, y, benefit, pseudo, in_overlap, benefit_class``;
    evaluation uses the stays inside the overlap region.
    """
    from .io import suppress_count

    rows, cal, curves, summary = [], [], {}, {}
    for learner, df in frames.items():
        d = df[df["in_overlap"]]
        g = d["stay_id"].map(patient_of).to_numpy()
        c, lo, hi = c_for_benefit(d["benefit"], d["t"], d["y"], n_boot, seed)
        curve = qini_curve(d["benefit"], d["pseudo"])
        area = auuc(curve)
        cb = calibration_for_benefit(d["benefit"], d["pseudo"], g, n_bins, n_boot, seed).assign(learner=learner)
        shares = df["benefit_class"].value_counts(normalize=False)
        row = {"learner": learner, "n": len(d), "c_for_benefit": c, "c_for_benefit_lo": lo, "c_for_benefit_hi": hi, "auuc": area, "mean_benefit": float(d["benefit"].mean()), "ate_aipw": float(d["pseudo"].mean())}
        for cls in CLASSES:
            n = int(shares.get(cls, 0))
            row[f"n_{cls}"] = suppress_count(n, min_cell_count)
            summary[f"share_{cls}_{learner}"] = n / len(df)
        rows.append(row)
        cal.append(cb)
        curves[learner] = curve
        summary.update({f"c_for_benefit_{learner}": c, f"c_for_benefit_{learner}_lo": lo, f"c_for_benefit_{learner}_hi": hi, f"auuc_{learner}": area})
    if primary in frames:
        for cls in CLASSES:
            summary[f"share_{cls}"] = summary[f"share_{cls}_{primary}"]
        summary["primary_learner"] = primary
        summary["ate_aipw"] = float(frames[primary].loc[frames[primary]["in_overlap"], "pseudo"].mean())
    return pd.DataFrame(rows), pd.concat(cal, ignore_index=True), curves, summary


def plot_benefit_evaluation(curves: dict, cal: pd.DataFrame, title: str):
    from .plotting import PALETTE, figure

    fig, (a1, a2) = figure(11.0, 4.5, ncols=2)
    for i, (learner, cv) in enumerate(curves.items()):
        col = PALETTE[i % len(PALETTE)]
        a1.plot(cv["fraction_treated"], cv["gain"], color=col, lw=1.6, label=learner)
        c = cal[cal["learner"] == learner]
        a2.errorbar(c["predicted"], c["observed"], yerr=[c["observed"] - c["observed_lo"], c["observed_hi"] - c["observed"]], fmt="o-", color=col, ms=4, lw=1.2, capsize=2, label=learner)
    first = next(iter(curves.values()))
    a1.plot(first["fraction_treated"], first["random"], color="grey", ls=":", label="random order")
    a1.set(xlabel="fraction treated (highest predicted benefit first)", ylabel="prevented events per stay (AIPW)", title="Qini curve")
    lims = [min(cal["predicted"].min(), cal["observed_lo"].min()), max(cal["predicted"].max(), cal["observed_hi"].max())]
    a2.plot(lims, lims, color="grey", ls=":", lw=1)
    a2.axhline(0, color="black", lw=0.8)
    a2.set(xlabel="mean predicted benefit (risk reduction)", ylabel="observed benefit (AIPW, 95% CI)", title="Calibration for benefit")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.suptitle(title)
    return fig
