"""Fitted external models: a pipeline fitted on one simulated database (skops and ONNX) applied to another,
metrics equal to applying it directly, pickles never loaded, untrusted skops types refused, one-line errors."""

from __future__ import annotations

import json
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from helpers import ROOT, make_workdir, run_snakemake
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.errors import ConfigError, UserInputError
from sepsis_cs.external import (
    CONVERSIONS,
    across_databases,
    application_summary,
    apply_model,
    check_model_file,
    load_model,
    model_data,
    parse_entries,
    parse_inputs,
)
from sepsis_cs.features import stay_features
from sepsis_cs.simulate import SimulationSettings, simulate
from sepsis_cs.supervised import evaluation_tables, restrict_to_risk_cohort, score_frame

skl2onnx = pytest.importorskip("skl2onnx")

MIN_CELL = 10


class _LabClassifier(LogisticRegression):
    """A class of the lab's own code: skops never trusts it by default."""

#: the lab's model: its own input names and units (creatinine in umol/L, temperature in degF, sex as text)
LAB_INPUTS = {
    "age": "age",
    "sex": "sex",
    "sofa": "sofa_t0",
    "lactate_max": "lactate__max_0_24",
    "map_mean": "map__mean_0_24",
    "creat_umol": {"column": "creatinine__max_0_24", "convert": "creatinine_mg_dl_to_umol_l"},
    "temp_f": {"column": "temperature__max_0_24", "convert": "celsius_to_fahrenheit"},
}
NUMERIC = ["age", "sofa", "lactate_max", "map_mean", "creat_umol", "temp_f"]


@lru_cache(maxsize=4)
def _database(name: str, n: int, seed: int, shift: float = 0.0, lab_interval_scale: float = 1.0):
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    cohort, ts, _ = simulate(SimulationSettings(n_stays=n, shift=shift, lab_interval_scale=lab_interval_scale), seed=seed, database=name)
    feats = stay_features(cohort, ts, dictionary, [(-24, 0), (0, 24)])
    return cohort, model_data(feats, cohort)


def source():
    """The lab's own database (here: the covariate-shifted simulated one)."""
    return _database("simulated_shift", 500, 5, 0.6, 2.0)


def target():
    return _database("simulated", 500, 6)


def lab_frame(data: pl.DataFrame) -> pd.DataFrame:
    """The lab's design matrix built by hand (its own units), as the lab did when fitting."""
    return pd.DataFrame(
        {
            "age": data["age"].to_numpy(),
            "sex": data["sex"].to_numpy().astype(object),
            "sofa": data["sofa_t0"].to_numpy(),
            "lactate_max": data["lactate__max_0_24"].to_numpy(),
            "map_mean": data["map__mean_0_24"].to_numpy(),
            "creat_umol": data["creatinine__max_0_24"].to_numpy() * 88.42,
            "temp_f": data["temperature__max_0_24"].to_numpy() * 1.8 + 32.0,
        }
    )


@lru_cache(maxsize=1)
def lab_pipeline():
    """A scikit-learn pipeline fitted on the source database's stay features (imputer, scaler, one-hot, L2 logistic)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cohort, data = source()
    X = lab_frame(data)
    y = cohort.sort("stay_id")["hospital_mortality"].cast(pl.Int64).to_numpy()
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"])])
    return Pipeline([("pre", pre), ("model", LogisticRegression(C=0.5, max_iter=2000))]).fit(X, y)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The lab's pipeline saved with skops and converted to ONNX (skl2onnx, float32 inputs)."""
    import skops.io as sio

    d = tmp_path_factory.mktemp("lab_models")
    pipe = lab_pipeline()
    sio.dump(pipe, d / "lab_lr.skops")
    X = lab_frame(source()[1]).head(1).astype({c: np.float32 for c in NUMERIC})
    onx = skl2onnx.to_onnx(pipe, X, options={"zipmap": False}, target_opset=17)
    (d / "lab_lr.onnx").write_bytes(onx.SerializeToString())
    return {"pipe": pipe, "skops": d / "lab_lr.skops", "onnx": d / "lab_lr.onnx", "dir": d}


def _metrics(cohort, predictions: pd.DataFrame, name: str):
    frame = score_frame(cohort, "hospital_mortality", {}, {name: predictions})
    metrics, _, _, _ = evaluation_tables(frame, [], [name], n_boot=50, seed=3, min_cell_count=MIN_CELL)
    return metrics.set_index("model").loc[name]


