"""Propensity model for corticosteroids (CS), positivity diagnostics and IPTW weights.

The propensity score is the cross-fitted (out-of-fold, patient-level folds) prediction of a
penalised logistic regression on baseline confounders only (static covariates and
summaries of the pre-time-zero window; never a post-time-zero feature), inside a
``Pipeline`` with :func:`sepsis_cs.preprocess.make_preprocessor`.

A stay is *in overlap* when its score lies both within the common support of the two groups
(``[max of group minima, min of group maxima]``) and within the trimming bounds: fixed
``[lo, hi]`` or the rule of Crump et al. (Biometrika 2009), which keeps
``alpha <= ps <= 1 - alpha`` with alpha solving ``1/(alpha(1-alpha)) = 2 E[1/(ps(1-ps)) |
1/(ps(1-ps)) <= 1/(alpha(1-alpha))]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import is_baseline, patient_folds, sub_seed


def confounder_columns(spec, available: list[str], dictionary, selected: list[str] | None = None) -> list[str]:
    """Columns of the propensity model.

    ``spec``: ``"baseline"`` (static + pre-time-zero summaries), ``"selected"`` (the
    treatment selection, baseline only) or an explicit list (post-time-zero names rejected).
    """
    from .errors import ConfigError

    if spec in (None, "baseline"):
        return [c for c in available if is_baseline(c, dictionary)]
    if spec == "selected":
        chosen = [c for c in (selected or []) if c in available and is_baseline(c, dictionary)]
        return chosen or [c for c in available if is_baseline(c, dictionary)]
    bad = [c for c in spec if not is_baseline(c, dictionary)]
    if bad:
        raise ConfigError("config", "analyse.propensity.confounders", f"'{bad[0]}' is not a baseline (pre-time-zero) feature")
    missing = [c for c in spec if c not in available]
    if missing:
        raise ConfigError("config", "analyse.propensity.confounders", f"unknown feature '{missing[0]}'; expected a column of stay_features.parquet")
    return list(spec)


def cross_fitted_ps(X: pd.DataFrame, cs: np.ndarray, groups: np.ndarray, categorical: list[str], C: float, l1_ratio: float,
                    n_folds: int, seed: int) -> tuple[np.ndarray, dict]:
    """Out-of-fold propensity scores from a penalised logistic regression; returns (ps, info)."""
    import warnings

    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from .preprocess import make_preprocessor

    cs = np.asarray(cs).astype(int)
    num = [c for c in X.columns if c not in categorical]
    cat = [c for c in X.columns if c in categorical]
    solver = "lbfgs" if l1_ratio == 0 else "saga"
    model = Pipeline([
        ("pre", make_preprocessor(num, cat)),
        ("clf", LogisticRegression(C=C, l1_ratio=l1_ratio, solver=solver, max_iter=3000, random_state=seed)),
    ])
    folds, k = patient_folds(cs, groups, n_folds, sub_seed(seed, "ps_folds"))
    ps = np.full(len(cs), np.nan)
    info = {"folds": k, "note": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if k == 0:
            info["note"] = "too few stays per group for cross-fitting: in-sample propensity scores"
            ps[:] = model.fit(X, cs).predict_proba(X)[:, 1] if len(np.unique(cs)) == 2 else cs.mean()
        else:
            for tr, te in folds:
                m = clone(model).fit(X.iloc[tr], cs[tr])
                ps[te] = m.predict_proba(X.iloc[te])[:, 1]
    info["oof_auc"] = _auc(cs, ps)
    return ps, info


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata

    y = np.asarray(y).astype(int)
    n1, n0 = y.sum(), len(y) - y.sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def crump_alpha(ps: np.ndarray) -> float:
    """Optimal trimming threshold alpha of Crump et al. (2009); 0 when no trimming is needed."""
    p = np.clip(np.asarray(ps, float), 1e-6, 1 - 1e-6)
    h = 1.0 / (p * (1 - p))
    if h.max() <= 2 * h.mean():
        return 0.0
    hs = np.sort(h)
    cm = np.cumsum(hs) / np.arange(1, len(hs) + 1)
    ok = np.flatnonzero(hs <= 2 * cm)
    gamma = 2 * cm[ok[-1]]
    return float(0.5 - np.sqrt(max(0.0, 0.25 - 1.0 / gamma)))


def overlap(ps: np.ndarray, cs: np.ndarray, trim) -> tuple[np.ndarray, dict]:
    """``in_overlap`` flags and diagnostics for a trimming rule (``"crump"`` or ``[lo, hi]``)."""
    ps = np.asarray(ps, float)
    cs = np.asarray(cs).astype(bool)
    if trim == "crump":
        a = crump_alpha(ps)
        lo, hi = a, 1 - a
    else:
        lo, hi = float(trim[0]), float(trim[1])
    if cs.any() and (~cs).any():
        cs_lo, cs_hi = max(ps[cs].min(), ps[~cs].min()), min(ps[cs].max(), ps[~cs].max())
    else:
        cs_lo, cs_hi = 0.0, 1.0
    in_support = (ps >= cs_lo) & (ps <= cs_hi)
    in_trim = (ps >= lo) & (ps <= hi)
    inside = in_support & in_trim
    info = {
        "trim_lower": lo,
        "trim_upper": hi,
        "support_lower": float(cs_lo),
        "support_upper": float(cs_hi),
        "share_outside_support": float(1 - in_support.mean()),
        "share_trimmed": float(1 - in_trim.mean()),
        "share_outside_overlap": float(1 - inside.mean()),
    }
    return inside, info


def iptw_weights(ps: np.ndarray, cs: np.ndarray, in_overlap: np.ndarray | None = None) -> np.ndarray:
    """Stabilised ATE weights (0 outside overlap): ``P(T)/ps`` treated, ``(1-P(T))/(1-ps)`` untreated."""
    ps = np.asarray(ps, float)
    cs = np.asarray(cs).astype(bool)
    keep = np.ones(len(ps), bool) if in_overlap is None else np.asarray(in_overlap, bool)
    pt = cs[keep].mean() if keep.any() else 0.5
    w = np.where(cs, pt / np.clip(ps, 1e-6, 1), (1 - pt) / np.clip(1 - ps, 1e-6, 1))
    return np.where(keep, w, 0.0)


def effective_sample_size(w: np.ndarray) -> float:
    w = np.asarray(w, float)
    return float(w.sum() ** 2 / (w**2).sum()) if (w > 0).any() else 0.0


def overlap_plot(ps: np.ndarray, cs: np.ndarray, info: dict, title: str):
    """Mirrored histograms of the propensity score by CS group, with trimming and support bounds."""
    from .plotting import CS_COLOURS, figure

    ps = np.asarray(ps, float)
    cs = np.asarray(cs).astype(bool)
    fig, ax = figure(7, 4.2)
    bins = np.linspace(0, 1, 41)
    h1, _ = np.histogram(ps[cs], bins=bins, density=True)
    h0, _ = np.histogram(ps[~cs], bins=bins, density=True)
    centres = (bins[:-1] + bins[1:]) / 2
    ax.bar(centres, h1, width=bins[1] - bins[0], color=CS_COLOURS["CS"], alpha=0.8, label="CS")
    ax.bar(centres, -h0, width=bins[1] - bins[0], color=CS_COLOURS["no CS"], alpha=0.8, label="no CS")
    for x in (info["trim_lower"], info["trim_upper"]):
        ax.axvline(x, color="black", ls="--", lw=1)
    for x in (info["support_lower"], info["support_upper"]):
        ax.axvline(x, color="grey", ls=":", lw=1)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("cross-fitted propensity score P(CS | baseline covariates)")
    ax.set_ylabel("density (CS up, no CS down)")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper right")
    ax.set_title(title)
    return fig
