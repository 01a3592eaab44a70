"""Table 1: SMD formulas, IPTW balance on the simulator, small-cell suppression that cannot leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sepsis_cs.analysis import design, profile_variables
from sepsis_cs.errors import ConfigError
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.propensity import confounder_columns, crump_alpha, cross_fitted_ps, iptw_weights, overlap
from sepsis_cs.table1 import protect, smd_binary, smd_categorical, smd_continuous, table_one

K = 10


# ----------------------------------------------------------------------------- SMD formulas
def test_smd_formulas_match_austin_2009():
    rng = np.random.default_rng(0)
    x1, x0 = rng.normal(1, 2, 300), rng.normal(0, 1, 400)
    expected = (x1.mean() - x0.mean()) / np.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2)
    assert smd_continuous(x1, x0) == pytest.approx(expected)
    # frequency weights 2 = duplicating the rows (up to the n-1 vs sum(w)-... variance correction)
    w1 = np.full(300, 2.0)
    assert smd_continuous(x1, x0, w1, np.ones(400)) == pytest.approx(expected, rel=0.01)
    b1, b0 = (rng.random(500) < 0.4).astype(float), (rng.random(500) < 0.2).astype(float)
    p1, p0 = b1.mean(), b0.mean()
    assert smd_binary(b1, b0) == pytest.approx((p1 - p0) / np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2))
    # a two-level categorical equals the binary SMD (up to sign); more levels: non-negative
    c1 = np.where(b1 == 1, "y", "n").astype(object)
    c0 = np.where(b0 == 1, "y", "n").astype(object)
    assert abs(smd_categorical(c1, c0, ["n", "y"])) == pytest.approx(abs(smd_binary(b1, b0)))
    k1 = rng.choice(["a", "b", "c"], 400, p=[0.5, 0.3, 0.2]).astype(object)
    k0 = rng.choice(["a", "b", "c"], 400, p=[0.3, 0.3, 0.4]).astype(object)
    assert smd_categorical(k1, k0, ["a", "b", "c"]) > 0.3
    assert smd_categorical(k1, k1, ["a", "b", "c"]) == pytest.approx(0.0)


def test_weighted_smd_removes_known_imbalance():
    # treated have x ~ N(1, 1), controls N(0, 1); true propensity -> exact IPTW balance in expectation
    rng = np.random.default_rng(1)
    x = rng.normal(size=20000)
    ps = 1 / (1 + np.exp(-x))
    t = rng.random(len(x)) < ps
    w = iptw_weights(ps, t)
    assert abs(smd_continuous(x[t], x[~t])) > 0.5
    assert abs(smd_continuous(x[t], x[~t], w[t], w[~t])) < 0.05


# ----------------------------------------------------------------------------- propensity on the simulator
@pytest.fixture(scope="module")
def sim_ps(sim_default, default_features, dictionary):
    (cohort, _, truth), feats = sim_default, default_features
    df = design(feats, cohort)
    available = [c for c in df.columns if c not in ("stay_id", "patient_id", "cs")]
    cols = confounder_columns("baseline", available, dictionary)
    X = model_frame(df, cols, dictionary)
    cs = df["cs"].to_numpy().astype(int)
    ps, info = cross_fitted_ps(X, cs, df["patient_id"].to_numpy(), categorical_columns(cols, dictionary), 0.1, 0.0, 5, 20261128)
    return df, cols, ps, info, truth


def test_propensity_is_baseline_only_and_tracks_the_truth(sim_ps, dictionary):
    df, cols, ps, info, truth = sim_ps
    assert cols and not any(c.endswith("_0_24") for c in cols)
    with pytest.raises(ConfigError):
        confounder_columns(["map__mean_0_24"], cols + ["map__mean_0_24"], dictionary)
    true = truth.sort("stay_id")["propensity"].to_numpy()
    assert np.corrcoef(ps, true)[0, 1] > 0.75
    assert info["folds"] == 5 and 0.68 < info["oof_auc"] < 0.82


def test_iptw_reduces_max_abs_smd_in_table1(sim_ps, dictionary):
    df, cols, ps, info, _ = sim_ps
    cs = df["cs"].to_numpy().astype(bool)
    inside, ov = overlap(ps, cs, [0.05, 0.95])
    assert 0 <= ov["share_outside_overlap"] < 0.2
    w = iptw_weights(ps, cs, inside)
    variables = profile_variables(df.columns, dictionary)
    _, smd = table_one(df.to_pandas(), variables, cs, w, K)
    u, wt = smd["smd_unweighted"].abs().max(), smd["smd_iptw"].abs().max()
    assert u > 0.5  # strong confounding by indication (vasopressor, SOFA)
    assert wt < 0.12 and wt < u / 4


def test_crump_rule():
    assert crump_alpha(np.linspace(0.3, 0.7, 500)) == 0.0
    a = crump_alpha(np.r_[np.linspace(0.001, 0.999, 2000)])
    assert 0.05 < a < 0.15  # Crump et al.: about 0.1 for wide propensity distributions
    inside, info = overlap(np.array([0.01, 0.2, 0.5, 0.99]), np.array([1, 0, 1, 0]), "crump")
    assert info["trim_lower"] == pytest.approx(crump_alpha(np.array([0.01, 0.2, 0.5, 0.99])))


# ----------------------------------------------------------------------------- suppression
def _counts_shown(table: pd.DataFrame) -> list[int]:
    out = []
    for g in ("overall", "cs", "no_cs"):
        for v in table[g]:
            if isinstance(v, str) and "(" in v and "[" not in v:
                out.append(int(v.split(" ")[0]))
    return out


def _derivable(cells: dict, shown: dict, lines: list[list]) -> set:
    """Cells uniquely determined by the shown values and the line sums (linear algebra, independent of protect())."""
    keys = list(cells)
    unknown = [k for k in keys if k not in shown]
    if not unknown:
        return set(keys)
    A = np.array([[1.0 if k in line else 0.0 for k in unknown] for line in lines])
    r = np.linalg.matrix_rank(A)
    out = set(shown)
    for i, k in enumerate(unknown):
        e = np.zeros(len(unknown))
        e[i] = 1
        if np.linalg.matrix_rank(np.vstack([A, e])) == r:
            out.add(k)
    return out


def _frame(n_cs, n_no, ones_cs, ones_no, miss_cs, miss_no, levels_cs, levels_no):
    rows = []
    for grp, n, ones, miss, lv in ((1, n_cs, ones_cs, miss_cs, levels_cs), (0, n_no, ones_no, miss_no, levels_no)):
        ones = min(ones, n)
        miss = min(miss, n - ones)
        b = [1.0] * ones + [np.nan] * miss + [0.0] * (n - ones - miss)
        cat = sum(([name] * c for name, c in zip("abc", lv)), [])[:n]
        cat = cat + [None] * (n - len(cat))
        rows += [{"cs": grp, "bin": b[i], "cat": cat[i], "num": float(i) if i % 7 else np.nan} for i in range(n)]
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_cs=st.integers(10, 40), n_no=st.integers(10, 40), ones_cs=st.integers(0, 40), ones_no=st.integers(0, 40),
    miss_cs=st.integers(0, 12), miss_no=st.integers(0, 12),
    levels_cs=st.lists(st.integers(0, 15), min_size=3, max_size=3), levels_no=st.lists(st.integers(0, 15), min_size=3, max_size=3),
)
def test_suppression_never_leaks_a_small_count(n_cs, n_no, ones_cs, ones_no, miss_cs, miss_no, levels_cs, levels_no):
    df = _frame(n_cs, n_no, ones_cs, ones_no, miss_cs, miss_no, levels_cs, levels_no)
    cs = df["cs"].to_numpy().astype(bool)
    variables = [("bin", "B", "binary"), ("cat", "C", "categorical"), ("num", "N", "numeric")]
    table, _ = table_one(df, variables, cs, np.ones(len(df)), K)
    shown = _counts_shown(table)
    assert all(n == 0 or n >= K for n in shown)
    # no small count derivable from what is shown: rebuild each variable's cells and check with linear algebra
    for col, label, vtype in variables:
        sub = table[table["variable"] == label]
        s = df[col]
        if vtype == "binary":
            levels = {"1": s == 1, "0": s == 0}
        elif vtype == "categorical":
            levels = {lv: s == lv for lv in sorted(s.dropna().unique())}
        else:
            levels = {"known": s.notna()}
        levels["missing"] = s.isna()
        masks = {"overall": np.ones(len(df), bool), "cs": cs, "no_cs": ~cs}
        cells = {(lv, g): int((m.to_numpy() & masks[g]).sum()) for lv, m in levels.items() for g in masks}
        shown_cells = {}
        for _, r in sub.iterrows():
            key = "1" if (vtype == "binary" and r["level"] == "n (%)") else ("missing" if r["type"] == "missing" else r["level"])
            for g in masks:
                v = r[g]
                if isinstance(v, str) and "(" in v and "[" not in v:
                    shown_cells[(key, g)] = int(v.split(" ")[0])
        if not (sub["type"] == "missing").any():  # no missing row: the reader knows there are none
            for g in masks:
                shown_cells[("missing", g)] = 0
        lines = [[(lv, g) for lv in levels] for g in masks] + [[(lv, "cs"), (lv, "no_cs"), (lv, "overall")] for lv in levels]
        known = _derivable(cells, shown_cells, lines)
        leaked = [k for k in known if 0 < cells[k] < K]
        assert not leaked, (col, leaked)
        if any(0 < cells[k] < K for k in cells) and vtype != "numeric":
            first = sub.iloc[0]
            assert first["smd_unweighted"] == "suppressed" and first["p_value"] == "suppressed"


def test_protect_complements_a_derivable_cell():
    # binary: ones shown, zeros (not shown) = 3 would follow from the group size -> ones must be hidden too
    cells = {("1", "g"): 40, ("0", "g"): 3, ("missing", "g"): 0}
    hidden = protect(cells, {("1", "g"), ("missing", "g")}, [[("1", "g"), ("0", "g"), ("missing", "g")]], K)
    assert ("1", "g") in hidden or ("missing", "g") in hidden


def test_small_group_hides_group_columns():
    df = _frame(5, 40, 2, 10, 0, 1, [2, 2, 1], [10, 20, 10])
    table, _ = table_one(df, [("bin", "B", "binary")], df["cs"].to_numpy().astype(bool), np.ones(len(df)), K)
    assert (table["cs"] == f"<{K}").all() and (table["no_cs"] == f"<{K}").all()
