"""Choosing k: Monti consensus clustering, silhouette, BIC, and per-cluster bootstrap stability.

Consensus clustering (Monti et al., Machine Learning 2003): the stays of a fixed random panel (all
stays, or at most ``max_items``) are resampled ``n_resamples`` times without replacement
(``subsample`` fraction); each resample is preprocessed and clustered for every k; the consensus
matrix entry of a pair is the share of resamples containing both in which they share a cluster.
From it: the empirical CDF of the consensus values, the area under the CDF, its relative increase
with k (delta area) and the proportion of ambiguous clustering (PAC, Senbabaoglu et al. 2014): the
share of pairs with consensus in ``(u1, u2)`` (default 0.1, 0.9).  Low PAC = stable k.

Per-cluster stability (Hennig, CSDA 2007): the data are bootstrapped ``n_boot`` times, clustered at the
chosen k, and each original cluster gets the mean over bootstraps of its best Jaccard similarity with a
bootstrap cluster (on the stays drawn); > 0.75 stable, < 0.5 dissolved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_score

from .methods import fit_grid, relabel_by_size, sub_seed
from .nullref import NULL_REFERENCES, null_test
from .prep import gower, prepare

CDF_GRID = np.round(np.linspace(0, 1, 101), 2)


def consensus_matrices(
    method, df, categorical, ks, seed, n_resamples=20, subsample=0.8, max_items=1000, settings=None, skew_threshold=1.0, max_pairwise_items=None
):
    """Consensus matrices over a panel of stays.

    Returns ``panel`` (row positions of ``df``), ``{k: C_k}`` (panel x panel) and, for hdbscan,
    ``{None: C}``.  Each resample refits the preprocessing on its own stays and is clustered from a
    single start (``n_init`` of the method settings applies to the full-data fit and the bootstraps);
    ward and gower_pam on a resample larger than ``max_pairwise_items`` are fitted on a sub-panel (see
    :func:`fit_grid`).
    """
    rng = np.random.default_rng(sub_seed(seed, "consensus", method))
    # one start per resample (k-means, Gaussian mixture): each resample is itself a random restart (Monti et al.),
    # and the null reference repeats this procedure n_ref times
    settings = {**(settings or {}), "n_init": 1}
    n = len(df)
    panel = np.sort(rng.choice(n, size=min(n, int(max_items)), replace=False))
    m = len(panel)
    size = max(2, int(round(subsample * m)))
    keys = list(ks) if method != "hdbscan" else [None]
    together = {k: np.zeros((m, m), dtype=np.float32) for k in keys}
    sampled = np.zeros((m, m), dtype=np.float32)
    sub = df.iloc[panel]
    for r in range(int(n_resamples)):
        idx = np.sort(rng.choice(m, size=size, replace=False))
        data = prepare(sub.iloc[idx], categorical, skew_threshold)
        res = fit_grid(method, data, [k for k in keys if k is not None] or [2], sub_seed(seed, method, r), settings, max_pairwise_items=max_pairwise_items)
        ix = np.ix_(idx, idx)
        sampled[ix] += 1.0
        for k in keys:
            lab = res[k]
            H = np.zeros((len(idx), int(lab.max()) + 1 if lab.max() >= 0 else 1), dtype=np.float32)
            ok = lab >= 0  # HDBSCAN noise is never "together"
            H[np.where(ok)[0], lab[ok]] = 1.0
            together[k][ix] += H @ H.T
    with np.errstate(invalid="ignore", divide="ignore"):
        C = {k: np.where(sampled > 0, together[k] / np.maximum(sampled, 1), np.nan) for k in keys}
    return panel, C


def consensus_stats(C: np.ndarray, u1: float = 0.1, u2: float = 0.9) -> dict:
    """CDF on a fixed grid, area under the CDF and PAC of one consensus matrix (upper triangle)."""
    iu = np.triu_indices(C.shape[0], 1)
    v = C[iu]
    v = v[~np.isnan(v)]
    cdf = np.searchsorted(np.sort(v), CDF_GRID, side="right") / max(len(v), 1)
    area = float(np.sum(np.diff(CDF_GRID) * cdf[1:]))
    pac = float(np.mean((v > u1) & (v < u2))) if len(v) else np.nan
    return {"cdf": cdf, "area": area, "pac": pac}


def delta_area(areas: dict) -> dict:
    """Monti's relative increase of the CDF area from k-1 to k (k = first: the area itself)."""
    ks = sorted(areas)
    out = {ks[0]: areas[ks[0]]}
    for a, b in zip(ks[:-1], ks[1:]):
        out[b] = (areas[b] - areas[a]) / areas[a] if areas[a] > 0 else np.nan
    return out


