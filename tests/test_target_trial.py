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
