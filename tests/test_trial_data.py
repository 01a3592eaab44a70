"""Trial-style data (issue 17): daily resolution, absent variables, 90-day mortality, the simulated randomised trial."""

import json

import numpy as np
import polars as pl
import pytest

from analysis_data import simulated
from sepsis_cs.clustering.trajectory import trajectory_bin_h
from sepsis_cs.contract import ContractSettings, check
from sepsis_cs.randomised import itt_estimates, summary
from sepsis_cs.simulate import DAILY_VARIABLES, TRIAL_PROPENSITY
from sepsis_cs.temporal import landmark_hours
from sepsis_cs.understand import absent_variables, dictionary_coverage

TRIAL = dict(design="trial", resolution="daily", followup_h=2160, window_start_h=-24, window_end_h=144)
DAILY_DB = {"resolution": "daily", "time_window": {"start_h": -24, "end_h": 144}}


@pytest.fixture(scope="module")
def trial():
    """A small simulated trial (400 patients; daily measures on days 0-6, 90-day follow-up)."""
    return simulated(400, 5, "trial", **TRIAL)


def test_trial_design_is_randomised_daily_with_90_day_mortality(trial):
    cohort, ts, truth = trial
    # randomised: the arm does not depend on the patient's state
    assert abs(cohort["cs"].mean() - TRIAL_PROPENSITY) < 0.08
    assert (truth["propensity"] == TRIAL_PROPENSITY).all()
    sofa_cs = cohort.filter(pl.col("cs"))["sofa_t0"].mean()
    sofa_no = cohort.filter(~pl.col("cs"))["sofa_t0"].mean()
    assert abs(sofa_cs - sofa_no) < 1.0
    treated = cohort.filter(pl.col("cs"))
    assert treated["cs_start_h"].max() < 1 and (treated["cs_first_h"] == treated["cs_start_h"]).all()
    assert cohort.filter(~pl.col("cs"))["cs_first_h"].null_count() == cohort.filter(~pl.col("cs")).height  # no CS in the control arm
    # daily case-report forms: a handful of measures, one a day from day 0 to day 6, no hourly vitals
    assert set(ts["variable"].unique()) == set(DAILY_VARIABLES)
    assert (ts["hour"] % 24 == 0).all() and ts["hour"].min() == 0 and ts["hour"].max() == 144
    # 90-day mortality: known for everyone, at least the 28-day one
    assert cohort["mortality_90d"].null_count() == 0
    assert (cohort["mortality_90d"] >= cohort["mortality_28d"]).all()
    assert {"p_death28_cs", "p_death28_no_cs", "p_death90_cs", "p_death90_no_cs"} <= set(truth.columns)


def test_default_simulator_has_no_90_day_column(sim_small):
    cohort, _, _ = sim_small
    assert "mortality_90d" not in cohort.columns  # 28-day follow-up: unknown, so not written


def test_trial_passes_the_contract_with_its_resolution(trial, dictionary, base_config):
    cohort, ts, _ = trial
    res = check(cohort, ts, dictionary, ContractSettings.from_config(base_config, database=DAILY_DB))
    assert res.ok, res.problems.errors
    assert res.cohort["mortality_90d"].dtype == pl.Int8
    # the top-level window (-24..72) rejects days 4-6; a database's own window accepts them
    res = check(cohort, ts, dictionary, ContractSettings.from_config(base_config))
    assert any(p.column == "hour" and "time window" in p.expected for p in res.problems.errors)


def test_daily_resolution_rejects_hours_that_are_not_whole_days(trial, dictionary, base_config):
    cohort, ts, _ = trial
    ts = ts.with_columns(pl.when(pl.col("hour") == 48).then(50).otherwise(pl.col("hour")).alias("hour"))
    res = check(cohort, ts, dictionary, ContractSettings.from_config(base_config, database=DAILY_DB))
    errors = [p for p in res.problems.errors if p.column == "hour"]
    assert len(errors) == 1 and "24 * day" in errors[0].line() and "resolution: daily" in errors[0].expected
    # irregular: sparse integer hours are fine
    res = check(cohort, ts, dictionary, ContractSettings.from_config(base_config, database={**DAILY_DB, "resolution": "irregular"}))
    assert res.ok


def test_mortality_90d_as_the_outcome_is_required_and_binary(trial, dictionary, base_config):
    cohort, ts, _ = trial
    settings = ContractSettings.from_config({**base_config, "outcome": "mortality_90d"}, database=DAILY_DB)
    assert check(cohort, ts, dictionary, settings).ok
    res = check(cohort.drop("mortality_90d"), ts, dictionary, settings)
    assert [p.column for p in res.problems.errors] == ["mortality_90d"]
    bad = cohort.with_columns(pl.col("mortality_90d").cast(pl.String).replace({"1": "yes", "0": "no"}))
    res = check(bad, ts, dictionary, settings)
    assert [p.column for p in res.problems.errors] == ["mortality_90d"]


def test_absent_variables_are_reported_not_imputed(trial, dictionary):
    cohort, ts, _ = trial
    absent = absent_variables(cohort, ts, dictionary)
    assert {"map", "heart_rate", "temperature", "norepinephrine_eq"} <= set(absent["hourly"])
    assert not set(DAILY_VARIABLES) & set(absent["hourly"])
    table = dictionary_coverage(cohort, ts, dictionary, 10)
    status = dict(table.select("variable", "status").iter_rows())
    assert status["map"] == "absent" and status["lactate"] == "recorded"