# ----------------------------------------------------------------------------- applying a fitted model
def test_skops_pipeline_on_another_database_equals_direct_application(models):
    cohort, data = target()
    model = load_model(models["skops"])
    pred, coverage, counts, _ = apply_model(model, data, parse_inputs(LAB_INPUTS), "lab_lr", min_cell_count=MIN_CELL)
    # stays with a mapped input missing (no default) are left out and counted, never imputed
    X = lab_frame(data)
    complete = X[NUMERIC].notna().all(axis=1).to_numpy()
    assert counts["n_not_applicable"] == int((~complete).sum()) > 0
    assert counts["n_applied"] == pred.height == int(complete.sum())
    assert set(pred["stay_id"]) == set(data["stay_id"].filter(pl.Series(complete)))
    # identical to the lab applying its pipeline itself (same stays, same numbers)
    direct = models["pipe"].predict_proba(X[complete])[:, 1]
    assert np.array_equal(pred["score"].to_numpy(), direct)
    got = _metrics(cohort, pred.to_pandas(), "lab_lr")
    want = _metrics(cohort, pd.DataFrame({"stay_id": data["stay_id"].to_numpy()[complete], "score": direct}), "lab_lr")
    for m in ("auroc", "auroc_lo", "auroc_hi", "brier", "brier_lo", "brier_hi", "calibration_slope", "n", "events"):
        assert got[m] == want[m], m
    assert 0.6 < got["auroc"] < 0.95
    row = coverage.filter(pl.col("input") == "creat_umol").row(0, named=True)
    assert row["convert"] == "creatinine_mg_dl_to_umol_l" and row["default"] == ""


def test_onnx_conversion_gives_the_same_predictions_and_metrics(models):
    cohort, data = target()
    sk, _, c1, _ = apply_model(load_model(models["skops"]), data, parse_inputs(LAB_INPUTS), "lab_lr")
    ox, _, c2, _ = apply_model(load_model(models["onnx"]), data, parse_inputs(LAB_INPUTS), "lab_lr")
    assert c1 == c2
    assert np.abs(sk["score"].to_numpy() - ox["score"].to_numpy()).max() < 1e-5  # float32 graph
    a, b = _metrics(cohort, sk.to_pandas(), "m"), _metrics(cohort, ox.to_pandas(), "m")
    assert abs(a["auroc"] - b["auroc"]) < 1e-3 and abs(a["brier"] - b["brier"]) < 1e-6


def test_external_metrics_on_source_and_target(models, capsys):
    """Figures of the report: the lab's model on the database it was fitted on (apparent) and on another."""
    rows = []
    for label, (cohort, data) in (("source simulated_shift (apparent)", source()), ("target simulated", target())):
        pred, _, counts, _ = apply_model(load_model(models["skops"]), data, parse_inputs(LAB_INPUTS), "lab_lr")
        m = _metrics(cohort, pred.to_pandas(), "lab_lr")
        rows.append((label, counts["n_applied"], m))
    with capsys.disabled():
        for label, n, m in rows:
            print(f"\n  lab_lr on {label}: n={n} AUROC {m['auroc']:.3f} [{m['auroc_lo']:.3f}, {m['auroc_hi']:.3f}]"
                  f"  Brier {m['brier']:.3f} [{m['brier_lo']:.3f}, {m['brier_hi']:.3f}]  slope {m['calibration_slope']:.2f}")
    assert rows[0][2]["auroc"] > 0.6 and rows[1][2]["auroc"] > 0.6


def test_defaults_and_missing_pass_keep_every_stay(models):
    _, data = target()
    inputs = dict(LAB_INPUTS, lactate_max={"column": "lactate__max_0_24", "default": 2.0},
                  creat_umol={"column": "creatinine__max_0_24", "convert": "creatinine_mg_dl_to_umol_l", "default": 90.0},
                  map_mean={"column": "map__mean_0_24", "default": 75.0}, temp_f={"column": "temperature__max_0_24", "convert": "celsius_to_fahrenheit", "default": 98.6})
    pred, _, counts, _ = apply_model(load_model(models["skops"]), data, parse_inputs(inputs), "m", min_cell_count=MIN_CELL)
    assert counts["n_not_applicable"] == 0 and pred.height == data.height
    X = lab_frame(data).fillna({"lactate_max": 2.0, "creat_umol": 90.0, "map_mean": 75.0, "temp_f": 98.6})
    assert np.array_equal(pred["score"].to_numpy(), models["pipe"].predict_proba(X)[:, 1])
    # the pipeline imputes itself: missing: pass gives it NaN (its own SimpleImputer fills them)
    pred2, cov2, counts2, _ = apply_model(load_model(models["skops"]), data, parse_inputs(LAB_INPUTS), "m", missing="pass", min_cell_count=1)
    assert counts2["n_not_applicable"] == 0
    assert np.array_equal(pred2["score"].to_numpy(), models["pipe"].predict_proba(lab_frame(data))[:, 1])
    assert cov2["n_missing_passed"].sum() == cov2["n_missing"].sum() > 0


