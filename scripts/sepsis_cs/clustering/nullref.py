"""k = 1 as a candidate: consensus clustering against Monte-Carlo null data (M3C).

Consensus clustering finds "stable" partitions in data without clusters: k-means at k = 2 cuts an
elongated Gaussian cloud along its first principal axis in the same place every time (PAC near 0).
Stability alone therefore cannot say "nothing here".  M3C (John et al., Sci Rep 2020, "M3C:
Monte Carlo reference-based consensus clustering") compares the PAC of the data at each k with the
PAC of reference data sets that keep the correlation structure of the data but have no clusters,
clustered with exactly the same procedure.  This module implements that test:

* **reference data** (``NULL_REFERENCES``): ``copula`` (default) draws from a Gaussian copula with the
  data's normal-score correlation and every column's own marginal distribution (empirical quantile
  function of the column, median / mode imputed as the clustering's preprocessing does; the latent
  correlation calibrated so that 0/1 and tied columns keep their observed correlation).  When the
  (log-transformed) features are Gaussian this *is* M3C's multivariate Gaussian reference with the
  data's covariance; with binary comorbidities, categorical levels and skewed labs it keeps their
  marginals, so a split on a single 0/1 column or a skewed tail is part of the null, not a "cluster".
  ``gaussian``: M3C's original reference, a multivariate Gaussian with the mean and covariance of the
  (imputed, log-transformed where the preprocessing logs) numeric columns; categorical columns are
  drawn from the copula.  Binary columns then become continuous, so this reference is for comparison.
* **statistic**: for every k of the grid, ``L_k = log(max(PAC_k, pac_floor))`` of the data, and the
  same for each of ``B`` reference data sets.  RCSI (M3C's relative cluster stability index) is
  ``mean_b L*_k,b - L_k`` (> 0: the data are more stable than clusterless data of the same shape).
* **p-value** per k: the data's ``L_k`` is compared with the ``B`` reference values as a new draw from
  their distribution (a prediction t-test: ``t = RCSI / (s * sqrt(1 + 1/B))``, ``B - 1`` df, one-sided),
  which is exact when ``L*`` is Gaussian and needs few references (M3C fits a beta distribution to the
  reference PAC instead, which needs many).  ``s`` is floored at ``sd_floor`` so that identical
  references do not give infinite t.  The p-values are Bonferroni-adjusted over the k grid.
* **decision**: the global p-value is the smallest adjusted p; if it is at least ``alpha`` the chosen
  k is 1 (one population).  Otherwise the chosen k is the k with the largest RCSI among the k whose
  adjusted p is under ``alpha`` (M3C's rule: maximal RCSI).

For hdbscan (which finds its own number of clusters) the "grid" is its single solution and the test
compares the stability of that solution with HDBSCAN on the reference data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .methods import sub_seed


# ----------------------------------------------------------------------------- reference data
def _completed(df: pd.DataFrame, categorical: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Numeric columns median-imputed, categoricals mode-imputed (as the clustering's preprocessing)."""
    out = df.copy()
    for c in df.columns:
        if c in categorical:
            s = df[c].astype(object)
            mode = s.dropna().astype(str).mode()
            out[c] = s.where(s.notna(), mode.sort_values().iloc[0] if len(mode) else "missing").astype(str)
        else:
            x = pd.to_numeric(df[c], errors="coerce").astype(float)
            med = x.median()
            out[c] = x.fillna(0.0 if pd.isna(med) else med)
    return out, [c for c in df.columns if c not in categorical]


