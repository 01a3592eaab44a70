"""Temporal study: hourly trajectories by group and a landmark comparison with GEE slopes.

Trajectories: for each hourly variable and hour, the mean over stays with a value and its
normal-approximation 95% CI, by CS group and by outcome (aligned at time zero) and, for
treated stays, aligned at the CS start hour.  Points based on fewer than
``min_cell_count`` stays are not shown.

Landmarks: the last value in ``[L - window, L]`` at each landmark hour L (default 0, 24,
72).  Per variable, a GEE (Gaussian; working correlation independence -- closed form -- or
exchangeable -- statsmodels; clusters = patients; robust standard errors) of ``value ~ days + cs + days:cs`` on the landmark
values estimates the difference in linear slope per day between CS and no-CS stays
(``days:cs``) with its 95% CI.  This is descriptive: CS is not randomised and stays leave
the ICU (or die) before later landmarks, so later landmarks describe the stays still present.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl


def trajectories(ts: pl.DataFrame, cohort: pl.DataFrame, outcome: str, k: int, cs_hours: tuple[int, int] = (-24, 48)) -> pl.DataFrame:
    """Mean and 95% CI per variable, hour and group for three alignments.

    Returns columns ``alignment`` (time_zero | cs_start), ``grouping`` (cs | outcome),
    ``group``, ``variable``, ``hour``, ``n`` (null when < k), ``mean``, ``ci_low``, ``ci_high``.
    """
    base = cohort.select(
        "stay_id",
        pl.when(pl.col("cs")).then(pl.lit("CS")).otherwise(pl.lit("no CS")).alias("cs_group"),
        pl.when(pl.col(outcome) == 1).then(pl.lit(f"{outcome} = 1")).when(pl.col(outcome) == 0).then(pl.lit(f"{outcome} = 0"))
        .otherwise(None).alias("outcome_group"),
        pl.col("cs_start_h").floor().cast(pl.Int32).alias("cs_h"),
    ).sort("stay_id").with_row_index("_s").with_columns(pl.col("_s").cast(pl.Int64))
    variables = sorted(ts["variable"].unique().to_list())
    d = ts.lazy().join(base.lazy(), on="stay_id", how="inner").with_columns(
        pl.col("variable").replace_strict({v: i for i, v in enumerate(variables)}, return_dtype=pl.Int64).alias("_v")
    )

    def summarise(frame, group_col, hour_expr, alignment, grouping):
        # sequential sums over a fully sorted frame: byte-identical results whatever the thread count
        d = (
            frame.filter(pl.col(group_col).is_not_null())
            .with_columns(hour_expr.alias("h"))
            .filter(pl.col("h").is_not_null())
            .select(
                "variable", pl.col(group_col).alias("group"), "h", "value", "_v", "_s",
                pl.col(group_col).rank("dense").cast(pl.Int64).alias("_g"),
                (pl.col("h") - pl.col("h").min()).cast(pl.Int64).alias("_h"),
            )
            .collect()
        )
        if d.height == 0:
            return pl.DataFrame(schema={"alignment": pl.String, "grouping": pl.String, "group": pl.String, "variable": pl.String,
                                        "hour": pl.Int32, "n": pl.Int64, "mean": pl.Float64, "sd": pl.Float64}).lazy()
        # one integer sort key (variable, group, hour, stay): a stable single-threaded numpy sort
        nh, ns, ng = int(d["_h"].max()) + 1, int(d["_s"].max()) + 1, int(d["_g"].max()) + 1
        key = ((d["_v"].to_numpy() * ng + d["_g"].to_numpy()) * nh + d["_h"].to_numpy()) * ns + d["_s"].to_numpy()
        order = np.argsort(key, kind="stable")
        gkey = key[order] // ns
        start = np.flatnonzero(np.r_[True, gkey[1:] != gkey[:-1]])
        keys = d.select("variable", "group", "h")[order[start]]
        v = d["value"].to_numpy().astype(float)[order]
        n = np.diff(np.r_[start, len(v)])
        mean = np.add.reduceat(v, start) / n
        dev = (v - np.repeat(mean, n)) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(np.add.reduceat(dev, start) / (n - 1))
        sd[n < 2] = np.nan
        first = keys
        return pl.DataFrame({
            "alignment": [alignment] * len(start), "grouping": [grouping] * len(start), "group": first["group"],
            "variable": first["variable"], "hour": first["h"].cast(pl.Int32), "n": n.astype(np.int64), "mean": mean, "sd": sd,
        }).with_columns(pl.col("sd").fill_nan(None)).lazy()

    parts = [
        summarise(d, "cs_group", pl.col("hour"), "time_zero", "cs"),
        summarise(d, "outcome_group", pl.col("hour"), "time_zero", "outcome"),
        summarise(
            d.filter(pl.col("cs_h").is_not_null()).with_columns(pl.lit("CS").alias("cs_only")),
            "cs_only",
            pl.when((pl.col("hour") - pl.col("cs_h")).is_between(*cs_hours)).then(pl.col("hour") - pl.col("cs_h")).otherwise(None),
            "cs_start",
            "cs",
        ),
    ]
    out = pl.concat([p.collect() for p in parts])
    half = 1.96 * pl.col("sd") / pl.col("n").cast(pl.Float64).sqrt()
    out = out.with_columns(
        pl.when(pl.col("n") >= k).then(pl.col("mean")).otherwise(None).alias("mean"),
        pl.when(pl.col("n") >= k).then(pl.col("mean") - half).otherwise(None).alias("ci_low"),
        pl.when(pl.col("n") >= k).then(pl.col("mean") + half).otherwise(None).alias("ci_high"),
        pl.when(pl.col("n") >= k).then(pl.col("n")).otherwise(None).alias("n"),
    ).drop("sd")
    return out.sort("alignment", "grouping", "group", "variable", "hour")


def landmark_hours(landmarks_h, start_h: int, end_h: int, resolution: str = "hourly") -> list[int]:
    """Landmark hours within the time window; with daily data (day d at hour 24 d) each is moved to the nearest day."""
    hours = [min(max(int(L), start_h), end_h) for L in landmarks_h]
    if resolution == "daily":
        hours = [24 * int(np.floor(h / 24 + 0.5)) for h in hours]
        hours = [h if h <= end_h else h - 24 for h in hours]
    return sorted(set(hours))


def landmark_values(ts: pl.DataFrame, landmarks: list[int], window_h: int) -> pl.DataFrame:
    """Last value of each variable in ``[L - window_h, L]`` for every landmark L (long format)."""
    parts = []
    for L in landmarks:
        parts.append(
            ts.filter(pl.col("hour").is_between(L - window_h, L))
            .sort("hour")
            .group_by("stay_id", "variable")
            .agg(pl.col("value").last())
            .with_columns(pl.lit(L).alias("landmark"))
        )
    return pl.concat(parts).sort("variable", "stay_id", "landmark")


def gee_independence(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian GEE with independence working correlation: OLS estimates and the cluster-robust
    (sandwich, no small-sample correction) covariance -- identical to statsmodels'
    ``GEE(..., cov_struct=Independence()).fit()`` (checked in the tests), without its per-cluster loop."""
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ X.T @ y
    resid = y - X @ beta
    scores = np.zeros((int(groups.max()) + 1, X.shape[1]))
    np.add.at(scores, groups, X * resid[:, None])
    cov = xtx_inv @ (scores.T @ scores) @ xtx_inv
    return beta, np.sqrt(np.clip(np.diag(cov), 0, None))


