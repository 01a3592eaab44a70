"""Out-of-sample evaluation of predicted CS benefit and group-level inference on heterogeneity.

Every function takes, for the stays inside the overlap region, the *held-out* predicted benefit
``score`` (from a learner fitted on the other folds, :func:`sepsis_cs.cate.crossfit_cate`), the
fold, the held-out AIPW score ``gamma`` (nuisances fitted on the other folds) and the patient of
each stay (``clusters``: standard errors are patient-clustered).  Conditionally on the training
folds the scores of a held-out fold are independent and unbiased for ``tau(x)`` on the
risk-difference scale; statistics that depend on a ranking are computed **within each held-out
fold** and averaged over the ``K`` folds, with variance ``sum(se_k^2) / K^2``.

* :func:`rate` -- rank-weighted average treatment effect (Yadlowsky, Fleming, Shah, Brunskill &
  Wager, JASA 2024): ``AUTOC`` (area under the targeting operator characteristic, weights
  ``log``-like, sensitive to a small strongly benefiting group) and the ``Qini`` coefficient (linear
  weights, broad heterogeneity).  One-sided test of ``H0: RATE <= 0`` (the ranking targets benefit no
  better than random) against ``RATE > 0``.
* :func:`blp` -- best linear predictor of the CATE on the predicted benefit (Chernozhukov,
  Demirer, Duflo & Fernandez-Val 2018/2023): ``gamma ~ b1 + b2 (score - mean)``; ``b1`` = ATE,
  ``b2`` = calibration slope for benefit (1 = well calibrated); one-sided test of ``H0: b2 <= 0``
  (no heterogeneity captured).  With ``risk=`` the risk-based benefit (a common odds ratio applied to the predicted
  baseline risk, :func:`sepsis_cs.cate.risk_based_benefit`) is added as a regressor: ``b2`` then
  tests effect modification *beyond* what baseline risk explains under a constant relative
  (log-odds) effect -- the scale on which the simulator's ``effect_model: common`` is null.
* :func:`gates` -- sorted group average treatment effects (same authors): groups by quantile of
  the held-out score within each fold, AIPW group means with CIs, top-minus-bottom difference,
  Wald test of equal groups, one-sided group tests with Holm adjustment for the classes.
* :func:`benefit_classes` -- ``cs_sensitive`` / ``possibly_harmed`` labels for whole GATES groups,
  only when the pre-specified effect-modification test rejects; family-wise error over the
  ``2 x groups`` one-sided tests controlled at ``alpha`` (Holm).
* :func:`c_for_benefit` -- van Klaveren et al. (J Clin Epidemiol 2018), pairs matched on predicted
  benefit *and* the propensity score (Mahalanobis, optimal 1:1 matching).
* :func:`policy_curve` -- decision curve for treating by predicted benefit (Vickers, Kattan &
  Sargent, Trials 2007): net benefit in prevented events per stay of "treat if predicted benefit
  > threshold" vs treat all / none, the threshold being the harm of CS expressed as a risk.
* :func:`toc_curve`, :func:`qini_curve` -- curves for the figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

#: classes of a stay (the benefit class column)
CLASSES = ("cs_sensitive", "possibly_harmed", "effect_not_shown", "not_classified", "outside_overlap")


# ----------------------------------------------------------------------------- helpers
def _codes(clusters) -> np.ndarray:
    return np.unique(np.asarray(clusters).astype(str), return_inverse=True)[1]


def cluster_sum(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (n or n x p) within clusters."""
    values = np.asarray(values, float)
    if values.ndim == 1:
        return np.bincount(codes, weights=values)
    return np.column_stack([np.bincount(codes, weights=values[:, j], minlength=codes.max() + 1) for j in range(values.shape[1])])


def _p_two_sided(est: float, se: float) -> float:
    if not (np.isfinite(est) and np.isfinite(se)) or se <= 0:
        return float("nan")
    return float(2 * stats.norm.sf(abs(est / se)))


def _p_greater(est: float, se: float) -> float:
    """One-sided p-value of ``H0: parameter <= 0`` against ``> 0`` (a ranking better than random)."""
    if not (np.isfinite(est) and np.isfinite(se)) or se <= 0:
        return float("nan")
    return float(stats.norm.sf(est / se))


