"""Describe clusters: profiles, separating variables, outcome rates, CS vs no-CS matching, embeddings.

* profile: per cluster, the standardised mean of each numeric variable ((cluster mean - reference
  mean) / reference SD, reference = all stays given) and the proportion of each binary / categorical
  level;
* separating variables: standardised mean difference (SMD) of each variable between a cluster and the
  other stays, with percentile bootstrap CIs (stays resampled, cluster labels kept);
* matching: clusters of two solutions (CS-treated and untreated stays) are paired by the Hungarian
  algorithm on the correlation of their standardised profiles computed on a common reference
  (the pooled stays); traits (|standardised mean| >= threshold, or proportion differing from the
  pooled proportion by >= threshold SDs) shared by both members of a pair, or found in one only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..io import suppress_count


def numeric_matrix(df: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Numeric view for description: numeric columns as is, categoricals as one 0/1 column per level."""
    out = df.drop(columns=categorical).astype(float)
    for c in categorical:
        s = df[c].astype(object)
        for lev in sorted(s.dropna().astype(str).unique()):
            out[f"{c}={lev}"] = np.where(s.isna(), np.nan, (s.astype(str) == lev).astype(float))
    return out


def standardised_profile(M: pd.DataFrame, labels: np.ndarray, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cluster x variable table of standardised means against ``reference`` (default: ``M``)."""
    ref = M if reference is None else reference
    mu, sd = ref.mean(), ref.std(ddof=0).replace(0, 1.0)
    rows = {}
    for c in sorted(np.unique(labels[labels >= 0])):
        rows[int(c)] = (M[labels == c].mean() - mu) / sd
    return pd.DataFrame(rows).T.rename_axis("cluster")


def raw_profile(M: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    rows = {int(c): M[labels == c].mean() for c in sorted(np.unique(labels[labels >= 0]))}
    return pd.DataFrame(rows).T.rename_axis("cluster")


def _smd(x: np.ndarray, in_c: np.ndarray) -> np.ndarray:
    """SMD (cluster vs rest) per column of x (rows with NaN ignored per column)."""
    a, b = x[in_c], x[~in_c]
    ma, mb = np.nanmean(a, 0), np.nanmean(b, 0)
    va, vb = np.nanvar(a, 0), np.nanvar(b, 0)
    sd = np.sqrt((va + vb) / 2)
    return np.where(sd > 0, (ma - mb) / np.where(sd > 0, sd, 1), 0.0)


def separating_variables(M: pd.DataFrame, labels: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """SMD of every variable, each cluster vs the rest, with percentile bootstrap CIs; sorted by |SMD|."""
    rng = np.random.default_rng(seed)
    x = M.to_numpy(float)
    n = len(x)
    rows = []
    clusters = sorted(np.unique(labels[labels >= 0]))
    boots = {c: [] for c in clusters}
    for _ in range(int(n_boot)):
        idx = rng.integers(0, n, n)
        xb, lb = x[idx], labels[idx]
        for c in clusters:
            if 0 < (lb == c).sum() < n:
                boots[c].append(_smd(xb, lb == c))
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    for c in clusters:
        est = _smd(x, labels == c)
        B = np.array(boots[c]) if boots[c] else np.full((1, x.shape[1]), np.nan)
        lo, hi = np.nanquantile(B, lo_q, axis=0), np.nanquantile(B, hi_q, axis=0)
        for j, v in enumerate(M.columns):
            rows.append({"cluster": int(c), "variable": v, "smd": est[j], "ci_low": lo[j], "ci_high": hi[j]})
    out = pd.DataFrame(rows)
    out["abs_smd"] = out["smd"].abs()
    out = out.sort_values(["cluster", "abs_smd", "variable"], ascending=[True, False, True]).drop(columns="abs_smd")
    out["rank"] = out.groupby("cluster").cumcount() + 1
    return out.reset_index(drop=True)


def outcome_rates(outcomes: pd.DataFrame, labels: np.ndarray, min_cell_count: int) -> pd.DataFrame:
    """Stays, events and rate per cluster and binary outcome; counts under min_cell_count suppressed."""
    rows = []
    for c in sorted(np.unique(labels[labels >= 0])):
        sub = outcomes[labels == c]
        for col in outcomes.columns:
            known = sub[col].dropna()
            n, e = int(len(known)), int(known.sum())
            ok = suppress_count(n, min_cell_count) is not None and suppress_count(e, min_cell_count) is not None and suppress_count(n - e, min_cell_count) is not None
            rows.append(
                {
                    "cluster": int(c),
                    "outcome": col,
                    "n": suppress_count(n, min_cell_count),
                    "events": e if ok else None,
                    "rate": round(e / n, 4) if ok and n else None,
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- CS vs no-CS
def match_clusters(profile_a: pd.DataFrame, profile_b: pd.DataFrame) -> pd.DataFrame:
    """Hungarian matching of clusters (rows) of two profiles on the correlation of their columns.

    Unmatched clusters (different k) get ``None`` as partner.
    """
    cols = [c for c in profile_a.columns if c in profile_b.columns]
    A, B = profile_a[cols].to_numpy(float), profile_b[cols].to_numpy(float)
    A = np.nan_to_num(A)
    B = np.nan_to_num(B)
    Ac = A - A.mean(1, keepdims=True)
    Bc = B - B.mean(1, keepdims=True)
    denom = np.linalg.norm(Ac, axis=1)[:, None] * np.linalg.norm(Bc, axis=1)[None, :]
    S = np.where(denom > 0, Ac @ Bc.T / np.where(denom > 0, denom, 1), 0.0)
    r, c = linear_sum_assignment(-S)
    rows = [{"cluster_a": int(profile_a.index[i]), "cluster_b": int(profile_b.index[j]), "similarity": float(S[i, j])} for i, j in zip(r, c)]
    for i in set(range(len(A))) - set(r):
        rows.append({"cluster_a": int(profile_a.index[i]), "cluster_b": None, "similarity": None})
    for j in set(range(len(B))) - set(c):
        rows.append({"cluster_a": None, "cluster_b": int(profile_b.index[j]), "similarity": None})
    out = pd.DataFrame(rows)
    return out.astype({"cluster_a": "Int64", "cluster_b": "Int64"}).sort_values(["cluster_a", "cluster_b"]).reset_index(drop=True)


def similarity_matrix(profile_a: pd.DataFrame, profile_b: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in profile_a.columns if c in profile_b.columns]
    A = np.nan_to_num(profile_a[cols].to_numpy(float))
    B = np.nan_to_num(profile_b[cols].to_numpy(float))
    S = np.corrcoef(np.vstack([A, B]))[: len(A), len(A):]
    return pd.DataFrame(S, index=profile_a.index, columns=profile_b.index)


def traits(profile: pd.DataFrame, threshold: float) -> dict[int, set]:
    """Per cluster, the set of (variable, 'high' | 'low') with |standardised mean| >= threshold."""
    out = {}
    for c, row in profile.iterrows():
        out[int(c)] = {(v, "high" if x > 0 else "low") for v, x in row.items() if pd.notna(x) and abs(x) >= threshold}
    return out


def shared_and_specific(matches: pd.DataFrame, profile_a: pd.DataFrame, profile_b: pd.DataFrame, threshold: float, names=("cs", "no_cs")) -> pd.DataFrame:
    """Traits shared by matched clusters and traits found in one group only."""
    ta, tb = traits(profile_a, threshold), traits(profile_b, threshold)
    rows = []
    for _, m in matches.iterrows():
        a = ta.get(int(m.cluster_a), set()) if pd.notna(m.cluster_a) else set()
        b = tb.get(int(m.cluster_b), set()) if pd.notna(m.cluster_b) else set()
        for var, direction in sorted(a | b):
            where = "shared" if (var, direction) in a and (var, direction) in b else (f"{names[0]} only" if (var, direction) in a else f"{names[1]} only")
            rows.append(
                {
                    f"cluster_{names[0]}": m.cluster_a,
                    f"cluster_{names[1]}": m.cluster_b,
                    "variable": var,
                    "direction": direction,
                    "found_in": where,
                    f"std_mean_{names[0]}": float(profile_a.loc[int(m.cluster_a), var]) if pd.notna(m.cluster_a) else None,
                    f"std_mean_{names[1]}": float(profile_b.loc[int(m.cluster_b), var]) if pd.notna(m.cluster_b) and var in profile_b.columns else None,
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- embedding
def embeddings(X: np.ndarray, seed: int, tsne_max_items: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA (all rows) and t-SNE (a random subset of at most tsne_max_items rows) coordinates."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pca = PCA(n_components=min(2, *X.shape), random_state=seed).fit_transform(X)
    if pca.shape[1] < 2:
        pca = np.column_stack([pca, np.zeros(len(pca))])
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(len(X), int(tsne_max_items)), replace=False))
    if len(idx) < 10:  # t-SNE needs perplexity < n; too few stays: show the PCA coordinates
        return pca, pca[idx], idx
    perplexity = float(min(30, max(2, (len(idx) - 1) // 4)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500).fit_transform(X[idx])
    return pca, tsne, idx


def _variable_label(name: str, dictionary) -> str:
    """``lactate__mean_0_24`` -> ``Lactate (mean 0-24 h)``; static names -> their dictionary label."""
    base, _, stat = name.partition("__")
    label = dictionary[base].label if base in dictionary else base
    if stat:
        what, _, window = stat.partition("_")
        window = window.replace("m", "-").replace("_", " to ")
        return f"{label} ({what}, {window} h)"
    return label


def describe_clusters(profile, outcomes, dictionary, outcome: str, min_cell_count: int, top: int = 3) -> dict:
    """One line per cluster: size, outcome rate and the most distinctive traits.

    ``profile``: ``cluster, variable, std_mean`` (standardised mean of each variable in the cluster);
    ``outcomes``: ``cluster, outcome, n, events``.  Sizes and rates are withheld when a count is
    under ``min_cell_count``.
    """
    import polars as pl

    total = outcomes.filter(pl.col("outcome") == outcome)["n"].drop_nulls().sum()
    out = {}
    for cl in sorted(profile["cluster"].unique().to_list()):
        p = profile.filter((pl.col("cluster") == cl) & pl.col("std_mean").is_not_null() & pl.col("std_mean").is_not_nan())
        p = p.with_columns(pl.col("std_mean").abs().alias("_a"))
        p = p.sort(["_a", "variable"], descending=[True, False]).head(top)
        traits = ", ".join(
            f"{'high' if r['std_mean'] > 0 else 'low'} {_variable_label(r['variable'], dictionary).lower()}" for r in p.iter_rows(named=True)
        )
        o = outcomes.filter((pl.col("cluster") == cl) & (pl.col("outcome") == outcome))
        n, events = (o["n"][0], o["events"][0]) if o.height else (None, None)
        if n is not None and events is not None and total and n >= min_cell_count and min(events, n - events) >= min_cell_count:
            size = f"{100 * n / total:.0f}% of stays, {outcome.replace('_', ' ')} {100 * events / n:.0f}%"
        else:
            size = "small cluster (counts suppressed)"
        out[str(cl)] = f"{size}; {traits}"
    return out