def _gee_slope(df: pd.DataFrame, working: str = "independence"):
    """GEE of value ~ days * cs, clusters = patients; returns (params, bse, p-values) (days:cs is index 3)."""
    from scipy.stats import norm

    df = df.sort_values(["patient_id", "stay_id", "landmark"])
    days = df["landmark"].to_numpy(float) / 24.0
    cs = df["cs"].to_numpy(float)
    X = np.column_stack([np.ones(len(df)), days, cs, days * cs])
    y = df["value"].to_numpy(float)
    groups = pd.factorize(df["patient_id"])[0]
    if working == "exchangeable":
        from statsmodels.genmod.cov_struct import Exchangeable
        from statsmodels.genmod.families import Gaussian
        from statsmodels.genmod.generalized_estimating_equations import GEE

        res = GEE(y, X, groups=groups, family=Gaussian(), cov_struct=Exchangeable()).fit(maxiter=60)
        return np.asarray(res.params), np.asarray(res.bse), np.asarray(res.pvalues)
    params, bse = gee_independence(y, X, groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        pv = 2 * norm.sf(np.abs(params / bse))
    return params, bse, pv


def landmark_comparison(lm: pl.DataFrame, cohort: pl.DataFrame, landmarks: list[int], k: int, working: str = "independence") -> pd.DataFrame:
    """Per variable: mean change from the first landmark by CS group and the GEE slope difference.

    Rows with fewer than ``k`` stays in a group report no estimate (and say so in ``note``).
    """
    d = lm.join(cohort.select("stay_id", "patient_id", pl.col("cs").cast(pl.Int8)), on="stay_id", how="inner").to_pandas()
    rows = []
    first = landmarks[0]
    for var, g in d.groupby("variable", sort=True):
        row: dict = {"variable": var}
        wide = g.pivot_table(index=["stay_id", "cs"], columns="landmark", values="value").reset_index()
        sd0 = wide[first].std() if first in wide else np.nan
        row["sd_at_first_landmark"] = sd0
        for L in landmarks[1:]:
            for label, cval in (("cs", 1), ("no_cs", 0)):
                if first in wide and L in wide:
                    ch = (wide[L] - wide[first])[wide["cs"] == cval].dropna()
                else:
                    ch = pd.Series(dtype=float)
                row[f"n_change_{L}h_{label}"] = len(ch) if len(ch) >= k else None
                row[f"mean_change_{L}h_{label}"] = float(ch.mean()) if len(ch) >= k else np.nan
        n_cs = g.loc[g["cs"] == 1, "stay_id"].nunique()
        n_no = g.loc[g["cs"] == 0, "stay_id"].nunique()
        row["n_stays_cs"] = n_cs if n_cs >= k else None
        row["n_stays_no_cs"] = n_no if n_no >= k else None
        note = ""
        est = dict(slope_no_cs_per_day=np.nan, slope_diff_per_day=np.nan, slope_diff_ci_low=np.nan, slope_diff_ci_high=np.nan, slope_diff_p=np.nan)
        if n_cs < k or n_no < k:
            note = "fewer stays than min_cell_count in a group: no estimate"
        elif g["landmark"].nunique() < 2 or g["value"].std() == 0:
            note = "values at fewer than two landmarks or constant: no estimate"
        else:
            try:
                params, bse, pv = _gee_slope(g, working)
                est = dict(
                    slope_no_cs_per_day=params[1], slope_diff_per_day=params[3], slope_diff_ci_low=params[3] - 1.96 * bse[3],
                    slope_diff_ci_high=params[3] + 1.96 * bse[3], slope_diff_p=pv[3],
                )
            except Exception as exc:  # noqa: BLE001 - numerical failure of one variable is reported, not fatal
                note = f"GEE failed ({type(exc).__name__})"
        row.update(est)
        row["slope_diff_std"] = est["slope_diff_per_day"] / sd0 if sd0 and np.isfinite(sd0) and sd0 > 0 else np.nan
        row["note"] = note
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- figures
def trajectory_plot(traj: pl.DataFrame, alignment: str, grouping: str, labels: dict[str, str], colours: dict[str, str], title: str,
                    xlabel: str):
    import matplotlib.pyplot as plt

    from .plotting import set_style

    set_style()
    t = traj.filter((pl.col("alignment") == alignment) & (pl.col("grouping") == grouping) & pl.col("mean").is_not_null())
    variables = sorted(t["variable"].unique().to_list())
    n = max(1, len(variables))
    ncol = min(5, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.3 * nrow + 0.6), squeeze=False)
    for ax, var in zip(axes.ravel(), variables):
        sub = t.filter(pl.col("variable") == var)
        for gi, grp in enumerate(sorted(sub["group"].unique().to_list())):
            s = sub.filter(pl.col("group") == grp).sort("hour")
            c = colours.get(grp, f"C{gi}")
            ax.plot(s["hour"], s["mean"], color=c, lw=1.2, label=grp)
            ax.fill_between(s["hour"].to_numpy(), s["ci_low"].to_numpy(), s["ci_high"].to_numpy(), color=c, alpha=0.25, lw=0)
        ax.axvline(0, color="grey", lw=0.7, ls="--")
        ax.set_title(labels.get(var, var), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(variables):]:
        ax.set_visible(False)
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize=8)
    fig.supxlabel(xlabel, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def slope_forest_plot(table: pd.DataFrame, labels: dict[str, str], title: str):
    from .plotting import PALETTE, figure

    t = table.dropna(subset=["slope_diff_std"]).copy()
    sd = t["sd_at_first_landmark"]
    t["lo"] = t["slope_diff_ci_low"] / sd
    t["hi"] = t["slope_diff_ci_high"] / sd
    t = t.sort_values("slope_diff_std")
    fig, ax = figure(6.5, max(3.0, 0.3 * len(t) + 1.2))
    y = np.arange(len(t))
    ax.errorbar(t["slope_diff_std"], y, xerr=[t["slope_diff_std"] - t["lo"], t["hi"] - t["slope_diff_std"]], fmt="o",
                color=PALETTE[0], ecolor=PALETTE[0], capsize=2)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, [labels.get(v, v) for v in t["variable"]], fontsize=7)
    ax.set_xlabel("difference in slope per day, CS minus no CS (SD units at first landmark), 95% CI")
    ax.set_title(title)
    return fig
