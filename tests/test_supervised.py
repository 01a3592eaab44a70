"""Supervised phase: metrics against known values, no leakage in nested CV, external files, clusters."""

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from sepsis_cs import metrics as M
from sepsis_cs import supervised as S
from sepsis_cs.errors import UserInputError
from sepsis_cs.features import categorical_columns


# ----------------------------------------------------------------------------- metrics
def test_auroc_auprc_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    p = np.round(rng.random(500) * 0.5 + 0.3 * y, 2)  # many ties
    assert M.auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert M.auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert M.brier(y, p) == pytest.approx(np.mean((p - y) ** 2))


def test_calibration_slope_known_values():
    rng = np.random.default_rng(1)
    lp = rng.normal(-1, 1.2, 40000)
    p = 1 / (1 + np.exp(-lp))
    y = (rng.random(len(p)) < p).astype(int)
    a, b = M.calibration_intercept_slope(y, p)
    assert abs(a) < 0.05 and abs(b - 1) < 0.05
    # predictions twice as extreme on the logit scale -> slope 1/2; shifted by +1 -> intercept -1
    a2, b2 = M.calibration_intercept_slope(y, 1 / (1 + np.exp(-2 * lp)))
    assert abs(b2 - 0.5) < 0.05
    a3, _ = M.calibration_intercept_slope(y, 1 / (1 + np.exp(-(lp + 1))))
    assert abs(a3 + 1) < 0.06


def test_net_benefit_hand_example():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    # threshold 0.5: TP = 1, FP = 1 -> 1/5 - 1/5 * 0.5/0.5 = 0
    assert M.net_benefit(y, p, [0.5])[0] == pytest.approx(0.0)
    # threshold 0.3: TP = 2, FP = 1 -> 2/5 - 1/5 * 0.3/0.7
    assert M.net_benefit(y, p, [0.3])[0] == pytest.approx(0.4 - 0.2 * 0.3 / 0.7)
    assert M.net_benefit_treat_all(y, [0.3])[0] == pytest.approx(0.4 - 0.6 * 0.3 / 0.7)


def test_patient_bootstrap_keeps_stays_together():
    groups = np.repeat(np.arange(50), 2)  # two stays per patient
    for idx in M.patient_bootstrap(groups, 20, 3):
        counts = np.bincount(idx, minlength=100)
        assert np.array_equal(counts[0::2], counts[1::2])
        assert len(idx) == 100


def test_bootstrap_ci_covers_and_paired_difference():
    rng = np.random.default_rng(2)
    y = (rng.random(800) < 0.3).astype(int)
    good = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.15, 800), 0.01, 0.99)
    noise = rng.random(800)
    r = M.bootstrap_metrics(y, good, np.arange(800), 200, 0)
    est, lo, hi = r["auroc"]
    assert lo < est < hi and hi - lo < 0.15
    d, dlo, dhi = M.paired_auroc_difference(y, good, noise, np.arange(800), 200, 0)
    assert dlo > 0.1  # clearly better than noise
    d0, lo0, hi0 = M.paired_auroc_difference(y, good, good, np.arange(800), 50, 0)
    assert d0 == 0 and lo0 == 0 and hi0 == 0


# ----------------------------------------------------------------------------- nested CV
@pytest.fixture(scope="module")
def small_design(sim_small, small_features, dictionary):
    cohort, ts, truth = sim_small
    feats = small_features
    cols = [c for c in feats.columns if c != "stay_id"]
    X, y, groups = S.model_inputs(feats, cohort, cols, dictionary, "hospital_mortality")
    cat = categorical_columns(cols, dictionary)
    return X, y, groups, [c for c in cols if c not in cat], cat, cohort, truth


def test_nested_cv_patient_level_and_signal(small_design):
    X, y, groups, num, cat, *_ = small_design
    oof, tuned, imp = S.nested_cv(X, y, groups, "logistic", num, cat, {"C": [0.003, 0.03]}, 3, 3, seed=5, importance_repeats=1, feature_groups=S.feature_groups(num + cat))
    assert oof["score"].notna().all() and len(oof) == len(y)
    # every patient in exactly one outer fold
    assert pd.DataFrame({"g": groups, "f": oof["fold"]}).groupby("g")["f"].nunique().max() == 1
    assert M.auroc(oof["y"], oof["score"]) > 0.68
    assert len(tuned) == 3 and all(t["C"] in (0.003, 0.03) for t in tuned)
    assert set(imp["variable"]) >= {"lactate", "age"}


