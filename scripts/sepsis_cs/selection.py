"""Variable selection for a binary target (the outcome, or CS assignment).

Three complementary methods, then a consensus and a redundancy step:

1. **Univariate filter**: Mann-Whitney U (numeric, binary) or chi-square (categorical) test
   of each candidate against the target on complete cases; Benjamini-Hochberg q-values.
2. **Stability selection** (Meinshausen & Buehlmann 2010): L1 (or elastic-net) logistic
   regression on ``n_subsamples`` patient-level half-samples at one penalty chosen so that
   about ``q`` features enter per fit; a feature's selection frequency is the share of
   half-samples where any of its coefficients (value, missingness indicator, one-hot level)
   is non-zero.  The bound on the expected number of false selections,
   ``q**2 / ((2 * threshold - 1) * p)``, is reported.  Imputation and scaling are
   unsupervised and fitted once on all stays (no held-out evaluation happens here).
3. **Permutation importance** of a HistGradientBoosting classifier, out of fold: the model
   is fitted on the training folds (patient-level), each feature is permuted in the held-out
   fold and the drop in ROC AUC recorded (mean over folds x repeats).

Consensus rank = geometric mean of the three ranks (rank product).  A feature is *selected* when at least
``min_votes`` methods retain it (q < ``fdr``; frequency >= ``stability_threshold``;
importance significantly above zero).  Redundancy: going down the consensus ranking, a
selected feature is dropped when its absolute association with a better-ranked kept feature
is at least ``redundancy_threshold`` (association matrix of the correlation study).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .analysis import patient_folds, sub_seed


@dataclass
class SelectionSettings:
    fdr: float = 0.05
    n_subsamples: int = 30
    q: int = 20
    stability_threshold: float = 0.6
    l1_ratio: float = 1.0
    perm_folds: int = 3
    perm_repeats: int = 1
    tree_max_iter: int = 50
    min_votes: int = 2
    redundancy_threshold: float = 0.8
    max_selected: int = 20
    min_selected: int = 3
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg: dict, seed: int) -> "SelectionSettings":
        s = cfg.get("selection", {}) if cfg else {}
        kw = {k: s[k] for k in ("fdr", "n_subsamples", "q", "stability_threshold", "l1_ratio", "perm_folds", "perm_repeats",
                                "tree_max_iter", "min_votes", "redundancy_threshold", "max_selected", "min_selected") if k in s}
        return cls(seed=int(seed), **kw)


# ----------------------------------------------------------------------------- helpers
def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN, not counted in m)."""
    p = np.asarray(p, dtype=float)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = ok.sum()
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="stable")
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def univariate_tests(X: pd.DataFrame, y: np.ndarray, categorical: list[str]) -> pd.DataFrame:
    """Per-feature test of association with a binary target; effect = AUC - 0.5 (numeric) or Cramer's V."""
    rows = []
    y = np.asarray(y).astype(int)
    for c in X.columns:
        s = X[c]
        ok = s.notna().to_numpy()
        p, eff = np.nan, np.nan
        if c in categorical:
            tab = pd.crosstab(s[ok], y[ok])
            if tab.shape[0] >= 2 and tab.shape[1] == 2:
                chi2, p, _, _ = stats.chi2_contingency(tab.to_numpy(), correction=False)
                eff = np.sqrt(chi2 / tab.to_numpy().sum())
        else:
            v = s.to_numpy(dtype=float)
            a, b = v[ok & (y == 1)], v[ok & (y == 0)]
            if len(a) >= 2 and len(b) >= 2 and np.ptp(v[ok]) > 0:
                u, p = stats.mannwhitneyu(a, b, alternative="two-sided")
                eff = u / (len(a) * len(b)) - 0.5
        rows.append({"feature": c, "p_value": p, "effect": eff, "n": int(ok.sum())})
    out = pd.DataFrame(rows)
    out["q_value"] = bh_qvalues(out["p_value"].to_numpy())
    return out


def _source_map(names_out: list[str], columns: list[str], categorical: list[str]) -> np.ndarray:
    """Index of the original feature of every preprocessed column (value, indicator, one-hot)."""
    idx = {c: i for i, c in enumerate(columns)}
    src = []
    for n in names_out:
        if n in idx:
            src.append(idx[n])
        elif n.startswith("missingindicator_") and n[len("missingindicator_"):] in idx:
            src.append(idx[n[len("missingindicator_"):]])
        else:
            cands = [c for c in categorical if n.startswith(c + "_")]
            src.append(idx[max(cands, key=len)] if cands else -1)
    return np.array(src)


