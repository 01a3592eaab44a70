"""Machinery of the target-trial emulation (clone-censor-weight) on small hand-made and simulated data."""

import numpy as np
import polars as pl
import pytest

from sepsis_cs import target_trial as tt
from sepsis_cs.simulate import SimulationSettings, simulate

PROTOCOL = tt.Protocol(grace_h=3, followup_days=1, truncate_quantile=1.0, n_boot=0, baseline=("age",),
                       time_varying=("map",))


def _tiny():
    """Four stays: CS at 1.5 h; died at 1.2 h untreated; untreated survivor; CS at 2.0 h (the last grace hour)."""
    cohort = pl.DataFrame({
        "stay_id": ["a", "b", "c", "d"], "patient_id": ["1", "2", "3", "4"], "cs": [True, False, False, True],
        "cs_hydrocortisone_eq_mg_24h": [200.0, None, None, 160.0], "age": [50.0, 60.0, 70.0, 80.0],
        "cs_before_t0": [0, 0, 0, 0],
        "cs_first_h": [1.5, None, None, 2.0], "death_h": [None, 1.2, None, 10.0],
        "icu_discharge_h": [30.0, 1.2, 20.0, 10.0], "followup_end_h": [24.0] * 4,
    })
    ts = pl.DataFrame({"stay_id": ["a", "b", "c", "d"], "hour": [0, 0, 0, 0], "variable": ["map"] * 4,
                       "value": [60.0, 70.0, 80.0, 65.0]})
    return cohort, ts


def _hazards(data, grace, h):
    """A HazardFit with a constant hazard h on every stay-hour at risk (numerator = the same)."""
    rows = np.flatnonzero(tt.at_risk(data, grace))
    return tt.HazardFit(rows, np.full(len(rows), h), np.full(len(rows), h), np.full(grace, h), np.full(grace, h))


def test_clone_counts_and_censoring_times():
    cohort, ts = _tiny()
    data = tt.prepare(cohort, ts, PROTOCOL, 3)
    cl = tt.build_clones(data, 3, _hazards(data, 3, 0.2), PROTOCOL, None, stabilised=False)
    assert cl.exit_hour.shape == (2, 4)  # every eligible stay in both arms
    cs, no = cl.censored_at
    # CS arm: a started in hour 1 (compatible), b died untreated before the last grace hour (compatible),
    # c untreated and in the ICU at hour 2 = G - 1 (censored there), d started in hour 2 (compatible);
    # (a stay dying untreated within hour G-1 is censored: a start in an hour precedes death in it)
    assert list(cs) == [-1, -1, 2, -1]
    # no-CS arm: a censored at its start hour 1, d at hour 2; b and c compatible
    assert list(no) == [1, -1, -1, 2]
    # deaths: b in hour 1 counts in both arms; d's death at 10 h counts in the CS arm only
    assert cl.event[0].tolist() == [False, True, False, True]
    assert cl.event[1].tolist() == [False, True, False, False]


def test_weights_hand_computed():
    """Constant hazard h = 0.2: no-CS clones gain 1/(1-h) per untreated hour at risk; uniform CS timing gives
    a starter in hour u the factor q_u / h with q_u = 1 / (G - u), times (1 - q_v)/(1 - h) for earlier hours."""
    cohort, ts = _tiny()
    data = tt.prepare(cohort, ts, PROTOCOL, 3)
    h, G = 0.2, 3
    cl = tt.build_clones(data, G, _hazards(data, G, h), PROTOCOL, None, stabilised=False)
    W_cs, W_no = cl.weights[0], cl.weights[1]
    # c: untreated, at risk in hours 0, 1, 2 -> no-CS weight (1/(1-h))^3
    assert W_no[2, G] == pytest.approx((1 / (1 - h)) ** 3)
    # b: at risk in hours 0, 1 (dies at 1.2 h)
    assert W_no[1, G] == pytest.approx((1 / (1 - h)) ** 2)
    # a: CS arm, untreated in hour 0 (q = 1/3), starts in hour 1 (q = 1/2)
    assert W_cs[0, G] == pytest.approx((1 - 1 / 3) / (1 - h) * (1 / 2) / h)
    # d: untreated in hours 0, 1, starts in hour 2 (q = 1)
    assert W_cs[3, G] == pytest.approx((2 / 3) / (1 - h) * (1 / 2) / (1 - h) * 1 / h)
    # natural timing: only the last-hour starter is reweighted, by 1 / h
    nat = tt.Protocol(**{**PROTOCOL.__dict__, "cs_timing": "natural"})
    cln = tt.build_clones(data, G, _hazards(data, G, h), nat, None, stabilised=False)
    assert cln.weights[0, 0, G] == pytest.approx(1.0) and cln.weights[0, 3, G] == pytest.approx(1 / h)


