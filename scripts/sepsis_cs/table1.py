"""Table 1 by CS group: counts, medians, standardised mean differences, p-values, suppression.

Standardised mean differences (SMD, CS minus no CS) follow Austin (Stat Med 2009):

* continuous: ``(m1 - m0) / sqrt((s1^2 + s0^2) / 2)``;
* binary: ``(p1 - p0) / sqrt((p1(1-p1) + p0(1-p0)) / 2)``;
* categorical (k levels): Mahalanobis form of Yang & Dalton (2012),
  ``sqrt((p1 - p0)' S^-1 (p1 - p0))`` over k-1 levels with
  ``S = (S1 + S0)/2``, ``S_g[i,i] = p_gi(1-p_gi)``, ``S_g[i,j] = -p_gi p_gj``;

weighted versions use weighted means and the weighted variance
``sum(w) / (sum(w)^2 - sum(w^2)) * sum(w (x - m)^2)`` (which reduces to the sample
variance with unit weights).

Small-cell suppression: every count ``0 < n < min_cell_count`` is hidden, including counts
that are not displayed but could be derived (e.g. the zeros of a binary variable).  The
table's linear constraints (levels + missing = group size; CS + no CS = overall) are
closed iteratively: while a sensitive count is derivable from a line with a single unknown,
the smallest displayed count of that line is suppressed as well (complementary suppression).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

GROUPS = ("overall", "cs", "no_cs")


# ----------------------------------------------------------------------------- SMDs
def _wmean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    ok = ~np.isnan(x) & (w > 0)
    x, w = x[ok], w[ok]
    if len(x) < 2:
        return np.nan, np.nan
    sw = w.sum()
    m = float((w * x).sum() / sw)
    denom = sw**2 - (w**2).sum()
    if denom <= 0:
        return m, np.nan
    return m, float(sw / denom * (w * (x - m) ** 2).sum())


def smd_continuous(x1, x0, w1=None, w0=None) -> float:
    x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
    w1 = np.ones(len(x1)) if w1 is None else np.asarray(w1, float)
    w0 = np.ones(len(x0)) if w0 is None else np.asarray(w0, float)
    m1, v1 = _wmean_var(x1, w1)
    m0, v0 = _wmean_var(x0, w0)
    s = np.sqrt((v1 + v0) / 2) if np.isfinite(v1) and np.isfinite(v0) else np.nan
    if not np.isfinite(s):
        return np.nan
    if s <= 0:
        return 0.0 if m1 == m0 else np.nan
    return float((m1 - m0) / s)


def _wprops(codes: np.ndarray, w: np.ndarray, levels: int) -> np.ndarray | None:
    ok = (codes >= 0) & (w > 0)
    if not ok.any():
        return None
    return np.bincount(codes[ok], weights=w[ok], minlength=levels) / w[ok].sum()


def smd_binary(x1, x0, w1=None, w0=None) -> float:
    """Binary 0/1 arrays (NaN = missing)."""
    x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
    w1 = np.ones(len(x1)) if w1 is None else np.asarray(w1, float)
    w0 = np.ones(len(x0)) if w0 is None else np.asarray(w0, float)
    o1, o0 = ~np.isnan(x1) & (w1 > 0), ~np.isnan(x0) & (w0 > 0)
    if not o1.any() or not o0.any():
        return np.nan
    p1 = (w1[o1] * x1[o1]).sum() / w1[o1].sum()
    p0 = (w0[o0] * x0[o0]).sum() / w0[o0].sum()
    s = np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    if s <= 0:
        return 0.0 if p1 == p0 else np.nan
    return float((p1 - p0) / s)


def smd_categorical(c1, c0, levels: list, w1=None, w0=None) -> float:
    """Categorical arrays of labels (None/NaN = missing); Yang & Dalton multivariate SMD."""
    idx = {lv: i for i, lv in enumerate(levels)}
    enc = lambda a: np.array([idx.get(v, -1) if isinstance(v, str) or v == v else -1 for v in a], dtype=int)  # noqa: E731
    k1, k0 = enc(c1), enc(c0)
    w1 = np.ones(len(k1)) if w1 is None else np.asarray(w1, float)
    w0 = np.ones(len(k0)) if w0 is None else np.asarray(w0, float)
    p1, p0 = _wprops(k1, w1, len(levels)), _wprops(k0, w0, len(levels))
    if p1 is None or p0 is None or len(levels) < 2:
        return np.nan
    if len(levels) == 2:
        return smd_binary((k1[k1 >= 0] == 1).astype(float), (k0[k0 >= 0] == 1).astype(float), w1[k1 >= 0], w0[k0 >= 0])
    a, b = p1[1:], p0[1:]
    s = (np.diag(a) - np.outer(a, a) + np.diag(b) - np.outer(b, b)) / 2
    d = a - b
    val = float(d @ np.linalg.pinv(s) @ d)
    return float(np.sqrt(max(val, 0.0)))


# ----------------------------------------------------------------------------- suppression
def protect(cells: dict, displayed: set, lines: list[list], k: int) -> set:
    """Cells to suppress so that no count ``0 < n < k`` is shown or derivable by linear equalities.

    ``cells``: key -> count (displayed and undisplayed cells of the table); ``displayed``:
    keys shown to the reader; ``lines``: lists of keys whose sum is published (each line's
    total must be known to the reader).  Returns the set of displayed keys to suppress.
    """
    sensitive = {key for key, n in cells.items() if 0 < n < k}
    suppressed = {key for key in displayed if key in sensitive}
    while True:
        known = {key for key in cells if key in displayed and key not in suppressed}
        changed = True
        derived_by = {}
        while changed:
            changed = False
            for li, line in enumerate(lines):
                unknown = [key for key in line if key not in known]
                if len(unknown) == 1:
                    known.add(unknown[0])
                    derived_by[unknown[0]] = li
                    changed = True
        leaked = sorted((key for key in sensitive if key in known), key=str)
        if not leaked:
            return suppressed
        line = lines[derived_by[leaked[0]]]
        candidates = [key for key in line if key in displayed and key not in suppressed]
        if not candidates:  # cannot happen when the leak came from a line; guard against loops
            return suppressed | set(displayed)
        nonzero = [key for key in candidates if cells[key] > 0] or candidates
        suppressed.add(min(nonzero, key=lambda key: (cells[key], str(key))))


# ----------------------------------------------------------------------------- the table
def _fmt_pct(n: int, total: int) -> str:
    return f"{n} ({100.0 * n / total:.1f})" if total else f"{n}"


def _median_iqr(x: np.ndarray, digits: int) -> str:
    q = np.quantile(x, [0.5, 0.25, 0.75])
    return f"{q[0]:.{digits}f} [{q[1]:.{digits}f}, {q[2]:.{digits}f}]"


def _digits(x: np.ndarray) -> int:
    if len(x) == 0:
        return 1
    if np.all(np.mod(x, 1) == 0):
        return 0
    med = np.nanmedian(np.abs(x))
    return 0 if med >= 100 else 1 if med >= 10 else 2


def table_one(df: pd.DataFrame, variables: list[tuple[str, str, str]], cs: np.ndarray, weights: np.ndarray, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build Table 1.

    Parameters
    ----------
    df : frame with one row per stay and the variables' columns.
    variables : list of ``(column, label, type)`` with type numeric | binary | categorical.
    cs : 0/1 treatment per row.  weights : IPTW weights per row (0 = excluded).
    k : ``min_cell_count``.

    Returns ``(table, smd)``: the display table (text cells, suppression applied) and the
    unrounded SMDs per variable (for the balance figure and headline numbers).
    """
    cs = np.asarray(cs).astype(bool)
    w = np.asarray(weights, float)
    masks = {"overall": np.ones(len(df), bool), "cs": cs, "no_cs": ~cs}
    sizes = {g: int(m.sum()) for g, m in masks.items()}
    groups_hidden = any(0 < sizes[g] < k for g in ("cs", "no_cs"))
    shown_groups = ("overall",) if groups_hidden else GROUPS
    rows: list[dict] = []
    smd_rows: list[dict] = []
    head = {"variable": "Stays, n", "level": "", "type": "count"}
    for g in GROUPS:
        head[g] = str(sizes[g]) if g in shown_groups else f"<{k}"
    rows.append({**head, "smd_unweighted": "", "smd_iptw": "", "p_value": ""})

    for col, label, vtype in variables:
        s = df[col]
        miss = s.isna().to_numpy()
        cells: dict = {}
        displayed: set = set()
        lines: list[list] = []
        var_rows: list[dict] = []
        if vtype == "numeric":
            x = pd.to_numeric(s, errors="coerce").to_numpy(float)
            level_keys = ["known", "missing"]
            for g, m in masks.items():
                cells[("known", g)] = int((~miss & m).sum())
                cells[("missing", g)] = int((miss & m).sum())
            r = {"variable": label, "level": "median [IQR]", "type": "numeric"}
            digits = _digits(x[~miss])
            for g, m in masks.items():
                xv = x[m & ~miss]
                r[g] = _median_iqr(xv, digits) if len(xv) >= k else (f"<{k} known" if len(xv) else "NA")
            var_rows.append(r)
            smd_u = smd_continuous(x[cs], x[~cs])
            smd_w = smd_continuous(x[cs], x[~cs], w[cs], w[~cs])
            a, b = x[cs & ~miss], x[~cs & ~miss]
            p = stats.mannwhitneyu(a, b).pvalue if len(a) >= 2 and len(b) >= 2 and np.ptp(np.r_[a, b]) > 0 else np.nan
        else:
            if vtype == "binary":
                xv = pd.to_numeric(s, errors="coerce").to_numpy(float)
                levels = ["1", "0"]
                codes = np.where(miss, -1, np.where(xv == 1, 0, 1))
                shown_levels = ["1"]
            else:
                lv = sorted(str(v) for v in s.dropna().unique())
                levels = lv
                idx = {v: i for i, v in enumerate(lv)}
                codes = np.array([-1 if mm else idx[str(v)] for v, mm in zip(s.to_numpy(dtype=object), miss)])
                shown_levels = lv
            level_keys = levels + ["missing"]
            for g, m in masks.items():
                for i, lvl in enumerate(levels):
                    cells[(lvl, g)] = int(((codes == i) & m).sum())
                cells[("missing", g)] = int((miss & m).sum())
            for lvl in shown_levels:
                r = {"variable": label, "level": "n (%)" if vtype == "binary" else lvl, "type": vtype, "_key": lvl}
                var_rows.append(r)
            if vtype == "binary":
                smd_u = smd_binary(xv[cs], xv[~cs])
                smd_w = smd_binary(xv[cs], xv[~cs], w[cs], w[~cs])
            else:
                arr = s.to_numpy(dtype=object)
                smd_u = smd_categorical(arr[cs], arr[~cs], levels)
                smd_w = smd_categorical(arr[cs], arr[~cs], levels, w[cs], w[~cs])
            tab = np.array([[cells[(lvl, "cs")], cells[(lvl, "no_cs")]] for lvl in levels], dtype=float).reshape(-1, 2)
            tab = tab[tab.sum(1) > 0]
            if tab.shape[0] >= 2 and (tab.sum(0) > 0).all():
                if tab.shape == (2, 2) and (stats.contingency.expected_freq(tab) < 5).any():
                    p = stats.fisher_exact(tab).pvalue
                else:
                    p = stats.chi2_contingency(tab, correction=False)[1]
            else:
                p = np.nan
        any_missing = cells[("missing", "overall")] > 0
        for g in shown_groups:
            for lvl in level_keys:
                # without a missing row the reader knows there are none: those (zero) cells count as shown
                is_shown = lvl == "missing" or (vtype != "numeric" and lvl in [r.get("_key") for r in var_rows])
                if is_shown:
                    displayed.add((lvl, g))
            lines.append([(lvl, g) for lvl in level_keys])  # sums to the group size (displayed)
        if not groups_hidden:
            for lvl in level_keys:
                lines.append([(lvl, "cs"), (lvl, "no_cs"), (lvl, "overall")])
        else:
            for key in list(cells):
                if key[1] != "overall":
                    del cells[key]
        hidden = protect(cells, displayed, lines, k)
        for r in var_rows:
            if vtype != "numeric":
                for g in GROUPS:
                    key = (r["_key"], g)
                    if g not in shown_groups:
                        r[g] = f"<{k}"
                    else:
                        r[g] = f"<{k}" if key in hidden else _fmt_pct(cells[key], sizes[g])
        if any_missing:
            mr = {"variable": label, "level": "missing, n (%)", "type": "missing"}
            for g in GROUPS:
                key = ("missing", g)
                mr[g] = f"<{k}" if (g not in shown_groups or key in hidden) else _fmt_pct(cells[key], sizes[g])
            var_rows.append(mr)
        leaks_counts = vtype != "numeric" and bool(hidden)
        for i, r in enumerate(var_rows):
            r.pop("_key", None)
            first = i == 0
            r["smd_unweighted"] = "" if not first else ("suppressed" if leaks_counts or groups_hidden else _fmt_num(smd_u))
            r["smd_iptw"] = "" if not first else ("suppressed" if groups_hidden else _fmt_num(smd_w))
            r["p_value"] = "" if not first else ("suppressed" if leaks_counts or groups_hidden else _fmt_p(p))
        rows.extend(var_rows)
        smd_rows.append({"variable": col, "label": label, "type": vtype, "smd_unweighted": smd_u, "smd_iptw": smd_w})
    table = pd.DataFrame(rows, columns=["variable", "level", "type", *GROUPS, "smd_unweighted", "smd_iptw", "p_value"])
    return table, pd.DataFrame(smd_rows)


def _fmt_num(v: float) -> str:
    return "NA" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "NA"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def balance_plot(smd: pd.DataFrame, title: str, threshold: float = 0.1):
    """Love plot: |SMD| before and after IPTW weighting, per variable."""
    from .plotting import PALETTE, figure

    t = smd.assign(u=smd["smd_unweighted"].abs(), w=smd["smd_iptw"].abs()).sort_values("u", na_position="first")
    fig, ax = figure(7, max(3.0, 0.26 * len(t) + 1.2))
    y = np.arange(len(t))
    ax.scatter(t["u"], y, color=PALETTE[3], label="unweighted", zorder=3)
    ax.scatter(t["w"], y, color=PALETTE[0], marker="D", label="IPTW (in overlap)", zorder=3)
    ax.axvline(threshold, color="grey", ls="--", lw=1)
    ax.set_yticks(y, t["label"], fontsize=7)
    ax.set_xlabel("|standardised mean difference| (CS vs no CS)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    return fig
