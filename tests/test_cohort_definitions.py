"""Cohort definitions that follow MIT-LCP mimic-code (issue 13): SOFA rules, the concepts it reads,
suspected infection, Sepsis-3 onset and time zero, presets, eICU items, and (on the real demo)
the concordance harness and bring-your-own derived tables.

Unit tests use hand-made frames with known answers from mimic-code's rules; the demo tests build
mimic-code itself (DuckDB) from ../shared/reference/mimic-code.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import SHARED_DATA
from sepsis_cs.adapters import common, eicu, mimic_iv
from sepsis_cs.adapters import mimic_iv_concepts as mc
from sepsis_cs.adapters.common import CohortDefinition
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.errors import UserInputError
from sepsis_cs.sofa import add_sofa, sofa_worst

ROOT = Path(__file__).resolve().parents[1]
MIMIC = SHARED_DATA / "mimic-iv-demo-2.2"
MIMIC_CODE = SHARED_DATA.parent / "reference" / "mimic-code"
T0 = dt.datetime(2150, 1, 1, 10, 0)


def ts(h: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=h)


@pytest.fixture(scope="module")
def concepts():
    return common.load_concepts(ROOT / "config" / "concepts.yaml")


@pytest.fixture(scope="module")
def base_config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


# ----------------------------------------------------------------------------- SOFA (sofa.sql rules)
def _score(**cols) -> dict:
    n = max(len(v) for v in cols.values())
    df = pl.DataFrame({k: pl.Series(v, dtype=pl.Float64) for k, v in cols.items()})
    assert df.height == n
    return add_sofa(df).to_dict(as_series=False)


def test_cardiovascular_by_agent_and_dose():
    out = _score(
        _rate_dopamine=[4, 6, 16, None, None, None, None, None, None],
        _rate_dobutamine=[None, None, None, 2, None, None, None, None, None],
        _rate_norepinephrine=[None, None, None, None, 0.05, 0.2, None, None, None],
        _rate_epinephrine=[None] * 9,
        _unknown_norepinephrine=[None, None, None, None, None, None, 1, None, None],
        _sofa_map=[80, 80, 80, 80, 80, 80, 80, 65, None],
    )
    # dopamine <= 5 -> 2, > 5 -> 3, > 15 -> 4; dobutamine any -> 2; norepinephrine <= 0.1 -> 3, > 0.1 -> 4;
    # norepinephrine at an unknown dose -> at least 3 (not 0); MAP < 70 -> 1; nothing known -> null
    assert out["sofa_cardio"] == [2, 3, 4, 2, 3, 4, 3, 1, None]


def test_respiration_needs_ventilation_for_3_and_4_points():
    out = _score(_sofa_pf_vent=[None, 150, 90, None], _sofa_pf_novent=[150, None, None, 90])
    assert out["sofa_resp"] == [2, 3, 4, 2]
    # hourly pf_ratio with the ventilation flag (eICU) follows the same rule
    out = _score(pf_ratio=[150, 150], mechanical_ventilation=[0, 1])
    assert out["sofa_resp"] == [2, 3]


def test_renal_from_creatinine_and_24h_urine_output():
    out = _score(_sofa_creatinine=[1.0, 1.0, 1.0, 2.5, None], _sofa_uo_24h=[600, 450, 150, 600, None])
    assert out["sofa_renal"] == [0, 3, 4, 2, None]


def test_simulator_inputs_keep_their_scores():
    # the simulator passes only the contract variables: NE-equivalent tiers, pf without ventilation
    out = _score(pf_ratio=[150, 90], norepinephrine_eq=[0.05, 0.2], map=[80, 60], gcs=[14.5, 7], creatinine=[1.0, 3.6], platelets=[200, 40], bilirubin=[0.5, 7])
    assert out["sofa_resp"] == [3, 4] and out["sofa_cardio"] == [3, 4] and out["sofa_cns"] == [1, 3]
    assert out["sofa"] == [7, 4 + 4 + 3 + 3 + 3 + 3]


def test_sofa_is_the_worst_of_the_last_24_hours():
    h = pl.DataFrame({"stay_id": [1] * 30, "hour_icu": list(range(30))})
    comps = {c: [None] * 30 for c in ("sofa_resp", "sofa_coag", "sofa_liver", "sofa_cardio", "sofa_cns", "sofa_renal")}
    comps["sofa_renal"][2] = 3  # a creatinine at hour 2 counts through hour 25
    comps["sofa_coag"][10] = 1
    h = h.with_columns([pl.Series(k, v, dtype=pl.Int8) for k, v in comps.items()])
    w = sofa_worst(h, 24)
    assert w["sofa"].to_list()[:2] == [0, 0] and w["sofa"][2] == 3 and w["sofa"][25] == 4 and w["sofa"][26] == 1 and w["sofa"][29] == 1
    assert w["sofa_known"].to_list()[:2] == [False, False] and w["sofa_known"][29]
    assert sofa_worst(h, 1)["sofa"][3] == 0  # window 1: the hour's own values


# ----------------------------------------------------------------------------- concepts (mimic-code)
def test_gcs_carries_components_6h_and_ett_is_15():
    items = {"motor": 1, "verbal": 2, "eyes": 3}
    ce = pl.DataFrame(
        {
            "stay_id": [1] * 6,
            "charttime": [ts(0), ts(0), ts(0), ts(2), ts(9), ts(10)],
            "itemid": [1, 2, 3, 1, 1, 2],
            "value": [None, None, None, None, None, "No Response-ETT"],
            "valuenum": [4.0, 3.0, 2.0, 5.0, 6.0, 1.0],
        }
    )
    g = dict(mc.gcs(ce, items).sort("charttime").select("charttime", "gcs").iter_rows())
    assert g[ts(0)] == 9  # 4 + 3 + 2
    assert g[ts(2)] == 5 + 3 + 2  # verbal and eyes from 2 h before
    assert g[ts(9)] == 6 + 5 + 4  # previous charting 7 h before: normal values
    assert g[ts(10)] == 15  # intubated, verbal not assessable


def test_suspicion_of_infection_rules():
    abx = pl.DataFrame({"subject_id": [1, 2, 3, 4], "stay_id": [11, 12, 13, 14], "starttime": [ts(10), ts(10), ts(10), ts(10)]})
    spec = pl.DataFrame(
        {
            "subject_id": [1, 1, 2, 3, 4],
            "micro_specimen_id": [1, 2, 3, 4, 5],
            "chartdate": [ts(0).date(), ts(5).date(), ts(0).date(), ts(0).date(), ts(0).date()],
            "charttime": [ts(-60), ts(5), ts(45), ts(10), None],
        }
    )
    si = {r["stay_id"]: r for r in mc.suspicion_of_infection(abx, spec).iter_rows(named=True)}
    assert si[11]["si_time"] == ts(-60)  # the earliest culture within 72 h before
    assert 12 not in si  # a culture 35 h after the antibiotic is too late (24 h)
    assert 13 not in si  # culture at the antibiotic's own time: neither before nor after (mimic-code)
    assert si[14]["si_time"] == dt.datetime(2150, 1, 1)  # a dated culture of that day: its date


def test_urine_output_24h_rate():
    uo = pl.DataFrame({"stay_id": [1] * 4, "charttime": [ts(6), ts(12), ts(18), ts(24)], "urineoutput": [100.0, 100.0, 100.0, 100.0]})
    first = pl.DataFrame({"stay_id": [1], "intime_hr": [ts(0)]})
    out = mc.urine_output_24h(uo, first)["uo_24hr"].to_list()
    assert out[:3] == [None, None, None]  # less than 22 h observed
    assert out[3] == pytest.approx(400.0)  # 400 mL over 24 h -> renal 3


def test_ventilation_episodes(concepts):
    spec = concepts["mimic_iv"]["ventilation"]
    rows = [(ts(h), 223849, "CMV/ASSIST") for h in (0, 4, 8)] + [(ts(30), 223849, "CMV/ASSIST"), (ts(31), 223849, "CMV/ASSIST")]
    rows += [(ts(50), 226732, "Nasal cannula"), (ts(50), 223834, "2"), (ts(52), 226732, "Nasal cannula"), (ts(52), 223834, "2")]
    ce = pl.DataFrame(rows, schema={"charttime": pl.Datetime("us"), "itemid": pl.Int64, "value": pl.String}, orient="row").with_columns(
        pl.lit(1, dtype=pl.Int64).alias("stay_id"), pl.lit(None, dtype=pl.Datetime("us")).alias("storetime")
    )
    ep = mc.ventilation(ce, spec)
    inv = ep.filter(pl.col("status") == "InvasiveVent").select("starttime", "endtime").rows()
    assert inv == [(ts(0), ts(8)), (ts(30), ts(31))]  # 22 h without a charting: a new episode
    assert ep.filter(pl.col("status") == "SupplementalOxygen").height == 1


def test_vasopressor_hourly_doses_unknown_and_inotropes():
    iv = pl.DataFrame(
        {
            "stay_id": [1, 1, 1, 1, 1],
            "drug": ["norepinephrine", "norepinephrine", "vasopressin", "dobutamine", "dopamine"],
            "start_h": [0.5, 2.5, 1.0, 0.0, 6.0],
            "end_h": [3.0, 4.0, 2.0, 5.0, 7.0],
            "rate": [0.1, 0.2, 2.4, 5.0, None],
            "ne_factor": [1.0, 1.0, 0.041667, 0.0, 0.01],
        }
    )
    hourly, anyv = common.vasopressor_hourly(iv.lazy(), 200, -10)
    h = hourly.collect()
    ne = dict(h.filter(pl.col("variable") == "norepinephrine_eq").select("hour_icu", "value").iter_rows())
    # hour 1: norepinephrine 0.1 + vasopressin 0.1 together; hour 2: 0.2 (the new row supersedes 0.1 at 2.5 h)
    assert ne[0] == pytest.approx(0.1) and ne[1] == pytest.approx(0.2) and ne[2] == pytest.approx(0.2) and ne[3] == pytest.approx(0.2)
    assert 6 not in ne  # dopamine at an unknown dose: no equivalent, not zero
    unknown = h.filter(pl.col("variable") == "_unknown_dopamine")["hour_icu"].to_list()
    assert unknown == [6]
    rates = dict(h.filter(pl.col("variable") == "_rate_norepinephrine").select("hour_icu", "value").iter_rows())
    assert rates[1] == pytest.approx(0.1) and rates[2] == pytest.approx(0.2)  # running at the end of the hour
    assert h.filter(pl.col("variable") == "_rate_dobutamine").height == 5
    assert sorted(anyv.collect()["hour_icu"].to_list()) == [0, 1, 2, 3, 6]  # dobutamine is not a vasopressor


def test_rate_units_converted():
    df = pl.DataFrame({"rate": [0.0001, 10.0, 0.04, 1.0], "uom": ["mg/kg/min", "mcg/min", "units/min", "mL/hr"], "w": [80.0, 80.0, 80.0, 80.0]})
    out = df.select(mc.convert_rate(pl.col("rate"), pl.col("uom"), "mcg/kg/min", pl.col("w")).alias("a"), mc.convert_rate(pl.col("rate"), pl.col("uom"), "units/hour", pl.col("w")).alias("b"))
    assert out["a"].to_list()[:2] == [pytest.approx(0.1), pytest.approx(0.125)] and out["a"][3] is None
    assert out["b"][2] == pytest.approx(2.4)


# ----------------------------------------------------------------------------- Sepsis-3 and time zero
def _sofa_frame(stay, hours, values):
    return pl.DataFrame({"stay_id": [stay] * len(hours), "hour_icu": hours, "sofa": values}, schema={"stay_id": pl.Int64, "hour_icu": pl.Int32, "sofa": pl.Int8})


def test_sepsis3_first_qualifying_infection_within_icu_hours():
    d = CohortDefinition()
    # stay 1: first infection at 5 h has no SOFA >= 2 in its window, the second (100 h) has: it counts
    sofa = pl.concat([_sofa_frame(1, list(range(130)), [0] * 90 + [3] * 40), _sofa_frame(2, list(range(-30, 10)), [4] * 30 + [0] * 10)])
    si = pl.DataFrame({"stay_id": [1, 1, 2], "si_h": [5.0, 100.0, 5.0], "abx_h": [5.0, 100.0, 5.0], "culture_h": [None, None, None]})
    stays = pl.DataFrame({"stay_id": [1, 2], "icu_out_h": [130.0, 10.0]})
    out = {r["stay_id"]: r for r in common.sepsis3_onset(si, sofa, stays, d, right_closed=True).iter_rows(named=True)}
    assert out[1]["si_h"] == 100.0 and out[1]["sofa_h"] == 90
    assert 2 not in out  # SOFA >= 2 only before ICU admission: mimic-code's hours start at the ICU


def test_time_zero_clipped_not_excluded(concepts):
    # SOFA counts from ICU admission and within 24 h after the infection, so with the defaults an onset is
    # never before -23 h; with onset_search.start_h -6 an infection 20 h before admission is clipped to -6
    d = CohortDefinition(onset_search_start_h=-6)
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    s = pl.DataFrame({"stay_id": [1, 2, 3], "icu_out_h": [100.0, 100.0, 100.0]})
    si = pl.DataFrame({"stay_id": [1, 2, 3], "si_h": [-20.0, 2.0, 50.0], "abx_h": [1.0, 2.0, 50.0], "culture_h": [-20.0, 3.0, 40.0]})
    hourly = pl.DataFrame(
        {"stay_id": [1, 2, 3], "hour_icu": [0, 2, 50], "variable": ["_sofa_creatinine"] * 3, "value": [4.0, 4.0, 4.0]},
        schema={"stay_id": pl.Int64, "hour_icu": pl.Int32, "variable": pl.String, "value": pl.Float64},
    )
    sep, _, _, n_si, stats = common.sepsis3_cohort(s, hourly, d, concepts, dictionary, si_events=si, right_closed=True)
    t0 = dict(sep.select("stay_id", "t0_h").iter_rows())
    assert n_si == 3 and stats["n_sepsis"] == 3 and stats["n_time_zero_clipped"] == 1 and stats["n_onset_after_window"] == 1
    assert t0[1] == -6 and t0[2] == 1 and sep.filter(pl.col("onset_late"))["stay_id"].to_list() == [3]


# ----------------------------------------------------------------------------- presets
def test_presets_and_overrides():
    assert CohortDefinition.from_config({}).cultures == "all"
    s = CohortDefinition.from_config({"cohort_definition": {"preset": "strict"}})
    assert (s.cultures, s.min_antibiotic_course_h) == ("diagnostic", 72.0)
    o = CohortDefinition.from_config({"cohort_definition": {"preset": "strict", "suspected_infection": {"min_antibiotic_course_h": 0}}})
    assert (o.cultures, o.min_antibiotic_course_h) == ("diagnostic", 0.0)
    with pytest.raises(Exception, match="preset"):
        CohortDefinition.from_config({"cohort_definition": {"preset": "lenient"}})


def test_strict_drops_screening_and_serology_specimens(concepts):
    micro = pl.DataFrame(
        {
            "micro_specimen_id": [1, 2, 3, 3, 4, 5],
            "subject_id": [1] * 6,
            "hadm_id": [1] * 6,
            "chartdate": [T0.date()] * 6,
            "charttime": [T0] * 6,
            "spec_type_desc": ["MRSA SCREEN", "SEROLOGY/BLOOD", "SWAB", "SWAB", "SWAB", "BLOOD CULTURE"],
            "test_name": ["MRSA SCREEN", "RAPID PLASMA REAGIN TEST", "R/O VANCOMYCIN RESISTANT ENTEROCOCCUS", "Staph aureus Screen", "WOUND CULTURE", "Blood Culture, Routine"],
        }
    )
    assert mc.specimens(micro).height == 5
    assert sorted(mc.specimens(micro, concepts["cultures"])["micro_specimen_id"].to_list()) == [4, 5]


def test_minimum_antibiotic_course():
    abx = pl.DataFrame({"stay_id": [1, 1, 2, 3], "t_h": [0.0, 30.0, 0.0, 0.0], "stop_h": [24.0, 80.0, 24.0, 24.0]})
    stays = pl.DataFrame({"stay_id": [1, 2, 3], "death_h": [None, None, 30.0], "hosp_out_h": [500.0, 500.0, 30.0]})
    ok = common.antibiotic_course_ok(abx, stays, 72)
    # stay 1: two prescriptions 6 h apart form an 80-h course; stay 2: 24 h of perioperative prophylaxis;
    # stay 3: a 24-h course cut short by death
    assert sorted(ok.select("stay_id", "t_h").rows()) == [(1, 0.0), (3, 0.0)]


# ----------------------------------------------------------------------------- eICU items
def test_eicu_first_stay_by_time_not_identifier():
    s = pl.DataFrame(
        {
            "stay_id": [10, 11, 12, 20, 21, 30, 31],
            "patient_id": ["a", "a", "a", "b", "b", "c", "c"],
            "hsid": [9, 9, 1, 5, 6, 7, 7],
            "year": [2014, 2014, 2015, 2014, 2014, 2014, 2014],
            "age": [60.0, 60.0, 61.0, 70.0, 70.0, 50.0, 50.0],
            "hadm_off": [-100.0, -10.0, 0.0, 0.0, 0.0, -500.0, -5.0],
            "unit_visit": [2, 1, 1, 1, 1, 2, 1],
        }
    )
    r = {x["stay_id"]: x for x in eicu.first_stay_rank(s).iter_rows(named=True)}
    # patient a: the 2014 hospital stay (identifier 9) comes before 2015 (identifier 1); within it the
    # unit admitted 10 min after hospital admission comes first
    assert r[11]["stay_rank"] == 1 and r[12]["stay_rank"] == 3 and not r[11]["first_stay_ambiguous"]
    assert r[31]["stay_rank"] == 1  # same hospital stay: by offset
    assert r[20]["first_stay_ambiguous"] and r[20]["stay_rank"] == 1  # two hospital stays, same year and age
    ex = {x["stay_id"]: x["stay_rank"] for x in eicu.first_stay_rank(s, "exclude").iter_rows(named=True)}
    assert ex[20] == 0 and ex[21] == 0 and ex[11] == 1


def _write_gz(path: Path, df: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        df.write_csv(fh)


def test_eicu_antibiotics_by_hicl_code_and_name(tmp_path, concepts):
    med = pl.DataFrame(
        {
            "patientunitstayid": ["1", "1", "2", "3"],
            "drugstartoffset": ["60", "120", "60", "60"],
            "drugstopoffset": ["600", "900", "600", "600"],
            "drugordercancelled": ["No", "No", "No", "No"],
            "drugname": ["", "VANCOMYCIN HCL", "", "MUPIROCIN 2 % TOP OINT"],
            "drughiclseqno": ["8738", "4042", "999", "3385"],
            "routeadmin": ["IV", "IV", "IV", "TOPICAL"],
        }
    )
    _write_gz(tmp_path / "medication.csv.gz", med)
    cand = pl.DataFrame({"stay_id": [1, 2, 3]})
    abx, _ = eicu._antibiotics_cultures(tmp_path, cand, CohortDefinition(), concepts)
    assert abx.select("stay_id", "t_h").rows() == [(1, 1.0), (1, 2.0)]  # empty name, HICL 8738 (piperacillin-tazobactam) counts


def test_eicu_fio2_fraction_and_sirs(concepts):
    src = {"convert": "fraction_to_percent"}
    v = pl.DataFrame({"x": [0.4, 40.0, 5.0, 1.0, 0.1]}).select(common.convert_expr(pl.col("x"), src))["x"].to_list()
    assert v == [pytest.approx(40.0), 40.0, None, 100.0, None]
    dx = pl.DataFrame(
        {
            "stay_id": [1, 2, 3, 4],
            "t_h": [1.0, 1.0, 1.0, 1.0],
            "diagnosisstring": [
                "infectious diseases|systemic/other infections|sepsis",
                "cardiovascular|shock / hypotension|signs and symptoms of sepsis (SIRS)|due to non-infectious process without organ dysfunction",
                "infectious diseases|systemic/other infections|signs and symptoms of sepsis (SIRS)",
                "cardiovascular|shock / hypotension|signs and symptoms of sepsis (SIRS)|due to infectious process with organ dysfunction",
            ],
        }
    )
    cand = pl.DataFrame({"stay_id": [1, 2, 3, 4], "apacheadmissiondx": [None, None, None, None]}, schema={"stay_id": pl.Int64, "apacheadmissiondx": pl.String})
    assert sorted(eicu.sepsis_diagnoses(dx, cand, concepts["eicu"])["stay_id"].to_list()) == [1, 4]


def test_eicu_unconvertible_vasopressor_rates_are_unknown_not_zero(tmp_path, concepts):
    inf = pl.DataFrame(
        {
            "patientunitstayid": ["1", "1", "1", "2"],
            "infusionoffset": ["0", "60", "180", "0"],
            "drugname": ["Norepinephrine (mcg/min)", "Norepinephrine (mcg/min)", "Norepinephrine (mcg/min)", "Norepinephrine (ml/hr)"],
            "drugrate": ["8", "16", "0", "10"],
            "patientweight": ["80", "80", "80", ""],
            "drugamount": ["", "", "", ""],
            "volumeoffluid": ["", "", "", ""],
        }
    )
    _write_gz(tmp_path / "infusiondrug.csv.gz", inf)
    stays = pl.DataFrame({"stay_id": [1, 2], "weight": [80.0, 80.0]})
    h, anyv = eicu._vasopressors(tmp_path, stays, concepts["eicu"], 20, -5)
    ne = dict(h.filter((pl.col("variable") == "norepinephrine_eq") & (pl.col("stay_id") == 1)).select("hour_icu", "value").iter_rows())
    assert ne == {0: pytest.approx(0.1), 1: pytest.approx(0.2), 2: pytest.approx(0.2)}  # 8 and 16 mcg/min / 80 kg; 0 at 3 h stops it
    assert h.filter((pl.col("stay_id") == 2) & (pl.col("variable") == "norepinephrine_eq")).height == 0
    assert h.filter((pl.col("stay_id") == 2) & (pl.col("variable") == "_unknown_norepinephrine")).height == 2  # ml/hr without concentration
    assert set(anyv.filter(pl.col("stay_id") == 2)["hour_icu"].to_list()) == {0, 1}  # still a vasopressor running


# ----------------------------------------------------------------------------- real demo: concordance, bring-your-own
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    if not (MIMIC / "icu").is_dir() or not (MIMIC_CODE / "mimic-iv").is_dir():
        pytest.skip("../shared/data MIMIC-IV demo or ../shared/reference/mimic-code absent")
    pytest.importorskip("duckdb")
    from sepsis_cs.reference import build_mimic_code

    out = tmp_path_factory.mktemp("ref") / "mimic_code.duckdb"
    build_mimic_code(MIMIC, MIMIC_CODE, out, threads=2)
    return out


@pytest.mark.realdata
@pytest.mark.slow
def test_demo_concordance_with_mimic_code(reference, base_config, concepts):
    from sepsis_cs.concordance import compare
    from sepsis_cs.reference import DERIVED_COLUMNS, read_derived

    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    ours = mimic_iv.concordance_frames(MIMIC, base_config, concepts, dictionary)
    table, head, _ = compare(ours, read_derived({"duckdb": str(reference)}, tuple(DERIVED_COLUMNS)))
    assert head["sepsis3_agreement_mimic_code"] >= 0.95 and head["sepsis3_kappa_mimic_code"] >= 0.90
    assert head["sofa_hourly_exact_share_mimic_code"] >= 0.90
    assert head["suspected_infection_time_agreement_mimic_code"] >= 0.95 and head["ne_hourly_agreement_mimic_code"] >= 0.95
    assert table.filter(pl.col("measure").str.starts_with("hourly SOFA"))["n_compared"].min() > 5000


@pytest.mark.realdata
@pytest.mark.slow
def test_demo_bring_your_own_derived_tables(reference, tmp_path, base_config, concepts):
    import duckdb

    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    ours = mimic_iv.ingest(MIMIC, "demo", base_config, concepts, dictionary)
    byo = mimic_iv.ingest(MIMIC, "demo", base_config, concepts, dictionary, derived={"duckdb": str(reference)})
    assert byo.attrition["n_stays"].to_list() == ours.attrition["n_stays"].to_list()
    assert byo.cohort.drop("sofa_t0").equals(ours.cohort.drop("sofa_t0"))
    # the same tables exported as CSV (PostgreSQL / BigQuery exports) and Parquet
    con = duckdb.connect(str(reference), read_only=True)
    paths = {}
    for t, ext in (("sepsis3", "csv"), ("sofa", "parquet"), ("suspicion_of_infection", "csv")):
        df = con.execute(f"select * from mimiciv_derived.{t}").pl()
        paths[t] = str(tmp_path / f"{t}.{ext}")
        df.write_csv(paths[t]) if ext == "csv" else df.write_parquet(paths[t])
    con.close()
    exported = mimic_iv.ingest(MIMIC, "demo", base_config, concepts, dictionary, derived=paths)
    assert exported.cohort.equals(byo.cohort) and exported.timeseries.equals(byo.timeseries)
    # a bad export: one line naming the file and the column
    bad = tmp_path / "bad.csv"
    pl.read_csv(paths["sepsis3"]).drop("sofa_time").write_csv(bad)
    with pytest.raises(UserInputError, match="sofa_time"):
        mimic_iv.ingest(MIMIC, "demo", base_config, concepts, dictionary, derived={"sepsis3": str(bad)})
