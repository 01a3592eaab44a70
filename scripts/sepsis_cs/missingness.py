"""Missingness and distributions of the contract variables, by CS group.

* :func:`missingness_table`: per variable (static) or per variable and window (hourly:
  no value before time zero, no value up to the prediction horizon), the number and share
  of stays without a value, overall and by CS group, with primary and complementary
  small-cell suppression (:func:`sepsis_cs.table1.protect`).
* :func:`missingness_over_time`: share of stays with a value at each hour, per variable and
  CS group (cells from fewer than ``min_cell_count`` stays are masked).
* :func:`missingness_patterns`: the most frequent joint missingness patterns of the Table 1
  variables (patterns shared by fewer than ``min_cell_count`` stays are pooled as "other").
* :func:`distribution_plot`: densities (numeric) and proportions (binary) by CS group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from .table1 import protect


def _protected_row(miss: dict, sizes: dict, k: int, groups_hidden: bool) -> dict:
    cells, lines, displayed = {}, [], set()
    gs = ("overall",) if groups_hidden else ("overall", "cs", "no_cs")
    for g in gs:
        cells[("miss", g)] = miss[g]
        cells[("known", g)] = sizes[g] - miss[g]
        displayed.add(("miss", g))
        lines.append([("miss", g), ("known", g)])
    if not groups_hidden:
        for lvl in ("miss", "known"):
            lines.append([(lvl, "cs"), (lvl, "no_cs"), (lvl, "overall")])
    hidden = protect(cells, displayed, lines, k)
    out = {}
    for g in ("overall", "cs", "no_cs"):
        if g not in gs or ("miss", g) in hidden:
            out[f"missing_{g}"] = f"<{k}"
            out[f"missing_pct_{g}"] = None
        else:
            out[f"missing_{g}"] = str(miss[g])
            out[f"missing_pct_{g}"] = round(100.0 * miss[g] / sizes[g], 1) if sizes[g] else None
    return out


def missingness_table(cohort: pl.DataFrame, ts: pl.DataFrame, dictionary, windows: list[tuple[int, int]], k: int) -> pl.DataFrame:
    """Stays without a value per variable (and window for hourly variables), by CS group."""
    cs = cohort["cs"].to_numpy().astype(bool)
    sizes = {"overall": len(cs), "cs": int(cs.sum()), "no_cs": int((~cs).sum())}
    groups_hidden = any(0 < sizes[g] < k for g in ("cs", "no_cs"))
    ids = cohort["stay_id"]
    rows = []
    for name, v in dictionary.static.items():
        if name in cohort.columns:
            m = cohort[name].is_null().to_numpy()
            status = "present"
        else:
            m = np.ones(len(cs), bool)
            status = "absent from this database"
        miss = {"overall": int(m.sum()), "cs": int((m & cs).sum()), "no_cs": int((m & ~cs).sum())}
        rows.append({"variable": name, "label": v.label, "source": "static", "window": "", "status": status,
                     **_protected_row(miss, sizes, k, groups_hidden)})
    present = set(ts["variable"].unique().to_list())
    for lo, hi in windows:
        have = ts.filter(pl.col("hour").is_between(lo, hi)).group_by("variable").agg(pl.col("stay_id").unique())
        have = {r["variable"]: set(r["stay_id"]) for r in have.iter_rows(named=True)}
        for name, v in dictionary.hourly.items():
            with_val = have.get(name, set())
            m = ~ids.is_in(list(with_val)).to_numpy() if with_val else np.ones(len(cs), bool)
            miss = {"overall": int(m.sum()), "cs": int((m & cs).sum()), "no_cs": int((m & ~cs).sum())}
            rows.append({"variable": name, "label": v.label, "source": "hourly", "window": f"{lo} to {hi} h",
                         "status": "present" if name in present else "absent from this database",
                         **_protected_row(miss, sizes, k, groups_hidden)})
    return pl.DataFrame(rows)


def missingness_over_time(ts: pl.DataFrame, cohort: pl.DataFrame, k: int) -> pl.DataFrame:
    """Share of stays of each CS group with a value at each hour (null when fewer than k stays)."""
    grp = cohort.select("stay_id", pl.when(pl.col("cs")).then(pl.lit("CS")).otherwise(pl.lit("no CS")).alias("group"))
    sizes = grp.group_by("group").len()
    out = (
        ts.join(grp, on="stay_id")
        .group_by("variable", "group", "hour")
        .agg(pl.col("stay_id").n_unique().alias("n"))
        .join(sizes, on="group")
        .with_columns(
            pl.when(pl.col("n") >= k).then(pl.col("n") / pl.col("len")).otherwise(None).alias("share_measured"),
            pl.when(pl.col("n") >= k).then(pl.col("n")).otherwise(None).alias("n"),
        )
        .drop("len")
        .sort("variable", "group", "hour")
    )
    return out


def missingness_patterns(df: pd.DataFrame, columns: list[str], k: int, top: int = 15) -> tuple[pd.DataFrame, dict]:
    """Most frequent missingness patterns (True = missing) among ``columns``; small patterns pooled."""
    if not columns:
        return pd.DataFrame(), {"n_patterns": 0, "share_shown": 0.0}
    m = df[columns].isna()
    keys = m.apply(lambda r: "".join("1" if x else "0" for x in r), axis=1)
    counts = keys.value_counts()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    shown = counts[counts >= k].head(top)
    pat = pd.DataFrame([[c == "1" for c in key] for key in shown.index], columns=columns)
    pat["n"] = shown.to_numpy()
    info = {"n_patterns": int(len(counts)), "n_patterns_shown": int(len(shown)), "share_shown": float(shown.sum() / len(df)) if len(df) else 0.0}
    return pat, info


# ----------------------------------------------------------------------------- figures
def over_time_plot(over: pl.DataFrame, labels: dict[str, str], title: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .plotting import set_style

    set_style()
    groups = ["CS", "no CS"]
    variables = sorted(over["variable"].unique().to_list())
    fig, axes = plt.subplots(1, 2, figsize=(13, max(3.5, 0.28 * len(variables) + 1.5)), sharey=True)
    for ax, g in zip(axes, groups):
        sub = over.filter(pl.col("group") == g).to_pandas()
        mat = sub.pivot_table(index="variable", columns="hour", values="share_measured", dropna=False).reindex(variables)
        sns.heatmap(mat.rename(index=labels), ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=g == "no CS",
                    cbar_kws={"label": "share of stays measured"}, yticklabels=True)
        ax.set_title(g)
        ax.set_xlabel("hour since time zero")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
        if mat.shape[1]:
            hours = list(mat.columns)
            if 0 in hours:
                ax.axvline(hours.index(0), color="white", lw=1)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def pattern_plot(pat: pd.DataFrame, labels: dict[str, str], info: dict, title: str, k: int):
    import matplotlib.pyplot as plt

    from .plotting import PALETTE, set_style

    set_style()
    if pat.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no missingness pattern shared by at least {k} stays", ha="center")
        return fig
    cols = [c for c in pat.columns if c != "n"]
    fig, (ax_m, ax_b) = plt.subplots(1, 2, figsize=(max(7, 0.28 * len(cols) + 4), 0.35 * len(pat) + 2.6),
                                     gridspec_kw={"width_ratios": [max(3, len(cols) * 0.28), 2]}, sharey=True)
    mat = pat[cols].to_numpy(dtype=float)
    ax_m.imshow(mat, aspect="auto", cmap="Greys", vmin=0, vmax=1.4, interpolation="nearest")
    ax_m.set_xticks(range(len(cols)), [labels.get(c, c) for c in cols], rotation=90, fontsize=7)
    ax_m.set_yticks(range(len(pat)), [f"pattern {i + 1}" for i in range(len(pat))], fontsize=7)
    ax_m.set_xlabel("dark = missing")
    ax_m.grid(False)
    ax_b.barh(range(len(pat)), pat["n"], color=PALETTE[0])
    ax_b.set_xlabel("stays")
    fig.suptitle(f"{title}\n{info['n_patterns_shown']} of {info['n_patterns']} patterns shown "
                 f"({100 * info['share_shown']:.0f}% of stays); patterns of < {k} stays not shown", fontsize=10)
    fig.tight_layout()
    return fig


def distribution_plot(df: pd.DataFrame, variables: list[tuple[str, str, str]], cs: np.ndarray, k: int, title: str):
    """Numeric variables: kernel densities by CS group; binary: share with value 1 by group; categorical: level shares."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .plotting import CS_COLOURS, set_style

    set_style()
    cs = np.asarray(cs).astype(bool)
    numeric = [v for v in variables if v[2] == "numeric"]
    binary = [v for v in variables if v[2] == "binary"]
    categorical = [v for v in variables if v[2] == "categorical"]
    n_panels = len(numeric) + (1 if binary else 0) + len(categorical)
    ncol = 5
    nrow = max(1, int(np.ceil(n_panels / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.1 * ncol, 2.5 * nrow + 0.6), squeeze=False)
    axs = list(axes.ravel())
    i = 0
    for col, label, _ in numeric:
        ax = axs[i]
        i += 1
        x = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        for name, m in (("no CS", ~cs), ("CS", cs)):
            v = x[m & ~np.isnan(x)]
            if len(v) >= k and np.ptp(v) > 0:
                lo, hi = np.quantile(x[~np.isnan(x)], [0.005, 0.995])
                sns.kdeplot(v[(v >= lo) & (v <= hi)], ax=ax, color=CS_COLOURS[name], fill=True, alpha=0.3, lw=1, label=name, warn_singular=False)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
    if binary:
        ax = axs[i]
        i += 1
        y = np.arange(len(binary))
        for off, (name, m) in zip((-0.2, 0.2), (("no CS", ~cs), ("CS", cs))):
            shares = []
            for col, _, _ in binary:
                v = pd.to_numeric(df[col], errors="coerce").to_numpy(float)[m]
                v = v[~np.isnan(v)]
                n1 = int(v.sum())
                shares.append(v.mean() if len(v) and n1 >= k and len(v) - n1 >= k else np.nan)
            ax.barh(y + off, shares, height=0.4, color=CS_COLOURS[name], label=name)
        ax.set_yticks(y, [b[1] for b in binary], fontsize=6)
        ax.set_xlabel("share with value 1", fontsize=7)
        ax.set_title("binary variables", fontsize=8)
    for col, label, _ in categorical:
        ax = axs[i]
        i += 1
        levels = sorted(str(v) for v in df[col].dropna().unique())
        y = np.arange(len(levels))
        for off, (name, m) in zip((-0.2, 0.2), (("no CS", ~cs), ("CS", cs))):
            s = df.loc[m, col].dropna().astype(str)
            counts = s.value_counts()
            shares = [counts.get(lv, 0) / len(s) if len(s) and counts.get(lv, 0) >= k else np.nan for lv in levels]
            ax.barh(y + off, shares, height=0.4, color=CS_COLOURS[name], label=name)
        ax.set_yticks(y, levels, fontsize=7)
        ax.set_title(label, fontsize=8)
    for ax in axs[i:]:
        ax.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=CS_COLOURS[g], alpha=0.6) for g in ("CS", "no CS")]
    fig.legend(handles, ["CS", "no CS"], loc="upper right")
    fig.suptitle(f"{title}\n(groups or cells with fewer than {k} stays not drawn)")
    fig.tight_layout()
    return fig
