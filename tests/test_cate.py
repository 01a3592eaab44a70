"""CS benefit (CATE): learners against the simulator's true effect, and the benefit metrics."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from sepsis_cs import cate
from sepsis_cs.simulate import BENEFITING_PHENOTYPES


def test_baseline_columns_exclude_post_time_zero():
    cols = ["age", "sex", "lactate__max_m24_0", "lactate__max_0_24", "map__slope_m12_0", "map__mean_m24_6", "x__n_0_72"]
    assert cate.baseline_columns(cols) == ["age", "sex", "lactate__max_m24_0", "map__slope_m12_0"]


def test_classify_benefit_rule():
    lo = np.array([0.05, -0.2, -0.1, 0.05])
    hi = np.array([0.2, -0.05, 0.1, 0.2])
    ov = np.array([True, True, True, False])
    assert list(cate.classify_benefit(lo, hi, ov, 0.02)) == ["cs_sensitive", "possibly_harmed", "cs_resistant", "outside_overlap"]
    assert list(cate.classify_benefit(lo, hi, ov, 0.06)) == ["cs_resistant", "cs_resistant", "cs_resistant", "outside_overlap"]


def _rct(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.random(n) < 0.5
    p0 = 1 / (1 + np.exp(-(-0.5 + 0.3 * x)))
    benefit = 0.25 * np.tanh(x)  # true risk reduction
    p1 = np.clip(p0 - benefit, 0.01, 0.99)
    y = (rng.random(n) < np.where(t, p1, p0)).astype(int)
    return x, t.astype(int), y, p0 - p1


def test_c_for_benefit_informative_vs_random():
    x, t, y, true_b = _rct()
    c_true, lo, hi = cate.c_for_benefit(true_b, t, y, 100, 0)
    c_rand, _, _ = cate.c_for_benefit(np.random.default_rng(5).random(len(y)), t, y, 100, 0)
    assert c_true > 0.58 and lo > 0.54
    assert abs(c_rand - 0.5) < 0.04  # SD over random predictors ~0.012 at this size


def test_qini_and_calibration_for_benefit():
    x, t, y, true_b = _rct(seed=1)
    ps = np.full(len(y), 0.5)
    pseudo = cate.aipw_benefit(y, t, ps, np.full(len(y), y[t == 0].mean()), np.full(len(y), y[t == 1].mean()), 0.01)
    assert cate.auuc(cate.qini_curve(true_b, pseudo)) > 0.01
    assert cate.auuc(cate.qini_curve(-true_b, pseudo)) < -0.01
    cal = cate.calibration_for_benefit(true_b, pseudo, np.arange(len(y)), 4, 100, 0)
    assert cal["observed"].is_monotonic_increasing
    assert np.all(np.abs(cal["observed"] - cal["predicted"]) < 0.08)


@pytest.fixture(scope="module")
def sim_cate(sim_default, default_features, dictionary):
    cohort, ts, truth = sim_default
    feats = default_features
    cols = cate.cate_columns("all", [c for c in feats.columns if c != "stay_id"])
    assert not any(c.endswith("_0_24") for c in cols)
    Z, stay_id, y, t, groups = cate.cate_design(feats, cohort, cols, dictionary, "hospital_mortality")
    fold = cate.patient_folds(t, y, groups, 5, 1)
    ps = cate.crossfit_propensity(Z, t, fold, 0.02, 1)
    ov = cate.overlap_mask(ps, 0.05)
    results = {lr: cate.estimate_cate(lr, Z, y, t, ps, ov, groups, outcome_learner="logistic", C=0.02, n_folds=5, n_boot=30, seed=1, clip=0.05) for lr in cate.LEARNERS}
    tr = truth.to_pandas().set_index("stay_id").loc[stay_id]
    return results, tr, ov, y, t


def test_cate_spearman_with_true_effect(sim_cate):
    results, tr, ov, y, t = sim_cate
    rho = {lr: spearmanr(r["benefit"], tr["ite"])[0] for lr, r in results.items()}
    print("CATE Spearman vs true ITE:", {k: round(v, 3) for k, v in rho.items()})
    assert rho["dr_learner"] >= 0.6
    assert rho["x_learner"] >= 0.6 and rho["t_learner"] >= 0.5
    # the doubly robust average effect is close to the true average effect (residual confounding by latent severity)
    ate = results["dr_learner"]["pseudo"][ov].mean()
    assert abs(ate - tr["ite"][ov].mean()) < 0.03


def test_cs_sensitive_enriched_in_benefiting_phenotypes(sim_cate):
    results, tr, ov, *_ = sim_cate
    r = results["dr_learner"]
    cls = cate.classify_benefit(r["lo"], r["hi"], ov, 0.0)
    benefiting = tr["phenotype"].isin(BENEFITING_PHENOTYPES).to_numpy()
    sens = cls == "cs_sensitive"
    assert sens.sum() > 100
    assert benefiting[sens].mean() > 1.8 * benefiting.mean()
    harmed = cls == "possibly_harmed"
    assert (tr["phenotype"].to_numpy()[harmed] == "beta").mean() > 2 * (tr["phenotype"] == "beta").mean()
    # CIs are not degenerate and widen where data are thinner
    assert (r["se"] > 0).all() and r["se"].median() < 0.1


def test_c_for_benefit_on_simulator(sim_cate):
    results, tr, ov, y, t = sim_cate
    r = results["dr_learner"]
    c, lo, hi = cate.c_for_benefit(r["benefit"][ov], t[ov], y[ov], 50, 0)
    assert lo > 0.5


def test_calibration_for_benefit_with_one_predicted_value():
    # tiny data (e.g. 4 treated stays of the MIMIC-IV demo): every benefit equal -> no group, but the columns exist
    cal = cate.calibration_for_benefit(np.zeros(5), np.arange(5.0), np.arange(5), 5, 10, 0)
    assert cal.empty and {"predicted", "observed", "observed_lo", "observed_hi"} <= set(cal.columns)
    fig = cate.plot_benefit_evaluation({"dr_learner": cate.qini_curve(np.zeros(5), np.arange(5.0))}, cal.assign(learner="dr_learner"), "tiny")
    import matplotlib.pyplot as plt

    plt.close(fig)
