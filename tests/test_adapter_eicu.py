"""eICU-CRD adapter.

A miniature database in the real eICU schema, written by the test, covers the tables absent from
the public demo copy (``lab``, ``vitalPeriodic``, ``nurseCharting``), medication rows with an empty
drug name (HICL codes), cancelled orders, the diagnosis fallback of suspected infection and the
APACHE IV export.  When ../shared/data is present, the real eICU demo: stable cohort sizes, valid
contract files, CS counts by drug and APACHE IV predictions.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from conftest import SHARED_DATA
from sepsis_cs.adapters import eicu
from sepsis_cs.contract import ContractSettings, validate

ROOT = Path(__file__).resolve().parents[1]
EICU = SHARED_DATA / "eicu-crd-demo-2.0.1"

PATIENT_COLS = [
    "patientunitstayid", "patienthealthsystemstayid", "gender", "age", "ethnicity", "hospitalid", "wardid", "apacheadmissiondx",
    "admissionheight", "hospitaladmittime24", "hospitaladmitoffset", "hospitaladmitsource", "hospitaldischargeyear",
    "hospitaldischargetime24", "hospitaldischargeoffset", "hospitaldischargelocation", "hospitaldischargestatus", "unittype",
    "unitadmittime24", "unitadmitsource", "unitvisitnumber", "unitstaytype", "admissionweight", "dischargeweight",
    "unitdischargetime24", "unitdischargeoffset", "unitdischargelocation", "unitdischargestatus", "uniquepid",
]
MED_COLS = ["medicationid", "patientunitstayid", "drugorderoffset", "drugstartoffset", "drugivadmixture", "drugordercancelled", "drugname",
            "drughiclseqno", "dosage", "routeadmin", "frequency", "loadingdose", "prn", "drugstopoffset", "gtc"]


def _write(root: Path, table: str, rows: list[dict], columns: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    df = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema={c: pl.String for c in columns}, orient="row")
    with gzip.open(root / f"{table}.csv.gz", "wb") as fh:
        df.write_csv(fh)


def _patient(stay, pid, age, gender, status, disch_off, unit_off, dx="", weight="80", unit_status="Alive", hospital="1"):
    return {"patientunitstayid": stay, "patienthealthsystemstayid": stay, "uniquepid": pid, "age": age, "gender": gender, "hospitalid": hospital,
            "hospitaldischargestatus": status, "hospitaldischargeoffset": disch_off, "unitdischargeoffset": unit_off,
            "unitdischargestatus": unit_status, "apacheadmissiondx": dx, "admissionweight": weight, "hospitaldischargeyear": "2015",
            "hospitaladmitoffset": "-30", "unitvisitnumber": "1"}


def make_mini_eicu(root: Path) -> Path:
    """Four stays: 201 (culture + antibiotic, labs from `lab`), 202 (diagnosis fallback, home prednisone), 203 (no
    infection, hospital 2), 204 (diagnosis fallback in hospital 3, which never records medications)."""
    _write(root, "patient", [
        _patient("201", "001-1", "> 89", "Female", "Expired", "5000", "4000", unit_status="Expired"),
        _patient("202", "001-2", "55", "Male", "Alive", "2000", "1500", dx="Sepsis, pulmonary"),
        _patient("203", "001-3", "40", "Male", "Alive", "3000", "2000", hospital="2"),
        _patient("204", "001-4", "60", "Female", "Alive", "4000", "3000", dx="Sepsis, renal/UTI", hospital="3"),
    ], PATIENT_COLS)
    _write(root, "microLab", [{"microlabid": "1", "patientunitstayid": "201", "culturetakenoffset": "30", "culturesite": "Urine, Catheter Specimen"}],
           ["microlabid", "patientunitstayid", "culturetakenoffset", "culturesite", "organism", "antibiotic", "sensitivitylevel"])
    _write(root, "medication", [
        {"medicationid": "1", "patientunitstayid": "201", "drugstartoffset": "60", "drugordercancelled": "No", "drugname": "VANCOMYCIN 1 G IV SOLR", "routeadmin": "IV"},
        # empty drug name, HICL 2866 = hydrocortisone, 50 mg every 6 h -> 200 mg/day
        {"medicationid": "2", "patientunitstayid": "201", "drugstartoffset": "180", "drugordercancelled": "No", "drugname": "", "drughiclseqno": "2866",
         "dosage": "50 mg", "routeadmin": "IV", "frequency": "Q6H"},
        # cancelled dexamethasone order before it: must be ignored
        {"medicationid": "3", "patientunitstayid": "201", "drugstartoffset": "100", "drugordercancelled": "Yes", "drugname": "DEXAMETHASONE 4 MG/ML IJ SOLN",
         "drughiclseqno": "2888", "dosage": "4 mg", "routeadmin": "IV"},
        # inhaled budesonide-like / eye route corticosteroid for 202: not systemic
        {"medicationid": "4", "patientunitstayid": "202", "drugstartoffset": "120", "drugordercancelled": "No", "drugname": "PREDNISOLONE ACETATE 1 % OP SUSP",
         "dosage": "1 drop", "routeadmin": "Both Eyes"},
    ], MED_COLS)
    _write(root, "diagnosis", [
        {"diagnosisid": "1", "patientunitstayid": "202", "diagnosisoffset": "60", "diagnosisstring": "infectious diseases|systemic/other infections|sepsis"},
        {"diagnosisid": "2", "patientunitstayid": "201", "diagnosisoffset": "10", "diagnosisstring": "endocrine|glucose metabolism|diabetes mellitus"},
    ], ["diagnosisid", "patientunitstayid", "activeupondischarge", "diagnosisoffset", "diagnosisstring", "icd9code", "diagnosispriority"])
    _write(root, "lab", [
        {"labid": "1", "patientunitstayid": "201", "labresultoffset": "120", "labname": "creatinine", "labresult": "3.6"},  # renal 3
        {"labid": "2", "patientunitstayid": "201", "labresultoffset": "130", "labname": "lactate", "labresult": "4.1"},
        {"labid": "3", "patientunitstayid": "202", "labresultoffset": "120", "labname": "platelets x 1000", "labresult": "30"},  # coag 3
        {"labid": "4", "patientunitstayid": "202", "labresultoffset": "125", "labname": "CRP", "labresult": "12"},  # mg/dL -> 120 mg/L
        {"labid": "5", "patientunitstayid": "204", "labresultoffset": "120", "labname": "platelets x 1000", "labresult": "30"},  # coag 3
    ], ["labid", "patientunitstayid", "labresultoffset", "labtypeid", "labname", "labresult", "labresulttext", "labmeasurenamesystem", "labmeasurenameinterface", "labresultrevisedoffset"])
    _write(root, "vitalPeriodic", [
        {"vitalperiodicid": "1", "patientunitstayid": "201", "observationoffset": "5", "heartrate": "100", "systemicmean": "60"},
        {"vitalperiodicid": "2", "patientunitstayid": "201", "observationoffset": "35", "heartrate": "120", "systemicmean": "64"},
    ], ["vitalperiodicid", "patientunitstayid", "observationoffset", "temperature", "sao2", "heartrate", "respiration", "cvp", "etco2",
        "systemicsystolic", "systemicdiastolic", "systemicmean", "pasystolic", "padiastolic", "pamean", "st1", "st2", "st3", "icp"])
    _write(root, "nurseCharting", [
        {"nursingchartid": "1", "patientunitstayid": "201", "nursingchartoffset": "90", "nursingchartcelltypecat": "Vital Signs",
         "nursingchartcelltypevallabel": "Temperature", "nursingchartcelltypevalname": "Temperature (F)", "nursingchartvalue": "102.2"},
        {"nursingchartid": "2", "patientunitstayid": "201", "nursingchartoffset": "95", "nursingchartcelltypecat": "Scores",
         "nursingchartcelltypevallabel": "Glasgow coma score", "nursingchartcelltypevalname": "GCS Total", "nursingchartvalue": "9"},
    ], ["nursingchartid", "patientunitstayid", "nursingchartoffset", "nursingchartentryoffset", "nursingchartcelltypecat",
        "nursingchartcelltypevallabel", "nursingchartcelltypevalname", "nursingchartvalue"])
    _write(root, "infusiondrug", [
        {"infusiondrugid": str(i), "patientunitstayid": "201", "infusionoffset": str(off), "drugname": "Norepinephrine (mcg/min)", "drugrate": "8"}
        for i, off in enumerate((0, 60, 120))
    ] + [{"infusiondrugid": "9", "patientunitstayid": "202", "infusionoffset": "2000", "drugname": "Hydrocortisone (mg/hr)", "drugrate": "10"}],
        ["infusiondrugid", "patientunitstayid", "infusionoffset", "drugname", "drugrate", "infusionrate", "drugamount", "volumeoffluid", "patientweight"])
    _write(root, "admissiondrug", [
        {"admissiondrugid": "1", "patientunitstayid": "202", "drugoffset": "0", "drugname": "PREDNISONE", "drughiclseqno": "2879"},
        {"admissiondrugid": "2", "patientunitstayid": "201", "drugoffset": "0", "drugname": "PREDNISOLONE ACETATE 1 % OP SUSP"},  # eye drops: not systemic
        {"admissiondrugid": "3", "patientunitstayid": "201", "drugoffset": "0", "drugname": "FLUDROCORTISONE ACETATE"},  # not a glucocorticoid
    ], ["admissiondrugid", "patientunitstayid", "drugoffset", "drugenteredoffset", "drugname", "drugdosage", "drugunit", "drugadmitfrequency", "drughiclseqno"])
    # a route-less glucocorticoid entry for 201 at 1 h (cohort_definition.eicu_treatment_glucocorticoids)
    _write(root, "treatment", [
        {"treatmentid": "1", "patientunitstayid": "201", "treatmentoffset": "60", "treatmentstring": "pulmonary|medications|glucocorticoid administration"},
        {"treatmentid": "2", "patientunitstayid": "201", "treatmentoffset": "70", "treatmentstring": "pulmonary|medications|glucocorticoid administration|inhaled"},
    ], ["treatmentid", "patientunitstayid", "treatmentoffset", "treatmentstring", "activeupondischarge"])
    _write(root, "apachePatientResult", [
        {"apachepatientresultsid": "1", "patientunitstayid": "201", "apacheversion": "IV", "apachescore": "97", "predictedhospitalmortality": "0.42"},
        {"apachepatientresultsid": "2", "patientunitstayid": "201", "apacheversion": "IVa", "apachescore": "95", "predictedhospitalmortality": "0.5"},
        {"apachepatientresultsid": "3", "patientunitstayid": "202", "apacheversion": "IV", "apachescore": "-1", "predictedhospitalmortality": "-1"},
    ], ["apachepatientresultsid", "patientunitstayid", "physicianspeciality", "acutephysiologyscore", "apachescore", "apacheversion",
        "predictedhospitalmortality", "actualhospitalmortality"])
    return root


def _with(cfg: dict, **definition) -> dict:
    return {**cfg, "cohort_definition": {**cfg["cohort_definition"], **definition}}


#: the comparison before the exposure steps (every stay kept)
KEEP_ALL = {"prevalent_cs": "include", "exclude_hospitals_without_medication": False}


def test_mini_eicu_exposure_steps(tmp_path, base_config, concepts, dictionary):
    root = make_mini_eicu(tmp_path / "eicu")
    res = eicu.ingest(root, "mini", base_config, concepts, dictionary)
    # ..., ICU stay, hospital records medications (204 out), new users (202 out: prednisone at home)
    assert res.attrition["n_stays"].to_list() == [4, 4, 4, 3, 3, 3, 3, 2, 1] and res.cohort["stay_id"].to_list() == ["201"]
    assert (res.stats["n_hospitals"], res.stats["n_hospitals_without_medication"], res.stats["n_icu_stays_hospitals_without_medication"]) == (3, 2, 2)
    assert res.attrition["note"][7].startswith("2 of 3 hospitals never fill the medication table")
    a = res.cohort.row(0, named=True)
    assert a["cs_start_h"] == pytest.approx(3.0) and a["cs_before_t0"] == 0  # home eye drops and fludrocortisone are not prior glucocorticoid use
    # route-less 'glucocorticoid administration' entries: counted with `all` (start at 1 h), ignored otherwise; inhaled never
    starts = {p: eicu.ingest(root, "mini", _with(base_config, eicu_treatment_glucocorticoids=p), concepts, dictionary).cohort["cs_start_h"].item()
              for p in ("systemic", "all", "none")}
    assert starts == {"systemic": pytest.approx(3.0), "all": pytest.approx(1.0), "none": pytest.approx(3.0)}
    assert res.stats["n_cs_treatment_entries_routeless"] == 1


def test_mini_eicu_known_answers(tmp_path, base_config, concepts, dictionary):
    res = eicu.ingest(make_mini_eicu(tmp_path / "eicu"), "mini", _with(base_config, **KEEP_ALL), concepts, dictionary)
    assert res.attrition["n_stays"].to_list() == [4, 4, 4, 3, 3, 3, 3, 3]  # ..., prevalent users kept (no hospital step)
    assert res.stats["n_suspected_infection_culture_abx"] == 1 and res.stats["n_suspected_infection_diagnosis_fallback"] == 2
    c = {r["stay_id"]: r for r in res.cohort.iter_rows(named=True)}
    a, b = c["201"], c["202"]
    assert (a["death_h"], a["icu_discharge_h"], a["hospital_discharge_h"], a["followup_end_h"]) == pytest.approx((5000 / 60, 4000 / 60, 5000 / 60, 5000 / 60), abs=1e-3)
    assert b["death_h"] is None and b["followup_end_h"] == pytest.approx(2000 / 60, abs=1e-3)  # eICU: follow-up ends at hospital discharge
    # 201: culture 0.5 h, antibiotic 1 h -> infection 0.5 h; norepinephrine 8 ug/min / 80 kg = 0.1 -> cardio 3 at hour 0
    assert a["time_zero"] == "sepsis3_onset" and a["age"] == 90 and a["sex"] == "F"
    assert a["cs"] and a["cs_drug"] == "hydrocortisone" and a["cs_start_h"] == pytest.approx(3.0)  # cancelled dexamethasone ignored
    assert a["cs_hydrocortisone_eq_mg_24h"] == pytest.approx(200.0)
    assert (a["hospital_mortality"], a["mortality_28d"], a["vasopressor_t0"]) == (1, 1, 1)
    assert a["shock_reversal_7d"] == 1 and a["diabetes"] == 1
    # the first-day APACHE IV score uses post-time-zero data: an external model, never a covariate
    assert "apache_iv_score" not in res.cohort.columns
    assert a["infection_source"] == "other"
    # 202: APACHE admission diagnosis of sepsis (fallback: infection at ICU admission), platelets 30 at 2 h -> SOFA 3; time zero = 0
    assert b["time_zero"] == "sepsis3_onset_dx_fallback" and not b["cs"] and b["cs_before_t0"] == 1
    assert res.stats["n_cs_late_start"] == 1  # hydrocortisone infusion at 33 h: after the CS window
    assert (b["hospital_mortality"], b["mortality_28d"]) == (0, 0)  # discharged alive at 33 h: counted alive (documented)
    assert b["infection_source"] == "pulmonary"
    ts = res.timeseries
    get = lambda s, v: dict(ts.filter((pl.col("stay_id") == s) & (pl.col("variable") == v)).select("hour", "value").iter_rows())  # noqa: E731
    assert get("201", "heart_rate") == {0: pytest.approx(110.0)}  # vitalPeriodic, hourly mean
    assert get("201", "temperature") == {1: pytest.approx(39.0)}  # nurseCharting degF -> degC
    assert get("201", "gcs") == {1: 9.0}
    assert get("201", "creatinine") == {2: 3.6} and get("201", "lactate") == {2: 4.1}
    assert get("201", "norepinephrine_eq") == {0: pytest.approx(0.1), 1: pytest.approx(0.1), 2: pytest.approx(0.1), 3: pytest.approx(0.1)}
    assert get("202", "crp") == {2: pytest.approx(120.0)}  # mg/dL -> mg/L
    assert get("201", "sofa")[2] == 3 + 3 + 3  # cardio 3 (0.1 ug/kg/min), renal 3 (3.6 mg/dL), cns 3 (GCS 9)
    assert res.extra["apache_iv"].rows() == [("201", 0.42, "apache_iv")]  # version IV only; -1 = missing
    cfg = {**base_config, "contract": {**base_config["contract"], "min_group_size": 1}}
    validate(res.cohort, res.timeseries, dictionary, ContractSettings.from_config(cfg))


def test_mini_eicu_options_and_absent_tables(tmp_path, base_config, concepts, dictionary):
    root = make_mini_eicu(tmp_path / "eicu")
    cfg = {**base_config, "cohort_definition": {**base_config["cohort_definition"], "infection_fallback": "none", "assume_alive_after_discharge": False}}
    res = eicu.ingest(root, "mini", cfg, concepts, dictionary)
    assert res.cohort["stay_id"].to_list() == ["201"]  # no diagnosis fallback
    # without lab, vitalPeriodic and nurseCharting (as in the public demo) the stay loses renal/cns SOFA but stays septic
    for t in ("lab", "vitalPeriodic", "nurseCharting"):
        (root / f"{t}.csv.gz").unlink()
    res = eicu.ingest(root, "mini", base_config, concepts, dictionary)
    assert {"lab", "vitalPeriodic", "nurseCharting"} <= set(res.stats["eicu_tables_absent"].split(", "))
    assert res.cohort["stay_id"].to_list() == ["201"]  # 202's SOFA came from the lab table only
    # (the treatment table gives the hourly ventilation status: none charted)
    assert set(res.timeseries["variable"]) == {"norepinephrine_eq", "sofa", "sofa_cardio", "mechanical_ventilation"}
    (root / "patient.csv.gz").unlink()
    with pytest.raises(Exception, match="patient"):
        eicu.ingest(root, "mini", base_config, concepts, dictionary)


def test_mortality_28d_without_follow_up(tmp_path, base_config, concepts, dictionary):
    root = make_mini_eicu(tmp_path / "eicu")
    cfg = _with(base_config, assume_alive_after_discharge=False, **KEEP_ALL)
    res = eicu.ingest(root, "mini", cfg, concepts, dictionary)
    c = dict(res.cohort.select("stay_id", "mortality_28d").iter_rows())
    assert c == {"201": 1, "202": None, "204": None}  # discharged alive at 33 h / 67 h: unknown at 28 days


# ----------------------------------------------------------------------------- real eICU demo
@pytest.fixture(scope="module")
def demo(base_config, concepts, dictionary):
    if not EICU.is_dir():
        pytest.skip("../shared/data/eicu-crd-demo-2.0.1 absent")
    return eicu.ingest(EICU, "eicu_demo", base_config, concepts, dictionary)


@pytest.mark.realdata
def test_demo_cohort_sizes(demo):
    # ..., ICU stay >= 4 h after time zero, hospital records medications (32 out), new users (15 out)
    assert demo.attrition["n_stays"].to_list() == [2520, 2512, 1833, 358, 155, 149, 145, 113, 98]
    c = demo.cohort
    assert int(c["cs"].sum()) == 19 and int(c["hospital_mortality"].sum()) == 21
    by_drug = dict(c.filter(pl.col("cs"))["cs_drug"].value_counts().iter_rows())
    assert by_drug == {"hydrocortisone": 12, "methylprednisolone": 5, "prednisone": 1, "dexamethasone": 1}
    assert demo.stats["n_time_zero_dx_fallback"] == 56 and demo.stats["n_first_stay_ambiguous"] == 144
    assert 0.1 <= c["cs"].mean() <= 0.4 and 0.1 <= c["hospital_mortality"].mean() <= 0.4
    assert c["patient_id"].n_unique() == c.height


@pytest.mark.realdata
def test_demo_contract_and_apache(demo, base_config, dictionary):
    cfg = {**base_config, "contract": {**base_config["contract"], "min_group_size": 5}}
    cohort, ts, changes = validate(demo.cohort, demo.timeseries, dictionary, ContractSettings.from_config(cfg))
    assert changes.height == 0
    assert {"map", "norepinephrine_eq", "urine_output", "gcs", "sofa"} <= set(ts["variable"])
    apache = demo.extra["apache_iv"]
    assert apache["stay_id"].is_in(cohort["stay_id"].implode()).all() and apache["score"].is_between(0, 1).all()
    # APACHE IV discriminates hospital death in this cohort (a known fact about the score)
    j = apache.join(cohort.select("stay_id", "hospital_mortality"), on="stay_id").drop_nulls()
    died, alive = j.filter(pl.col("hospital_mortality") == 1)["score"], j.filter(pl.col("hospital_mortality") == 0)["score"]
    assert died.mean() > alive.mean() + 0.1
