"""Onboarding a database: one-pass check, mapping instead of code, check CLI, starter files.

The issue-17 scenario (an ICU export written with pandas that needed four rounds of error, fix,
rerun) is reproduced in :func:`test_four_round_export_needs_one_check_and_one_mapping_edit`.
"""

from __future__ import annotations

import io
import re

import numpy as np
import polars as pl
import pytest
import yaml
from conftest import ROOT
from sepsis_cs import units
from sepsis_cs.check_cli import cli
from sepsis_cs.contract import CS_DRUGS, ContractSettings, check
from sepsis_cs.errors import ConfigError
from sepsis_cs.mapping import Mapping
from sepsis_cs.onboard import check_pair
from sepsis_cs.problems import TODO, ContractProblems, find_todo
from sepsis_cs.starter import example_pair, write_starter

SETTINGS = ContractSettings()


@pytest.fixture(scope="module")
def small():
    from sepsis_cs.simulate import SimulationSettings, simulate

    cohort, ts, _ = simulate(SimulationSettings(n_stays=200, repeat_stay_share=0.0), seed=3, database="x")
    keep = ["map", "heart_rate", "temperature", "creatinine", "glucose", "lactate"]
    return cohort, ts.filter(pl.col("variable").is_in(keep))


def _errors(res):
    return [p for p in res.problems.items if p.severity == "error"]


def _run_cli(*args) -> tuple[int, str]:
    buf = io.StringIO()
    rc = cli([str(a) for a in args], out=buf)
    return rc, buf.getvalue()


# ----------------------------------------------------------------------------- one pass
def test_every_problem_of_both_files_in_one_pass(small, dictionary):
    cohort, ts = small
    bad_c = cohort.with_columns(
        pl.when(pl.arange(0, pl.len()) < 4).then(-2.0).otherwise(pl.col("icu_los_days")).alias("icu_los_days"),  # impossible
        pl.when(~pl.col("cs") & (pl.arange(0, pl.len()) < 40)).then(6.0).otherwise(pl.col("cs_start_h")).alias("cs_start_h"),  # inconsistent
        pl.lit("X").alias("sex"),
        pl.lit(2, dtype=pl.Int8).alias("hospital_mortality"),
    ).drop("time_zero")
    bad_t = ts.with_columns(pl.when(pl.col("variable") == "temperature").then(pl.col("value") * 9 / 5 + 32).otherwise(pl.col("value")).alias("value"))
    res = check(bad_c, bad_t, dictionary, SETTINGS, "c.parquet", "t.parquet")
    cols = {p.column for p in _errors(res)}
    assert {"time_zero", "icu_los_days", "cs_start_h", "sex", "hospital_mortality", "value"} <= cols
    for p in _errors(res):
        line = p.line()
        assert "\n" not in line and line.startswith(("c.parquet", "t.parquet"))
    unit = next(p for p in _errors(res) if p.column == "value")
    assert "mapping.units: {temperature: degF_to_degC}" in unit.line() and unit.example is not None
    with pytest.raises(ContractProblems) as exc:
        res.problems.raise_if_errors()
    assert len(exc.value.lines()) == len(_errors(res)) and "more problems" in str(exc.value)


def test_treatment_consistency(small, dictionary):
    cohort, ts = small
    untreated_drug = cohort.with_columns(pl.when(~pl.col("cs")).then(pl.lit("hydrocortisone")).otherwise(pl.col("cs_drug")).alias("cs_drug"))
    res = check(untreated_drug, ts, dictionary, SETTINGS)
    assert [p.column for p in _errors(res)] == ["cs_drug"] and "untreated" in _errors(res)[0].expected
    nan_start = cohort.with_columns(pl.when(pl.col("cs")).then(float("nan")).otherwise(None).alias("cs_start_h"))
    res = check(nan_start, ts, dictionary, SETTINGS)
    assert [p.column for p in _errors(res)] == ["cs_start_h"] and "NaN" in _errors(res)[0].expected


def test_warnings_for_empty_series_and_all_missing_variable(small, dictionary):
    cohort, ts = small
    res = check(cohort, ts.head(0), dictionary, SETTINGS)
    assert res.ok and any(p.severity == "warning" and "no hourly values" in p.expected for p in res.problems.items)
    nulls = ts.with_columns(pl.when(pl.col("variable") == "glucose").then(None).otherwise(pl.col("value")).alias("value"))
    res = check(cohort, nulls, dictionary, SETTINGS)
    assert res.ok and any(p.severity == "warning" and p.column == "glucose" for p in res.problems.items)
    fewer = ts.filter(pl.col("stay_id") != cohort["stay_id"][0])
    res = check(cohort, fewer, dictionary, SETTINGS)
    assert any(p.severity == "warning" and "1 of 200 stays have no hourly value" in p.expected for p in res.problems.items)