def test_daily_landmarks_and_trajectory_bins():
    assert landmark_hours([0, 24, 72], -24, 144, "daily") == [0, 24, 72]
    assert landmark_hours([6, 30, 200], -24, 144, "daily") == [0, 24, 144]
    assert landmark_hours([6, 30], -24, 72, "hourly") == [6, 30]
    assert trajectory_bin_h(6, "daily") == 24 and trajectory_bin_h(6, "hourly") == 6


def test_intention_to_treat_contrast_of_a_randomised_trial(trial):
    cohort, _, truth = trial
    table = itt_estimates(cohort, 10, truth)
    assert set(table["outcome"]) == {"mortality_28d", "mortality_90d", "hospital_mortality"}
    for r in table.iter_rows(named=True):
        assert r["rd_lo"] < r["rd"] < r["rd_hi"] and r["true_rd"] is not None
        assert abs(r["rd"] - (r["risk_cs"] - r["risk_no_cs"])) < 1e-5
    s = summary(table, 28)
    assert s["emulated"] is False and s["randomised"] and s["itt_outcome"] == "mortality_28d"
    # a null trial (no CS effect): the truth is zero and no outcome's contrast is far from it (|z| < 3 for each;
    # the 95 % interval's coverage is measured by benchmarks/trial_design.py, not by one seed)
    c0, _, t0 = simulated(400, 5, "trial", effect_model="none", **TRIAL)
    for r in itt_estimates(c0, 10, t0).iter_rows(named=True):
        assert abs(r["true_rd"]) < 1e-9 and abs(r["rd"]) < 3 * r["rd_se"]


# ------------------------------------------------------------------ the trial database in the shared end-to-end run
def test_workflow_runs_every_phase_on_the_trial(workflow_run):
    db = workflow_run / "results" / "trial"
    cohort = json.loads((db / "summary/cohort.json").read_text())
    assert cohort["resolution"] == "daily" and cohort["n_stays"] == 1200
    assert "map" in cohort["variables_absent_hourly"] and "lactate" not in cohort["variables_absent_hourly"]
    assert cohort["mortality_90d_cs"] is not None
    feats = pl.read_parquet(db / "features/stay_features.parquet")
    assert not [c for c in feats.columns if c.startswith("map__")] and "lactate__mean_0_24" in feats.columns
    # selection, clustering, models and CATE produce their outputs on it
    analysis = json.loads((db / "summary/analysis.json").read_text())
    assert analysis["n_selected_outcome"] >= 1 and analysis["propensity_oof_auc"] < 0.62  # randomised: CS unpredictable
    clustering = json.loads((db / "summary/clustering.json").read_text())
    assert clustering["chosen_k_pooled"] >= 1 and "ari_truth_pooled_chosen" in clustering
    supervised = json.loads((db / "summary/supervised.json").read_text())
    assert supervised["auroc_logistic"] > 0.65 and 0 < supervised["n_stays_evaluated"] <= 1200  # the landmark risk cohort
    trajectory = json.loads((db / "cluster/trajectory/trajectory.json").read_text())
    assert trajectory["bin_h"] == 24 and "map" in trajectory["variables_absent"]
    # target trial: a randomised trial is its own target trial (ITT contrast, no emulation)
    tt = json.loads((db / "summary/target_trial.json").read_text())
    assert tt["emulated"] is False and tt["randomised"] and tt["itt_outcome"] == "mortality_28d"
    assert tt["itt_rd_lo"] < tt["itt_rd"] < tt["itt_rd_hi"] and tt["true_rd"] is not None
    est = pl.read_csv(db / "target_trial/estimates.csv")
    assert set(est["outcome"]) == {"mortality_28d", "mortality_90d", "hospital_mortality"}
    assert np.isfinite(est["rd"].to_numpy()).all()


def test_transfer_from_an_hourly_source_to_a_daily_trial(trial, sim_small, small_features, dictionary):
    """The shared columns of an hourly ICU source and a daily trial are the statics and the daily measures; the
    strategies run on them (the hourly vitals of the source are left out, not imputed on the target)."""
    from sepsis_cs import transfer as T
    from sepsis_cs.features import categorical_columns, stay_features

    cohort, ts, _ = trial
    target_features = stay_features(cohort, ts, dictionary, [(-24, 0), (0, 24)])
    src, tgt, cols, levels = T.prepare_pair(small_features, sim_small[0], target_features, cohort, dictionary,
                                            "hospital_mortality", "all", ["last", "min", "max"])
    assert not [c for c in cols if c.startswith(("map__", "heart_rate__"))] and "lactate__max_0_24" in cols
    st = T.Settings(cat_columns=tuple(categorical_columns(cols, dictionary)))
    curves = pl.concat([T.learning_curve(s, src, tgt, [100], 1, 3, 0.3, st, levels) for s in ("target_only", "pooled", "finetune")],
                       how="vertical_relaxed")
    assert curves.height == 3 and np.isfinite(curves["test_auroc"].to_numpy()).all() and curves["test_auroc"].min() > 0.6
