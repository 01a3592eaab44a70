"""Tests of the clustering phase (scripts/sepsis_cs/clustering)."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from sepsis_cs.clustering.characterise import match_clusters, separating_variables, shared_and_specific
from sepsis_cs.clustering.consensus import choose_k, consensus_stats, run_method
from sepsis_cs.clustering.methods import fit_grid, pam, relabel_by_size
from sepsis_cs.clustering.prep import cluster_columns, gower, load_population, prepare
from sepsis_cs.clustering.replication import align_labels, replicate
from sepsis_cs.clustering.trajectory import trajectory_matrix
from sepsis_cs.clustering.treatment import cluster_effects
from sepsis_cs.features import stay_features
from sepsis_cs.simulate import SimulationSettings, simulate

from helpers import unit_config

CONFIG = unit_config()  # tests/configs/unit.yaml: the settings these tests are calibrated on
CLUSTER_CFG = CONFIG["cluster"]


def _features(sim, dictionary):
    cohort, ts, _ = sim
    return stay_features(cohort, ts, dictionary, [(-24, 0), (0, 24)], ("mean", "last"))


@pytest.fixture(scope="module")
def default_features(sim_default, dictionary):
    return _features(sim_default, dictionary)


def _quick_cfg(**over):
    cfg = json.loads(json.dumps(CLUSTER_CFG))
    cfg["consensus"].update(n_resamples=6, max_items=300)
    cfg["stability"]["n_boot"] = 4
    cfg.update(over)
    return cfg


# ----------------------------------------------------------------------------- recovery on the simulator
def test_pooled_solution_recovers_planted_phenotypes(sim_default, dictionary, default_features):
    """Default settings, primary method, pooled stays: k = 4 chosen and ARI >= 0.8 vs the planted phenotypes."""
    cohort, _, truth = sim_default
    df, cat, sub = load_population(default_features, cohort, dictionary, CLUSTER_CFG, "pooled")
    res = run_method(CLUSTER_CFG["primary_method"], df, cat, CLUSTER_CFG, seed=CONFIG["seed"])
    assert res["chosen_k"] == 4
    phen = truth.sort("stay_id")["phenotype"].to_numpy()
    assert sub["stay_id"].to_list() == truth.sort("stay_id")["stay_id"].to_list()
    assert adjusted_rand_score(phen, res["labels"]) >= 0.8
    # the chosen k is the most stable one and every cluster is reproducible under the bootstrap
    table = res["table"]
    assert table.loc[table["chosen"], "pac"].iloc[0] == table["pac"].min()
    assert min(m for m, _ in res["stability"].values()) > 0.75


def test_kmeans_at_four_recovers_phenotypes(sim_default, dictionary, default_features):
    cohort, _, truth = sim_default
    df, cat, _ = load_population(default_features, cohort, dictionary, CLUSTER_CFG, "pooled")
    labels = fit_grid("kmeans", prepare(df, cat), [4], seed=1, settings={"n_init": 3})[4]
    assert adjusted_rand_score(truth.sort("stay_id")["phenotype"].to_numpy(), labels) >= 0.8


def test_phenotype_feature_set(default_features):
    cols = cluster_columns(CLUSTER_CFG, default_features.columns)
    assert "age" in cols and "lactate__mean_0_24" in cols and "copd" in cols
    assert not any(c.startswith("sofa") for c in cols)
    base = cluster_columns({"features": "baseline"}, default_features.columns)
    assert base and all("__" not in c or c.endswith("_m24_0") for c in base)


# ----------------------------------------------------------------------------- determinism
def test_consensus_and_stability_deterministic(sim_small, dictionary):
    cohort = sim_small[0]
    feats = _features(sim_small, dictionary)
    df, cat, _ = load_population(feats, cohort, dictionary, CLUSTER_CFG, "pooled")
    cfg = _quick_cfg(k_max=5)
    for method in ("kmeans", "gower_pam"):
        a = run_method(method, df, cat, cfg, seed=5)
        b = run_method(method, df, cat, cfg, seed=5)
        pd.testing.assert_frame_equal(a["table"], b["table"])
        pd.testing.assert_frame_equal(a["cdf"], b["cdf"])
        assert a["stability"] == b["stability"]
        np.testing.assert_array_equal(a["labels"], b["labels"])
    c = run_method("kmeans", df, cat, cfg, seed=6)
    assert not np.array_equal(c["consensus_chosen"], a["consensus_chosen"]) or not c["table"].equals(a["table"])


# ----------------------------------------------------------------------------- building blocks
def test_consensus_stats_extremes():
    crisp = np.kron(np.eye(2), np.ones((5, 5)))
    assert consensus_stats(crisp)["pac"] == 0.0
    half = np.full((10, 10), 0.5)
    assert consensus_stats(half)["pac"] == 1.0
    assert consensus_stats(crisp)["area"] == pytest.approx(0.99 * 25 / 45 + 0.01, abs=1e-6)  # 25 of 45 pairs never together
    assert consensus_stats(half)["area"] == pytest.approx(0.51, abs=1e-6)  # CDF steps to 1 at 0.5 on a 0.01 grid
    np.testing.assert_allclose(consensus_stats(crisp)["cdf"][-1], 1.0)


def test_choose_k_rules():
    t = pd.DataFrame({"k": [2, 3, 4], "pac": [0.1, 0.05, 0.05], "silhouette": [0.3, 0.2, 0.4], "bic": [np.nan] * 3, "delta_area": [1, 0.2, 0.1]})
    assert choose_k(t, "pac") == 3  # tie -> smaller k
    assert choose_k(t, "silhouette") == 4
    assert choose_k(t, "bic") == 3  # no BIC -> PAC
    t2 = t.assign(bic=[10.0, 9.0, 5.0])
    assert choose_k(t2, "consensus_vote") == 4  # silhouette and BIC agree
    with pytest.raises(ValueError):
        choose_k(t, "nonsense")


def test_pam_finds_exhaustive_optimum():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (8, 2)), rng.normal(5, 1, (6, 2)), rng.normal((0, 6), 1, (6, 2))])
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    labels, med = pam(D, 3)
    cost = D[med].min(0).sum()
    best = min(D[list(m)].min(0).sum() for m in combinations(range(len(X)), 3))
    assert cost == pytest.approx(best, rel=1e-5)
    assert adjusted_rand_score(np.repeat([0, 1, 2], [8, 6, 6]), labels) == 1.0


def test_gower_properties():
    G = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 1.0]])
    D = gower(G, ["num", "cat"])
    np.testing.assert_allclose(np.diag(D), 0)
    np.testing.assert_allclose(D, D.T)
    assert D[0, 1] == pytest.approx(1.0) and D[0, 2] == pytest.approx(0.25)


def test_relabel_by_size():
    np.testing.assert_array_equal(relabel_by_size(np.array([5, 5, 2, 2, 2, -1])), [1, 1, 0, 0, 0, -1])


def test_matching_finds_the_right_pairs():
    rng = np.random.default_rng(1)
    vars_ = [f"v{i}" for i in range(10)]
    a = pd.DataFrame(rng.normal(0, 1, (4, 10)), columns=vars_, index=range(4))
    perm = [2, 0, 3, 1]  # cluster i of b is cluster perm[i] of a
    b = pd.DataFrame(a.to_numpy()[perm] + rng.normal(0, 0.2, (4, 10)), columns=vars_, index=range(4))
    m = match_clusters(a, b)
    got = {int(r.cluster_b): int(r.cluster_a) for r in m.itertuples()}
    assert got == {i: perm[i] for i in range(4)}
    # different k: the extra cluster of a has no partner
    m3 = match_clusters(a, b.iloc[:3])
    assert m3["cluster_b"].isna().sum() == 1 and int(m3.loc[m3["cluster_b"].isna(), "cluster_a"].iloc[0]) == perm[3]
    tr = shared_and_specific(m.rename(columns={}), a, b, threshold=0.5)
    assert set(tr["found_in"]) <= {"shared", "cs only", "no_cs only"} and (tr["found_in"] == "shared").any()


def test_separating_variables_ci_cover_truth():
    rng = np.random.default_rng(2)
    lab = np.repeat([0, 1], 200)
    M = pd.DataFrame({"signal": rng.normal(0, 1, 400) + lab * 1.0, "noise": rng.normal(0, 1, 400)})
    out = separating_variables(M, lab, n_boot=100, seed=3)
    top = out[(out.cluster == 1) & (out["rank"] == 1)].iloc[0]
    assert top.variable == "signal" and top.ci_low < 1.0 < top.ci_high and top.ci_low > 0.6
    noise = out[(out.cluster == 1) & (out.variable == "noise")].iloc[0]
    assert noise.ci_low < 0 < noise.ci_high


def test_iptw_recovers_sign_of_planted_effects(sim_default, dictionary):
    cohort, _, truth = sim_default
    cohort, truth = cohort.sort("stay_id"), truth.sort("stay_id")
    labels = pd.Categorical(truth["phenotype"].to_numpy(), categories=["alpha", "beta", "gamma", "delta"]).codes.astype(int)
    from sepsis_cs.features import categorical_columns, model_frame

    static = [c for c in cohort.columns if c in dictionary.static]
    X = model_frame(cohort, static, dictionary)
    y = cohort["hospital_mortality"].cast(pl.Float64).to_numpy()
    t = cohort["cs"].cast(pl.Int8).to_numpy()
    table, _, test = cluster_effects(y, t, labels, X, categorical_columns(static, dictionary), None, None, 20, 1, 0.01, 10)
    true_rd = pd.Series(-truth["ite"].to_numpy()).groupby(labels).mean()
    assert table.loc[1, "iptw_rd"] > 0.05 and table.loc[3, "iptw_rd"] < -0.05  # harm in beta, benefit in delta
    assert np.corrcoef(table["iptw_rd"], true_rd)[0, 1] > 0.8
    assert test["interaction_p"] < 0.01 and test["interaction_df"] == 3
    # no effect modification: outcome independent of treatment -> interaction not significant
    rng = np.random.default_rng(0)
    y0 = (rng.random(len(y)) < 0.3).astype(float)
    _, _, null = cluster_effects(y0, t, labels, X, [], np.full(len(y), t.mean()), np.ones(len(y), bool), 2, 1, 0.01, 10)
    assert null["interaction_p"] > 0.01


def test_trajectory_matrix_fills_gaps():
    ts = pl.DataFrame({"stay_id": ["a", "a", "b"], "hour": [0, 13, 7], "variable": ["map"] * 3, "value": [60.0, 80.0, 70.0]}).with_columns(pl.col("hour").cast(pl.Int32))
    T, names = trajectory_matrix(ts, ["a", "b", "c"], ["map"], 6, 24)
    assert names == ["map__bin0_6", "map__bin6_12", "map__bin12_18", "map__bin18_24"]
    np.testing.assert_allclose(T[0], [60, 60, 80, 80])  # carried forward
    np.testing.assert_allclose(T[1], [70, 70, 70, 70])  # carried backward then forward
    assert np.isfinite(T[2]).all()  # no data -> median


# ----------------------------------------------------------------------------- replication
@pytest.mark.slow
def test_replication_between_two_simulated_databases(dictionary):
    sims = {db: simulate(SimulationSettings(n_stays=700, shift=s), seed=3, database=db) for db, s in (("sim_a", 0.0), ("sim_b", 0.3))}
    data = {}
    for db, sim in sims.items():
        feats = _features(sim, dictionary)
        df, cat, _ = load_population(feats, sim[0], dictionary, CLUSTER_CFG, "pooled")
        data[db] = (df, cat, fit_grid("gmm", prepare(df, cat), [4], seed=2, settings={"n_init": 2})[4])
    (Xa, cat, ya), (Xb, _, yb) = data["sim_a"], data["sim_b"]
    res = replicate(Xa, ya, Xb, yb, cat, 0)
    assert res["ari"] > 0.7 and res["kappa"] > 0.7 and res["k_source"] == 4
    shuffled = np.random.default_rng(0).permutation(yb)
    bad = replicate(Xa, ya, Xb, shuffled, cat, 0)
    assert bad["ari"] < 0.05 and bad["kappa"] < 0.1


def test_align_labels():
    pred = np.array([2, 2, 0, 0, 1])
    native = np.array([0, 0, 1, 1, 2])
    np.testing.assert_array_equal(align_labels(pred, native), native)


# ----------------------------------------------------------------------------- workflow
@pytest.mark.slow
def test_workflow_clustering_outputs(workflow_run):
    wd = workflow_run
    s = json.loads((wd / "results/simulated/summary/clustering.json").read_text())
    for pop in ("pooled", "cs", "no_cs"):
        assert CLUSTER_CFG["k_min"] <= s[f"chosen_k_{pop}"] <= CLUSTER_CFG["k_max"]
        assert 0 <= s[f"pac_{pop}"] <= 1
    for m in CLUSTER_CFG["methods_run"]:
        assert -1 <= s[f"ari_truth_pooled_{m}"] <= 1
    assert s["ari_truth_pooled_chosen"] == s[f"ari_truth_pooled_{CLUSTER_CFG['primary_method']}"]
    assert s["ari_truth_pooled_chosen"] > 0.5
    for rel in ("pooled/profile_heatmap.png", "pooled/embedding.png", "compare/traits.csv", "treatment/effects.csv", "trajectory/crosstab.csv"):
        assert (wd / "results/simulated/cluster" / rel).stat().st_size > 0
    # small cells suppressed in the outcome table
    out = pl.read_csv(wd / "results/simulated/cluster/pooled/outcomes.csv")
    assert out["n"].drop_nulls().min() >= 10


def test_small_population_caps_k_or_stays_whole(sim_small, dictionary):
    """A demo-sized population never crashes: k capped by min_cluster_size, or one cluster."""
    cohort = sim_small[0]
    feats = _features(sim_small, dictionary)
    df, cat, _ = load_population(feats, cohort, dictionary, CLUSTER_CFG, "pooled")
    cfg = _quick_cfg(min_cluster_size=10)
    res = run_method("kmeans", df.iloc[:35], cat, cfg, seed=1)
    assert res["table"]["k"].max() == 3 and res["chosen_k"] in (2, 3)
    tiny = run_method("gmm", df.iloc[:12], cat, cfg, seed=1)
    assert tiny["chosen_k"] == 1 and (tiny["labels"] == 0).all() and tiny["table"]["pac"].isna().all()


# ----------------------------------------------------------------------------- pairwise methods above max_pairwise_items
class _RowSpy:
    """Wraps a pairwise function and records the number of rows of its first argument."""

    def __init__(self, fn):
        self.fn, self.rows = fn, []

    def __call__(self, A, *args, **kwargs):
        self.rows.append(int(np.asarray(A).shape[0]))
        return self.fn(A, *args, **kwargs)


def test_pairwise_methods_fit_a_panel_and_assign_the_rest(sim_default, dictionary, default_features, monkeypatch):
    """cap 500 < 3,000 stays: ward / gower_pam see <= 500 rows, every stay is labelled by the nearest centroid / medoid."""
    import sepsis_cs.clustering.methods as methods
    from sepsis_cs.clustering.prep import gower_cross

    cohort, _, truth = sim_default
    df, cat, _ = load_population(default_features, cohort, dictionary, CLUSTER_CFG, "pooled")
    data = prepare(df, cat)
    n, cap, seed = len(df), 500, 3
    phen = truth.sort("stay_id")["phenotype"].to_numpy()
    link, gow, pam_spy = _RowSpy(methods.linkage), _RowSpy(methods.gower), _RowSpy(methods.pam)
    monkeypatch.setattr(methods, "linkage", link)
    monkeypatch.setattr(methods, "gower", gow)
    medoids = []
    monkeypatch.setattr(methods, "pam", lambda D, k, **kw: (lambda r: medoids.append(r[1]) or r)(pam_spy(D, k, **kw)))
    panel = methods.pairwise_panel(n, cap, seed)
    assert len(panel) == cap and methods.pairwise_panel(n, n, seed) is None

    ward = fit_grid("ward", data, [3, 4], seed, max_pairwise_items=cap)
    assert link.rows == [cap] and ward["_panel"] == cap
    lab = ward[4]
    assert lab.shape == (n,) and set(np.unique(lab)) == {0, 1, 2, 3}
    assert adjusted_rand_score(phen, lab) >= 0.8
    # stays off the panel are at their nearest panel-cluster centroid (scaled features)
    off = np.setdiff1d(np.arange(n), panel)
    cent = np.stack([data.X[panel][lab[panel] == c].mean(0) for c in range(4)])
    np.testing.assert_array_equal(lab[off], ((data.X[off, None, :] - cent[None]) ** 2).sum(-1).argmin(1))
    np.testing.assert_array_equal(lab, fit_grid("ward", data, [4], seed, max_pairwise_items=cap)[4])  # deterministic

    gp = fit_grid("gower_pam", data, [4], seed, max_pairwise_items=cap)
    assert gow.rows == [cap] and pam_spy.rows == [cap] and gp["_panel"] == cap
    med_rows = panel[medoids[-1]]
    np.testing.assert_array_equal(gp[4], gower_cross(data.G, data.G[med_rows], data.g_kind).argmin(1))
    assert adjusted_rand_score(phen, gp[4]) >= 0.5
    # at or below the cap the whole population is fitted (the default 3,000-stay run is unchanged)
    link.rows.clear()
    assert fit_grid("ward", data, [4], seed, max_pairwise_items=n)["_panel"] == n and link.rows == [n]


def test_run_method_bounded_by_max_pairwise_items(sim_default, dictionary, default_features, monkeypatch):
    """Full, consensus, silhouette and bootstrap fits of ward / gower_pam never build a pairwise matrix of > cap stays."""
    import sepsis_cs.clustering.consensus as consensus
    import sepsis_cs.clustering.methods as methods

    df, cat, _ = load_population(default_features, sim_default[0], dictionary, CLUSTER_CFG, "pooled")
    cap = 500
    link, gow, gow_sil = _RowSpy(methods.linkage), _RowSpy(methods.gower), _RowSpy(consensus.gower)
    monkeypatch.setattr(methods, "linkage", link)
    monkeypatch.setattr(methods, "gower", gow)
    monkeypatch.setattr(consensus, "gower", gow_sil)
    # consensus resamples of 0.8 x 800 = 640 stays and bootstraps of ~1,900 distinct stays are above the cap too
    cfg = _quick_cfg(max_pairwise_items=cap, k_max=5)
    cfg["consensus"].update(n_resamples=3, max_items=800)
    cfg["stability"]["n_boot"] = 2
    res = {m: run_method(m, df, cat, cfg, seed=7) for m in ("ward", "gower_pam")}
    for spy, calls in ((link, 1 + 3 + 2), (gow, 1 + 3 + 2), (gow_sil, 1)):  # full + resamples + bootstraps; silhouette stays
        assert len(spy.rows) == calls and max(spy.rows) == cap
    for r in res.values():
        assert r["n_fitted"] == cap and r["labels"].shape == (len(df),) and (r["labels"] >= 0).all()
        assert r["table"]["silhouette"].notna().all() and r["table"]["pac"].notna().all()
    # the panel approximation reproduces the whole-population Ward fit: same chosen k, nearly the same partition
    whole = run_method("ward", df, cat, {**cfg, "max_pairwise_items": len(df)}, seed=7)
    assert whole["n_fitted"] == len(df) and whole["chosen_k"] == res["ward"]["chosen_k"]
    assert adjusted_rand_score(whole["labels"], res["ward"]["labels"]) >= 0.8


def test_describe_clusters_withholds_small_counts(dictionary):
    import polars as pl

    from sepsis_cs.clustering.characterise import describe_clusters

    profile = pl.DataFrame({"cluster": [0, 0, 1, 1], "variable": ["age", "lactate__mean_0_24"] * 2, "std_mean": [0.9, -0.2, -0.9, 1.5]})
    outcomes = pl.DataFrame(
        {"cluster": [0, 1], "outcome": ["hospital_mortality"] * 2, "n": [200, None], "events": [40, None]},
        schema={"cluster": pl.Int64, "outcome": pl.String, "n": pl.Int64, "events": pl.Int64},
    )
    d = describe_clusters(profile, outcomes, dictionary, "hospital_mortality", 10, top=2)
    assert d["0"].startswith("100% of stays, hospital mortality 20%; high age, low lactate (mean, 0 to 24 h)")
    assert d["1"].startswith("small cluster (counts suppressed); high lactate")