def test_unknown_variables_drop_covers_timeseries_columns(small, dictionary):
    cohort, ts = small
    res = check(cohort, ts.with_columns(pl.lit("mmHg").alias("unit")), dictionary, ContractSettings(unknown_variables="drop"))
    assert res.ok and res.timeseries.columns == ["stay_id", "hour", "variable", "value"]
    assert any(p.severity == "repair" and p.column == "unit" and p.action == "dropped" for p in res.problems.items)


def test_pandas_index_columns_are_ignored_with_a_note(small, dictionary):
    cohort, ts = small
    res = check(cohort.with_row_index("__index_level_0__"), ts.with_row_index("Unnamed: 0"), dictionary, SETTINGS)
    assert res.ok and "__index_level_0__" not in res.cohort.columns
    notes = [p for p in res.problems.items if p.severity == "warning" and "pandas index" in p.expected]
    assert {p.column for p in notes} == {"__index_level_0__", "Unnamed: 0"}


def test_identifier_mismatch_shows_both_sides_without_identifiers(small, dictionary):
    cohort, ts = small
    shifted = ts.with_columns(("S-" + pl.col("stay_id").cast(pl.String)).alias("stay_id"))
    res = check(cohort, shifted, dictionary, SETTINGS, "c.csv", "t.csv")
    (err,) = _errors(res)
    assert "no stay_id in common" in err.expected and "200 of 200 cohort stays have no time-series rows" in err.expected
    assert re.search(r"'A-9+' here and '9+' in the cohort", err.expected)  # forms, not identifiers
    assert not any(sid in err.line() for sid in cohort["stay_id"].to_list())
    partial = pl.concat([ts, ts.head(5).with_columns(pl.lit("77777777").alias("stay_id"))])
    (err,) = _errors(check(cohort, partial, dictionary, SETTINGS))
    assert "1 of 201 are not" in err.expected and "unknown_stays" in err.fix and "77777777" not in err.line()


def test_examples_are_values_never_identifiers(small, dictionary):
    cohort, ts = small
    bad = cohort.with_columns(pl.lit("UNKNOWN").alias("sex"), pl.lit(None, dtype=pl.String).alias("patient_id"))
    res = check(bad, ts, dictionary, SETTINGS)
    frame = res.problems.frame()
    ids = set(cohort["stay_id"].to_list()) | set(cohort["patient_id"].to_list())
    assert not any(str(v).strip("'") in ids for v in frame["example"].drop_nulls())
    assert "'UNKNOWN'" in frame["example"].to_list()


# ----------------------------------------------------------------------------- mapping
def test_unit_registry_matches_schema_and_dictionary(dictionary):
    schema = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
    node = schema["properties"]["databases"]["additionalProperties"]["properties"]["mapping"]["properties"]["units"]
    assert node["additionalProperties"]["enum"] == list(units.CONVERSIONS)
    for conv in units.CONVERSIONS.values():  # every analyte-specific conversion targets the dictionary's unit
        for var in conv.variables or ():
            assert units.same_unit(dictionary[var].unit, conv.to_unit), conv.name
    assert units.CONVERSIONS["degF_to_degC"].apply(98.6) == pytest.approx(37.0)
    assert units.CONVERSIONS["creatinine_umol_l_to_mg_dl"].apply(88.42) == pytest.approx(1.0)
    assert units.CONVERSIONS["glucose_mmol_l_to_mg_dl"].apply(5.55) == pytest.approx(100.0, rel=1e-3)


def _pair(tmp_path, cohort, ts, fmt="parquet"):
    c, t = tmp_path / f"cohort.{fmt}", tmp_path / f"timeseries.{fmt}"
    for df, p in ((cohort, c), (ts, t)):
        df.write_parquet(p) if fmt == "parquet" else df.write_csv(p)
    return c, t


