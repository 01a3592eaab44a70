"""Describe clusters: profiles, separating variables, outcome rates, CS vs no-CS matching, embeddings.

* profile: per cluster, the standardised mean of each numeric variable ((cluster mean - reference
  mean) / reference SD, reference = all stays given) and the proportion of each binary / categorical
  level;
* separating variables: standardised mean difference (SMD) of each variable between a cluster and the
  other stays, with percentile bootstrap CIs (stays resampled, cluster labels kept);
* matching: clusters of two solutions (CS-treated and untreated stays) are paired by the Hungarian
  algorithm on the correlation of their standardised profiles computed on a common reference
  (the pooled stays).  A pair whose similarity is under ``min_similarity`` is not a match: both
  clusters are reported unmatched (specific to their group), so the assignment never forces a
  partner on a cluster that resembles nothing in the other group;
* traits: a variable is a trait of a cluster when its standardised mean (against the pooled stays)
  is at least ``threshold`` in absolute value *and* the cluster mean differs from the pooled mean by
  a one-sample t-test (cluster SD, pooled mean taken as the reference value), with Benjamini-Hochberg
  FDR control across every cluster x variable of both groups.  A trait is "shared" when both members
  of a matched pair have it in the same direction, else specific ("cs only" / "no_cs only").  For a
  matched pair the two clusters are also compared directly (Welch t-test, BH across pairs x
  variables): a specific trait whose difference test is not significant is absence of evidence in
  the other group, not evidence of a difference.  The tests are named in the output table.
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
def match_clusters(profile_a: pd.DataFrame, profile_b: pd.DataFrame, min_similarity: float = -1.0) -> pd.DataFrame:
    """Hungarian matching of clusters (rows) of two profiles on the correlation of their columns.

    Pairs with similarity under ``min_similarity`` are split (except when each group is one cluster:
    the two groups are then paired as wholes); unmatched clusters (different k, or below the floor)
    get ``None`` as partner.  ``best_similarity`` is each cluster's highest
    similarity to any cluster of the other group (why it was or was not matched).
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
    # one cluster in each group: the two groups as wholes, paired whatever their similarity
    keep = [(i, j) for i, j in zip(r, c) if S[i, j] >= min_similarity or (len(A) == 1 and len(B) == 1)]
    rows = [{"cluster_a": int(profile_a.index[i]), "cluster_b": int(profile_b.index[j]), "similarity": float(S[i, j])} for i, j in keep]
    best_a = S.max(1) if S.size else np.full(len(A), np.nan)
    best_b = S.max(0) if S.size else np.full(len(B), np.nan)
    for i in sorted(set(range(len(A))) - {i for i, _ in keep}):
        rows.append({"cluster_a": int(profile_a.index[i]), "cluster_b": None, "similarity": None, "best_similarity": float(best_a[i])})
    for j in sorted(set(range(len(B))) - {j for _, j in keep}):
        rows.append({"cluster_a": None, "cluster_b": int(profile_b.index[j]), "similarity": None, "best_similarity": float(best_b[j])})
    out = pd.DataFrame(rows, columns=["cluster_a", "cluster_b", "similarity", "best_similarity"])
    out["matched"] = out["cluster_a"].notna() & out["cluster_b"].notna()
    return out.astype({"cluster_a": "Int64", "cluster_b": "Int64"}).sort_values(["cluster_a", "cluster_b"]).reset_index(drop=True)


def similarity_matrix(profile_a: pd.DataFrame, profile_b: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in profile_a.columns if c in profile_b.columns]
    A = np.nan_to_num(profile_a[cols].to_numpy(float))
    B = np.nan_to_num(profile_b[cols].to_numpy(float))
    S = np.corrcoef(np.vstack([A, B]))[: len(A), len(A):]
    return pd.DataFrame(S, index=profile_a.index, columns=profile_b.index)


