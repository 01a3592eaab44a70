"""Performance metrics of risk predictions, with patient-level bootstrap confidence intervals.

Every metric takes ``y`` (0/1) and ``p`` (predicted probability).  The bootstrap resamples
*patients* with replacement and keeps all stays of a drawn patient together, so a patient
with several stays never sits on both sides of a comparison and CIs are not too narrow.

**Cross-validated predictions** (``fold`` given): the discrimination metrics (:data:`FOLD_METRICS`,
AUROC and AUPRC) are computed within each outer test fold and averaged over the folds, and the
bootstrap resamples patients *within* each fold.  Pooling the out-of-fold predictions of different
fold models into one AUROC is biased downwards when the outcome carries no signal: the folds' models
differ in calibration (intercepts follow the training folds' prevalences, which are anti-correlated with
the test folds'), and ranking stays across models mixes these shifts with the outcome (Parker et al.,
BMC Bioinformatics 2007; Airola et al., Comput Stat Data Anal 2011).  A fold's AUROC compares stays
scored by one model, so under a null outcome its expectation is exactly 0.5.  Calibration and the
Brier score stay on the pooled out-of-fold predictions (one number over all stays, as in the calibration
plot).  The per-fold values are *not* independent: each fold's test stays train the other folds' models,
so a chance association in the sample pushes every fold the same way.  A bootstrap that holds the fold
models fixed sees only the test sampling and is too narrow (under a null outcome, with 3 folds, the
spread of the mean per-fold AUROC over simulator seeds was 1.46 times the fixed-model bootstrap SE;
for a linear learner the variance is twice the fixed-model one whatever K).  Every interval of a
cross-validated metric is therefore widened about its estimate by the Nadeau-Bengio correction
(Machine Learning 2003; the transfer phase uses it over repeated splits, ``transfer.corrected_ci``):
variance ``sigma^2 (1/K + n_test/n_train)`` instead of ``sigma^2 / K``, with the per-fold variance
``sigma^2`` from the within-fold bootstrap (three fold values alone would give it 2 degrees of freedom),
i.e. the percentile interval's arms times :func:`nadeau_bengio_factor` (``sqrt(2.5)`` for 3 equal folds).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score

EPS = 1e-6


# ----------------------------------------------------------------------------- point metrics
def auroc(y, p) -> float:
    """Area under the ROC curve (Mann-Whitney form, ties counted one half)."""
    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auprc(y, p) -> float:
    """Area under the precision-recall curve (average precision)."""
    y = np.asarray(y).astype(int)
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, p))


def brier(y, p) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def _logit(p):
    p = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _newton_logistic(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson (small designs only)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        eta = np.clip(offset + X @ beta, -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = mu * (1 - mu)
        grad = X.T @ (y - mu)
        hess = X.T @ (X * w[:, None]) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def calibration_intercept_slope(y, p) -> tuple[float, float]:
    """Logistic recalibration of ``y`` on ``logit(p)``.

    Returns ``(intercept, slope)``: the slope from ``logit P(y) = a + b logit(p)``; the
    intercept is calibration-in-the-large, ``a`` in ``logit P(y) = a + logit(p)`` (slope
    fixed at 1).  A perfectly calibrated score gives ``(0, 1)``.
    """
    y = np.asarray(y, float)
    if y.min() == y.max():
        return float("nan"), float("nan")
    lp = _logit(p)
    n = len(y)
    slope = _newton_logistic(np.column_stack([np.ones(n), lp]), y, np.zeros(n))[1]
    intercept = _newton_logistic(np.ones((n, 1)), y, lp)[0]
    return float(intercept), float(slope)


def calibration_intercept(y, p) -> float:
    return calibration_intercept_slope(y, p)[0]


def calibration_slope(y, p) -> float:
    return calibration_intercept_slope(y, p)[1]


METRICS: dict[str, Callable] = {
    "auroc": auroc,
    "auprc": auprc,
    "brier": brier,
    "calibration_intercept": calibration_intercept,
    "calibration_slope": calibration_slope,
}


# ----------------------------------------------------------------------------- curves
def calibration_curve(y, p, n_bins: int = 10) -> tuple[dict, dict]:
    """Decile table (mean predicted, observed rate, n per bin) and an isotonic smooth curve."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    bins = {"bin": [], "mean_predicted": [], "observed": [], "n": []}
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            bins["bin"].append(b + 1)
            bins["mean_predicted"].append(float(p[m].mean()))
            bins["observed"].append(float(y[m].mean()))
            bins["n"].append(int(m.sum()))
    order = np.argsort(p, kind="stable")
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p[order], y[order])
    grid = np.linspace(np.quantile(p, 0.01), np.quantile(p, 0.99), 50)
    return bins, {"predicted": grid.tolist(), "observed": iso.predict(grid).tolist()}