def test_mapping_converts_units_levels_and_renames(small, dictionary, tmp_path):
    cohort, ts = small
    export_c = cohort.rename({"icu_los_days": "los_h", "sex": "gender"}).with_columns(
        (pl.col("los_h") * 24).alias("los_h"),
        pl.col("gender").replace_strict({"F": "Female", "M": "Male"}),
        pl.col("diabetes").replace_strict({0: "no", 1: "yes"}, return_dtype=pl.String),
        pl.col("cs_drug").str.to_uppercase(),
    )
    export_t = ts.rename({"variable": "param"}).with_columns(
        pl.when(pl.col("param") == "creatinine").then(pl.col("value") * 88.42)
        .when(pl.col("param") == "glucose").then(pl.col("value") / 18.016)
        .when(pl.col("param") == "temperature").then(pl.col("value") * 9 / 5 + 32).otherwise(pl.col("value")).alias("value"),
        pl.col("param").replace({"heart_rate": "HR"}),
    )
    c, t = _pair(tmp_path, export_c, export_t, "csv")
    out = check_pair(c, t, Mapping(), dictionary, SETTINGS)
    assert not out.ok
    m = Mapping.from_config({
        "columns": {"los_h": "icu_los_days", "gender": "sex"},
        "timeseries_columns": {"param": "variable"},
        "variables": {"HR": "heart_rate"},
        "levels": {"sex": {"Female": "F", "Male": "M"}, "diabetes": {"yes": 1, "no": 0}},
        "cs_drug": {"lowercase": True},
        "units": {"icu_los_days": "hours_to_days", "creatinine": "creatinine_umol_l_to_mg_dl", "glucose": "glucose_mmol_l_to_mg_dl",
                  "temperature": "degF_to_degC"},
    })
    out = check_pair(c, t, m, dictionary, SETTINGS)
    assert out.ok, [p.line() for p in out.problems.errors]
    ref = check(cohort, ts, dictionary, SETTINGS)
    assert out.cohort["sex"].to_list() == ref.cohort["sex"].to_list()
    assert out.cohort["diabetes"].to_list() == ref.cohort["diabetes"].to_list()
    assert np.allclose(out.cohort["icu_los_days"].to_numpy(), ref.cohort["icu_los_days"].to_numpy(), atol=1e-5)
    assert np.allclose(out.timeseries["value"].to_numpy(), ref.timeseries["value"].to_numpy(), atol=1e-3)
    assert len(out.problems.of("mapped")) >= 6


def test_mapping_refuses_wrong_conversion_and_todo(small, dictionary, tmp_path):
    cohort, ts = small
    c, t = _pair(tmp_path, cohort, ts)
    out = check_pair(c, t, Mapping.from_config({"units": {"bilirubin": "creatinine_umol_l_to_mg_dl"}}), dictionary, SETTINGS)
    (err,) = out.problems.errors
    assert "creatinine_umol_l_to_mg_dl" in err.expected and "bilirubin_umol_l_to_mg_dl" in err.fix
    with pytest.raises(ConfigError, match="still TODO"):
        Mapping.from_config({"constants": {"time_zero": TODO}})
    with pytest.raises(ConfigError, match="unknown conversion"):
        Mapping.from_config({"units": {"temperature": "degF_to_kelvin"}})


def test_timeseries_repairs_by_mapping(small, dictionary, tmp_path):
    cohort, ts = small
    frac = ts.with_columns((pl.col("hour").cast(pl.Float64) + 0.25).alias("hour"))
    messy = pl.concat([frac, frac.head(50).with_columns(pl.col("value") + 1), frac.head(3).with_columns(pl.lit(200.5).alias("hour"))])
    c, t = _pair(tmp_path, cohort, messy)
    bad = check_pair(c, t, Mapping(), dictionary, SETTINGS)
    assert [p.column for p in bad.problems.errors] == ["hour"]
    m = Mapping.from_config({"timeseries": {"fractional_hours": "floor", "outside_window": "drop", "duplicates": "aggregate"}})
    out = check_pair(c, t, m, dictionary, SETTINGS)
    assert out.ok, [p.line() for p in out.problems.errors]
    assert out.timeseries.height == ts.height


def test_combined_drug_strings_and_aliases(small, dictionary, tmp_path):
    cohort, ts = small
    combo = cohort.with_columns(
        pl.when(pl.col("cs") & (pl.arange(0, pl.len()) % 2 == 0)).then(pl.lit("Methylprednisolone + Prednisone"))
        .when(pl.col("cs")).then(pl.lit("Solu-Cortef")).otherwise(None).alias("cs_drug")
    )
    c, t = _pair(tmp_path, combo, ts)
    first = check_pair(c, t, Mapping(), dictionary, SETTINGS)
    (err,) = first.problems.errors
    assert err.column == "cs_drug" and "mapping.cs_drug: {combined: first}" in err.line()
    m = Mapping.from_config({"cs_drug": {"combined": "first"}, "levels": {"cs_drug": {"Solu-Cortef": "hydrocortisone"}}})
    out = check_pair(c, t, m, dictionary, SETTINGS)
    assert out.ok and set(out.cohort["cs_drug"].drop_nulls()) <= {"methylprednisolone", "hydrocortisone"}


