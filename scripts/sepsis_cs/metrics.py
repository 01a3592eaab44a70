"""Performance metrics of risk predictions, with patient-level bootstrap confidence intervals.

Every metric takes ``y`` (0/1) and ``p`` (predicted probability).  The bootstrap resamples
*patients* with replacement and keeps all stays of a drawn patient together, so a patient
with several stays never sits on both sides of a comparison and CIs are not too narrow.
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


def _codes(groups):
    uniq, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return codes, uniq


def bootstrap_metrics(y, p, groups, n_boot: int, seed: int, metrics: dict[str, Callable] | None = None, level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """Point estimate and percentile CI of each metric: ``{name: (estimate, lo, hi)}``."""
    metrics = metrics or METRICS
    y = np.asarray(y)
    p = np.asarray(p, float)
    est = {k: f(y, p) for k, f in metrics.items()}
    reps = {k: [] for k in metrics}
    for idx in patient_bootstrap(groups, n_boot, seed):
        for k, f in metrics.items():
            reps[k].append(f(y[idx], p[idx]))
    a = (1 - level) / 2
    out = {}
    for k in metrics:
        r = np.asarray(reps[k], float)
        r = r[np.isfinite(r)]
        lo, hi = (np.quantile(r, [a, 1 - a]) if len(r) else (np.nan, np.nan))
        out[k] = (est[k], float(lo), float(hi))
    return out


def paired_auroc_difference(y, p1, p2, groups, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float, float]:
    """AUROC(p1) - AUROC(p2) on the same stays, with a paired patient-level bootstrap CI."""
    y = np.asarray(y)
    p1 = np.asarray(p1, float)
    p2 = np.asarray(p2, float)
    est = auroc(y, p1) - auroc(y, p2)
    reps = [auroc(y[i], p1[i]) - auroc(y[i], p2[i]) for i in patient_bootstrap(groups, n_boot, seed)]
    r = np.asarray(reps)
    r = r[np.isfinite(r)]
    a = (1 - level) / 2
    lo, hi = np.quantile(r, [a, 1 - a]) if len(r) else (np.nan, np.nan)
    return float(est), float(lo), float(hi)