def _category_codes(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a categorical column, levels ordered by decreasing frequency (ties: name)."""
    counts = s.value_counts()
    levels = sorted(counts.index, key=lambda v: (-int(counts[v]), str(v)))
    lookup = {v: i for i, v in enumerate(levels)}
    return s.map(lookup).to_numpy(float), levels


def _nearest_correlation(R: np.ndarray) -> np.ndarray:
    """R with negative eigenvalues clipped (a valid correlation matrix), unit diagonal."""
    R = np.nan_to_num((R + R.T) / 2.0)
    np.fill_diagonal(R, 1.0)
    w, V = np.linalg.eigh(R)
    R = (V * np.clip(w, 1e-8, None)) @ V.T
    d = np.sqrt(np.diag(R))
    return R / d[:, None] / d[None, :]


def _score_matrix(columns: list[np.ndarray]) -> np.ndarray:
    """Normal scores of each column (mid-ranks, so ties and 0/1 columns get tied scores)."""
    n = len(columns[0])
    out = np.empty((n, len(columns)))
    for j, x in enumerate(columns):
        out[:, j] = stats.norm.ppf(stats.rankdata(x) / (n + 1.0)) if np.ptp(x) > 0 else 0.0
    return out


def _score_correlation(columns: list[np.ndarray]) -> np.ndarray:
    Z = _score_matrix(columns)
    C = np.corrcoef(Z, rowvar=False) if Z.shape[1] > 1 else np.ones((1, 1))
    return np.nan_to_num(C)


def _quantile_map(U: np.ndarray, sorted_values: list[np.ndarray]) -> list[np.ndarray]:
    """Empirical quantile function (inverted CDF) of each column at the uniforms U: values of the data."""
    out = []
    for j, sx in enumerate(sorted_values):
        idx = np.minimum((U[:, j] * len(sx)).astype(int), len(sx) - 1)
        out.append(sx[idx])
    return out


def copula_reference(df: pd.DataFrame, categorical: list[str], n_draws: int, seed: int, calibration_rounds: int = 6) -> list[pd.DataFrame]:
    """``n_draws`` reference data sets from a Gaussian copula with the data's marginals and normal-score correlation.

    Discrete columns (0/1 comorbidities, categorical codes, values tied by imputation) attenuate the
    correlation of their normal scores relative to the latent Gaussian one, so the latent correlation
    is calibrated (NORTA-style, ``calibration_rounds`` fixed-point steps on a simulated sample) until
    the reference data reproduce the data's normal-score correlation; otherwise co-occurring
    comorbidities would look like structure the reference lacks.
    """
    full, _ = _completed(df, categorical)
    cols = list(df.columns)
    values, levels = [], {}
    for c in cols:
        if c in categorical:
            codes, lv = _category_codes(full[c])
            values.append(codes)
            levels[c] = lv
        else:
            values.append(full[c].to_numpy(float))
    sorted_values = [np.sort(v) for v in values]
    target = _score_correlation(values)
    R = _nearest_correlation(target)
    rng_cal = np.random.default_rng(sub_seed(seed, "copula_calibration"))
    m = 20_000  # calibration sample (cheap: ranks of m x columns)
    for _ in range(int(calibration_rounds)):
        U = stats.norm.cdf(rng_cal.standard_normal((m, len(cols))) @ np.linalg.cholesky(R).T)
        R = _nearest_correlation(R + (target - _score_correlation(_quantile_map(U, sorted_values))))
    L = np.linalg.cholesky(R)
    out = []
    for b in range(int(n_draws)):
        rng = np.random.default_rng(sub_seed(seed, "copula", b))
        U = stats.norm.cdf(rng.standard_normal((len(df), len(cols))) @ L.T)
        draw = {}
        for c, v in zip(cols, _quantile_map(U, sorted_values), strict=True):
            draw[c] = np.array([levels[c][int(i)] for i in v], dtype=object) if c in levels else v
        out.append(pd.DataFrame(draw, index=df.index))
    return out


def gaussian_reference(df: pd.DataFrame, categorical: list[str], n_draws: int, seed: int, skew_threshold: float = 1.0) -> list[pd.DataFrame]:
    """M3C's reference: multivariate Gaussian with the mean and covariance of the (logged, imputed) numeric columns."""
    from .prep import ClusterPreprocessor

    full, numeric = _completed(df, categorical)
    pre = ClusterPreprocessor(numeric, [], skew_threshold).fit(full[numeric])
    logged = pre._log(full[numeric].astype(float))
    mu, cov = logged.mean().to_numpy(), np.cov(logged.to_numpy(float), rowvar=False).reshape(len(numeric), len(numeric))
    cat_draws = copula_reference(df[categorical], categorical, n_draws, seed) if categorical else None
    out = []
    for b in range(int(n_draws)):
        rng = np.random.default_rng(sub_seed(seed, "gaussian", b))
        X = rng.multivariate_normal(mu, cov, size=len(df), method="eigh")
        frame = pd.DataFrame(X, columns=numeric, index=df.index)
        for c in pre.log_cols_:  # back to the data scale, so the preprocessing logs them again
            frame[c] = np.exp(frame[c])
        if cat_draws is not None:
            for c in categorical:
                frame[c] = cat_draws[b][c]
        out.append(frame[list(df.columns)])
    return out


#: reference generators: name -> f(df, categorical, n_draws, seed, skew_threshold) -> list of frames
NULL_REFERENCES = {
    "copula": lambda df, cat, n, seed, skew: copula_reference(df, cat, n, seed),
    "gaussian": lambda df, cat, n, seed, skew: gaussian_reference(df, cat, n, seed, skew),
}


# ----------------------------------------------------------------------------- test
def null_test(pac: dict, pac_null: dict, alpha: float = 0.05, pac_floor: float = 1e-3, sd_floor: float = 0.05) -> tuple[pd.DataFrame, dict]:
    """Per-k comparison of the data's PAC with the reference PACs, and the decision.

    Parameters
    ----------
    pac : {k: PAC of the data}
    pac_null : {k: list of PAC of the reference data sets (same length B >= 2 for every k)}

    Returns
    -------
    table : one row per k: ``pac_null_mean``, ``pac_null_sd`` (of the B reference PACs), ``rcsi``,
        ``null_t``, ``null_p`` (one-sided), ``null_p_adj`` (Bonferroni over the grid)
    decision : ``{"null_p": smallest adjusted p, "rcsi": RCSI of the chosen k (or the largest), "k": chosen
        k (1 when null_p >= alpha), "n_null": B}``
    """
    rows = []
    keys = list(pac)
    for k in keys:
        ref = np.asarray(pac_null[k], dtype=float)
        B = len(ref)
        if B < 2:
            raise ValueError("the null reference needs at least 2 reference data sets")
        L0 = np.log(np.maximum(ref, pac_floor))
        L = float(np.log(max(float(pac[k]), pac_floor))) if np.isfinite(pac[k]) else np.nan
        s = max(float(np.std(L0, ddof=1)), sd_floor)
        rcsi = float(L0.mean() - L)
        t = rcsi / (s * np.sqrt(1.0 + 1.0 / B))
        p = float(stats.t.sf(t, df=B - 1)) if np.isfinite(t) else 1.0
        rows.append(
            {
                "k": k,
                "pac_null_mean": float(ref.mean()),
                "pac_null_sd": float(ref.std(ddof=1)),
                "rcsi": rcsi,
                "null_t": float(t),
                "null_p": p,
            }
        )
    table = pd.DataFrame(rows)
    table["null_p_adj"] = np.minimum(1.0, table["null_p"] * len(table))
    global_p = float(table["null_p_adj"].min())
    sig = table[table["null_p_adj"] < alpha]
    if len(sig):
        best = sig.loc[sig["rcsi"].idxmax()]  # first (smallest) k among ties
        k_chosen, rcsi = best["k"], float(best["rcsi"])
    else:
        k_chosen, rcsi = 1, float(table["rcsi"].max())
    return table, {"null_p": global_p, "rcsi": rcsi, "k": k_chosen, "n_null": len(next(iter(pac_null.values())))}