def net_benefit(y, p, thresholds) -> np.ndarray:
    """Net benefit of treating stays with ``p >= t`` for each threshold ``t`` (decision curve)."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    n = len(y)
    out = []
    for t in thresholds:
        pos = p >= t
        tp = np.sum(pos & (y == 1))
        fp = np.sum(pos & (y == 0))
        out.append(tp / n - fp / n * t / (1 - t))
    return np.asarray(out)


def net_benefit_treat_all(y, thresholds) -> np.ndarray:
    prev = float(np.mean(y))
    return np.asarray([prev - (1 - prev) * t / (1 - t) for t in thresholds])


# ----------------------------------------------------------------------------- bootstrap
def patient_bootstrap(groups, n_boot: int, seed: int):
    """Yield index arrays of ``n_boot`` patient-level bootstrap samples (stays of a patient together)."""
    codes, _ = _codes(groups)
    n_pat = codes.max() + 1 if len(codes) else 0
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_pat))
    ends = np.searchsorted(codes[order], np.arange(n_pat), side="right")
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        drawn = rng.integers(0, n_pat, n_pat)
        yield np.concatenate([order[starts[d] : ends[d]] for d in drawn]) if n_pat else np.array([], int)


def fold_bootstrap(groups, fold, n_boot: int, seed: int):
    """Yield index arrays of ``n_boot`` patient-level bootstrap samples drawn *within* each fold
    (every fold keeps its number of patients; stays of a patient together)."""
    fold = np.asarray(fold)
    groups = np.asarray(groups)
    levels = np.unique(fold)
    parts = [np.where(fold == k)[0] for k in levels]
    gens = [patient_bootstrap(groups[idx], n_boot, seed + 7919 * j) for j, idx in enumerate(parts)]
    for _ in range(n_boot):
        yield np.concatenate([idx[next(g)] for idx, g in zip(parts, gens)])


def nadeau_bengio_factor(fold) -> float:
    """Factor widening a fixed-model bootstrap interval of a mean over ``K`` outer folds:
    ``sqrt(K * (1/K + n_test/n_train)) = sqrt(1 + K n_test/n_train)`` (mean fold sizes)."""
    fold = np.asarray(fold)
    k = len(np.unique(fold))
    if k < 2:
        return 1.0
    n_test = len(fold) / k
    return float(np.sqrt(1 + k * n_test / (len(fold) - n_test)))


def _widen(res: dict[str, tuple[float, float, float]], factor: float) -> dict[str, tuple[float, float, float]]:
    """Each interval's arms multiplied by ``factor`` about its estimate."""
    out = {}
    for k, (e, lo, hi) in res.items():
        if np.isfinite(e) and np.isfinite(lo) and np.isfinite(hi):
            lo, hi = e - factor * (e - lo), e + factor * (hi - e)
        out[k] = (e, float(lo), float(hi))
    return out


def fold_mean(metric: Callable, y, p, fold) -> float:
    """Mean over the folds of ``metric`` computed within each fold (folds where it is undefined, e.g.
    one class only, are left out)."""
    y, p, fold = np.asarray(y), np.asarray(p, float), np.asarray(fold)
    vals = np.array([metric(y[fold == k], p[fold == k]) for k in np.unique(fold)], float)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if len(vals) else float("nan")


def per_fold(metric: Callable, y, p, fold) -> dict:
    """``{fold: metric within the fold}``."""
    y, p, fold = np.asarray(y), np.asarray(p, float), np.asarray(fold)
    return {k.item() if hasattr(k, "item") else k: metric(y[fold == k], p[fold == k]) for k in np.unique(fold)}


def _codes(groups):
    uniq, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return codes, uniq


#: metrics computed within each outer fold and averaged when the predictions are cross-validated
FOLD_METRICS = frozenset({"auroc", "auprc"})