def _combine(ests, ses) -> tuple[float, float]:
    """Average of per-fold estimates and its standard error (folds treated as independent)."""
    e = np.asarray(ests, float)
    s = np.asarray(ses, float)
    ok = np.isfinite(e) & np.isfinite(s)
    if not ok.any():
        return float("nan"), float("nan")
    return float(e[ok].mean()), float(np.sqrt(np.sum(s[ok] ** 2)) / ok.sum())


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * pv[order])
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


# ----------------------------------------------------------------------------- RATE
def rate_weights(score, kind: str = "autoc") -> np.ndarray:
    """Weights ``a_i`` with ``RATE = mean(a_i * gamma_i)`` for one held-out fold (original order).

    With the stays sorted by decreasing score (rank ``j = 1..n``), ``TOC(j/n) = mean of the top j
    gammas - mean of all``; ``AUTOC = (1/n) sum_j TOC(j/n)`` gives ``a_(j) = H_n - H_(j-1) - 1``
    (``H`` harmonic numbers); ``Qini = (1/n) sum_j (j/n) TOC(j/n)`` gives
    ``a_(j) = (n - j + 1)/n - (n + 1)/(2n)``.  Tied scores share the mean weight of their ranks, so a
    constant score gives all-zero weights (RATE exactly 0)."""
    s = np.asarray(score, float)
    n = len(s)
    if n == 0:
        return np.zeros(0)
    j = np.arange(1, n + 1)
    if kind == "autoc":
        H = np.r_[0.0, np.cumsum(1.0 / j)]
        w_rank = H[n] - H[j - 1] - 1.0
    elif kind == "qini":
        w_rank = (n - j + 1) / n - (n + 1) / (2 * n)
    else:
        raise ValueError(f"unknown RATE weighting {kind!r}; expected autoc or qini")
    order = np.argsort(-s, kind="stable")
    ranked = s[order]
    # average the weights over runs of tied scores
    _, start, counts = np.unique(-ranked, return_index=True, return_counts=True)
    w_sorted = w_rank.copy()
    for st, c in zip(start, counts):
        if c > 1:
            w_sorted[st : st + c] = w_rank[st : st + c].mean()
    w = np.empty(n)
    w[order] = w_sorted
    return w


def rate(score, gamma, fold, clusters, kind: str = "autoc") -> tuple[float, float]:
    """Cross-fitted RATE (``autoc`` or ``qini``) and its standard error.

    Within each fold ``est_k = mean(a * gamma)``; the variance conditional on the ranking is
    estimated by the patient-clustered sum of ``(a_i (gamma_i - mean gamma))^2 / n_k^2`` (ranks
    are fixed by models that never saw the fold)."""
    score, gamma, fold = np.asarray(score, float), np.asarray(gamma, float), np.asarray(fold)
    codes = _codes(clusters)
    ests, ses = [], []
    for k in np.unique(fold):
        m = fold == k
        if m.sum() < 4:
            continue
        a = rate_weights(score[m], kind)
        g = gamma[m]
        n = len(g)
        ests.append(float(np.mean(a * g)))
        c = cluster_sum(a * (g - g.mean()), codes[m])
        ses.append(float(np.sqrt(np.sum(c**2)) / n))
    return _combine(ests, ses)


def toc_curve(score, gamma, fold, grid=None) -> pd.DataFrame:
    """Targeting operator characteristic averaged over folds: ``TOC(u)`` = mean held-out score of
    the top ``u`` share by predicted benefit minus the mean of all (per fold, then averaged)."""
    grid = np.linspace(0.02, 1.0, 50) if grid is None else np.asarray(grid, float)
    score, gamma, fold = np.asarray(score, float), np.asarray(gamma, float), np.asarray(fold)
    curves = []
    for k in np.unique(fold):
        m = fold == k
        s, g = score[m], gamma[m]
        if len(g) < 4:
            continue
        order = np.argsort(-s, kind="stable")
        top_mean = np.cumsum(g[order]) / np.arange(1, len(g) + 1)
        idx = np.clip(np.ceil(grid * len(g)).astype(int) - 1, 0, len(g) - 1)
        curves.append(top_mean[idx] - g.mean())
    toc = np.mean(curves, axis=0) if curves else np.full(len(grid), np.nan)
    return pd.DataFrame({"fraction": grid, "toc": toc})


