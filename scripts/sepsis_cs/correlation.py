"""Correlation study: associations between stay features, redundancy groups, CS-group contrasts.

Measures (all in [-1, 1] or [0, 1]):

* numeric (and binary 0/1) pairs: Spearman's rho, computed as the pairwise-complete Pearson
  correlation of the per-variable average ranks;
* categorical pairs: Cramer's V (bias-uncorrected);
* numeric-categorical pairs: the correlation ratio eta (square root of the share of the
  numeric variable's variance explained by the categories).

Redundancy groups are connected components of the graph linking pairs with
``|association| >= threshold``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_PAIRS = 10  # fewer complete pairs -> association undefined (NaN)


def _ranks(df: pd.DataFrame) -> np.ndarray:
    return df.rank(method="average", na_option="keep").to_numpy(dtype=float)


def pairwise_pearson(a: np.ndarray, b: np.ndarray | None = None, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Pearson correlation of every column of ``a`` with every column of ``b`` over pairwise-complete rows."""
    b = a if b is None else b
    ma, mb = ~np.isnan(a), ~np.isnan(b)
    xa, xb = np.where(ma, a, 0.0), np.where(mb, b, 0.0)
    fa, fb = ma.astype(float), mb.astype(float)
    n = fa.T @ fb
    sa, sb = xa.T @ fb, fa.T @ xb
    saa, sbb = (xa**2).T @ fb, fa.T @ (xb**2)
    sab = xa.T @ xb
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / n
        va = saa - sa**2 / n
        vb = sbb - sb**2 / n
        r = cov / np.sqrt(va * vb)
    r[(n < min_pairs) | (va <= 1e-12) | (vb <= 1e-12)] = np.nan
    return np.clip(r, -1.0, 1.0)


def cramers_v(x: pd.Series, y: pd.Series) -> float:
    ok = x.notna() & y.notna()
    if ok.sum() < MIN_PAIRS:
        return np.nan
    tab = pd.crosstab(x[ok], y[ok]).to_numpy(dtype=float)
    if min(tab.shape) < 2:
        return np.nan
    n = tab.sum()
    expected = tab.sum(1, keepdims=True) * tab.sum(0, keepdims=True) / n
    chi2 = ((tab - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / (n * (min(tab.shape) - 1))))


