"""Properties of the ground-truth simulator."""

import numpy as np
import polars as pl
import pytest

from sepsis_cs.simulate import (
    BENEFITING_PHENOTYPES,
    CS_EFFECT_LOGIT,
    PHENOTYPES,
    SimulationSettings,
    simulate,
)


def test_same_seed_same_data_other_seed_other_data():
    a = simulate(SimulationSettings(n_stays=300), seed=3)
    b = simulate(SimulationSettings(n_stays=300), seed=3)
    c = simulate(SimulationSettings(n_stays=300), seed=4)
    for x, y in zip(a, b):
        assert x.equals(y)
    assert not a[0].equals(c[0])


def test_shape_and_window(sim_small):
    cohort, ts, truth = sim_small
    assert cohort.height == 600 and truth.height == 600
    assert ts["hour"].min() >= -24 and ts["hour"].max() <= 72
    assert set(truth["phenotype"].unique()) == set(PHENOTYPES)
    # some patients have two stays: patient-level splitting matters
    assert cohort["patient_id"].n_unique() < cohort.height


def test_labs_sparser_than_vitals(sim_default):
    _, ts, _ = sim_default
    counts = dict(ts.group_by("variable").len().iter_rows())
    assert counts["lactate"] < counts["map"] / 3 and counts["crp"] < counts["heart_rate"] / 3


def test_confounding_by_severity(sim_default):
    cohort, _, truth = sim_default
    df = cohort.join(truth, on="stay_id")
    treated_sofa = df.filter(pl.col("cs"))["sofa_t0"].mean()
    untreated_sofa = df.filter(~pl.col("cs"))["sofa_t0"].mean()
    assert treated_sofa > untreated_sofa + 0.5


def test_planted_heterogeneous_effect_is_recoverable_by_stratification(sim_default):
    """Within phenotype x propensity-quintile strata, the crude CS effect has the planted sign."""
    cohort, _, truth = sim_default
    df = cohort.join(truth, on="stay_id").to_pandas()
    df["ps_q"] = df.groupby("phenotype")["propensity"].transform(lambda s: np.digitize(s, np.quantile(s, [0.2, 0.4, 0.6, 0.8])))
    est = {}
    for ph, g in df.groupby("phenotype"):
        diffs, weights = [], []
        for _, s in g.groupby("ps_q"):
            t, u = s[s.cs], s[~s.cs]
            if len(t) >= 5 and len(u) >= 5:
                diffs.append(u.hospital_mortality.mean() - t.hospital_mortality.mean())
                weights.append(len(s))
        est[ph] = np.average(diffs, weights=weights)
    for ph in BENEFITING_PHENOTYPES:
        assert est[ph] > 0.03, est  # CS lowers mortality
    # harm in beta: in the truth (CS from time zero vs never). Since the hourly treatment process (issue 14)
    # the naive contrast also carries immortal time, which favours CS, so its sign in beta is not asserted.
    assert df[df.phenotype == "beta"].ite.mean() < 0
    assert est["gamma"] > est["alpha"] and est["delta"] > est["alpha"]
    assert CS_EFFECT_LOGIT["alpha"] == 0.0


def test_truth_ite_matches_potential_outcomes(sim_small):
    _, _, truth = sim_small
    assert np.allclose(truth["ite"], truth["p_death_no_cs"] - truth["p_death_cs"])


@pytest.mark.slow
def test_shifted_and_unrelated_databases():
    ref = simulate(SimulationSettings(n_stays=2000), seed=5, database="a")[0]
    shifted_c, shifted_ts, _ = simulate(SimulationSettings(n_stays=2000, shift=1.0, lab_interval_scale=2.0), seed=5, database="b")
    assert shifted_c["age"].mean() > ref["age"].mean() + 3
    unrelated = simulate(SimulationSettings(n_stays=2000, outcome_model="unrelated"), seed=5, database="c")
    assert unrelated[0].height == 2000


@pytest.mark.slow
def test_scenario_knobs_one_population_and_no_effect():
    """phenotype_separation = 0 removes phenotype differences in covariates; effect_model none / the
    noise outcome leave no individual effect; the defaults are unchanged."""
    one, _, t1 = simulate(SimulationSettings(n_stays=2000, phenotype_separation=0.0), seed=3)
    means = one.with_columns(t1["phenotype"]).group_by("phenotype").agg(pl.col("lactate_t0").mean(), pl.col("age").mean())
    assert means["lactate_t0"].max() - means["lactate_t0"].min() < 0.25
    assert means["age"].max() - means["age"].min() < 3
    ref, _, t_ref = simulate(SimulationSettings(n_stays=2000), seed=3)
    ref_means = ref.with_columns(t_ref["phenotype"]).group_by("phenotype").agg(pl.col("lactate_t0").mean())
    assert ref_means["lactate_t0"].max() - ref_means["lactate_t0"].min() > 2
    for kw in ({"effect_model": "none"}, {"outcome_model": "noise"}):
        _, _, truth = simulate(SimulationSettings(n_stays=500, **kw), seed=3)
        assert truth["ite"].abs().max() == 0
    common = simulate(SimulationSettings(n_stays=500, effect_model="common"), seed=3)[2]
    assert common["cs_effect_logit"].n_unique() == 1