def qini_curve(score, gamma, n_points: int = 50) -> pd.DataFrame:
    """Cumulative gain of treating the stays ranked by held-out predicted benefit, estimated with
    the held-out scores: ``gain(f) = sum_{top f} gamma / N`` (prevented events per stay), against a
    random order ``f * mean(gamma)``."""
    score, gamma = np.asarray(score, float), np.asarray(gamma, float)
    order = np.argsort(-score, kind="stable")
    cum = np.r_[0.0, np.cumsum(gamma[order])] / len(gamma)
    ks = np.unique(np.linspace(0, len(gamma), n_points + 1).round().astype(int))
    frac = ks / len(gamma)
    return pd.DataFrame({"fraction_treated": frac, "gain": cum[ks], "random": frac * cum[-1]})


# ----------------------------------------------------------------------------- BLP
def _ols_cluster(X: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and patient-clustered (CR0) covariance."""
    XtX = X.T @ X
    try:
        inv = np.linalg.inv(XtX)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(XtX)
    beta = inv @ X.T @ y
    u = cluster_sum(X * (y - X @ beta)[:, None], codes)
    return beta, inv @ (u.T @ u) @ inv


def blp(score, gamma, fold, clusters, risk=None) -> dict:
    """Cross-fitted best linear predictor ``gamma ~ b1 + [b_risk (risk - mean)] + b2 (score - mean)``
    per held-out fold, averaged.  Returns ``ate, ate_se, beta2, beta2_se, p_beta2`` (two-sided
    ``H0: b2 = 0``) and, with ``risk``, ``beta_risk, beta_risk_se``."""
    score, gamma, fold = np.asarray(score, float), np.asarray(gamma, float), np.asarray(fold)
    risk = None if risk is None else np.asarray(risk, float)
    codes = _codes(clusters)
    b1, s1, b2, s2, br, sr = [], [], [], [], [], []
    for k in np.unique(fold):
        m = fold == k
        if m.sum() < 6:
            continue
        s = score[m] - score[m].mean()
        cols = [np.ones(m.sum())]
        if risk is not None:
            cols.append(risk[m] - risk[m].mean())
        cols.append(s)
        X = np.column_stack(cols)
        g = gamma[m]
        # a constant score (or risk) in the fold: no slope to estimate
        if np.std(s) < 1e-12 or (risk is not None and np.std(cols[1]) < 1e-12):
            b1.append(float(g.mean()))
            s1.append(float(np.sqrt(np.sum(cluster_sum(g - g.mean(), codes[m]) ** 2)) / len(g)))
            continue
        beta, V = _ols_cluster(X, g, codes[m])
        se = np.sqrt(np.clip(np.diag(V), 0, None))
        b1.append(beta[0])
        s1.append(se[0])
        b2.append(beta[-1])
        s2.append(se[-1])
        if risk is not None:
            br.append(beta[1])
            sr.append(se[1])
    ate, ate_se = _combine(b1, s1)
    beta2, beta2_se = _combine(b2, s2)
    out = {"ate": ate, "ate_se": ate_se, "beta2": beta2, "beta2_se": beta2_se, "p_beta2": _p_greater(beta2, beta2_se)}
    if risk is not None:
        out["beta_risk"], out["beta_risk_se"] = _combine(br, sr)
    return out


# ----------------------------------------------------------------------------- GATES
def group_of(score, fold, n_groups: int) -> np.ndarray:
    """Group ``1..n_groups`` of every stay by quantile of its score *within its fold* (1 = lowest
    predicted benefit); rank-based, ties broken by order."""
    score, fold = np.asarray(score, float), np.asarray(fold)
    g = np.zeros(len(score), int)
    for k in np.unique(fold):
        idx = np.where(fold == k)[0]
        r = np.argsort(np.argsort(score[idx], kind="stable"), kind="stable")
        g[idx] = 1 + (r * n_groups) // max(len(idx), 1)
    return g


def gates(score, gamma, fold, clusters, n_groups: int, delta: float = 0.0, level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Sorted group average treatment effects with CIs and tests.

    Returns the table (``group, n, predicted, effect, se, lo, hi, p_benefit, p_harm`` and their
    Holm-adjusted versions over all ``2 x n_groups`` one-sided tests of ``effect > delta`` and
    ``effect < -delta``) and a dict with the top-minus-bottom difference (``gates_diff``, ``_se``,
    ``_p``) and the Wald test that all groups are equal (``gates_equal_chi2``, ``_df``, ``_p``)."""
    score, gamma = np.asarray(score, float), np.asarray(gamma, float)
    codes = _codes(clusters)
    grp = group_of(score, fold, n_groups)
    levels = [g for g in range(1, n_groups + 1) if np.any(grp == g)]
    z = stats.norm.ppf(0.5 + level / 2)
    means, cols = [], []
    for g in levels:
        m = grp == g
        mu = float(gamma[m].mean())
        means.append(mu)
        cols.append(np.where(m, (gamma - mu) / m.sum(), 0.0))
    means = np.asarray(means)
    V = np.zeros((len(levels), len(levels)))
    if levels:
        U = cluster_sum(np.column_stack(cols), codes)
        V = U.T @ U
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_benefit = stats.norm.sf((means - delta) / se)
        p_harm = stats.norm.cdf((means + delta) / se)
    adj = holm(np.r_[p_benefit, p_harm])
    table = pd.DataFrame(
        {
            "group": levels,
            "n": [int((grp == g).sum()) for g in levels],
            "predicted": [float(score[grp == g].mean()) for g in levels],
            "effect": means,
            "se": se,
            "lo": means - z * se,
            "hi": means + z * se,
            "p_benefit": p_benefit,
            "p_harm": p_harm,
            "p_benefit_holm": adj[: len(levels)],
            "p_harm_holm": adj[len(levels) :],
        }
    )
    tests: dict = {"gates_diff": float("nan"), "gates_diff_se": float("nan"), "gates_diff_p": float("nan"),
                   "gates_equal_chi2": float("nan"), "gates_equal_df": 0, "gates_equal_p": float("nan")}
    if len(levels) >= 2:
        L = np.zeros(len(levels))
        L[-1], L[0] = 1.0, -1.0
        d, dse = float(L @ means), float(np.sqrt(max(L @ V @ L, 0.0)))
        tests.update({"gates_diff": d, "gates_diff_se": dse, "gates_diff_p": _p_greater(d, dse)})
        C = np.column_stack([-np.ones(len(levels) - 1), np.eye(len(levels) - 1)])
        cm = C @ means
        try:
            chi2 = float(cm @ np.linalg.solve(C @ V @ C.T, cm))
            tests.update({"gates_equal_chi2": chi2, "gates_equal_df": len(levels) - 1, "gates_equal_p": float(stats.chi2.sf(chi2, len(levels) - 1))})
        except np.linalg.LinAlgError:
            pass
    return table, tests


def benefit_classes(group: np.ndarray, table: pd.DataFrame, detected: bool, alpha: float) -> np.ndarray:
    """Class of every stay from its GATES group.

    ``not_classified`` for all when effect modification was not detected (no per-stay claim);
    otherwise ``cs_sensitive`` for groups with Holm-adjusted ``p_benefit < alpha``,
    ``possibly_harmed`` for ``p_harm_holm < alpha``, ``effect_not_shown`` for the rest (not shown to
    differ from zero beyond ``delta`` -- not evidence of no effect)."""
    group = np.asarray(group)
    if not detected:
        return np.full(len(group), "not_classified", dtype=object)
    label = {}
    for r in table.itertuples():
        label[r.group] = "cs_sensitive" if r.p_benefit_holm < alpha else ("possibly_harmed" if r.p_harm_holm < alpha else "effect_not_shown")
    return np.array([label.get(g, "effect_not_shown") for g in group], dtype=object)


# ----------------------------------------------------------------------------- c-for-benefit
def match_pairs(benefit, ps, t, seed: int, max_cells: float = 2.5e7) -> tuple[np.ndarray, np.ndarray]:
    """1:1 optimal matching of treated and untreated stays on (predicted benefit, logit propensity)
    with the Mahalanobis distance (Hungarian algorithm); the larger arm keeps its best matches.
    Above ``max_cells`` distance-matrix cells both arms are randomly subsampled in proportion.
    Returns index arrays ``(treated, untreated)`` of the pairs."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    benefit = np.asarray(benefit, float)
    lp = np.log(np.clip(ps, 1e-4, 1 - 1e-4) / (1 - np.clip(ps, 1e-4, 1 - 1e-4)))
    F = np.column_stack([benefit, lp])
    t = np.asarray(t, int)
    i1, i0 = np.where(t == 1)[0], np.where(t == 0)[0]
    if len(i1) == 0 or len(i0) == 0:
        return np.array([], int), np.array([], int)
    if len(i1) * len(i0) > max_cells:
        f = np.sqrt(max_cells / (len(i1) * len(i0)))
        i1 = np.sort(rng.choice(i1, max(1, int(len(i1) * f)), replace=False))
        i0 = np.sort(rng.choice(i0, max(1, int(len(i0) * f)), replace=False))
    cov = np.cov(F[np.r_[i1, i0]].T)
    VI = np.linalg.pinv(cov) if np.all(np.isfinite(cov)) else np.eye(2)
    D = cdist(F[i1], F[i0], metric="mahalanobis", VI=VI)
    r, c = linear_sum_assignment(D)
    return i1[r], i0[c]


def _concordance_ordinal(score, outcome) -> float:
    """Harrell's C between a continuous score and an ordinal outcome (ties in score = 1/2)."""
    from . import metrics as M

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


def c_for_benefit(benefit, ps, t, y, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float, float, int]:
    """c-for-benefit on pairs matched on predicted benefit and propensity (:func:`match_pairs`):
    concordance between the pair's predicted benefit (mean of the two) and its observed benefit
    ``y_untreated - y_treated``; percentile CI over bootstrap resamples of pairs.  On observational
    data the pairs are balanced on the propensity score only; read it with the AIPW-based RATE.
    Returns ``(c, lo, hi, n_pairs)``."""
    y = np.asarray(y, int)
    benefit = np.asarray(benefit, float)
    i1, i0 = match_pairs(benefit, ps, t, seed)
    if len(i1) < 2:
        return float("nan"), float("nan"), float("nan"), len(i1)
    pred = (benefit[i1] + benefit[i0]) / 2
    obs = y[i0] - y[i1]
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
    return float(est), float(lo), float(hi), len(i1)


# ----------------------------------------------------------------------------- decision curve
def policy_curve(score, gamma, clusters, thresholds, level: float = 0.95) -> pd.DataFrame:
    """Net benefit (prevented events per stay, minus the threshold per treated stay) of treating
    the stays whose held-out predicted benefit exceeds the threshold, of treating all and of
    treating none (0), with patient-clustered normal CIs; the policy's value uses the held-out
    AIPW scores, ``mean(gamma * treat) - threshold * mean(treat)``."""
    score, gamma = np.asarray(score, float), np.asarray(gamma, float)
    codes = _codes(clusters)
    n = len(gamma)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for th in thresholds:
        treat = score > th
        contrib = treat * (gamma - th)
        nb = float(contrib.mean())
        se = float(np.sqrt(np.sum(cluster_sum(contrib - nb, codes) ** 2)) / n)
        all_c = gamma - th
        nb_all = float(all_c.mean())
        se_all = float(np.sqrt(np.sum(cluster_sum(all_c - nb_all, codes) ** 2)) / n)
        best = max(nb_all, 0.0)
        diff_c = contrib - (all_c if nb_all > 0 else 0.0)
        d = float(diff_c.mean())
        dse = float(np.sqrt(np.sum(cluster_sum(diff_c - d, codes) ** 2)) / n)
        rows.append({
            "threshold": float(th), "share_treated": float(treat.mean()),
            "net_benefit": nb, "net_benefit_lo": nb - z * se, "net_benefit_hi": nb + z * se,
            "treat_all": nb_all, "treat_all_lo": nb_all - z * se_all, "treat_all_hi": nb_all + z * se_all,
            "gain_vs_best_default": nb - best, "gain_lo": d - z * dse, "gain_hi": d + z * dse,
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- one learner
def evaluate_learner(frame: pd.DataFrame, *, n_groups: int, alpha: float, delta: float, n_boot: int, seed: int, thresholds) -> dict:
    """Every out-of-sample benefit statistic of one learner.

    ``frame`` holds the stays in overlap with ``benefit, gamma, fold, patient_id, risk_based,
    ps_eval, t, y``.  Returns ``{"tests": flat dict, "gates": table, "groups": group per row,
    "classes": class per row, "toc": curve, "qini": curve, "policy": table}``.
    """
    s, g, f, cl = frame["benefit"].to_numpy(float), frame["gamma"].to_numpy(float), frame["fold"].to_numpy(), frame["patient_id"].to_numpy()
    level = 1 - alpha
    z = stats.norm.ppf(1 - alpha / 2)
    tests: dict = {"n": len(frame), "n_folds": len(np.unique(f))}
    for kind in ("autoc", "qini"):
        est, se = rate(s, g, f, cl, kind)
        tests.update({kind: est, f"{kind}_se": se, f"{kind}_lo": est - z * se, f"{kind}_hi": est + z * se, f"{kind}_p": _p_greater(est, se)})
    b = blp(s, g, f, cl)
    tests.update({"ate": b["ate"], "ate_lo": b["ate"] - z * b["ate_se"], "ate_hi": b["ate"] + z * b["ate_se"],
                  "blp_beta2": b["beta2"], "blp_beta2_lo": b["beta2"] - z * b["beta2_se"], "blp_beta2_hi": b["beta2"] + z * b["beta2_se"],
                  "blp_p": b["p_beta2"]})
    br = blp(s, g, f, cl, risk=frame["risk_based"].to_numpy(float))
    tests.update({"beyond_risk_beta2": br["beta2"], "beyond_risk_beta2_lo": br["beta2"] - z * br["beta2_se"],
                  "beyond_risk_beta2_hi": br["beta2"] + z * br["beta2_se"], "beyond_risk_p": br["p_beta2"],
                  "risk_based_beta": br.get("beta_risk", float("nan"))})
    table, gt = gates(s, g, f, cl, n_groups, delta, level)
    tests.update(gt)
    # verdicts: absolute benefit (risk difference) by the AUTOC test; effect modification by the
    # beyond-risk BLP test, which gates the classes
    tests["rd_heterogeneity_detected"] = bool(np.isfinite(tests["autoc_p"]) and tests["autoc_p"] < alpha)
    tests["effect_modification_detected"] = bool(np.isfinite(tests["beyond_risk_p"]) and tests["beyond_risk_p"] < alpha)
    groups = group_of(s, f, n_groups)
    classes = benefit_classes(groups, table, tests["effect_modification_detected"], alpha)
    c, lo, hi, npairs = c_for_benefit(s, frame["ps_eval"].to_numpy(float), frame["t"].to_numpy(), frame["y"].to_numpy(), n_boot, seed, level)
    tests.update({"c_for_benefit": c, "c_for_benefit_lo": lo, "c_for_benefit_hi": hi, "c_for_benefit_pairs": npairs})
    return {"tests": tests, "gates": table, "groups": groups, "classes": classes, "toc": toc_curve(s, g, f),
            "qini": qini_curve(s, g), "policy": policy_curve(s, g, cl, thresholds, level)}


def verdict_text(tests: dict, alpha: float) -> str:
    """One sentence for the report: what the pre-specified tests say, on which scale."""
    def fmt(p):
        return "n/a" if p is None or not np.isfinite(p) else (f"{p:.2g}" if p >= 0.001 else "<0.001")

    rd = "detected" if tests.get("rd_heterogeneity_detected") else "no heterogeneity detected"
    em = "detected" if tests.get("effect_modification_detected") else "no heterogeneity detected"
    return (f"absolute benefit (risk difference, AUTOC test): {rd} (p = {fmt(tests.get('autoc_p'))}); "
            f"effect modification beyond baseline risk (constant odds ratio, BLP test): {em} (p = {fmt(tests.get('beyond_risk_p'))}); "
            f"alpha = {alpha:g}")


# ----------------------------------------------------------------------------- all learners
TABLE_KEYS = (
    "n", "n_folds", "ate", "ate_lo", "ate_hi",
    "autoc", "autoc_lo", "autoc_hi", "autoc_p", "autoc_p_holm", "qini", "qini_lo", "qini_hi", "qini_p",
    "blp_beta2", "blp_beta2_lo", "blp_beta2_hi", "blp_p",
    "beyond_risk_beta2", "beyond_risk_beta2_lo", "beyond_risk_beta2_hi", "beyond_risk_p", "beyond_risk_p_holm",
    "gates_diff", "gates_diff_p", "gates_equal_p",
    "c_for_benefit", "c_for_benefit_lo", "c_for_benefit_hi", "c_for_benefit_pairs",
    "rd_heterogeneity_detected", "effect_modification_detected",
)
SUMMARY_KEYS = (
    "ate", "ate_lo", "ate_hi", "autoc", "autoc_lo", "autoc_hi", "autoc_p", "qini", "qini_lo", "qini_hi", "qini_p",
    "blp_beta2", "blp_beta2_lo", "blp_beta2_hi", "blp_p", "beyond_risk_beta2", "beyond_risk_p", "gates_diff", "gates_diff_p",
    "gates_equal_p", "c_for_benefit", "c_for_benefit_lo", "c_for_benefit_hi", "rd_heterogeneity_detected", "effect_modification_detected",
)


def evaluate_learners(frames: dict[str, pd.DataFrame], patient_of: dict, *, n_groups: int, alpha: float, delta: float, n_boot: int,
                      seed: int, thresholds, primary: str, min_cell_count: int) -> dict:
    """:func:`evaluate_learner` for every learner (``frames[learner]``: the per-stay output of rule
    ``supervised_cate``), Holm adjustment of the learners' RATE and effect-modification p-values
    (reported; the verdict is the pre-specified primary learner's own test), and the tables of the
    phase.  Returns ``{"table", "gates", "classes", "policy", "curves", "summary"}``."""
    from .io import suppress_count

    rows, gates_rows, class_rows, policy_rows, curves, summary, results = [], [], [], [], {}, {}, {}
    for learner, df in frames.items():
        d = df[df["in_overlap"]].copy()
        d["patient_id"] = d["stay_id"].astype(str).map(patient_of)
        results[learner] = evaluate_learner(d, n_groups=n_groups, alpha=alpha, delta=delta, n_boot=n_boot, seed=seed, thresholds=thresholds)
        cls = pd.Series("outside_overlap", index=df.index, dtype=object)
        cls[d.index] = results[learner]["classes"]
        grp = pd.Series(0, index=df.index)
        grp[d.index] = results[learner]["groups"]
        class_rows.append(pd.DataFrame({"stay_id": df["stay_id"].astype(str), "learner": learner, "group": grp.astype(int), "benefit_class": cls.astype(str)}))
    learners = list(results)
    for key in ("autoc_p", "beyond_risk_p"):
        adj = holm([results[lr]["tests"][key] for lr in learners])
        for lr, a in zip(learners, adj):
            results[lr]["tests"][f"{key}_holm"] = float(a)
    classes = pd.concat(class_rows, ignore_index=True) if class_rows else pd.DataFrame(columns=["stay_id", "learner", "group", "benefit_class"])
    for learner in learners:
        r = results[learner]
        tests = r["tests"]
        row = {"learner": learner, **{k: tests.get(k) for k in TABLE_KEYS}}
        counts = classes.loc[classes["learner"] == learner, "benefit_class"].value_counts()
        n_all = int((classes["learner"] == learner).sum())
        for c in CLASSES:
            row[f"n_{c}"] = suppress_count(int(counts.get(c, 0)), min_cell_count)
            summary[f"share_{c}_{learner}"] = int(counts.get(c, 0)) / n_all if n_all else None
        rows.append(row)
        gt = r["gates"].assign(learner=learner)
        gt["n"] = [suppress_count(int(v), min_cell_count) for v in gt["n"]]
        gates_rows.append(gt)
        policy_rows.append(r["policy"].assign(learner=learner))
        curves[learner] = {"toc": r["toc"], "qini": r["qini"], "gates": r["gates"], "policy": r["policy"]}
        summary.update({f"{k}_{learner}": tests.get(k) for k in SUMMARY_KEYS})
        summary[f"autoc_p_holm_{learner}"] = tests["autoc_p_holm"]
        summary[f"beyond_risk_p_holm_{learner}"] = tests["beyond_risk_p_holm"]
    if primary in results:
        t = results[primary]["tests"]
        summary["primary_learner"] = primary
        summary["n_cate_cohort"] = int(len(frames[primary]))
        summary["heterogeneity_detected"] = t["rd_heterogeneity_detected"]
        summary["effect_modification_detected"] = t["effect_modification_detected"]
        summary["heterogeneity_verdict"] = verdict_text(t, alpha)
        summary["ate_aipw"], summary["ate_aipw_lo"], summary["ate_aipw_hi"] = t["ate"], t["ate_lo"], t["ate_hi"]
        for c in CLASSES:
            summary[f"share_{c}"] = summary[f"share_{c}_{primary}"]
    gates_cols = ["learner", "group", "n", "predicted", "effect", "se", "lo", "hi", "p_benefit", "p_harm", "p_benefit_holm", "p_harm_holm"]
    return {
        "table": pd.DataFrame(rows),
        "gates": pd.concat(gates_rows, ignore_index=True)[gates_cols] if gates_rows else pd.DataFrame(columns=gates_cols),
        "classes": classes,
        "policy": pd.concat(policy_rows, ignore_index=True) if policy_rows else pd.DataFrame(),
        "curves": curves,
        "summary": summary,
    }


# ----------------------------------------------------------------------------- figures
def plot_benefit_evaluation(curves: dict, title: str, alpha: float):
    """Left: TOC curves (held-out, averaged over folds); right: GATES with CIs against the mean
    predicted benefit of each group (calibration for benefit)."""
    from .plotting import PALETTE, figure

    fig, (a1, a2) = figure(11.0, 4.5, ncols=2)
    lo_all, hi_all = [], []
    for i, (learner, cv) in enumerate(curves.items()):
        col = PALETTE[i % len(PALETTE)]
        a1.plot(cv["toc"]["fraction"], cv["toc"]["toc"], color=col, lw=1.6, label=learner)
        g = cv["gates"]
        off = (i - (len(curves) - 1) / 2) * 0.002
        a2.errorbar(g["predicted"] + off, g["effect"], yerr=[g["effect"] - g["lo"], g["hi"] - g["effect"]], fmt="o-", color=col, ms=4, lw=1.2,
                    capsize=2, label=learner)
        lo_all += [g["predicted"].min(), g["lo"].min()]
        hi_all += [g["predicted"].max(), g["hi"].max()]
    a1.axhline(0, color="grey", ls=":", lw=1)
    a1.set(xlabel="fraction treated (highest predicted benefit first)", ylabel="TOC: benefit of the top fraction minus average",
           title="Targeting operator characteristic (held-out)")
    if lo_all:
        lims = [float(np.nanmin(lo_all)), float(np.nanmax(hi_all))]
        a2.plot(lims, lims, color="grey", ls=":", lw=1)
    a2.axhline(0, color="black", lw=0.8)
    a2.set(xlabel="mean predicted benefit of the group (risk reduction)", ylabel=f"group effect (AIPW, {100 * (1 - alpha):.0f}% CI)",
           title="Sorted group effects (GATES)")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_policy_curve(curves: dict, title: str):
    """Decision curve for treating by predicted benefit: net benefit against the threshold."""
    from .plotting import PALETTE, figure

    fig, ax = figure(6.5, 4.5)
    first = next(iter(curves.values()))["policy"]
    ax.fill_between(first["threshold"], first["treat_all_lo"], first["treat_all_hi"], color="grey", alpha=0.15, lw=0)
    ax.plot(first["threshold"], first["treat_all"], color="grey", lw=1.2, label="treat all")
    ax.axhline(0, color="black", lw=1, label="treat none")
    for i, (learner, cv) in enumerate(curves.items()):
        p = cv["policy"]
        col = PALETTE[i % len(PALETTE)]
        ax.plot(p["threshold"], p["net_benefit"], color=col, lw=1.6, label=f"treat if predicted benefit > threshold ({learner})")
        ax.fill_between(p["threshold"], p["net_benefit_lo"], p["net_benefit_hi"], color=col, alpha=0.12, lw=0)
    ax.set(xlabel="threshold: harm of CS expressed as a risk difference", ylabel="net benefit (prevented events per stay)", title=title)
    ax.legend(fontsize=7)
    return fig