def test_extra_variables_extend_the_database_dictionary(small, dictionary, tmp_path):
    cohort, ts = small
    extra_c = cohort.with_columns(pl.lit(12.0).alias("apache_ii"))
    extra_t = pl.concat([ts, ts.filter(pl.col("variable") == "map").with_columns(pl.lit("spo2").alias("variable"), pl.lit(97.0).alias("value"))])
    c, t = _pair(tmp_path, extra_c, extra_t)
    m = Mapping.from_config({"extra_variables": {
        "apache_ii": {"label": "APACHE II", "unit": "points", "kind": "score", "type": "numeric", "source": "static", "range": [0, 71]},
        "spo2": {"label": "SpO2", "unit": "%", "kind": "vital", "type": "numeric", "source": "hourly", "range": [50, 100], "aggregation": "min"},
    }})
    out = check_pair(c, t, m, dictionary, SETTINGS)
    assert out.ok and "apache_ii" in out.cohort.columns and "spo2" in out.timeseries["variable"].to_list()
    assert out.dictionary["spo2"].aggregation == "min" and "spo2" not in dictionary
    with pytest.raises(ConfigError, match="already a variable"):
        check_pair(c, t, Mapping.from_config({"extra_variables": {"age": {"label": "a", "kind": "score", "type": "numeric", "source": "static"}}}), dictionary, SETTINGS)


# ----------------------------------------------------------------------------- readers
def test_readers_give_the_real_reason(tmp_path, small, dictionary):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cohort, ts = small
    c, t = _pair(tmp_path, cohort, ts)
    named = tmp_path / "csv_named.parquet"
    cohort.write_csv(named)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(cohort.with_columns(pl.lit("médical").alias("admission_type")).write_csv().encode("latin-1"))
    offsets = pa.array([0, 1, 3], type=pa.int32()).buffers()[1]
    bad_text = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"\xe9ab")])
    bad_parquet = tmp_path / "bad_text.parquet"
    pq.write_table(pa.table({"stay_id": [1, 2], "sex": bad_text}), bad_parquet)
    rc, text = _run_cli("--cohort", named, "--timeseries", bad_parquet)
    assert rc == 1
    assert "named .parquet" in text and "rename it .csv" in text  # both files reported in one pass
    assert "column 'sex'" in text and "invalid UTF-8" in text
    rc, text = _run_cli("--cohort", latin, "--timeseries", t)
    assert rc == 1 and "line 2, column 'admission_type'" in text and "mapping.read.encoding: latin-1" in text


# ----------------------------------------------------------------------------- CLI and starter
def test_starter_writes_typed_empty_pair_and_a_passing_example(tmp_path, dictionary):
    write_starter(tmp_path / "st", dictionary, SETTINGS)
    empty = pl.read_parquet(tmp_path / "st/empty/cohort.parquet")
    assert empty.height == 0 and empty.schema["cs"] == pl.Boolean and empty.schema["hospital_mortality"] == pl.Int8
    assert set(dictionary.static) <= set(empty.columns)
    ex_t = pl.read_parquet(tmp_path / "st/example/timeseries.parquet")
    assert set(ex_t["variable"]) == set(dictionary.hourly)
    for ext in ("csv", "parquet"):
        rc, text = _run_cli("--cohort", tmp_path / f"st/example/cohort.{ext}", "--timeseries", tmp_path / f"st/example/timeseries.{ext}")
        assert rc == 0 and "PASSED" in text, text
    rc, text = _run_cli("--config", tmp_path / "st/my_database.yaml", "--database", "my_database")
    assert rc == 0, text
    rc, text = _run_cli("--cohort", tmp_path / "st/empty/cohort.csv", "--timeseries", tmp_path / "st/empty/timeseries.csv")
    assert rc == 1 and "cohort is empty" in text
    codebook = pl.read_csv(tmp_path / "st/columns.csv")
    assert {"stay_id", "hour", "age", "lactate"} <= set(codebook["name"])


def test_starter_example_is_deterministic(dictionary):
    a, b = example_pair(dictionary, SETTINGS), example_pair(dictionary, SETTINGS)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert set(a[0].filter(pl.col("cs"))["cs_drug"]) <= set(CS_DRUGS)