def jaccard_stability(method, df, categorical, labels, k, seed, n_boot=20, settings=None, skew_threshold=1.0, D=None, max_pairwise_items=None):
    """Hennig's per-cluster bootstrap Jaccard: mean over bootstraps of each cluster's best match.

    ``D``: the Gower matrix of all rows of ``df`` (gower_pam), or None (then computed per bootstrap,
    on a panel of at most ``max_pairwise_items`` stays).
    """
    rng = np.random.default_rng(sub_seed(seed, "bootstrap", method, k))
    n = len(df)
    clusters = [c for c in np.unique(labels) if c >= 0]
    scores = {c: [] for c in clusters}
    for b in range(int(n_boot)):
        idx = np.unique(rng.integers(0, n, n))  # distinct stays drawn (duplicates add no information to a partition)
        data = prepare(df.iloc[idx], categorical, skew_threshold)
        Dsub = D[np.ix_(idx, idx)] if D is not None else None
        res = fit_grid(method, data, [k] if k else [2], sub_seed(seed, method, "boot", b), settings, D=Dsub, max_pairwise_items=max_pairwise_items)
        lab_b = res[k] if method != "hdbscan" else res[None]
        orig = labels[idx]
        for c in clusters:
            a = orig == c
            if not a.any():
                continue
            best = 0.0
            for c2 in np.unique(lab_b[lab_b >= 0]):
                bb = lab_b == c2
                best = max(best, float((a & bb).sum() / (a | bb).sum()))
            scores[c].append(best)
    return {c: (float(np.mean(v)) if v else np.nan, float(np.std(v)) if v else np.nan) for c, v in scores.items()}


def choose_k(table: pd.DataFrame, rule: str) -> int:
    """The chosen k from the per-k evidence table (columns k, pac, silhouette, bic, delta_area, [rcsi]).

    ``rcsi``: largest RCSI (M3C: stability relative to clusterless reference data; needs the column,
    else falls back to PAC); ``pac``: lowest PAC; ``silhouette``: highest silhouette; ``bic``: lowest
    BIC (methods without BIC fall back to PAC); ``consensus_vote``: the k chosen by most of PAC,
    silhouette and BIC (where available), ties broken by PAC.  Ties within a criterion go to the
    smaller k.  Only the rows given are candidates (the caller drops inadmissible or non-significant k).
    """
    t = table.sort_values("k")

    def arg(col, best):
        if col not in t.columns:
            return None
        s = t[["k", col]].dropna()
        if s.empty:
            return None
        v = s[col].round(6)
        target = v.min() if best == "min" else v.max()
        return int(s.loc[v == target, "k"].min())

    by_pac = arg("pac", "min")
    if rule == "rcsi":
        return arg("rcsi", "max") or by_pac
    if rule == "pac":
        return by_pac
    if rule == "silhouette":
        return arg("silhouette", "max") or by_pac
    if rule == "bic":
        return arg("bic", "min") or by_pac
    if rule == "consensus_vote":
        votes = [v for v in (by_pac, arg("silhouette", "max"), arg("bic", "min")) if v is not None]
        counts = pd.Series(votes).value_counts()
        top = counts[counts == counts.max()].index.tolist()
        return by_pac if by_pac in top else int(min(top))
    raise ValueError(f"unknown choose_k rule {rule!r}")


