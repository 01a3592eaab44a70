"""CS vs no-CS outcome difference within each cluster of the pooled solution, by IPTW.

The propensity score comes either from the workflow's shared propensity model
(``results/{database}/analyse/propensity.parquet``: ``stay_id, ps, in_overlap``) or, when that rule
is absent, from a logistic model fitted within each cluster on pre-treatment covariates
(:func:`within_cluster_propensity`).  Stabilised inverse-probability weights; stays outside the
overlap (shared file) or with a propensity outside ``[trim, 1 - trim]`` are dropped.

Estimand per cluster: risk difference ``P(Y=1 | CS) - P(Y=1 | no CS)`` (negative = CS associated with
lower risk), weighted means; percentile bootstrap CI (stays resampled within cluster; the internal
propensity model is refitted in every bootstrap sample, a shared propensity is kept fixed).
Interaction test: weighted logistic regression ``outcome ~ cs * C(cluster)`` with robust (HC0)
standard errors, Wald test that every ``cs:cluster`` coefficient is 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from ..preprocess import make_preprocessor


def within_cluster_propensity(Xdf: pd.DataFrame, treated: np.ndarray, categorical: list[str], C: float = 1.0) -> np.ndarray:
    """Propensity from an L2 logistic model (median imputation, scaling, one-hot) fitted on these stays."""
    if treated.min() == treated.max():
        return np.full(len(treated), float(treated.mean()))
    numeric = [c for c in Xdf.columns if c not in categorical]
    model = make_pipeline(make_preprocessor(numeric, categorical), LogisticRegression(C=C, max_iter=500))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Xdf, treated)
    return model.predict_proba(Xdf)[:, 1]


def iptw_weights(ps: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Stabilised inverse-probability-of-treatment weights."""
    p = treated.mean()
    return np.where(treated == 1, p / ps, (1 - p) / (1 - ps))


def weighted_rd(y, t, w) -> float:
    t1, t0 = t == 1, t == 0
    if t1.sum() == 0 or t0.sum() == 0:
        return np.nan
    return float(np.average(y[t1], weights=w[t1]) - np.average(y[t0], weights=w[t0]))


def cluster_effects(*args, threads: int = 1, **kwargs):
    """See :func:`_cluster_effects`; BLAS/OpenMP pools limited to ``threads``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads)):
        return _cluster_effects(*args, **kwargs)


def _cluster_effects(
    y: np.ndarray,
    t: np.ndarray,
    labels: np.ndarray,
    Xdf: pd.DataFrame | None,
    categorical: list[str],
    ps_shared: np.ndarray | None,
    keep_shared: np.ndarray | None,
    n_boot: int,
    seed: int,
    trim: float,
    min_cell_count: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-cluster IPTW risk differences with bootstrap CIs; returns (table, per-stay ps/weights, test)."""
    rng = np.random.default_rng(seed)
    rows = []
    ps_all = np.full(len(y), np.nan)
    w_all = np.full(len(y), np.nan)
    used = np.zeros(len(y), dtype=bool)
    for c in sorted(np.unique(labels[labels >= 0])):
        ix = np.where((labels == c) & ~np.isnan(y))[0]
        yc, tc = y[ix], t[ix]
        if ps_shared is not None:
            ps = ps_shared[ix]
            keep = keep_shared[ix] & (ps > trim) & (ps < 1 - trim)
        else:
            ps = within_cluster_propensity(Xdf.iloc[ix], tc, categorical)
            keep = (ps > trim) & (ps < 1 - trim)
        ix_k, yk, tk, psk = ix[keep], yc[keep], tc[keep], ps[keep]
        n1, n0 = int(tk.sum()), int((1 - tk).sum())
        enough = min(n1, n0) >= max(min_cell_count, 2)
        w = iptw_weights(psk, tk) if enough else np.ones(len(tk))
        ps_all[ix_k], w_all[ix_k], used[ix_k] = psk, w, enough
        est, crude = (weighted_rd(yk, tk, w), weighted_rd(yk, tk, np.ones(len(tk)))) if enough else (np.nan, np.nan)
        boots = []
        if enough:
            for _ in range(int(n_boot)):
                b = rng.integers(0, len(ix_k), len(ix_k))
                tb, yb = tk[b], yk[b]
                if tb.min() == tb.max():
                    continue
                if ps_shared is None:
                    pb = np.clip(within_cluster_propensity(Xdf.iloc[ix_k[b]], tb, categorical), trim, 1 - trim)
                else:
                    pb = psk[b]
                boots.append(weighted_rd(yb, tb, iptw_weights(pb, tb)))
        lo, hi = (np.nanquantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan))
        ess = float(w.sum() ** 2 / (w**2).sum()) if enough else np.nan
        rows.append(
            {
                "cluster": int(c),
                "n_cs": n1 if n1 >= min_cell_count else None,
                "n_no_cs": n0 if n0 >= min_cell_count else None,
                "n_trimmed": int((~keep).sum()),
                "crude_rd": crude,
                "iptw_rd": est,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "effective_sample_size": ess,
                "n_boot": len(boots),
            }
        )
    table = pd.DataFrame(rows)
    test = interaction_test(y, t, labels, w_all, used)
    return table, pd.DataFrame({"ps": ps_all, "weight": w_all, "used": used}), test


def interaction_test(y, t, labels, w, used) -> dict:
    """Wald test of the cs x cluster interaction in a weighted logistic regression (HC0 SEs)."""
    m = used & ~np.isnan(y)
    clusters = sorted(np.unique(labels[m]))
    if len(clusters) < 2:
        return {"interaction_chi2": np.nan, "interaction_df": 0, "interaction_p": np.nan}
    lab = labels[m]
    tt = t[m].astype(float)
    cols = [np.ones(m.sum()), tt]
    for c in clusters[1:]:
        cols.append((lab == c).astype(float))
    inter = []
    for c in clusters[1:]:
        inter.append(len(cols))
        cols.append(tt * (lab == c))
    Xd = np.column_stack(cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(y[m], Xd, family=sm.families.Binomial(), var_weights=w[m]).fit(cov_type="HC0")
    R = np.zeros((len(inter), Xd.shape[1]))
    for i, j in enumerate(inter):
        R[i, j] = 1.0
    wald = res.wald_test(R, scalar=True)
    return {"interaction_chi2": float(wald.statistic), "interaction_df": len(inter), "interaction_p": float(wald.pvalue)}