def _by_fold(metrics: dict[str, Callable], fold) -> dict[str, Callable]:
    """``metrics`` with those of :data:`FOLD_METRICS` replaced by their mean over ``fold`` (a
    function of ``(y, p, idx)`` so that a bootstrap sample keeps each stay's fold)."""
    fold = np.asarray(fold)
    out = {}
    for k, f in metrics.items():
        if k in FOLD_METRICS:
            out[k] = lambda y, p, idx, f=f: fold_mean(f, y, p, fold[idx])
        else:
            out[k] = lambda y, p, idx, f=f: f(y, p)
    return out


def bootstrap_metrics(y, p, groups, n_boot: int, seed: int, metrics: dict[str, Callable] | None = None, level: float = 0.95,
                      fold=None, corrected: bool = True) -> dict[str, tuple[float, float, float]]:
    """Point estimate and percentile CI of each metric: ``{name: (estimate, lo, hi)}``.

    With ``fold`` (the outer fold of each out-of-fold prediction, more than one fold), the metrics of
    :data:`FOLD_METRICS` are means of per-fold values, patients are resampled within their fold and
    every interval is widened by :func:`nadeau_bengio_factor` (``corrected=False``: the fixed-model
    bootstrap interval, for comparison; see the module docstring)."""
    metrics = metrics or METRICS
    y = np.asarray(y)
    p = np.asarray(p, float)
    if fold is not None and len(np.unique(fold)) > 1:
        fm = _by_fold(metrics, fold)
        every = np.arange(len(y))
        est = {k: f(y, p, every) for k, f in fm.items()}
        reps = {k: [] for k in metrics}
        for idx in fold_bootstrap(groups, fold, n_boot, seed):
            for k, f in fm.items():
                reps[k].append(f(y[idx], p[idx], idx))
        res = _percentiles(est, reps, level)
        return _widen(res, nadeau_bengio_factor(fold)) if corrected else res
    est = {k: f(y, p) for k, f in metrics.items()}
    reps = {k: [] for k in metrics}
    for idx in patient_bootstrap(groups, n_boot, seed):
        for k, f in metrics.items():
            reps[k].append(f(y[idx], p[idx]))
    return _percentiles(est, reps, level)


def _percentiles(est: dict, reps: dict, level: float) -> dict[str, tuple[float, float, float]]:
    a = (1 - level) / 2
    out = {}
    for k in est:
        r = np.asarray(reps[k], float)
        r = r[np.isfinite(r)]
        lo, hi = (np.quantile(r, [a, 1 - a]) if len(r) else (np.nan, np.nan))
        out[k] = (est[k], float(lo), float(hi))
    return out


def paired_auroc_difference(y, p1, p2, groups, n_boot: int, seed: int, level: float = 0.95, fold=None) -> tuple[float, float, float]:
    """AUROC(p1) - AUROC(p2) on the same stays, with a paired patient-level bootstrap CI.  With
    ``fold`` (``p1`` out-of-fold), both AUROCs are means of per-fold values, resampled within folds, and
    the interval is widened by :func:`nadeau_bengio_factor`."""
    y = np.asarray(y)
    p1 = np.asarray(p1, float)
    p2 = np.asarray(p2, float)
    factor = 1.0
    if fold is not None and len(np.unique(fold)) > 1:
        fold = np.asarray(fold)
        factor = nadeau_bengio_factor(fold)
        diff = lambda i: fold_mean(auroc, y[i], p1[i], fold[i]) - fold_mean(auroc, y[i], p2[i], fold[i])  # noqa: E731
        est = diff(np.arange(len(y)))
        reps = [diff(i) for i in fold_bootstrap(groups, fold, n_boot, seed)]
    else:
        est = auroc(y, p1) - auroc(y, p2)
        reps = [auroc(y[i], p1[i]) - auroc(y[i], p2[i]) for i in patient_bootstrap(groups, n_boot, seed)]
    r = np.asarray(reps)
    r = r[np.isfinite(r)]
    a = (1 - level) / 2
    lo, hi = np.quantile(r, [a, 1 - a]) if len(r) else (np.nan, np.nan)
    if factor != 1.0 and np.isfinite(lo):
        lo, hi = est - factor * (est - lo), est + factor * (hi - est)
    return float(est), float(lo), float(hi)