@pytest.mark.parametrize("model", ["logistic", pytest.param("hist_gb", marks=pytest.mark.slow)])
def test_shuffled_labels_give_chance_auroc(small_design, model):
    """No leakage: with permuted outcomes nested CV cannot do better than chance."""
    X, y, groups, num, cat, *_ = small_design
    grid = {"C": [0.01, 1.0]} if model == "logistic" else {"max_depth": [2, 3], "max_iter": [40]}
    aucs = []
    for rep in range(3):  # 600 stays: one permutation has SD ~0.035; average three
        y_perm = np.random.default_rng(100 + rep).permutation(y)
        oof, _, _ = S.nested_cv(X, y_perm, groups, model, num, cat, grid, 3, 2, seed=3)
        aucs.append(M.auroc(oof["y"], oof["score"]))
    assert 0.42 <= np.mean(aucs) <= 0.58, aucs
    assert all(0.36 <= a <= 0.64 for a in aucs), aucs


# ----------------------------------------------------------------------------- external predictions
def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_predictions_valid_and_counts(tmp_path):
    p = _write(tmp_path, "ext.csv", "stay_id,score,name\n1,0.2,My Model\n2,0.7,My Model\n99,0.5,My Model\n")
    df, counts = S.load_predictions(p, ["1", "2", "3"])
    assert counts == {"n_file": 3, "n_not_in_cohort": 1, "n_matched": 2}
    assert list(df["stay_id"]) == ["1", "2"] and df["name"].iloc[0] == "my_model"


def test_empty_prediction_file_detected(tmp_path):
    assert S.is_empty(_write(tmp_path, "a.csv", "stay_id,score,name\n"))
    assert not S.is_empty(_write(tmp_path, "b.csv", "stay_id,score\n1,0.5\n"))
    pl.DataFrame(schema={"stay_id": pl.String, "score": pl.Float64}).write_parquet(tmp_path / "c.parquet")
    assert S.is_empty(tmp_path / "c.parquet")


@pytest.mark.parametrize(
    "text, column, fragment",
    [
        ("stay_id,prob\n1,0.2\n", "score", "missing column"),
        ("id,score\n1,0.2\n", "stay_id", "missing column"),
        ("stay_id,score\n1,0.2\n2,37\n", "score", "outside [0, 1]"),
        ("stay_id,score\n1,0.2\n1,0.3\n", "stay_id", "duplicated"),
        ("stay_id,score\n1,0.2\n2,\n", "score", "missing values"),
        ("stay_id,score\n7,0.2\n", "stay_id", "no stay_id matches"),
    ],
)
def test_load_predictions_bad_files_one_line(tmp_path, text, column, fragment):
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(UserInputError) as exc:
        S.load_predictions(p, ["1", "2"])
    msg = exc.value.one_line()
    assert "\n" not in msg and f"column '{column}'" in msg and fragment in msg


