"""Temporal study: GEE slopes, trajectories with suppression, landmark values; end-to-end analysis.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from helpers import e2e_config
from sepsis_cs.temporal import gee_independence, landmark_comparison, landmark_values, trajectories


def _toy(n_patients=300, diff=-2.0, seed=0):
    rng = np.random.default_rng(seed)
    rows, cohort = [], []
    for p in range(n_patients):
        cs = p % 2
        u = rng.normal(0, 3)  # patient random effect -> within-cluster correlation
        sid = f"s{p}"
        cohort.append({"stay_id": sid, "patient_id": f"p{p // 2 if p < 40 else p}", "cs": bool(cs), "cs_start_h": 3.0 if cs else None,
                       "hospital_mortality": int(rng.random() < 0.3)})
        for h in range(-6, 73):
            if rng.random() < 0.7:
                slope = 1.0 + diff * cs  # per day
                rows.append({"stay_id": sid, "hour": h, "variable": "map", "value": 70 + u + slope * h / 24 + rng.normal(0, 1)})
    return pl.DataFrame(cohort), pl.DataFrame(rows).with_columns(pl.col("hour").cast(pl.Int32))


def test_closed_form_gee_equals_statsmodels():
    from statsmodels.genmod.cov_struct import Independence
    from statsmodels.genmod.families import Gaussian
    from statsmodels.genmod.generalized_estimating_equations import GEE

    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(100), 3)
    X = np.column_stack([np.ones(300), rng.normal(size=300), rng.integers(0, 2, 300)])
    y = X @ [1.0, 2.0, -1.0] + np.repeat(rng.normal(size=100), 3) + rng.normal(size=300)
    b, se = gee_independence(y, X, g)
    ref = GEE(y, X, groups=g, family=Gaussian(), cov_struct=Independence()).fit()
    assert np.allclose(b, ref.params) and np.allclose(se, ref.bse)


def test_landmark_gee_recovers_a_planted_slope_difference():
    cohort, ts = _toy(diff=-2.0)
    lm = landmark_values(ts, [0, 24, 72], 6)
    table = landmark_comparison(lm, cohort, [0, 24, 72], 10)
    row = table.set_index("variable").loc["map"]
    assert row["slope_diff_ci_low"] < -2.0 < row["slope_diff_ci_high"]
    assert row["slope_diff_ci_high"] < 0 and row["slope_no_cs_per_day"] == pytest.approx(1.0, abs=0.3)
    assert row["mean_change_24h_cs"] == pytest.approx(-1.0, abs=0.6)
    exch = landmark_comparison(lm, cohort, [0, 24, 72], 10, "exchangeable").set_index("variable").loc["map"]
    assert exch["slope_diff_per_day"] == pytest.approx(row["slope_diff_per_day"], abs=0.3)


def test_small_groups_give_no_estimate_and_no_small_counts():
    cohort, ts = _toy(n_patients=30)
    lm = landmark_values(ts, [0, 24, 72], 6)
    table = landmark_comparison(lm, cohort, [0, 24, 72], 20)
    assert "no estimate" in table.loc[0, "note"] and np.isnan(table.loc[0, "slope_diff_per_day"])
    traj = trajectories(ts, cohort, "hospital_mortality", 20)
    assert traj["n"].null_count() == traj.height  # groups of 15 stays: every point withheld
    traj = trajectories(ts, cohort, "hospital_mortality", 9)
    assert 0 < traj["n"].null_count() < traj.height and traj["n"].drop_nulls().min() >= 9
    assert traj.filter(pl.col("n").is_null())["mean"].null_count() == traj.filter(pl.col("n").is_null()).height
    # CS-start alignment only uses treated stays, shifted by their start hour
    t = traj.filter(pl.col("alignment") == "cs_start")
    assert set(t["group"].unique()) <= {"CS"}


def test_trajectory_ci_matches_manual_computation():
    cohort, ts = _toy()
    traj = trajectories(ts, cohort, "hospital_mortality", 10)
    r = traj.filter((pl.col("alignment") == "time_zero") & (pl.col("grouping") == "cs") & (pl.col("group") == "CS") & (pl.col("hour") == 24))
    cs_ids = cohort.filter(pl.col("cs"))["stay_id"]
    v = ts.filter((pl.col("hour") == 24) & pl.col("stay_id").is_in(cs_ids.implode()))["value"].to_numpy()
    assert r["mean"][0] == pytest.approx(v.mean())
    assert r["ci_high"][0] - r["mean"][0] == pytest.approx(1.96 * v.std(ddof=1) / np.sqrt(len(v)))


@pytest.mark.slow
def test_workflow_writes_analysis_outputs(workflow_run):
    db = workflow_run / "results" / "simulated"
    summary = json.loads((db / "summary" / "analysis.json").read_text())
    for key in ("n_selected_outcome", "n_selected_treatment", "max_abs_smd_unweighted", "max_abs_smd_weighted", "share_outside_overlap"):
        assert summary[key] is not None, key
    assert summary["n_selected_outcome"] >= 3 and summary["n_selected_treatment"] >= 3
    assert summary["max_abs_smd_weighted"] < summary["max_abs_smd_unweighted"]
    ps = pl.read_parquet(db / "analyse" / "propensity.parquet")
    assert ps.columns == ["stay_id", "ps", "in_overlap"]
    cohort = pl.read_parquet(db / "data" / "cohort.parquet").select("stay_id", "cs")
    ps = ps.join(cohort, on="stay_id", how="inner")
    assert ps.height == cohort.height and ps["ps"].null_count() == 0
    # the score has learnt the confounding by severity, without separating the groups completely
    assert 0.6 < roc_auc_score(ps["cs"].to_numpy(), ps["ps"].to_numpy()) < 0.95
    # overlap flags follow the configured trimming bounds and the common support of both groups, and the
    # summary's share agrees with the table
    lo, hi = e2e_config()["analyse"]["propensity"]["trim"]
    s_lo = max(ps.filter(pl.col("cs"))["ps"].min(), ps.filter(~pl.col("cs"))["ps"].min())
    s_hi = min(ps.filter(pl.col("cs"))["ps"].max(), ps.filter(~pl.col("cs"))["ps"].max())
    expected = ps["ps"].is_between(max(lo, s_lo), min(hi, s_hi))
    assert (ps["in_overlap"] == expected).all()
    outside = 1 - ps["in_overlap"].mean()
    assert outside < 0.5 and summary["share_outside_overlap"] == pytest.approx(outside, abs=1e-6)
    sel = json.loads((db / "analyse" / "selected_features.json").read_text())
    feats = pl.read_parquet(db / "features" / "stay_features.parquet").columns
    assert set(sel) == {"outcome", "treatment"}
    assert set(sel["outcome"]) <= set(feats) and set(sel["treatment"]) <= set(feats)
    assert not any(f.endswith("_0_24") for f in sel["treatment"])  # CS assignment: baseline only
    table1 = pd.read_csv(db.parent.parent / "results" / "simulated" / "understand" / "table1.csv", dtype=str)
    for g in ("overall", "cs", "no_cs"):
        for v in table1[g].dropna():
            if "(" in v and "[" not in v:
                n = int(v.split(" ")[0])
                assert n == 0 or n >= 10
    for name in ("missingness_over_time.png", "missingness_patterns.png", "distributions.png", "table1_balance.png"):
        assert (db / "understand" / name).stat().st_size > 10_000