def _l1_model(C: float, l1_ratio: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    if l1_ratio >= 1.0:
        return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", max_iter=500, random_state=seed)
    return LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=2000, tol=1e-3, random_state=seed)


def stability_selection(X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, categorical: list[str], s: SelectionSettings) -> tuple[pd.DataFrame, dict]:
    """Selection frequency of each feature over patient-level half-samples (see module docstring)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from .preprocess import make_preprocessor

    columns = list(X.columns)
    num = [c for c in columns if c not in categorical]
    cat = [c for c in columns if c in categorical]
    pre = make_preprocessor(num, cat)
    Z = pre.fit_transform(X)
    src = _source_map(list(pre.get_feature_names_out()), columns, cat)
    p = len(columns)
    q = int(min(s.q, max(1, p // 2)))

    def n_selected(coef) -> int:
        return len(np.unique(src[(np.abs(coef) > 1e-10) & (src >= 0)]))

    rng = np.random.default_rng(sub_seed(s.seed, "stability"))
    ug = np.unique(groups)
    # penalty: bisection on log C so that a fit on a half-sample selects about q features
    half0 = np.isin(groups, rng.choice(ug, size=len(ug) // 2, replace=False))
    lo, hi = -4.0, 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(8):
            mid = (lo + hi) / 2
            m = _l1_model(10**mid, s.l1_ratio, s.seed).fit(Z[half0], y[half0])
            if n_selected(m.coef_[0]) > q:
                hi = mid
            else:
                lo = mid
        C = 10**lo
        freq = np.zeros(p)
        coef_sum = np.zeros(p)
        sizes = []
        for b in range(s.n_subsamples):
            half = np.isin(groups, rng.choice(ug, size=len(ug) // 2, replace=False))
            if len(np.unique(y[half])) < 2:
                continue
            coef = _l1_model(C, s.l1_ratio, s.seed + b).fit(Z[half], y[half]).coef_[0]
            hit = np.zeros(p, bool)
            nz = (np.abs(coef) > 1e-10) & (src >= 0)
            hit[np.unique(src[nz])] = True
            freq += hit
            np.add.at(coef_sum, src[src >= 0], np.abs(coef[src >= 0]))
            sizes.append(hit.sum())
    n_fits = max(len(sizes), 1)
    out = pd.DataFrame({"feature": columns, "stability_freq": freq / n_fits, "mean_abs_coef": coef_sum / n_fits})
    q_obs = float(np.mean(sizes)) if sizes else 0.0
    thr = s.stability_threshold
    pfer = q_obs**2 / ((2 * thr - 1) * p) if thr > 0.5 and p else np.nan
    return out, {"C": C, "q_mean": q_obs, "pfer_bound": pfer, "n_fits": len(sizes)}


def _encode_for_tree(X: pd.DataFrame, categorical: list[str]) -> np.ndarray:
    """Numeric matrix for the tree model; categorical levels become ordinal codes (NaN = missing).

    Ordinal codes (rather than native categorical splits) keep prediction free of the
    per-call column transformer, which dominates the cost of permutation importance.
    """
    arr = np.empty(X.shape, dtype=float)
    for j, c in enumerate(X.columns):
        if c in categorical:
            codes = pd.Categorical(X[c].astype("string")).codes.astype(float)
            codes[codes < 0] = np.nan
            arr[:, j] = codes
        else:
            arr[:, j] = X[c].to_numpy(dtype=float)
    return arr


def _used_features(model, n_features: int) -> np.ndarray:
    """Features used in at least one split (others have exactly zero permutation importance)."""
    try:
        used = np.zeros(n_features, bool)
        for iteration in model._predictors:
            for pred in iteration:
                nodes = pred.nodes
                used[nodes["feature_idx"][~nodes["is_leaf"].astype(bool)]] = True
        return used
    except Exception:  # noqa: BLE001 - private structure changed: evaluate every feature
        return np.ones(n_features, bool)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    r = stats.rankdata(score)
    n1 = y.sum()
    n0 = len(y) - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def permutation_importance_oof(X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, categorical: list[str],
                               s: SelectionSettings) -> tuple[pd.DataFrame, dict]:
    """Out-of-fold permutation importance (drop in ROC AUC) of a HistGradientBoosting classifier."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    arr = _encode_for_tree(X, categorical)
    p = arr.shape[1]
    folds, k = patient_folds(y, groups, s.perm_folds, sub_seed(s.seed, "perm_folds"))
    drops: list[np.ndarray] = []
    aucs = []
    rng = np.random.default_rng(sub_seed(s.seed, "permute"))
    for f, (tr, te) in enumerate(folds):
        model = HistGradientBoostingClassifier(
            max_iter=s.tree_max_iter, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=30, l2_regularization=1.0,
            early_stopping=False, random_state=sub_seed(s.seed, "hgb", f),
        )
        # columns with fewer than two distinct values in the training fold cannot split (importance 0)
        Xtr = arr[tr]
        lo, hi = np.nanmin(np.where(np.isnan(Xtr), np.inf, Xtr), 0), np.nanmax(np.where(np.isnan(Xtr), -np.inf, Xtr), 0)
        cols = np.flatnonzero(hi > lo)
        Xte, yte = arr[te][:, cols], y[te]
        if len(cols) == 0 or len(np.unique(yte)) < 2 or len(np.unique(y[tr])) < 2:
            continue
        model.fit(Xtr[:, cols], y[tr])
        base = _auc(yte, model.predict_proba(Xte)[:, 1])
        aucs.append(base)
        used = np.flatnonzero(_used_features(model, len(cols)))
        for _ in range(s.perm_repeats):
            drop = np.zeros(p)
            perm = rng.permutation(len(te))
            # predict permuted copies in batches: one call per chunk of features
            chunk = max(1, int(4e6 // max(1, len(te) * len(cols))))
            for start in range(0, len(used), chunk):
                js = used[start:start + chunk]
                big = np.tile(Xte, (len(js), 1))
                for i, j in enumerate(js):
                    big[i * len(te):(i + 1) * len(te), j] = Xte[perm, j]
                pr = model.predict_proba(big)[:, 1].reshape(len(js), len(te))
                for i, j in enumerate(js):
                    drop[cols[j]] = base - _auc(yte, pr[i])
            drops.append(drop)
    if not drops:
        return pd.DataFrame({"feature": list(X.columns), "perm_importance": np.nan, "perm_importance_sd": np.nan}), {"oof_auc": np.nan, "folds": 0}
    d = np.vstack(drops)
    out = pd.DataFrame({"feature": list(X.columns), "perm_importance": d.mean(0), "perm_importance_sd": d.std(0, ddof=1) if len(d) > 1 else np.nan,
                        "perm_n": len(d)})
    return out, {"oof_auc": float(np.mean(aucs)), "folds": k}


def consensus(uni: pd.DataFrame, stab: pd.DataFrame | None, perm: pd.DataFrame | None, s: SelectionSettings) -> pd.DataFrame:
    """Merge the three methods, rank each (1 = strongest) and combine the ranks (geometric mean)."""
    t = uni.copy()
    t["rank_univariate"] = t["p_value"].fillna(1.0).rank(method="min") + 0.0
    t["vote_univariate"] = (t["q_value"] < s.fdr).astype(int)
    methods = ["rank_univariate"]
    if stab is not None:
        t = t.merge(stab, on="feature", how="left")
        key = t["stability_freq"].fillna(0) + 1e-6 * t["mean_abs_coef"].fillna(0)
        t["rank_stability"] = (-key).rank(method="min")
        t["vote_stability"] = (t["stability_freq"] >= s.stability_threshold).astype(int)
        methods.append("rank_stability")
    if perm is not None and perm["perm_importance"].notna().any():
        t = t.merge(perm, on="feature", how="left")
        t["rank_permutation"] = (-t["perm_importance"].fillna(0)).rank(method="min")
        se = t["perm_importance_sd"].fillna(np.inf) / np.sqrt(t.get("perm_n", pd.Series(1, index=t.index)).fillna(1))
        t["vote_permutation"] = ((t["perm_importance"] > 0) & (t["perm_importance"] - 2 * se > 0)).astype(int)
        methods.append("rank_permutation")
    # rank product (geometric mean of ranks, Breitling et al. 2004): a feature ranked first by
    # two methods stays near the top even when the third ranks it low
    t["consensus_score"] = np.exp(np.log(t[methods]).mean(axis=1))
    t["votes"] = t[[m.replace("rank_", "vote_") for m in methods]].sum(axis=1)
    t = t.sort_values(["consensus_score", "feature"]).reset_index(drop=True)
    t["consensus_rank"] = np.arange(1, len(t) + 1)
    return t


def apply_redundancy(table: pd.DataFrame, assoc: pd.DataFrame | None, s: SelectionSettings, min_votes: int) -> pd.DataFrame:
    """Mark ``selected`` (votes, redundancy, cap) and ``redundant_with`` along the consensus ranking."""
    t = table.copy()
    t["passes_votes"] = t["votes"] >= min_votes
    kept: list[str] = []
    redundant_with = []
    selected = []
    for row in t.itertuples():
        red = ""
        if assoc is not None and row.feature in assoc.index:
            for k in kept:
                if k in assoc.columns:
                    v = assoc.at[row.feature, k]
                    if np.isfinite(v) and abs(v) >= s.redundancy_threshold:
                        red = k
                        break
        redundant_with.append(red)
        ok = row.passes_votes and not red and len(kept) < s.max_selected
        selected.append(ok)
        if ok:
            kept.append(row.feature)
    t["redundant_with"] = redundant_with
    t["selected"] = selected
    return t


def select_features(X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, categorical: list[str], assoc: pd.DataFrame | None,
                    s: SelectionSettings) -> tuple[pd.DataFrame, dict]:
    """Run the three methods, consensus and redundancy; returns the ranked table and diagnostics.

    Small data fall back gracefully: with fewer than ``2 * perm_folds`` stays in the minority
    class the model-based methods are skipped (univariate ranking only) and a note says so.
    """
    y = np.asarray(y).astype(int)
    notes: list[str] = []
    info: dict = {"n_stays": int(len(y)), "n_candidates": int(X.shape[1])}
    uni = univariate_tests(X, y, categorical)
    minority = int(min(y.sum(), len(y) - y.sum()))
    info["minority_class_n"] = minority
    stab = perm = None
    if minority >= 2 * max(2, s.perm_folds) and X.shape[1] >= 2:
        stab, st_info = stability_selection(X, y, groups, categorical, s)
        perm, pm_info = permutation_importance_oof(X, y, groups, categorical, s)
        info.update({f"stability_{k}": v for k, v in st_info.items()})
        info.update({f"permutation_{k}": v for k, v in pm_info.items()})
        if pm_info.get("folds", 0) == 0:
            notes.append("permutation importance skipped: patient-level folds impossible")
    else:
        notes.append(f"minority class has {minority} stays: stability selection and permutation importance skipped, univariate ranking only")
    n_methods = 1 + (stab is not None) + (perm is not None and perm["perm_importance"].notna().any())
    min_votes = min(s.min_votes, n_methods)
    table = consensus(uni, stab, perm, s)
    table = apply_redundancy(table, assoc, s, min_votes)
    if table["selected"].sum() < s.min_selected:
        # fallback: the best-ranked non-redundant features
        n_fb = min(s.min_selected, len(table))
        extra = table.index[(~table["selected"]) & (table["redundant_with"] == "")][: n_fb - int(table["selected"].sum())]
        table.loc[extra, "selected"] = True
        notes.append(f"fewer than {s.min_selected} features passed {min_votes} vote(s): the best-ranked non-redundant features were added")
    info["n_selected"] = int(table["selected"].sum())
    info["min_votes_used"] = int(min_votes)
    info["notes"] = notes
    return table, info


def selection_plot(table: pd.DataFrame, labels: dict[str, str], top: int, title: str):
    """Dot plot of the top features: rank under each method, selected ones highlighted."""
    from .plotting import PALETTE, figure

    t = table.head(top).iloc[::-1]
    fig, ax = figure(7.5, max(3.0, 0.3 * len(t) + 1.2))
    y = np.arange(len(t))
    marks = {"rank_univariate": ("o", PALETTE[0], "univariate (BH)"), "rank_stability": ("s", PALETTE[1], "stability selection"),
             "rank_permutation": ("^", PALETTE[2], "permutation importance")}
    for col, (m, colour, name) in marks.items():
        if col in t:
            ax.scatter(t[col], y, marker=m, color=colour, label=name, zorder=3, alpha=0.85)
    ax.scatter(t["consensus_score"], y, marker="|", s=150, color="black", label="consensus (geometric mean rank)", zorder=4)
    ax.set_xscale("log")
    ticks = [f"{'* ' if sel else ''}{labels.get(f, f)}" for f, sel in zip(t["feature"], t["selected"])]
    ax.set_yticks(y, ticks, fontsize=7)
    ax.set_xlabel("rank (log scale; 1 = strongest)   * = selected")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title)
    return fig