def test_weighted_risk_hand_computed():
    """No-CS arm of the tiny trial: in hour 1, a is censored (starts CS) and b dies among b, c, d (equal
    weights) -> hazard 1/3; in hour 2, d is censored and c survives -> risk 1/3."""
    cohort, ts = _tiny()
    data = tt.prepare(cohort, ts, PROTOCOL, 3)
    cl = tt.build_clones(data, 3, _hazards(data, 3, 0.2), PROTOCOL, None, stabilised=False)
    ci = tt.cumulative_incidence(cl, 1, 24, np.ones(4))
    assert ci[-1] == pytest.approx(1 / 3)


def test_weight_model_sees_no_hour_after_the_grace_period():
    cohort, ts, _ = simulate(SimulationSettings(n_stays=300), seed=2)
    data = tt.prepare(cohort, ts, tt.Protocol(n_boot=0), 48)
    for g in (6, 24):
        hz = tt.fit_hazards(data, g, np.ones(len(data.stay_id)), None)
        hours = data.panel_hour[hz.rows]
        stays = data.panel_stay[hz.rows]
        assert hours.max() == g - 1
        # never a stay-hour at or after death, ICU discharge or the CS start hour
        assert (hours < data.death[stays]).all() and (hours < data.icu_end[stays]).all()
        assert (hours <= np.floor(data.cs_first[stays])).all()


def test_missing_event_times_give_one_line():
    cohort, _ = _tiny()
    msg = tt.missing_requirements(cohort.drop("death_h", "followup_end_h"))
    assert msg.startswith("target trial not emulated") and "death_h" in msg and "\n" not in msg
    assert tt.missing_requirements(cohort) is None


def test_e_value():
    ev, ci = tt.e_value(0.8, 0.7, 0.95)
    assert ev == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))
    assert ci == pytest.approx(1 / 0.95 + np.sqrt(1 / 0.95 * (1 / 0.95 - 1)))
    assert tt.e_value(0.8, 0.6, 1.1)[1] == 1.0


def test_simulated_truth_and_null_effect():
    """The truth table has the per-protocol risks; with no CS effect the per-protocol RD is zero exactly,
    and the emulation says 'nothing here' (CI covers 0)."""
    cohort, ts, truth = simulate(SimulationSettings(n_stays=800, effect_model="none"), seed=4)
    assert np.allclose(truth["risk28_cs_uniform_g24"], truth["risk28_no_cs_g24"])
    assert {"cs_first_h", "death_h", "icu_discharge_h", "hospital_discharge_h", "followup_end_h"} <= set(cohort.columns)
    # CS never starts after death or ICU discharge
    c = cohort.filter(pl.col("cs_first_h").is_not_null())
    assert (c["cs_first_h"] <= c["death_h"].fill_null(1e9)).all() and (c["cs_first_h"] <= c["icu_discharge_h"].fill_null(1e9)).all()
    p = tt.Protocol(n_boot=10, baseline=("age", "sofa_t0", "lactate_t0", "map_t0", "vasopressor_t0", "copd"))
    data = tt.prepare(cohort, ts, p, 24)
    s = tt.primary_analysis(data, p, seed=1)["summary"]
    assert s["rd_lo"] < 0 < s["rd_hi"]
    assert s["ess_cs"] > 50 and s["ess_no_cs"] > 50


def test_restricted_cubic_spline_is_linear_outside_the_knots():
    knots = np.array([1.0, 2.0, 4.0, 7.0])
    x = np.linspace(-3, 12, 301)
    basis = tt.restricted_cubic_spline(x, knots)
    assert basis.shape == (301, 2)
    assert np.allclose(basis[x <= knots[0]], 0.0)  # zero below the first knot
    right = x >= knots[-1]
    second = np.diff(basis[right], n=2, axis=0)  # linear beyond the last knot
    assert np.allclose(second, 0.0, atol=1e-9)
    assert len(tt.spline_knots(np.r_[np.zeros(99), 1.0])) == 0  # too few distinct values: stays linear


def test_spline_weight_model_design():
    """The spline design adds an any-vasopressor indicator and spline terms; the linear one keeps main effects."""
    rng = np.random.default_rng(0)
    dose = np.where(rng.random(500) < 0.4, 0.0, rng.gamma(2.0, 0.1, 500))
    map_ = rng.normal(70, 10, 500)
    raw = np.column_stack([dose, np.where(rng.random(500) < 0.1, np.nan, map_)])
    X, names = tt.tv_design_matrix(raw, ["norepinephrine_eq", "map"], "splines")
    assert names[:2] == ["any_vasopressor", "norepinephrine_eq"] and "map_missing" in names and "map_rcs1" in names
    assert X.shape == (500, len(names)) and np.allclose(X.mean(axis=0), 0.0)
    Xl, names_l = tt.tv_design_matrix(raw, ["norepinephrine_eq", "map"], "linear")
    assert names_l == ["norepinephrine_eq", "map_missing", "map"]
    with pytest.raises(ValueError, match="unknown weight_model"):
        tt.tv_design_matrix(raw, ["map"], "forest")



