"""Trajectory clustering of the hourly data after time zero.

Each stay is described by the mean of each chosen variable in consecutive bins (default 6 h) from
time zero to ``end_h``; a bin without data takes the last observed bin (carried forward; stays that
left the ICU keep their last value), then the first observed bin (carried backward), then the
population median.  Per-variable z-scores (over all bins of a variable, so levels and slopes both
count) are clustered by k-means with k chosen by silhouette; the result is cross-tabulated with the
static clusters (counts suppressed under min_cell_count; ARI and Cramer's V reported).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
from scipy.stats import chi2_contingency
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from ..io import suppress_count
from .methods import relabel_by_size


def trajectory_bin_h(bin_h: int, resolution: str = "hourly") -> int:
    """Bin width: the configured one, at least a day for daily data (one value a day)."""
    return max(int(bin_h), 24) if resolution == "daily" else int(bin_h)


def trajectory_matrix(ts: pl.DataFrame, stay_ids: list[str], variables: list[str], bin_h: int, end_h: int) -> tuple[np.ndarray, list[str]]:
    """Stays x (variable, bin) matrix of bin means, gaps filled as described in the module doc."""
    nb = int(np.ceil(end_h / bin_h))
    binned = (
        ts.filter(pl.col("variable").is_in(variables) & (pl.col("hour") >= 0) & (pl.col("hour") < nb * bin_h))
        .with_columns((pl.col("hour") // bin_h).alias("bin"))
        .group_by("stay_id", "variable", "bin")
        .agg(pl.col("value").mean())
    )
    index = {s: i for i, s in enumerate(stay_ids)}
    blocks, names = [], []
    for v in variables:
        M = np.full((len(stay_ids), nb), np.nan)
        sub = binned.filter(pl.col("variable") == v)
        rows = np.array([index.get(s, -1) for s in sub["stay_id"].to_list()], dtype=int)
        ok = rows >= 0
        M[rows[ok], sub["bin"].to_numpy()[ok].astype(int)] = sub["value"].to_numpy()[ok]
        M = pd.DataFrame(M).ffill(axis=1).bfill(axis=1).to_numpy()
        med = np.nanmedian(M) if np.isfinite(M).any() else 0.0
        M = np.where(np.isnan(M), med, M)
        blocks.append(M)
        names += [f"{v}__bin{b * bin_h}_{(b + 1) * bin_h}" for b in range(nb)]
    return np.hstack(blocks), names


def standardise_blocks(T: np.ndarray, n_vars: int) -> np.ndarray:
    nb = T.shape[1] // n_vars
    out = T.copy()
    for i in range(n_vars):
        blk = out[:, i * nb : (i + 1) * nb]
        sd = blk.std()
        out[:, i * nb : (i + 1) * nb] = (blk - blk.mean()) / (sd if sd > 0 else 1.0)
    return out


def cluster_trajectories(Z: np.ndarray, ks, seed: int, sil_max_items: int = 2000) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(Z), size=min(len(Z), sil_max_items), replace=False))
    rows, fits = [], {}
    for k in ks:
        lab = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(Z)
        fits[k] = lab
        rows.append({"k": k, "silhouette": float(silhouette_score(Z[idx], lab[idx])) if len(np.unique(lab[idx])) > 1 else np.nan})
    table = pd.DataFrame(rows)
    best = int(table.sort_values(["silhouette", "k"], ascending=[False, True]).iloc[0]["k"])
    table["chosen"] = table["k"] == best
    return relabel_by_size(fits[best]), table


def crosstab(static: np.ndarray, traj: np.ndarray, min_cell_count: int) -> tuple[pd.DataFrame, dict]:
    ct = pd.crosstab(pd.Series(static, name="static_cluster"), pd.Series(traj, name="trajectory_cluster"))
    chi2 = chi2_contingency(ct.to_numpy())[0] if min(ct.shape) > 1 else np.nan
    n = ct.to_numpy().sum()
    v = float(np.sqrt(chi2 / (n * (min(ct.shape) - 1)))) if min(ct.shape) > 1 else np.nan
    long = ct.stack().rename("n").reset_index()
    long["n"] = pd.array([suppress_count(x, min_cell_count) for x in long["n"]], dtype="Int64")
    return long, {"ari_static_vs_trajectory": float(adjusted_rand_score(static, traj)), "cramers_v_static_vs_trajectory": v}