def min_size(n: int, cfg: dict) -> int:
    """Smallest admissible cluster: ``max(min_cluster_size, ceil(min_cluster_frac * n))`` stays."""
    return max(int(cfg.get("min_cluster_size", 10)), int(np.ceil(float(cfg.get("min_cluster_frac", 0.0)) * n)))


EMPTY_ROW = {"k": 1, "pac": np.nan, "area": np.nan, "silhouette": np.nan, "bic": np.nan, "noise_share": 0.0, "smallest": np.nan, "admissible": True}


def _single_cluster(n: int, reason: str) -> dict:
    """Result for a population too small to split: one cluster, no evidence."""
    table = pd.DataFrame([{**EMPTY_ROW, "smallest": n, "delta_area": np.nan, "chosen": True}])
    return {
        "table": table,
        "cdf": pd.DataFrame(columns=["k", "consensus", "cdf"]),
        "chosen_k": 1,
        "labels": np.zeros(n, dtype=int),
        "stability": {0: (np.nan, np.nan)},
        "consensus_panel": np.arange(n),
        "consensus_chosen": np.ones((n, n)),
        "n_fitted": n,
        "null": {"null_p": None, "rcsi": None, "n_null": 0, "reference": None},
        "min_size": None,
        "reason": reason,
    }