TRAIT_TEST = "one-sample t-test of the cluster mean vs the pooled mean, Benjamini-Hochberg over clusters x variables of both groups"
DIFFERENCE_TEST = "Welch t-test between the matched clusters, Benjamini-Hochberg over matched pairs x variables"


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    ps = p[ok]
    order = np.argsort(ps)
    ranked = ps[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def trait_tests(groups: dict, reference: pd.DataFrame) -> pd.DataFrame:
    """One-sample t-test of every cluster x variable mean against the pooled mean, BH across all rows.

    ``groups``: ``{name: (M, labels)}`` (numeric matrix of the group's stays, their cluster labels);
    ``reference``: the pooled numeric matrix (its mean and SD define the standardised mean).
    Returns ``group, cluster, variable, std_mean, t, p, q``.
    """
    from scipy import stats

    mu, sd = reference.mean(), reference.std(ddof=0).replace(0, 1.0)
    rows = []
    for name, (M, labels) in groups.items():
        M = M.reindex(columns=reference.columns)
        for c in sorted(np.unique(labels[labels >= 0])):
            sub = M[labels == c]
            n = sub.notna().sum()
            m, s = sub.mean(), sub.std(ddof=1)
            for v in reference.columns:
                if n[v] < 2 or not np.isfinite(m[v]):
                    t, pv = np.nan, np.nan
                elif s[v] > 0:
                    t = float((m[v] - mu[v]) / (s[v] / np.sqrt(n[v])))
                    pv = float(2 * stats.t.sf(abs(t), df=int(n[v]) - 1))
                else:  # constant within the cluster (e.g. a comorbidity present in all): certain unless equal
                    t, pv = (np.nan, 1.0) if m[v] == mu[v] else (np.copysign(np.inf, m[v] - mu[v]), 0.0)
                rows.append({"group": name, "cluster": int(c), "variable": v, "std_mean": float((m[v] - mu[v]) / sd[v]), "t": t, "p": pv})
    out = pd.DataFrame(rows, columns=["group", "cluster", "variable", "std_mean", "t", "p"])
    out["q"] = bh(out["p"].to_numpy()) if len(out) else []
    return out


def difference_tests(matches: pd.DataFrame, a: tuple, b: tuple, columns) -> pd.DataFrame:
    """Welch t-test of each variable between the two clusters of every matched pair, BH across all rows.

    ``a``, ``b``: ``(M, labels)`` of the two groups.  Returns ``cluster_a, cluster_b, variable, p, q``.
    """
    from scipy import stats

    rows = []
    (Ma, la), (Mb, lb) = a, b
    for m in matches.itertuples():
        if pd.isna(m.cluster_a) or pd.isna(m.cluster_b):
            continue
        xa, xb = Ma.reindex(columns=columns)[la == int(m.cluster_a)], Mb.reindex(columns=columns)[lb == int(m.cluster_b)]
        for v in columns:
            u, w = xa[v].dropna().to_numpy(float), xb[v].dropna().to_numpy(float)
            pv = np.nan
            if len(u) >= 2 and len(w) >= 2:
                if u.std() == 0 and w.std() == 0:
                    pv = 1.0 if u[0] == w[0] else 0.0
                else:
                    pv = float(stats.ttest_ind(u, w, equal_var=False).pvalue)
            rows.append({"cluster_a": int(m.cluster_a), "cluster_b": int(m.cluster_b), "variable": v, "p": pv})
    out = pd.DataFrame(rows, columns=["cluster_a", "cluster_b", "variable", "p"])
    out["q"] = bh(out["p"].to_numpy()) if len(out) else []
    return out


def shared_and_specific(
    matches: pd.DataFrame, tests: pd.DataFrame, differences: pd.DataFrame, threshold: float, alpha: float = 0.05, names=("cs", "no_cs")
) -> pd.DataFrame:
    """Traits shared by matched clusters and traits found in one group only (multiplicity-controlled).

    ``tests``: :func:`trait_tests` (groups named ``names``); ``differences``: :func:`difference_tests`.
    A trait of a cluster: ``q < alpha`` and ``|std_mean| >= threshold``.  One row per (pair or unmatched
    cluster, variable) that is a trait of at least one member.
    """
    a_name, b_name = names
    t = tests.assign(trait=(tests["q"] < alpha) & (tests["std_mean"].abs() >= threshold))
    look = {(r.group, r.cluster, r.variable): r for r in t.itertuples()}
    diff = {(r.cluster_a, r.cluster_b, r.variable): r.q for r in differences.itertuples()}
    variables = list(dict.fromkeys(tests["variable"]))
    rows = []
    for m in matches.itertuples():
        ca = int(m.cluster_a) if pd.notna(m.cluster_a) else None
        cb = int(m.cluster_b) if pd.notna(m.cluster_b) else None
        for v in variables:
            ra, rb = look.get((a_name, ca, v)), look.get((b_name, cb, v))
            ta = ra is not None and bool(ra.trait)
            tb = rb is not None and bool(rb.trait)
            if not (ta or tb):
                continue
            da = ("high" if ra.std_mean > 0 else "low") if ta else None
            db_ = ("high" if rb.std_mean > 0 else "low") if tb else None
            if ta and tb and da == db_:
                where, direction = "shared", da
            elif ta and tb:  # opposite directions: a trait of each, specific to each
                where, direction = "opposite", f"{da} in {a_name}, {db_} in {b_name}"
            else:
                where, direction = (f"{a_name} only", da) if ta else (f"{b_name} only", db_)
            rows.append(
                {
                    f"cluster_{a_name}": ca,
                    f"cluster_{b_name}": cb,
                    "variable": v,
                    "direction": direction,
                    "found_in": where,
                    f"std_mean_{a_name}": float(ra.std_mean) if ra is not None else None,
                    f"std_mean_{b_name}": float(rb.std_mean) if rb is not None else None,
                    f"q_{a_name}": float(ra.q) if ra is not None else None,
                    f"q_{b_name}": float(rb.q) if rb is not None else None,
                    "q_difference": diff.get((ca, cb, v)) if ca is not None and cb is not None else None,
                    "trait_test": TRAIT_TEST,
                    "difference_test": DIFFERENCE_TEST if ca is not None and cb is not None else None,
                }
            )
    cols = [f"cluster_{a_name}", f"cluster_{b_name}", "variable", "direction", "found_in", f"std_mean_{a_name}", f"std_mean_{b_name}",
            f"q_{a_name}", f"q_{b_name}", "q_difference", "trait_test", "difference_test"]
    return pd.DataFrame(rows, columns=cols)


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