def correlation_ratio(cat: pd.Series, num: pd.Series) -> float:
    ok = cat.notna() & num.notna()
    if ok.sum() < MIN_PAIRS:
        return np.nan
    v = num[ok].astype(float)
    total = ((v - v.mean()) ** 2).sum()
    if total <= 0:
        return np.nan
    g = v.groupby(cat[ok].astype(str))
    between = (g.count() * (g.mean() - v.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def correlation_ratios(cat: pd.Series, num: pd.DataFrame) -> np.ndarray:
    """Correlation ratio of one categorical variable with every numeric column (vectorised)."""
    okc = cat.notna().to_numpy()
    v = num.to_numpy(dtype=float)[okc]
    h = pd.get_dummies(cat[okc].astype(str)).to_numpy(dtype=float)
    m = ~np.isnan(v)
    x = np.where(m, v, 0.0)
    cnt_l = h.T @ m.astype(float)
    sum_l = h.T @ x
    n = m.sum(0).astype(float)
    tot = x.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        between = np.where(cnt_l > 0, sum_l**2 / np.where(cnt_l > 0, cnt_l, 1), 0).sum(0) - tot**2 / n
        total = (x**2).sum(0) - tot**2 / n
        eta = np.sqrt(np.clip(between / total, 0, 1))
    eta[(n < MIN_PAIRS) | ~(total > 1e-12)] = np.nan
    return eta


def association_matrix(df: pd.DataFrame, columns: list[str], categorical: list[str]) -> pd.DataFrame:
    """Symmetric matrix of associations (Spearman / Cramer's V / correlation ratio), NaN where undefined."""
    cat = [c for c in columns if c in set(categorical)]
    num = [c for c in columns if c not in set(cat)]
    out = pd.DataFrame(np.nan, index=columns, columns=columns)
    if num:
        r = pairwise_pearson(_ranks(df[num].astype(float)))
        out.loc[num, num] = r
    for i, a in enumerate(cat):
        for b in cat[i:]:
            v = 1.0 if a == b else cramers_v(df[a], df[b])
            out.loc[a, b] = out.loc[b, a] = v
        if num:
            eta = correlation_ratios(df[a], df[num])
            out.loc[a, num] = eta
            out.loc[num, a] = eta
    for c in columns:
        if df[c].notna().sum() >= MIN_PAIRS:
            out.loc[c, c] = 1.0
    return out


def redundant_groups(assoc: pd.DataFrame, threshold: float) -> list[list[str]]:
    """Connected components (size >= 2) of ``|association| >= threshold``, largest first."""
    names = list(assoc.index)
    a = np.abs(assoc.to_numpy(dtype=float))
    np.fill_diagonal(a, 0.0)
    adj = np.nan_to_num(a, nan=0.0) >= threshold
    seen = np.zeros(len(names), bool)
    groups = []
    for i in range(len(names)):
        if seen[i] or not adj[i].any():
            continue
        stack, comp = [i], []
        seen[i] = True
        while stack:
            j = stack.pop()
            comp.append(j)
            for k in np.flatnonzero(adj[j] & ~seen):
                seen[k] = True
                stack.append(k)
        groups.append(sorted(names[j] for j in comp))
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def top_pairs(assoc: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Pairs with ``|association| >= threshold`` (upper triangle), strongest first."""
    a = assoc.to_numpy(dtype=float)
    iu = np.triu_indices(len(assoc), k=1)
    vals = a[iu]
    keep = np.abs(np.nan_to_num(vals, nan=0.0)) >= threshold
    df = pd.DataFrame(
        {"feature_a": np.array(assoc.index)[iu[0][keep]], "feature_b": np.array(assoc.index)[iu[1][keep]], "association": vals[keep]}
    )
    return df.assign(_abs=df["association"].abs()).sort_values(["_abs", "feature_a", "feature_b"], ascending=[False, True, True]).drop(columns="_abs").reset_index(drop=True)


def group_contrast(df: pd.DataFrame, columns: list[str], categorical: list[str], group: pd.Series) -> dict[str, pd.DataFrame]:
    """Association matrices within CS (``group == 1``) and no-CS stays and their difference (CS minus no CS)."""
    cs = association_matrix(df[group.to_numpy() == 1], columns, categorical)
    no = association_matrix(df[group.to_numpy() == 0], columns, categorical)
    return {"cs": cs, "no_cs": no, "difference": cs - no}


def outcome_association(df: pd.DataFrame, columns: list[str], categorical: list[str], outcome: pd.Series, group: pd.Series) -> pd.DataFrame:
    """Association of each variable with the (binary) outcome, overall and within each CS group."""
    rows = []
    y_all = outcome.astype(float)
    for label, mask in (("all", np.ones(len(df), bool)), ("cs", group.to_numpy() == 1), ("no_cs", group.to_numpy() == 0)):
        sub, y = df[mask], y_all[mask]
        num = [c for c in columns if c not in set(categorical)]
        if num:
            r = pairwise_pearson(_ranks(sub[num].astype(float)), _ranks(y.to_frame()))[:, 0]
        else:
            r = np.array([])
        vals = dict(zip(num, r))
        for c in columns:
            if c in set(categorical):
                vals[c] = correlation_ratio(sub[c], y)
        n_pairs = sub[columns].notna().to_numpy().T.astype(float) @ y.notna().to_numpy().astype(float)
        for c, n in zip(columns, n_pairs):
            rows.append({"feature": c, "group": label, "association": vals[c], "n": int(n)})
    long = pd.DataFrame(rows)
    wide = long.pivot(index="feature", columns="group", values="association").reindex(columns)
    wide = wide.reindex(columns=["all", "cs", "no_cs"])
    wide["difference"] = wide["cs"] - wide["no_cs"]
    wide.columns = ["assoc_all", "assoc_cs", "assoc_no_cs", "difference_cs_minus_no_cs"]
    return wide.reset_index(names="feature")


# ----------------------------------------------------------------------------- figures
def clustered_heatmap(assoc: pd.DataFrame, labels: dict[str, str], title: str):
    """Clustered heatmap (average linkage on 1 - |association|); returns (figure, clustered variable order)."""
    import seaborn as sns
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    from .plotting import set_style

    set_style()
    a = assoc.copy()
    keep = a.notna().sum() > 1
    a = a.loc[keep, keep]
    d = 1 - np.abs(a.fillna(0.0).to_numpy())
    np.fill_diagonal(d, 0.0)
    d = (d + d.T) / 2
    size = max(6.0, 0.22 * len(a) + 3)
    plot = a.rename(index=labels, columns=labels)
    if len(a) >= 3:
        z = linkage(squareform(d, checks=False), method="average")
        g = sns.clustermap(plot.fillna(0.0), row_linkage=z, col_linkage=z, cmap="vlag", vmin=-1, vmax=1, figsize=(size, size),
                           xticklabels=True, yticklabels=True, cbar_kws={"label": "association"})
    else:
        g = sns.clustermap(plot.fillna(0.0), row_cluster=False, col_cluster=False, cmap="vlag", vmin=-1, vmax=1, figsize=(size, size))
    g.ax_heatmap.tick_params(labelsize=7)
    g.figure.suptitle(title, y=1.01)
    order = list(a.index) if g.dendrogram_row is None else [list(a.index)[i] for i in g.dendrogram_row.reordered_ind]
    return g.figure, order


def difference_heatmap(contrast: dict[str, pd.DataFrame], labels: dict[str, str], title: str, order: list[str] | None = None):
    """Three panels: associations within CS, within no CS, and the difference (same variable order)."""
    import matplotlib.pyplot as plt

    from .plotting import set_style

    set_style()
    names = order or list(contrast["difference"].index)
    n = len(names)
    size = max(4.5, 0.16 * n + 2)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size + 0.8), sharey=True, layout="constrained")
    cmap = plt.get_cmap("vlag").copy()
    cmap.set_bad("lightgrey")
    for ax, key, name in zip(axes, ("cs", "no_cs", "difference"), ("CS", "no CS", "CS minus no CS")):
        m = contrast[key].loc[names, names].to_numpy(dtype=float)
        im = ax.imshow(m, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks(range(n), [labels.get(c, c) for c in names], rotation=90, fontsize=5)
        ax.set_yticks(range(n), [labels.get(c, c) for c in names], fontsize=5)
        ax.grid(False)
    fig.colorbar(im, ax=axes, shrink=0.6, label="association (grey = undefined)")
    fig.suptitle(title)
    return fig


def outcome_association_plot(table: pd.DataFrame, labels: dict[str, str], top: int, title: str):
    from .plotting import CS_COLOURS, figure

    t = table.dropna(subset=["assoc_all"]).copy()
    t = t.reindex(t["assoc_all"].abs().sort_values(ascending=False).index).head(top).iloc[::-1]
    fig, ax = figure(7, max(3.0, 0.28 * len(t) + 1))
    y = np.arange(len(t))
    ax.axvline(0, color="grey", lw=0.8)
    ax.scatter(t["assoc_cs"], y, color=CS_COLOURS["CS"], label="CS", zorder=3)
    ax.scatter(t["assoc_no_cs"], y, color=CS_COLOURS["no CS"], label="no CS", zorder=3)
    ax.scatter(t["assoc_all"], y, color="black", marker="|", s=120, label="all", zorder=3)
    ax.set_yticks(y, [labels.get(f, f) for f in t["feature"]], fontsize=7)
    ax.set_xlabel("association with outcome (Spearman rho / correlation ratio)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    return fig