def test_design_clips_to_the_reference_quantiles():
    """With clip_quantile, a rare extreme value gets the design row of the reference 1st/99th percentile, and the
    reference rows (stay-hours at risk) alone place the quantiles and the standardisation."""
    rng = np.random.default_rng(1)
    map_ = rng.normal(70, 10, 1000)
    map_[0] = 5.0  # one extreme stay-hour
    ref = np.ones(1000, dtype=bool)
    ref[500:] = False
    map_[500:] += 40  # rows outside the reference: shifted, must not move the design
    raw = map_[:, None]
    X, names = tt.tv_design_matrix(raw, ["map"], "splines", ref, clip_quantile=0.01)
    j = names.index("map")
    clipped = np.flatnonzero(map_[:500] <= np.quantile(map_[:500], 0.01))  # the extreme row and its fellows below q
    assert 0 in clipped and len(clipped) > 1
    assert np.allclose(X[clipped], X[0]) and X[0, j] == pytest.approx(X[ref, j].min())
    assert np.allclose(X[ref].mean(axis=0), 0.0) and not np.allclose(X.mean(axis=0), 0.0)
    X0, _ = tt.tv_design_matrix(raw, ["map"], "splines", ref, clip_quantile=0.0)
    assert X0[0, j] < X[0, j] - 1  # unclipped: the extreme value sits far out in the tail

def test_wald_interval_uses_the_t_quantile_and_the_log_scale_for_ratios():
    from scipy.stats import t as student_t

    reps = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    lo, hi, se = tt.confidence_interval(0.25, reps, "wald")
    q = student_t.ppf(0.975, 4)
    assert se == pytest.approx(np.std(reps, ddof=1))
    assert (lo, hi) == pytest.approx((0.25 - q * se, 0.25 + q * se))
    rr = np.array([0.8, 0.9, 1.0, 1.1])
    lo, hi, _ = tt.confidence_interval(0.9, rr, "wald", log=True)
    s_log = np.std(np.log(rr), ddof=1)
    assert (lo, hi) == pytest.approx((0.9 * np.exp(-student_t.ppf(0.975, 3) * s_log), 0.9 * np.exp(student_t.ppf(0.975, 3) * s_log)))
    lo, hi, _ = tt.confidence_interval(0.25, reps, "percentile")
    assert (lo, hi) == pytest.approx((np.quantile(reps, 0.025), np.quantile(reps, 0.975)))
    assert np.isnan(tt.confidence_interval(0.25, np.array([0.1]), "wald")[0])


def test_warm_start_gives_the_same_fit():
    cohort, ts, _ = simulate(SimulationSettings(n_stays=300), seed=3)
    data = tt.prepare(cohort, ts, tt.Protocol(n_boot=0), 12)
    freq = np.random.default_rng(1).poisson(1.0, len(data.stay_id)).astype(float)
    cold = tt.fit_hazards(data, 12, freq, None)
    warm = tt.fit_hazards(data, 12, freq, None, start=tt.fit_hazards(data, 12, np.ones(len(data.stay_id)), None))
    assert np.allclose(cold.h_any, warm.h_any, atol=1e-6) and np.allclose(cold.num_any, warm.num_any, atol=1e-6)


def test_sensitivity_rows_and_summary_page():
    """Sensitivity lists truncation and the other weight model; the front page shows the trial's headline."""
    from sepsis_cs.report import summary_rst

    cohort, ts, _ = simulate(SimulationSettings(n_stays=300), seed=5)
    p = tt.Protocol(n_boot=0, grace_sensitivity_h=(12,), dose_sensitivity_mg=None, baseline=("age", "sofa_t0"))
    data = tt.prepare(cohort, ts, p, 24)
    sens = tt.sensitivity(data, p, None)
    assert {"weight truncation", "weight model", "grace period", "CS timing in grace"} <= set(sens["analysis"].to_list())
    assert "linear" in sens.filter(pl.col("analysis") == "weight model")["setting"].to_list()
    summaries = {
        "sim": {"target_trial": {"emulated": True, "grace_h": 24, "followup_days": 28, "rd": -0.02, "rd_lo": -0.05,
                                 "rd_hi": 0.01, "rr": 0.9, "rr_lo": 0.8, "rr_hi": 1.05, "naive_rd": 0.01,
                                 "naive_iptw_rd": -0.04, "ess_cs": 612.4, "ess_no_cs": 7.0, "true_rd": -0.017}},
        "demo": {"target_trial": {"emulated": False, "note": "target trial not emulated: 8 eligible stays"}},
    }
    rst = summary_rst(summaries, {"min_cell_count": 10})
    assert "Target trial: early corticosteroids" in rst
    assert "-0.020 [-0.050, 0.010]" in rst and "612 / <10" in rst and "`Target trial`_: estimates.csv" in rst
    assert "``demo``: target trial not emulated" in rst
    assert rst.index("Target trial: early") < rst.index("Database ``sim``") if "Database ``sim``" in rst else True