def test_check_script_runs_without_snakemake(tmp_path, small):
    import subprocess
    import sys

    cohort, ts = small
    c, t = _pair(tmp_path, cohort, ts)
    script = ROOT / "scripts" / "check_contract.py"
    ok = subprocess.run([sys.executable, script, "--cohort", c, "--timeseries", t], capture_output=True, text=True)
    assert ok.returncode == 0 and "PASSED" in ok.stdout and not ok.stderr
    (tmp_path / "bad").mkdir()
    c2, _ = _pair(tmp_path / "bad", cohort.drop("age"), ts)
    bad = subprocess.run([sys.executable, script, "--cohort", c2, "--timeseries", t, "--problems", tmp_path / "p.csv"], capture_output=True, text=True)
    assert bad.returncode == 1 and "column 'age'" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr
    assert pl.read_csv(tmp_path / "p.csv")["severity"].to_list().count("error") == 1


# ----------------------------------------------------------------------------- the scenario
def _hospital_export(tmp_path, cohort: pl.DataFrame, ts: pl.DataFrame):
    """The export of issue 17 as a pandas user writes it: four defects and eight extra variables."""
    rng = np.random.default_rng(0)
    c = cohort.to_pandas().drop(columns=["time_zero"])
    treated = c["cs"].to_numpy()
    c.loc[treated & (rng.random(len(c)) < 0.4), "cs_drug"] = "methylprednisolone+prednisone"
    c["admission_type"] = c["admission_type"].map({"medical": "EMERGENCY", "surgical_emergency": "URGENT", "surgical_elective": "ELECTIVE"})
    c["apache_ii"] = rng.integers(5, 40, len(c))
    c["charlson"] = rng.integers(0, 10, len(c))
    c["bmi"] = rng.normal(27, 4, len(c)).round(1)
    c["smoker"] = rng.integers(0, 2, len(c))
    c["ward"] = rng.choice(["north", "south"], len(c))
    c = c[c["age"] >= 30]  # a filtered frame: pandas writes its index as __index_level_0__
    c.to_parquet(tmp_path / "cohort.parquet")
    t = ts.filter(pl.col("stay_id").is_in(list(c["stay_id"]))).to_pandas()
    extra = []
    for var, lo, hi in (("spo2", 88, 100), ("fio2", 0.21, 1.0), ("etco2", 25, 50)):
        e = t[t["variable"] == "map"].copy()
        e["variable"] = var
        e["value"] = rng.uniform(lo, hi, len(e)).round(2)
        extra.append(e)
    import pandas as pd

    pd.concat([t, *extra]).to_csv(tmp_path / "timeseries.csv", index=False)
    return tmp_path / "cohort.parquet", tmp_path / "timeseries.csv"


def test_four_round_export_needs_one_check_and_one_mapping_edit(small, tmp_path):
    cohort, ts = small
    c, t = _hospital_export(tmp_path, cohort, ts)
    # round 1: one check lists every problem and writes a suggested mapping
    rc, text = _run_cli("--cohort", c, "--timeseries", t, "--suggest", tmp_path / "suggested.yaml")
    errors = [ln for ln in text.splitlines() if ln.startswith("ERROR")]
    assert rc == 1 and len(errors) == 11, text
    for words in ("column 'time_zero'", "methylprednisolone+prednisone", "'EMERGENCY'", "column 'apache_ii'", "column 'charlson'",
                  "column 'bmi'", "column 'smoker'", "column 'ward'", "'spo2'", "'fio2'", "'etco2'"):
        assert sum(words in ln for ln in errors) == 1, words
    assert "warning:" in text and "__index_level_0__" in text  # ignored with a note, not an error
    suggested = yaml.safe_load((tmp_path / "suggested.yaml").read_text())
    mapping = suggested["databases"]["my_database"]["mapping"]
    assert len(mapping["extra_variables"]) == 8 and mapping["cs_drug"] == {"combined": "first"}
    # the one mapping edit: fill in the placeholders
    todo = find_todo(mapping)
    assert sorted(todo) == ["mapping.constants.time_zero", *(f"mapping.levels.admission_type.{k}" for k in ("ELECTIVE", "EMERGENCY", "URGENT"))]
    mapping["constants"]["time_zero"] = "sepsis3_onset"
    mapping["levels"]["admission_type"] = {"EMERGENCY": "medical", "URGENT": "surgical_emergency", "ELECTIVE": "surgical_elective"}
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(suggested))
    # round 2: pass
    rc, text = _run_cli("--config", tmp_path / "edited.yaml", "--database", "my_database")
    assert rc == 0 and "PASSED" in text, text