def run_method(method, df, categorical, cfg: dict, seed: int, threads: int = 1) -> dict:
    """See :func:`_run_method`; BLAS/OpenMP pools limited to ``threads`` (oversubscription is very slow)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads)):
        return _run_method(method, df, categorical, cfg, seed)


def null_pacs(method, df, categorical, keys, cfg: dict, seed: int, settings: dict, skew: float, cap: int) -> dict:
    """PAC at every key of the grid for each of ``cfg['null']['n_ref']`` clusterless reference data sets.

    The reference data are drawn by ``NULL_REFERENCES[cfg['null']['reference']]`` from ``df`` and go
    through exactly the consensus procedure of the data (same panel size, resamples, preprocessing).
    """
    cons, ncfg = cfg["consensus"], cfg["null_reference"]
    refs = NULL_REFERENCES[ncfg.get("generator", "copula")](df, categorical, int(ncfg["n_ref"]), sub_seed(seed, "null", method), skew)
    out = {key: [] for key in keys}
    grid = [k for k in keys if k is not None]
    for b, ref in enumerate(refs):
        _, Cb = consensus_matrices(
            method, ref, categorical, grid, sub_seed(seed, "null", method, b), cons["n_resamples"], cons["subsample"], cons["max_items"], settings, skew, cap
        )
        for key in keys:
            out[key].append(consensus_stats(Cb[key], cons["pac_lower"], cons["pac_upper"])["pac"])
    return out


def _run_method(method, df, categorical, cfg: dict, seed: int) -> dict:
    """Everything of one population x method: per-k evidence, null reference, chosen k, final labels, stability.

    ``cfg`` is the ``cluster`` config section.  Candidate k: 1, and every k of ``k_min..k_max`` whose
    full-data partition has no cluster under :func:`min_size` stays ("admissible").  With a null
    reference (``cfg['null']['n_ref'] >= 2``, see :mod:`.nullref`) a k > 1 is chosen only when its
    consensus is more stable than on clusterless reference data (Bonferroni-adjusted p < alpha), by
    ``cfg['choose_k']`` among those k; otherwise k = 1.  Without a null reference (``n_ref: 0``) k = 1 is
    chosen only when no k is admissible.

    Returns a dict with ``table`` (per-k evidence, a k = 1 row first), ``cdf`` (long CDF table),
    ``chosen_k``, ``labels`` (row order of ``df``), ``stability``, ``n_fitted`` (stays the final partition
    was fitted on: all, or for ward / gower_pam on more than ``cfg["max_pairwise_items"]`` stays that
    many, the others assigned to the nearest centroid / medoid), ``null`` (global p, RCSI, B,
    reference), ``min_size`` and ``reason`` (one sentence: why this k).
    """
    n = len(df)
    k_min = int(cfg["k_min"])
    msize = min_size(n, cfg)
    # small populations (e.g. few CS-treated stays in a demo database): no k with clusters of at least
    # min_size stays is tried; below k_min such clusters, one cluster is reported (k = 1)
    k_cap = n // msize
    if k_cap < k_min:
        return _single_cluster(n, f"one cluster: {n} stays are fewer than k_min x the minimum cluster size ({k_min} x {msize})")
    ks = list(range(k_min, min(int(cfg["k_max"]), k_cap) + 1))
    cons = cfg["consensus"]
    settings = cfg.get("methods", {}).get(method, {})
    skew = float(cfg.get("skew_threshold", 1.0))
    cap = int(cfg.get("max_pairwise_items", 4000))
    panel, C = consensus_matrices(
        method, df, categorical, ks, seed, cons["n_resamples"], cons["subsample"], cons["max_items"], settings, skew, cap
    )
    data = prepare(df, categorical, skew)
    # the full Gower matrix only when the whole population is fitted (n <= cap); otherwise fit_grid uses a panel
    D = gower(data.G, data.g_kind) if method == "gower_pam" and n <= cap else None
    full = fit_grid(method, data, ks, sub_seed(seed, method, "full"), settings, D=D, max_pairwise_items=cap)
    n_fitted = int(full.pop("_panel"))
    rows, cdf_rows = [], []
    rng = np.random.default_rng(sub_seed(seed, "silhouette", method))
    sil_idx = np.sort(rng.choice(len(df), size=min(len(df), int(cfg.get("silhouette_max_items", 2000))), replace=False))
    if method == "gower_pam" and D is None and len(sil_idx) > cap:
        # the Gower silhouette needs the matrix of its stays: at most max_pairwise_items of them
        sil_idx = np.sort(np.random.default_rng(sub_seed(seed, "silhouette_gower", method)).choice(sil_idx, size=cap, replace=False))
    # Gower matrix of the silhouette stays, when the full matrix is not available (computed once, for all k)
    D_sil = gower(data.G[sil_idx], data.g_kind) if method == "gower_pam" and D is None else None
    pacs = {}
    for key, Ck in C.items():
        st = consensus_stats(Ck, cons["pac_lower"], cons["pac_upper"])
        pacs[key] = st["pac"]
        lab = full[key] if key is not None else full[None]
        found = lab[lab >= 0]
        k_found = int(len(np.unique(found)))
        sizes = np.bincount(found) if len(found) else np.array([0])
        sizes = sizes[sizes > 0] if len(found) else sizes
        sil = np.nan
        ok = lab[sil_idx] >= 0
        if len(np.unique(lab[sil_idx][ok])) >= 2:
            if method == "gower_pam":
                sub = sil_idx[ok]
                Ds = D[np.ix_(sub, sub)] if D is not None else D_sil[np.ix_(ok, ok)]
                sil = float(silhouette_score(Ds, lab[sub], metric="precomputed"))
            else:
                sil = float(silhouette_score(data.X[sil_idx][ok], lab[sil_idx][ok]))
        rows.append(
            {
                "_key": key,
                "k": key if key is not None else k_found,
                "pac": st["pac"],
                "area": st["area"],
                "silhouette": sil,
                "bic": full.get("_bic", {}).get(key, np.nan),
                "noise_share": float(np.mean(lab < 0)),
                "smallest": int(sizes.min()),
                # every cluster of the full-data partition has at least min_size stays (and there are >= 2)
                "admissible": bool(k_found >= 2 and sizes.min() >= msize),
            }
        )
        for u, c in zip(CDF_GRID, st["cdf"]):
            cdf_rows.append({"k": rows[-1]["k"], "consensus": float(u), "cdf": float(c)})
    table = pd.DataFrame(rows)
    ncfg = cfg.get("null_reference", {})
    use_null = int(ncfg.get("n_ref", 0)) >= 2
    null_info = {"null_p": None, "rcsi": None, "n_null": 0, "reference": None}
    if use_null:
        pac_null = null_pacs(method, df, categorical, list(C), cfg, seed, settings, skew, cap)
        ntab, dec = null_test(pacs, pac_null, float(ncfg.get("alpha", 0.05)))
        table = table.merge(ntab.rename(columns={"k": "_key"}), on="_key", how="left") if method != "hdbscan" else pd.concat(
            [table, ntab.drop(columns="k")], axis=1
        )
        null_info = {"null_p": dec["null_p"], "rcsi": dec["rcsi"], "n_null": dec["n_null"], "reference": ncfg.get("generator", "copula")}
        significant = table["null_p_adj"] < float(ncfg.get("alpha", 0.05))
    else:
        significant = pd.Series(True, index=table.index)
    table = table.drop(columns="_key")
    if method != "hdbscan":
        da = delta_area(dict(zip(table["k"], table["area"])))
        table["delta_area"] = table["k"].map(da)
    else:
        table["delta_area"] = np.nan
    candidates = table[table["admissible"] & significant]
    alpha = float(ncfg.get("alpha", 0.05))
    if use_null and not significant.any():
        chosen, reason = 1, (
            f"one cluster: no k is more stable than on clusterless reference data ({ncfg.get('generator', 'copula')}, "
            f"B = {null_info['n_null']}; smallest Bonferroni-adjusted p = {null_info['null_p']:.3g} >= {alpha:g})"
        )
    elif candidates.empty:
        chosen, reason = 1, (
            f"one cluster: every k {'more stable than the reference ' if use_null else ''}has a cluster under the minimum size "
            f"({msize} stays = max(min_cluster_size, min_cluster_frac x n)) or fewer than 2 clusters"
        )
    elif method == "hdbscan":
        chosen = int(candidates["k"].iloc[0])
        reason = f"k = {chosen}: found by HDBSCAN" + (f", more stable than on reference data (adjusted p = {float(candidates['null_p_adj'].iloc[0]):.3g})" if use_null else "")
    else:
        chosen = choose_k(candidates, cfg["choose_k"])
        row = candidates[candidates["k"] == chosen].iloc[0]
        reason = f"k = {chosen}: chosen by {cfg['choose_k']} among admissible k" + (
            f" more stable than on reference data (adjusted p = {float(row['null_p_adj']):.3g}, RCSI = {float(row['rcsi']):.2f})" if use_null else ""
        )
    table = pd.concat([pd.DataFrame([EMPTY_ROW]), table], ignore_index=True).sort_values("k", kind="stable").reset_index(drop=True)
    table["chosen"] = table["k"] == chosen
    if chosen == 1:
        labels = np.zeros(n, dtype=int)
        stab = {0: (np.nan, np.nan)}
        cons_chosen = np.ones((len(panel), len(panel)))
    else:
        key = chosen if method != "hdbscan" else None
        labels = relabel_by_size(full[key])
        stab = jaccard_stability(method, df, categorical, labels, key, seed, cfg["stability"]["n_boot"], settings, skew, D, cap)
        cons_chosen = C[key]
    if use_null and null_info["rcsi"] is not None and chosen != 1:
        null_info["rcsi"] = float(table.loc[table["chosen"], "rcsi"].iloc[0])
    return {
        "table": table,
        "cdf": pd.DataFrame(cdf_rows),
        "chosen_k": int(chosen),
        "labels": labels,
        "stability": stab,
        "consensus_panel": panel,
        "consensus_chosen": cons_chosen,
        # stays the final partition was fitted on (ward / gower_pam above max_pairwise_items: a panel; the rest assigned)
        "n_fitted": n_fitted,
        "null": null_info,
        "min_size": msize,
        "reason": reason,
    }