def test_evaluation_tables_external_same_stays():
    rng = np.random.default_rng(4)
    n = 600
    cohort = pl.DataFrame(
        {"stay_id": [str(i) for i in range(n)], "patient_id": [str(i // 2) for i in range(n)], "database": ["d"] * n, "cs": rng.random(n) < 0.4, "hospital_mortality": (rng.random(n) < 0.25).astype(int)}
    )
    y = cohort["hospital_mortality"].to_numpy()
    ours = pd.DataFrame({"stay_id": cohort["stay_id"], "score": np.clip(0.25 + 0.3 * (y - 0.25) + rng.normal(0, 0.2, n), 0.01, 0.99)})
    ext = pd.DataFrame({"stay_id": cohort["stay_id"][:400], "score": rng.random(400)})
    frame = S.score_frame(cohort, "hospital_mortality", {"ours": ours}, {"ext": ext})
    metrics, by_group, comp, summary = S.evaluation_tables(frame, ["ours"], ["ext"], 100, 0, 10)
    assert metrics.set_index("model").loc["ext", "n"] == 400
    assert comp.iloc[0]["n"] == 400 and comp.iloc[0]["difference_lo"] > 0
    assert summary["auroc_ours"] == pytest.approx(roc_auc_score(y, ours["score"]))
    assert {"auroc_ext", "auroc_ext_lo", "auroc_ext_hi", "calibration_slope_ours"} <= set(summary)
    assert set(by_group["group"]) == {"CS", "no CS"}


# ----------------------------------------------------------------------------- clusters
def test_confront_clusters_with_true_phenotypes(small_design, sim_small):
    X, y, groups, num, cat, cohort, truth = small_design
    oof, _, imp = S.nested_cv(X, y, groups, "logistic", num, cat, {"C": [0.003]}, 3, 2, seed=5, importance_repeats=1, feature_groups=S.feature_groups(num + cat))
    imp = imp.groupby("variable", as_index=False)["importance"].mean()
    scores = S.score_frame(cohort, "hospital_mortality", {"logistic": oof}, {})
    labels = truth.select("stay_id", pl.col("phenotype").alias("cluster")).to_pandas()
    # a benefit "learner" that is the truth itself, classed by sign: clusters must agree with it
    ite = truth["ite"].to_numpy()
    cate_frame = pd.DataFrame({"stay_id": truth["stay_id"], "benefit": ite, "benefit_class": np.where(ite > 0.02, "cs_sensitive", np.where(ite < -0.02, "possibly_harmed", "cs_resistant"))})
    per_cluster, dist, frame, summary = S.confront_clusters(labels, scores, ["logistic"], {"truth": cate_frame}, {"logistic": imp}, X, 50, 0, 10, 5)
    assert set(per_cluster["cluster"]) == {"alpha", "beta", "gamma", "delta"}
    assert summary["n_clusters"] == 4 and summary["ari_clusters_benefit_truth"] > 0.3
    med = dist[dist["quantity"] == "benefit_truth"].set_index("cluster")["median"]
    assert med["delta"] > 0 and med["gamma"] > 0 and med["beta"] < 0
    sep = S.cluster_defining_variables(X, truth["phenotype"].to_numpy(), S.feature_groups(list(X.columns)))
    top = set(sep.nlargest(6, "cluster_separation")["variable"])
    assert "bilirubin" in top  # the hepatic phenotype is planted through bilirubin
    assert -1 <= summary["importance_cluster_spearman_logistic"] <= 1


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_workflow_supervised_summary(workflow_run):
    s = json.loads((workflow_run / "results/simulated/summary/supervised.json").read_text())
    for m in ("logistic", "random_forest", "hist_gb"):
        assert s[f"auroc_{m}_lo"] < s[f"auroc_{m}"] < s[f"auroc_{m}_hi"]
        assert s[f"auroc_{m}"] > 0.65
        assert f"calibration_slope_{m}" in s
        oof = pl.read_parquet(workflow_run / f"results/simulated/supervised/oof_{m}.parquet")
        assert oof.height == 800 and oof["score"].null_count() == 0
    for lr in ("t_learner", "x_learner", "dr_learner"):
        assert 0.4 < s[f"c_for_benefit_{lr}"] < 1
        assert f"cate_spearman_truth_{lr}" in s
    assert s["cate_spearman_truth_dr_learner"] > 0.4
    assert 0 <= s["share_cs_sensitive"] <= 1


def test_calibration_plot_with_a_constant_model():
    # tiny data (the MIMIC-IV demo): a gradient boosting model that cannot split predicts one value
    frame = pd.DataFrame({"y": [0, 1, 0, 0, 1, 0], "hist_gb": [0.2] * 6, "logistic": [0.1, 0.6, 0.2, 0.3, 0.5, 0.1]})
    fig = S.plot_calibration(frame, ["hist_gb", "logistic"], 5, "tiny")
    import matplotlib.pyplot as plt

    plt.close(fig)
