"""Variable selection and correlation study recover what the simulator planted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis_data import best_rank

from sepsis_cs.analysis import baseline_columns, design, usable_columns
from sepsis_cs.correlation import (association_matrix, correlation_ratio, correlation_ratios, cramers_v, pairwise_pearson,
                                   redundant_groups)
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.selection import SelectionSettings, bh_qvalues, select_features
from sepsis_cs.simulate import PLANTED_CONFOUNDERS, PLANTED_PROGNOSTIC

NEGATIVE_CONTROLS = ("weight", "sex")  # simulated independently of treatment and outcome


@pytest.fixture(scope="module")
def frame(sim_default, default_features, dictionary):
    cohort, feats = sim_default[0], default_features
    df = design(feats, cohort, "hospital_mortality")
    cols = [c for c in feats.columns if c != "stay_id"]
    cols, _ = usable_columns(df, cols)
    X = model_frame(df, cols, dictionary)
    cat = categorical_columns(cols, dictionary)
    return df, X, cols, cat, association_matrix(X, cols, cat)


def _select(frame, dictionary, task):
    df, X, cols, cat, assoc = frame
    target = "cs" if task == "treatment" else "hospital_mortality"
    cands = baseline_columns(cols, dictionary) if task == "treatment" else cols
    return select_features(X[cands], df[target].to_numpy(), df["patient_id"].to_numpy(), cat, assoc, SelectionSettings(seed=20261128))


def test_planted_confounders_rank_at_top_of_treatment_selection(frame, dictionary):
    table, info = _select(frame, dictionary, "treatment")
    p = len(table)
    assert p > 100 and not any(f.endswith("_0_24") for f in table["feature"])  # baseline candidates only
    for name in PLANTED_CONFOUNDERS:
        # the planted covariate itself or the hourly variable measuring the same thing (lactate, SOFA, vasopressor dose).
        # Clinicians start CS hour by hour from what they see after time zero (lactate, MAP, vasopressor dose), so
        # several baseline measures of one state share the signal: top tenth of the candidates, not a fixed top 10.
        assert best_rank(table, name) <= max(10, p // 10), (name, best_rank(table, name))
    for name in ("copd", "cs_before_t0", "mechanical_ventilation_t0"):  # no hourly surrogate: must rank by itself
        assert int(table.loc[table["feature"] == name, "consensus_rank"].iloc[0]) <= 12, name
    sel = set(table.loc[table["selected"], "feature"])
    assert {"copd", "cs_before_t0", "mechanical_ventilation_t0"} <= sel
    for name in NEGATIVE_CONTROLS:
        # independent of treatment: neither selected nor significant after BH (its rank among the many weak
        # baseline features is arbitrary once CS depends on the hourly course rather than on baseline only)
        assert name not in sel
        assert table.loc[table["feature"] == name, "q_value"].iloc[0] > 0.05, name
    assert 0.65 < info["permutation_oof_auc"] < 0.85  # true propensity AUC is about 0.75


def test_planted_prognostic_variables_rank_at_top_of_outcome_selection(frame, dictionary):
    table, info = _select(frame, dictionary, "outcome")
    p = len(table)
    assert int(table.loc[table["feature"] == "age", "consensus_rank"].iloc[0]) <= 3
    for name in ("lactate_t0", "sofa_t0", "gcs_t0"):
        # death accrues hour by hour after time zero: the 0-24 h series (urine output, MAP, SOFA) carry much of
        # the baseline signal, so the planted baseline measure (or its hourly variable) must be in the top tenth
        assert best_rank(table, name) <= max(15, p // 10), (name, best_rank(table, name))
    # malignancy is a weak planted effect (+0.6 log-odds, 15% prevalence): significant after BH, where the
    # negative controls are not (ranks are not compared: the 0-24 h series hold hundreds of proxies of death)
    assert table.loc[table["feature"] == "malignancy", "q_value"].iloc[0] < 0.05
    for name in NEGATIVE_CONTROLS:
        assert table.loc[table["feature"] == name, "q_value"].iloc[0] > 0.05, name
        assert name not in set(table.loc[table["selected"], "feature"])
    assert "age" in set(table.loc[table["selected"], "feature"])
    assert set(PLANTED_PROGNOSTIC) <= set(table["feature"])
    # redundancy: no two selected features are strongly associated
    _, _, _, _, assoc = frame
    sel = table.loc[table["selected"], "feature"].tolist()
    sub = assoc.loc[sel, sel].abs().to_numpy().copy()
    np.fill_diagonal(sub, 0)
    assert np.nanmax(sub) < 0.8


def test_planted_correlation_is_recovered(frame):
    df, X, cols, cat, assoc = frame
    rng = np.random.default_rng(0)
    Y = X[["lactate_t0", "age", "sex"]].copy()
    Y["lactate_copy"] = np.log(Y["lactate_t0"]) * 3 + rng.normal(0, 0.05, len(Y))  # monotone + small noise
    Y["noise"] = rng.normal(size=len(Y))
    a = association_matrix(Y, list(Y.columns), ["sex"])
    assert a.at["lactate_t0", "lactate_copy"] > 0.95
    assert abs(a.at["noise", "lactate_t0"]) < 0.06
    groups = redundant_groups(a, 0.8)
    assert ["lactate_copy", "lactate_t0"] in groups
    # the simulator's own near-duplicates: lactate at time zero vs the last lactate before time zero
    assert assoc.at["lactate_t0", "lactate__last_m24_0"] > 0.9
    # MAP and lactate at time zero are negatively associated (shared severity and the delta phenotype)
    assert assoc.at["lactate_t0", "map_t0"] < -0.1


def test_association_measures_match_reference_implementations():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 4))
    a[rng.random(a.shape) < 0.1] = np.nan
    ref = pd.DataFrame(a).corr(min_periods=10).to_numpy()
    assert np.allclose(pairwise_pearson(a), ref, equal_nan=True)
    cat = pd.Series(rng.choice(["a", "b", "c", None], 200))
    num = pd.DataFrame(a, columns=list("wxyz"))
    loop = [correlation_ratio(cat, num[c]) for c in num]
    assert np.allclose(correlation_ratios(cat, num), loop)
    assert cramers_v(cat, cat) == pytest.approx(1.0)


def test_bh_qvalues_match_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(2).uniform(size=50) ** 3
    assert np.allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1])
    with_nan = np.r_[p[:5], np.nan]
    assert np.isnan(bh_qvalues(with_nan)[-1])


def test_small_data_falls_back_without_crashing():
    rng = np.random.default_rng(3)
    n = 30
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": np.r_[rng.normal(size=n - 3), [np.nan] * 3]})
    y = np.r_[np.ones(4), np.zeros(n - 4)].astype(int)
    table, info = select_features(X, y, np.arange(n).astype(str), [], None, SelectionSettings(seed=1))
    assert info["notes"] and "univariate ranking only" in info["notes"][0]
    assert table["selected"].sum() == 3  # min_selected fallback, said in the notes
    assert any("best-ranked" in n for n in info["notes"])


def test_entirely_missing_or_constant_columns_are_dropped():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan] * 3, "c": [5.0] * 3})
    keep, dropped = usable_columns(df, ["a", "b", "c"])
    assert keep == ["a"] and dropped == ["b", "c"]
