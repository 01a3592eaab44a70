"""CS benefit (CATE): held-out learners against the simulator's true effect; benefit metrics say
"nothing here" where there is nothing and find the planted heterogeneity where it is."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from sepsis_cs import benefit as B
from sepsis_cs import cate
from sepsis_cs.simulate import BENEFITING_PHENOTYPES


def test_baseline_columns_exclude_post_time_zero():
    cols = ["age", "sex", "lactate__max_m24_0", "lactate__max_0_24", "map__slope_m12_0", "map__mean_m24_6", "x__n_0_72"]
    assert cate.baseline_columns(cols) == ["age", "sex", "lactate__max_m24_0", "map__slope_m12_0"]


def _rct(n=4000, seed=0, effect=0.25):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.random(n) < 0.5
    p0 = 1 / (1 + np.exp(-(-0.5 + 0.3 * x)))
    benefit = effect * np.tanh(x)  # true risk reduction
    p1 = np.clip(p0 - benefit, 0.01, 0.99)
    y = (rng.random(n) < np.where(t, p1, p0)).astype(int)
    return x, t.astype(int), y, p0 - p1


def test_rate_weights_and_ties():
    s = np.array([3.0, 1.0, 2.0, 0.0])
    for kind in ("autoc", "qini"):
        w = B.rate_weights(s, kind)
        assert abs(w.sum()) < 1e-12
        assert w[0] > w[2] > w[1] > w[3]  # the best-ranked stay weighs most
        assert np.allclose(B.rate_weights(np.ones(7), kind), 0.0)  # a constant ranking: RATE exactly 0
    # AUTOC by its definition: mean over j of (mean of the top j gammas - mean of all)
    g = np.array([0.9, -0.2, 0.4, 0.1])
    order = np.argsort(-s)
    toc = [g[order][: j + 1].mean() - g.mean() for j in range(4)]
    assert np.mean(B.rate_weights(s, "autoc") * g) == pytest.approx(np.mean(toc))


def test_holm_adjustment():
    adj = B.holm([0.01, 0.04, 0.03, np.nan])
    assert np.allclose(adj[:3], [0.03, 0.06, 0.06]) and np.isnan(adj[3])


def _oracle_frame(x, t, y, seed=0, n_folds=5, score=None):
    """Held-out pieces of an RCT with known propensity 0.5 and arm means per fold (oracle nuisances
    estimated from the other folds as constants)."""
    fold = np.random.default_rng(seed).integers(0, n_folds, len(y))
    mu0, mu1 = np.zeros(len(y)), np.zeros(len(y))
    for k in range(n_folds):
        tr = fold != k
        mu0[fold == k], mu1[fold == k] = y[tr & (t == 0)].mean(), y[tr & (t == 1)].mean()
    gamma = cate.aipw_benefit(y, t, np.full(len(y), 0.5), mu0, mu1, 0.01)
    return pd.DataFrame({"benefit": score, "gamma": gamma, "fold": fold, "patient_id": np.arange(len(y)).astype(str),
                         "risk_based": mu0 - mu1, "ps_eval": 0.5, "t": t, "y": y})


def test_benefit_tests_find_planted_heterogeneity_and_not_noise():
    x, t, y, true_b = _rct(seed=1)
    kw = dict(n_groups=4, alpha=0.05, delta=0.0, n_boot=50, seed=0, thresholds=np.arange(0, 0.2, 0.05))
    good = B.evaluate_learner(_oracle_frame(x, t, y, score=true_b), **kw)["tests"]
    assert good["autoc_p"] < 0.01 and good["blp_p"] < 0.01 and good["rd_heterogeneity_detected"]
    assert 0.6 < good["blp_beta2"] < 1.5  # the true benefit is calibrated: slope ~ 1
    assert good["c_for_benefit_lo"] > 0.5
    noise = B.evaluate_learner(_oracle_frame(x, t, y, score=np.random.default_rng(9).random(len(y))), **kw)
    nt = noise["tests"]
    assert nt["autoc_p"] > 0.05 and nt["blp_p"] > 0.05 and not nt["rd_heterogeneity_detected"]
    assert not nt["effect_modification_detected"] and set(noise["classes"]) == {"not_classified"}


def test_gates_calibration_for_benefit_and_classes():
    x, t, y, true_b = _rct(seed=2, n=8000)
    f = _oracle_frame(x, t, y, score=true_b)
    table, tests = B.gates(f["benefit"], f["gamma"], f["fold"], f["patient_id"], 4, 0.0)
    assert table["effect"].is_monotonic_increasing
    assert np.all(np.abs(table["effect"] - table["predicted"]) < 3 * table["se"])
    assert tests["gates_diff_p"] < 0.001 and tests["gates_equal_p"] < 0.001
    grp = B.group_of(f["benefit"], f["fold"], 4)
    cls = B.benefit_classes(grp, table, True, 0.05)
    assert set(cls[grp == 4]) == {"cs_sensitive"} and set(cls[grp == 1]) == {"possibly_harmed"}
    assert set(B.benefit_classes(grp, table, False, 0.05)) == {"not_classified"}


def test_policy_curve_treat_by_true_benefit_beats_defaults():
    x, t, y, true_b = _rct(seed=3, n=8000)
    f = _oracle_frame(x, t, y, score=true_b)
    pc = B.policy_curve(f["benefit"], f["gamma"], f["patient_id"], [0.0, 0.05])
    r = pc.iloc[0]
    # treating those who benefit prevents more events than treating all (about half are harmed)
    assert r["net_benefit"] > r["treat_all"] and r["gain_lo"] > 0
    assert 0.4 < r["share_treated"] < 0.6


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
    results = {lr: cate.crossfit_cate(lr, Z, y, t, ov, groups, C=0.02, n_folds=5, seed=1, clip=0.05) for lr in cate.LEARNERS}
    tr = truth.to_pandas().set_index("stay_id").loc[stay_id]
    return results, tr, ov, y, t, groups


def test_cate_spearman_with_true_effect(sim_cate):
    results, tr, ov, y, t, _ = sim_cate
    rho = {lr: spearmanr(r["benefit"], tr["ite"])[0] for lr, r in results.items()}
    print("held-out CATE Spearman vs true ITE:", {k: round(v, 3) for k, v in rho.items()})
    # (hourly simulator of issue 14: DR 0.77, X 0.67, T 0.51; before it 0.81, 0.81, 0.67)
    assert rho["dr_learner"] >= 0.6
    assert rho["x_learner"] >= 0.55 and rho["t_learner"] >= 0.4
    # The average effect is not compared with the truth: the baseline contrast "CS started within 24 h vs not"
    # carries immortal time and time-varying confounding by design of the simulator (the target-trial phase's
    # business), while the truth's ite is "CS from time zero vs never".


def test_held_out_evaluation_on_simulator(sim_cate):
    """Planted heterogeneity is detected out of sample, the CS-sensitive class (whole GATES groups) is
    enriched in the phenotypes that truly benefit and the lowest group in the harmed one.  (No group is
    *shown* harmed on the hourly simulator: immortal time in the baseline contrast favours CS.)"""
    results, tr, ov, y, t, groups = sim_cate
    r = results["dr_learner"][ov].assign(patient_id=groups[ov], t=t[ov], y=y[ov])
    ev = B.evaluate_learner(r, n_groups=5, alpha=0.05, delta=0.0, n_boot=30, seed=0, thresholds=[0.0, 0.05])
    tests = ev["tests"]
    assert tests["rd_heterogeneity_detected"] and tests["effect_modification_detected"]
    assert tests["autoc_lo"] > 0 and tests["c_for_benefit_lo"] > 0.5
    pheno = tr["phenotype"].to_numpy()[ov]
    sens, harmed = ev["classes"] == "cs_sensitive", ev["classes"] == "possibly_harmed"
    benefiting = np.isin(pheno, BENEFITING_PHENOTYPES)
    assert sens.sum() > 100 and benefiting[sens].mean() > 1.5 * benefiting.mean()
    lowest = ev["groups"] == 1
    assert (pheno[lowest] == "beta").mean() > 1.5 * (pheno == "beta").mean()
    if harmed.any():
        assert (pheno[harmed] == "beta").mean() > 1.5 * (pheno == "beta").mean()


def test_bootstrap_interval_is_wider_than_nothing(sim_small, small_features, dictionary):
    cohort, _, _ = sim_small
    feats = small_features
    cols = cate.cate_columns("all", [c for c in feats.columns if c != "stay_id"])
    Z, _, y, t, groups = cate.cate_design(feats, cohort, cols, dictionary, "hospital_mortality")
    ov = np.ones(len(y), bool)
    res = cate.estimate_cate("dr_learner", Z, y, t, np.full(len(y), 0.3), ov, groups, C=0.02, n_folds=3, n_boot=5, seed=1)
    assert (res["se"] > 0).all() and (res["lo"] < res["benefit"]).all() and (res["benefit"] < res["hi"]).all()
    assert set(res["fold"]) == {0, 1, 2} and res["gamma"].notna().all()


def test_report_front_page_says_no_heterogeneity():
    from sepsis_cs.report import summary_rst

    sup = {"n_risk_cohort": 950, "landmark_h": 24.0, "auroc_logistic": 0.51, "auroc_logistic_lo": 0.47, "auroc_logistic_hi": 0.55,
           "ate_aipw": 0.01, "ate_aipw_lo": -0.02, "ate_aipw_hi": 0.04, "primary_learner": "dr_learner",
           "heterogeneity_detected": False, "effect_modification_detected": False, "share_not_classified": 1.0}
    text = summary_rst({"simulated": {"supervised": sup}}, {"min_cell_count": 10, "outcome": "hospital_mortality"})
    assert text.count("no heterogeneity detected") == 2 and "none declared" in text and "950" in text
    assert "Share in CS-sensitive" not in text and "covering the true" not in text  # no truth: no coverage rows
    sim = {**sup, "gates_coverage_truth_dr_learner": 0.8, "cate_interval_coverage_truth_dr_learner": 0.7}
    text = summary_rst({"simulated": {"supervised": sim}}, {"supervised": {"cate": {"alpha": 0.1}}})
    assert "nominal 90 %, no coverage claimed" in text and "0.7" in text