def test_small_counts_suppressed_with_complement(models):
    _, data = target()
    _, cov, counts, _ = apply_model(load_model(models["skops"]), data, parse_inputs(LAB_INPUTS), "m", min_cell_count=1000)
    # a few stays lack some inputs: those counts are suppressed (null) under 1000, never printed
    assert cov["n_missing"].null_count() >= 1
    assert all(v is None or v == 0 or v >= 1000 for v in cov["n_missing"].to_list())
    model = load_model(models["skops"])
    s = application_summary("m", "simulated", model, models["skops"], {**counts, "n_applied": 495, "n_not_applicable": 5}, False, {}, 10)
    assert s["n_not_applicable"] is None and s["n_applied"] is None and s["n_stays"] == counts["n_stays"]
    s = application_summary("m", "simulated", model, models["skops"], {**counts, "n_applied": 480, "n_not_applicable": 20}, True, {}, 10)
    assert (s["n_applied"], s["n_not_applicable"], s["apparent"]) == (480, 20, True)
    assert len(s["sha256"]) == 64 and s["trusted_types_used"] == ["numpy.dtype"]


def test_hand_built_onnx_matrix_model_needs_ordered_inputs(tmp_path):
    """A tiny logistic ONNX graph (onnx helpers) taking one unnamed [N, 3] matrix: inputs by position."""
    from onnx import TensorProto, helper, numpy_helper

    w, b = np.array([[0.03], [0.2], [0.4]], np.float32), np.array([-4.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Z0"]), helper.make_node("Add", ["Z0", "B"], ["Z"]), helper.make_node("Sigmoid", ["Z"], ["probability"])],
        "logit", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])], [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    path = tmp_path / "tiny.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    _, data = target()
    ordered = [{"input": "age", "column": "age"}, {"input": "sofa", "column": "sofa_t0"}, {"input": "lactate", "column": "lactate_t0"}]
    pred, _, counts, _ = apply_model(load_model(path), data, parse_inputs(ordered), "tiny")
    X = data.select("age", "sofa_t0", "lactate_t0").to_numpy().astype(np.float32)
    ok = np.isfinite(X).all(axis=1)
    want = 1 / (1 + np.exp(-(X[ok] @ w + b).ravel()))
    assert counts["n_applied"] == int(ok.sum()) and np.allclose(pred["score"].to_numpy(), want, atol=1e-6)
    with pytest.raises(ConfigError, match="order matters"):
        apply_model(load_model(path), data, parse_inputs({"age": "age", "sofa": "sofa_t0", "lactate": "lactate_t0"}), "tiny")
    with pytest.raises(ConfigError, match="takes 3 inputs, the mapping lists 2"):
        apply_model(load_model(path), data, parse_inputs(ordered[:2]), "tiny")
    # a raw logit output is not a probability
    graph.output[0].name = "Z"
    del graph.node[2]
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(UserInputError, match="not a probability"):
        apply_model(load_model(path), data, parse_inputs(ordered), "tiny")


def test_mapping_from_csv_file(models, tmp_path):
    csv = tmp_path / "mapping.csv"
    csv.write_text(
        "input,column,convert,default\nage,age,,\nsex,sex,,\nsofa,sofa_t0,,\nlactate_max,lactate__max_0_24,,2.0\nmap_mean,map__mean_0_24,,\n"
        "creat_umol,creatinine__max_0_24,creatinine_mg_dl_to_umol_l,\ntemp_f,temperature__max_0_24,celsius_to_fahrenheit,\n"
    )
    mapping = parse_inputs(inputs_file=csv)
    assert mapping.ordered and mapping.specs[3].default == 2.0 and mapping.specs[5].convert == "creatinine_mg_dl_to_umol_l"
    _, data = target()
    _, cov, _, _ = apply_model(load_model(models["onnx"]), data, mapping, "m", min_cell_count=1)
    assert cov.filter(pl.col("input") == "lactate_max")["default"].item() == "2.0"


# ----------------------------------------------------------------------------- never unpickle
class _Tripwire:
    """Unpickling this object creates a file: proof that nothing was unpickled if the file is absent."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib", "model.pickle", "model.skops", "model.onnx", "model.bin"])
def test_pickles_refused_without_unpickling(tmp_path, name):
    marker = tmp_path / "unpickled"
    (tmp_path / name).write_bytes(pickle.dumps(_Tripwire(marker), protocol=4))
    with pytest.raises(UserInputError) as exc:
        load_model(tmp_path / name)
    msg = str(exc.value)
    assert "\n" not in msg and "refused" in msg and "skops.io.dump" in msg and "skl2onnx" in msg
    assert not marker.exists()


def test_compressed_joblib_refused(tmp_path, models):
    import joblib

    joblib.dump(models["pipe"], tmp_path / "lab.skops", compress=3)  # a joblib file under a skops name
    with pytest.raises(UserInputError, match="compressed pickle"):
        check_model_file(tmp_path / "lab.skops")


def test_skops_untrusted_types_refused_unless_listed(tmp_path, caplog):
    import logging

    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    cohort, data = source()
    X = data.select("age", "sofa_t0").fill_null(0).to_numpy()
    y = cohort.sort("stay_id")["hospital_mortality"].cast(pl.Int64).to_numpy()
    sio.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), tmp_path / "rf.skops")
    log = logging.getLogger("test_external")
    with caplog.at_level(logging.ERROR, "test_external"), pytest.raises(UserInputError) as exc:
        load_model(tmp_path / "rf.skops", log=log)
    msg = str(exc.value)
    assert "\n" not in msg and "refused untrusted types ['sklearn.tree._tree.Tree']" in msg and "trusted_types" in msg
    assert "sklearn.tree._tree.Tree" in caplog.text  # the refused type and skops' reason go to the log
    model = load_model(tmp_path / "rf.skops", trusted_types=["sklearn.tree._tree.Tree"])
    assert model.matrix and model.n_inputs == 2


def test_skops_custom_class_refused(tmp_path):
    import skops.io as sio

    sio.dump(_LabClassifier().fit(np.zeros((20, 1)), np.arange(20) % 2), tmp_path / "custom.skops")
    with pytest.raises(UserInputError, match=r"refused untrusted types \['test_external._LabClassifier'\]"):
        load_model(tmp_path / "custom.skops")


# ----------------------------------------------------------------------------- one-line errors
def _skops(tmp_path, est, name):
    import skops.io as sio

    sio.dump(est, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("typo_column", "column lactate__maxx_0_24 is in neither stay_features nor the cohort; close: lactate__max_0_24"),
        ("unmapped_input", "model input has no mapping"),
        ("extra_input", "not an input of the model"),
        ("outcome_column", "column hospital_mortality is an outcome"),
        ("unknown_conversion", "unknown conversion 'stone_to_kg'"),
        ("unmapped_level", "have no entry in levels"),
        ("text_into_number", "expects numbers but the mapped column holds text"),
        ("regressor", "has no predict_proba"),
        ("three_classes", "3 classes"),
        ("positive_class", "positive_class 'dead' is not one of the model's classes"),
    ],
)
def test_mapping_and_model_errors_are_one_line(models, tmp_path, case, fragment):
    from sklearn.linear_model import LinearRegression

    _, data = target()
    path, inputs, kw = models["skops"], dict(LAB_INPUTS), {}
    if case == "typo_column":
        inputs["lactate_max"] = "lactate__maxx_0_24"
    elif case == "unmapped_input":
        inputs.pop("sofa")
    elif case == "extra_input":
        inputs["weight"] = "weight"
    elif case == "outcome_column":
        inputs["sofa"] = "hospital_mortality"
    elif case == "unknown_conversion":
        inputs["creat_umol"] = {"column": "creatinine__max_0_24", "convert": "stone_to_kg"}
    elif case == "unmapped_level":
        inputs["sex"] = {"column": "sex", "levels": {"F": "female"}}
    elif case == "text_into_number":
        path, inputs = models["onnx"], dict(inputs, age="sex")
    elif case == "regressor":
        path = _skops(tmp_path, LinearRegression().fit(np.ones((5, 1)), np.arange(5)), "reg.skops")
        inputs = [{"input": "a", "column": "age"}]
    elif case == "three_classes":
        path = _skops(tmp_path, LogisticRegression().fit(np.arange(9).reshape(-1, 1), np.arange(9) % 3), "multi.skops")
        inputs = [{"input": "a", "column": "age"}]
    elif case == "positive_class":
        kw = {"positive_class": "dead"}
    with pytest.raises(UserInputError) as exc:
        apply_model(load_model(path, **kw), data, parse_inputs(inputs), "m")
    msg = exc.value.one_line()
    assert "\n" not in msg and fragment in msg, msg


def test_parse_entries_checks_what_the_schema_cannot(models, tmp_path):
    pkl = tmp_path / "lab.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    fitted = {"name": "lab", "model": str(models["skops"]), "inputs": {"age": "age"}}
    analysed, dbs, reserved = ["simulated", "mimic_iv"], ["simulated", "mimic_iv", "simulated_shift"], {"logistic", "apache_iv"}
    files, fit = parse_entries([{"name": "preds", "database": "simulated", "path": "p.csv"}, fitted], analysed, dbs, reserved)
    assert [f["name"] for f in files] == ["preds"] and fit[0].databases == ("simulated", "mimic_iv") and fit[0].format == "skops"
    bad = [
        ([dict(fitted, model=str(pkl))], "external_models[0].model", "refused"),
        ([dict(fitted, name="logistic")], "external_models[0].name", "used twice"),
        ([fitted, dict(fitted)], "external_models[1].name", "used twice"),
        ([dict(fitted, databases=["simulated_shift"])], "external_models[0].databases", "analyse: false"),
        ([dict(fitted, databases=["eicu"])], "external_models[0].databases", "not declared"),
        ([dict(fitted, path="p.csv")], "external_models[0]", "either path and database"),
        ([{"name": "x", "database": "simulated", "path": "p.csv", "inputs": {"a": "age"}}], "external_models[0].inputs", "only for fitted models"),
        ([dict(fitted, inputs_file="m.csv")], "external_models[0]", "exactly one of inputs"),
        ([dict(fitted, model=str(tmp_path / "none.onnx"))], "external_models[0].model", "does not exist"),
    ]
    for entries, key, fragment in bad:
        with pytest.raises(ConfigError) as exc:
            parse_entries(entries, analysed, dbs, reserved)
        assert exc.value.column == key and fragment in exc.value.one_line() and "\n" not in exc.value.one_line(), (key, exc.value.one_line())


def test_schema_conversions_are_the_registry():
    schema = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
    inputs = schema["properties"]["external_models"]["items"]["properties"]["inputs"]["oneOf"]
    assert inputs[0]["additionalProperties"]["oneOf"][1]["properties"]["convert"]["enum"] == list(CONVERSIONS)
    assert inputs[1]["items"]["properties"]["convert"]["enum"] == list(CONVERSIONS)


def test_across_databases_table_flags_apparent_performance():
    metrics = pl.DataFrame({"model": ["logistic", "lab"], "kind": ["internal", "external"], "n": [500, 480], "events": [150, 140], "auroc": [0.8, 0.7], "auroc_lo": [0.75, 0.65], "auroc_hi": [0.85, 0.75], "brier": [0.15, 0.18]})
    app = {"n_stays": 500, "n_applied": 480, "n_not_applicable": 20}
    table = across_databases("lab", [("a", app, metrics), ("b", app, metrics.filter(pl.col("model") == "logistic"))], "a", 10)
    assert table["apparent"].to_list() == [True, False]
    assert table["auroc"].to_list() == [0.7, None] and table["best_internal_auroc"].to_list() == [0.8, 0.8]


# ----------------------------------------------------------------------------- through the workflow
@pytest.mark.slow
def test_workflow_applies_fitted_models_to_every_database(tmp_path):
    """Fit on the workflow's own simulated_shift stay features, save (skops, ONNX), declare, run: the models are
    scored on both databases by the supervised phase exactly as applying the pipeline by hand."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    wd = make_workdir(tmp_path / "wd")
    base = {
        "seed": 7,
        "features": "all",
        "databases": {
            "simulated": {"type": "simulated", "analyse": True, "n_stays": 500},
            "simulated_shift": {"type": "simulated", "analyse": True, "n_stays": 500, "shift": 0.6, "lab_interval_scale": 2.0},
            "simulated_unrelated": None,
        },
        "supervised": {"models": {"logistic": {"C": [0.05]}}, "n_boot": 50, "outer_folds": 2, "inner_folds": 2},
        "transfer": {"pairs": []},
    }
    (wd / "ext.yaml").write_text(yaml.safe_dump(base))
    run_snakemake(wd, "results/simulated_shift/features/stay_features.parquet", "results/simulated_shift/data/cohort.parquet", "--cores", "2", "--configfile", "ext.yaml")
    res = wd / "results"
    src = model_data(pl.read_parquet(res / "simulated_shift/features/stay_features.parquet"), pl.read_parquet(res / "simulated_shift/data/cohort.parquet"))
    y = pl.read_parquet(res / "simulated_shift/data/cohort.parquet").sort("stay_id")["hospital_mortality"].cast(pl.Int64).to_numpy()
    X = lab_frame(src)
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"])])
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression(C=0.5, max_iter=2000))]).fit(X, y)
    sio.dump(pipe, wd / "lab_lr.skops")
    onx = skl2onnx.to_onnx(pipe, X.head(1).astype({c: np.float32 for c in NUMERIC}), options={"zipmap": False}, target_opset=17)
    (wd / "lab_lr.onnx").write_bytes(onx.SerializeToString())
    cfg = dict(base, external_models=[
        {"name": "lab_lr", "model": "lab_lr.skops", "fitted_on": "simulated_shift", "inputs": LAB_INPUTS},
        {"name": "lab_onnx", "model": "lab_lr.onnx", "fitted_on": "simulated_shift", "inputs": LAB_INPUTS, "databases": ["simulated"]},
    ])
    (wd / "ext.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(wd, "results/external/lab_lr/across_databases.csv", "results/external/lab_onnx/across_databases.csv", "--cores", "2", "--configfile", "ext.yaml")
    table = pl.read_csv(res / "external/lab_lr/across_databases.csv")
    assert table["database"].to_list() == ["simulated", "simulated_shift"] and table["apparent"].to_list() == [False, True]
    for db in ("simulated", "simulated_shift"):
        cohort = pl.read_parquet(res / db / "data/cohort.parquet")
        data = model_data(pl.read_parquet(res / db / "features/stay_features.parquet"), cohort)
        Xd = lab_frame(data)
        ok = Xd[NUMERIC].notna().all(axis=1).to_numpy()
        direct = pd.DataFrame({"stay_id": data["stay_id"].to_numpy()[ok], "score": pipe.predict_proba(Xd[ok])[:, 1]})
        # every model is evaluated on the risk models' cohort (alive and in the ICU at the prediction horizon)
        at_risk = restrict_to_risk_cohort(cohort, pl.read_parquet(res / db / "supervised/risk_cohort.parquet"))
        frame = score_frame(at_risk, "hospital_mortality", {}, {"lab_lr": direct})
        want = evaluation_tables(frame, [], ["lab_lr"], 50, 7, 10)[0].set_index("model").loc["lab_lr"]
        got = pl.read_csv(res / db / "supervised/metrics.csv").filter(pl.col("model") == "lab_lr").row(0, named=True)
        for m in ("auroc", "auroc_lo", "auroc_hi", "brier", "brier_lo", "brier_hi"):
            assert got[m] == pytest.approx(round(want[m], 4), abs=1e-9), (db, m)
        evaluate = json.loads((res / db / "supervised/evaluate.json").read_text())
        app = json.loads((res / db / "external/fitted/lab_lr/application.json").read_text())
        assert app["n_stays"] == data.height and app["format"] == "skops" and app["apparent"] == (db == "simulated_shift")
        assert evaluate["n_applied_lab_lr"] == app["n_applied"] and evaluate["auroc_lab_lr"] == pytest.approx(want["auroc"])
        print(f"\n  workflow lab_lr on {db}: AUROC {got['auroc']:.3f} [{got['auroc_lo']:.3f}, {got['auroc_hi']:.3f}] Brier {got['brier']:.3f} [{got['brier_lo']:.3f}, {got['brier_hi']:.3f}]")
    onnx_row = pl.read_csv(res / "simulated/supervised/metrics.csv").filter(pl.col("model") == "lab_onnx").row(0, named=True)
    assert onnx_row["auroc"] == pytest.approx(table["auroc"][0], abs=2e-3)
    assert (res / "external/lab_lr/across_databases.png").stat().st_size > 1000
    # a pickle in the config stops the run at once with one line, before any job
    (wd / "lab.pkl").write_bytes(pickle.dumps(_Tripwire(wd / "unpickled")))
    cfg["external_models"][0]["model"] = "lab.pkl"
    (wd / "ext.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(wd, "-n", "--configfile", "ext.yaml", check=False)
    assert proc.returncode != 0 and "ERROR config: key 'external_models[0].model'" in proc.stderr and "refused" in proc.stderr
    assert not (wd / "unpickled").exists()


# ----------------------------------------------------------------------------- R users: a glm's coefficients as ONNX
def test_glm_coefficients_to_onnx_match_the_formula(tmp_path, capsys):
    """What an R user writes with write.csv(data.frame(term = names(coef(fit)), estimate = coef(fit))) becomes an
    ONNX model whose predictions are the glm's inverse-logit formula."""
    import glm_to_onnx

    cohort, data = source()
    X = np.column_stack([data["age"].to_numpy(), data["sofa_t0"].to_numpy(), (data["sex"] == "M").cast(pl.Float64).to_numpy()])
    y = cohort.sort("stay_id")["hospital_mortality"].cast(pl.Int64).to_numpy()
    fit = LogisticRegression(C=1e6, max_iter=5000).fit(X, y)  # unpenalised, as glm(family = binomial)
    terms = ["(Intercept)", "age", "sofa_t0", "sexM"]
    est = [fit.intercept_[0], *fit.coef_[0]]
    (tmp_path / "coef.csv").write_text("term,estimate\n" + "".join(f'"{t}",{float(e)!r}\n' for t, e in zip(terms, est)))
    assert glm_to_onnx.main([str(tmp_path / "coef.csv"), str(tmp_path / "glm.onnx")]) == 0
    inputs = {"age": "age", "sofa_t0": "sofa_t0", "sexM": {"column": "sex", "levels": {"F": 0, "M": 1}}}
    pred, _, counts, _ = apply_model(load_model(tmp_path / "glm.onnx"), data, parse_inputs(inputs), "glm")
    assert counts["n_applied"] == data.height
    assert np.allclose(pred["score"].to_numpy(), fit.predict_proba(X)[:, 1], atol=1e-12)
    (tmp_path / "bad.csv").write_text('term,estimate\n"(Intercept)",1\n"age:sexM",0.1\n')
    assert glm_to_onnx.main([str(tmp_path / "bad.csv"), str(tmp_path / "bad.onnx")]) == 1
    assert "only main-effect terms" in capsys.readouterr().err


def test_r_glm_exported_as_onnx_gives_r_predictions(tmp_path):
    """The documented R route end to end: glm() in R, coefficients to CSV, scripts/glm_to_onnx.py, applied here."""
    import shutil
    import subprocess

    import glm_to_onnx

    if not shutil.which("Rscript"):
        pytest.skip("Rscript not installed")
    _, data = source()
    d = data.select("age", "sofa_t0", "sex").with_columns(pl.Series("death", source()[0].sort("stay_id")["hospital_mortality"].cast(pl.Int64)))
    d.write_csv(tmp_path / "lab.csv")
    r = (
        'd <- read.csv("lab.csv"); d$sex <- factor(d$sex, levels = c("F", "M"));'
        "fit <- glm(death ~ age + sofa_t0 + sex, family = binomial, data = d);"
        'write.csv(data.frame(term = names(coef(fit)), estimate = coef(fit)), "coef.csv", row.names = FALSE);'
        'write.csv(data.frame(p = predict(fit, type = "response")), "r_pred.csv", row.names = FALSE)'
    )
    subprocess.run(["Rscript", "-e", r], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    assert glm_to_onnx.main([str(tmp_path / "coef.csv"), str(tmp_path / "glm.onnx")]) == 0
    inputs = {"age": "age", "sofa_t0": "sofa_t0", "sexM": {"column": "sex", "levels": {"F": 0, "M": 1}}}
    pred, _, _, _ = apply_model(load_model(tmp_path / "glm.onnx"), data, parse_inputs(inputs), "glm")
    want = pl.read_csv(tmp_path / "r_pred.csv")["p"].to_numpy()
    assert np.allclose(pred["score"].to_numpy(), want, atol=1e-9)
