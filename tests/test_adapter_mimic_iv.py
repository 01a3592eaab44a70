"""MIMIC-IV adapter and the shared cohort definition (sepsis_cs.adapters.common).

Three layers: unit tests of the cohort-definition functions on hand-made frames; a miniature
database in the MIMIC-IV schema written by the test, with known answers for every stay; and, when
../shared/data is present (CI has it), the real MIMIC-IV demo: stable cohort sizes, a valid
contract, CS counts by drug, and one workflow run of the ingest -> validate -> summary targets of
both demos.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
from pathlib import Path

import polars as pl
import pytest
import yaml

from conftest import SHARED_DATA
from helpers import make_workdir, run_snakemake
from sepsis_cs.adapters import common, mimic_iv
from sepsis_cs.adapters.common import CohortDefinition
from sepsis_cs.contract import ContractSettings, validate
from sepsis_cs.dictionary import load_dictionary

ROOT = Path(__file__).resolve().parents[1]
MIMIC = SHARED_DATA / "mimic-iv-demo-2.2"
EICU = SHARED_DATA / "eicu-crd-demo-2.0.1"


# ----------------------------------------------------------------------------- cohort definition units
def test_suspected_infection_windows():
    d = CohortDefinition()
    abx = pl.DataFrame({"stay_id": [1, 2, 3, 4, 5], "t_h": [10.0, 10.0, 0.0, 0.0, 12.0]})
    cul = pl.DataFrame({"stay_id": [1, 2, 3, 4, 5, 5], "t_h": [-62.0, 10.0 - 73, 24.0, 25.0, 2.0, 5.0]})
    si = suspected_infection_dict(abx, cul, d)
    assert si[1] == -62.0  # culture 72 h before the antibiotic: its time (no window on ICU admission any more)
    assert 2 not in si  # culture 73 h before the antibiotic: too early
    assert si[3] == 0.0  # antibiotic then culture 24 h later: the antibiotic time
    assert 4 not in si  # 25 h later: too late
    assert si[5] == 2.0  # two cultures before: the earliest


def suspected_infection_dict(abx, cul, d):
    return dict(common.suspicion_events(abx, cul, d).group_by("stay_id").agg(pl.col("si_h").min()).iter_rows())


def test_sofa_onset_baselines():
    # SOFA 3 from the start (chronic) then 5 at hour 10: baseline zero fires at hour 0, window_min at hour 10
    sofa = pl.DataFrame({"stay_id": [1] * 12, "hour_icu": list(range(12)), "sofa": [3] * 10 + [5, 5]})
    si = pl.DataFrame({"stay_id": [1], "si_h": [5.0]})
    stays = pl.DataFrame({"stay_id": [1], "icu_out_h": [100.0]})
    assert common.sepsis3_onset(si, sofa, stays, CohortDefinition()).select("stay_id", "sofa_h").row(0) == (1, 0)
    assert common.sepsis3_onset(si, sofa, stays, CohortDefinition(sofa_baseline="window_min")).select("stay_id", "sofa_h").row(0) == (1, 10)
    # nothing within [si - 48, si + 24]
    late = pl.DataFrame({"stay_id": [1] * 3, "hour_icu": [40, 41, 42], "sofa": [4, 4, 4]})
    assert common.sepsis3_onset(pl.DataFrame({"stay_id": [1], "si_h": [10.0]}), late, stays, CohortDefinition()).height == 0


def test_match_cs_drug_prefers_longer_names(concepts):
    names = ["MethylPREDNISolone Sodium Succ", "PrednisoLONE 5 mg", "predniSONE", "SOLU-MEDROL", "Solu-Cortef", "DECADRON", "Fludrocortisone Acetate", "Vancomycin", None]
    got = pl.DataFrame({"n": names}).select(common.match_cs_drug(pl.col("n").fill_null(""), concepts).alias("d"))["d"].to_list()
    assert got == ["methylprednisolone", "prednisolone", "prednisone", "methylprednisolone", "hydrocortisone", "dexamethasone", "fludrocortisone", None, None]


def test_aggregate_hourly_filters_and_aggregates(dictionary, concepts):
    specs = common.variable_specs(dictionary, concepts)
    ev = pl.DataFrame(
        {
            "stay_id": [1] * 7,
            "t_h": [0.1, 0.5, 0.9, 1.2, 1.5, 0.2, 0.7],
            "variable": ["heart_rate", "heart_rate", "heart_rate", "creatinine", "creatinine", "urine_output", "urine_output"],
            "value": [80.0, 100.0, 900.0, 1.0, 2.5, 50.0, 70.0],
        }
    )
    out = {(r[1], r[2]): r[3] for r in common.aggregate_hourly(ev.lazy(), specs, (-10, 10)).collect().iter_rows()}
    assert out[(0, "heart_rate")] == pytest.approx(90.0)  # 900 implausible: dropped before the mean
    assert out[(1, "creatinine")] == 2.5  # max
    assert out[(0, "urine_output")] == 120.0  # sum = mL/h


def test_shock_reversal():
    cohort = pl.DataFrame(
        {"stay_id": [1, 2, 3, 4], "t0_h": [0, 0, 0, 0], "icu_out_h": [300.0, 300.0, 30.0, 300.0], "died_in_icu": [False, False, True, False]},
        schema={"stay_id": pl.Int64, "t0_h": pl.Int32, "icu_out_h": pl.Float64, "died_in_icu": pl.Boolean},
    )
    hours = [(1, h) for h in range(0, 10)] + [(2, h) for h in range(0, 160)] + [(3, h) for h in range(0, 10)] + [(4, 50)]
    vaso = pl.DataFrame(hours, schema={"stay_id": pl.Int64, "hour_icu": pl.Int32}, orient="row")
    out = {r[0]: (r[1], r[2]) for r in common.shock_reversal(vaso, cohort).iter_rows()}
    assert out[1] == (1, 1)  # off at 10 h, free for 24 h
    assert out[2] == (0, 1)  # on until 160 h: no 24 free hours within 7 days
    assert out[3] == (0, 1)  # died in the ICU 20 h after stopping: never 24 h free alive
    assert out[4] == (None, 0)  # no vasopressor at time zero: not applicable


# ----------------------------------------------------------------------------- miniature MIMIC-IV
def _write(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema={c: pl.String for c in columns}, orient="row")
    with gzip.open(path, "wb") as fh:
        df.write_csv(fh)


def _ts(h: float) -> str:
    """Timestamp ``h`` hours after 2150-01-01 10:00 (every ICU admission of the mini database)."""
    return (dt.datetime(2150, 1, 1, 10, 0) + dt.timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S")


def make_mini_mimic(root: Path) -> Path:
    """Five ICU stays with known answers (see the test below)."""
    _write(root / "hosp/patients.csv.gz", [
        {"subject_id": "1", "gender": "M", "anchor_age": "60", "anchor_year": "2150", "dod": "2150-01-11"},
        {"subject_id": "2", "gender": "F", "anchor_age": "50", "anchor_year": "2150"},
        {"subject_id": "3", "gender": "F", "anchor_age": "70", "anchor_year": "2150"},
        {"subject_id": "4", "gender": "M", "anchor_age": "16", "anchor_year": "2150"},
    ], ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"])
    _write(root / "hosp/admissions.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "admittime": _ts(-2), "dischtime": _ts(240), "deathtime": _ts(240), "admission_type": "EW EMER.", "hospital_expire_flag": "1"},
        {"subject_id": "1", "hadm_id": "13", "admittime": _ts(1000), "dischtime": _ts(1100), "admission_type": "URGENT", "hospital_expire_flag": "0"},
        {"subject_id": "2", "hadm_id": "12", "admittime": _ts(-1), "dischtime": _ts(200), "admission_type": "URGENT", "hospital_expire_flag": "0"},
        {"subject_id": "3", "hadm_id": "14", "admittime": _ts(-10), "dischtime": _ts(100), "admission_type": "URGENT", "hospital_expire_flag": "0"},
        {"subject_id": "4", "hadm_id": "15", "admittime": _ts(-1), "dischtime": _ts(100), "admission_type": "URGENT", "hospital_expire_flag": "0"},
    ], ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "hospital_expire_flag"])
    _write(root / "icu/icustays.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "intime": _ts(0), "outtime": _ts(240)},
        {"subject_id": "1", "hadm_id": "13", "stay_id": "103", "intime": _ts(1001), "outtime": _ts(1050)},
        {"subject_id": "2", "hadm_id": "12", "stay_id": "102", "intime": _ts(0), "outtime": _ts(100)},
        {"subject_id": "3", "hadm_id": "14", "stay_id": "104", "intime": _ts(0), "outtime": _ts(72)},
        {"subject_id": "4", "hadm_id": "15", "stay_id": "105", "intime": _ts(0), "outtime": _ts(50)},
    ], ["subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime", "los"])
    _write(root / "hosp/microbiologyevents.csv.gz", [
        {"microevent_id": "1", "subject_id": "1", "hadm_id": "11", "micro_specimen_id": "1", "charttime": _ts(1), "spec_type_desc": "BLOOD CULTURE"},
        {"microevent_id": "2", "subject_id": "2", "hadm_id": "12", "micro_specimen_id": "2", "charttime": _ts(0), "spec_type_desc": "URINE"},
        {"microevent_id": "3", "subject_id": "3", "hadm_id": "14", "micro_specimen_id": "3", "charttime": _ts(10), "spec_type_desc": "SPUTUM"},
    ], ["microevent_id", "subject_id", "hadm_id", "micro_specimen_id", "chartdate", "charttime", "spec_type_desc"])
    _write(root / "hosp/prescriptions.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "starttime": _ts(2), "drug": "Vancomycin", "route": "IV"},
        # eMAR documents stay 101: this order is not a dose (its administrations are in emar below)
        {"subject_id": "1", "hadm_id": "11", "pharmacy_id": "1", "starttime": _ts(5), "stoptime": _ts(60), "drug": "Hydrocortisone Na Succ.", "route": "IV",
         "dose_val_rx": "50", "dose_unit_rx": "mg", "doses_per_24_hrs": "4"},
        {"subject_id": "2", "hadm_id": "12", "starttime": _ts(80), "drug": "CeftriaXONE", "route": "IV"},
        {"subject_id": "3", "hadm_id": "14", "starttime": _ts(-5), "drug": "Piperacillin-Tazobactam", "route": "IV"},
        {"subject_id": "3", "hadm_id": "14", "starttime": _ts(1), "drug": "PrednisoLONE Acetate 1% Ophth. Susp.", "route": "BOTH EYES", "dose_val_rx": "1", "dose_unit_rx": "DROP"},
        # stay 104: one oral methylprednisolone dose 4 h before time zero (prior use), hydrocortisone 100 mg once at 3 h:
        # eMAR covers only the ward part of admission 14, so these ICU orders are the record of the doses
        {"subject_id": "3", "hadm_id": "14", "starttime": _ts(-9), "stoptime": _ts(-8), "drug": "Methylprednisolone", "route": "PO", "dose_val_rx": "40",
         "dose_unit_rx": "mg", "doses_per_24_hrs": "2"},
        {"subject_id": "3", "hadm_id": "14", "pharmacy_id": "2", "starttime": _ts(3), "stoptime": _ts(30), "drug": "Hydrocortisone Na Succ.", "route": "IV",
         "dose_val_rx": "100", "dose_unit_rx": "mg", "doses_per_24_hrs": "1"},
    ], ["subject_id", "hadm_id", "pharmacy_id", "starttime", "stoptime", "drug", "route", "dose_val_rx", "dose_unit_rx", "doses_per_24_hrs"])
    _write(root / "hosp/pharmacy.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "pharmacy_id": "1", "route": "IV", "frequency": "Q6H"},
        {"subject_id": "3", "hadm_id": "14", "pharmacy_id": "2", "route": "IV", "frequency": "ONCE"},
    ], ["subject_id", "hadm_id", "pharmacy_id", "poe_id", "starttime", "stoptime", "medication", "route", "frequency", "doses_per_24_hrs"])
    # stay 101: hydrocortisone 50 mg given at 5, 11 and 23 h (charted twice at 23 h), not given at 17 h; a methylprednisolone
    # dose not given at 2 h. Stay 104: only a ward dose after the ICU stay (72 h)
    emar = [("1", "11", "1-1", 5, "Hydrocortisone Na Succ.", "Administered"), ("1", "11", "1-2", 11, "Hydrocortisone Na Succ.", "Administered"),
            ("1", "11", "1-3", 17, "Hydrocortisone Na Succ.", "Not Given"), ("1", "11", "1-4", 23, "Hydrocortisone Na Succ.", "Administered"),
            ("1", "11", "1-5", 23.2, "Hydrocortisone Na Succ.", "Administered in Other Location"), ("1", "11", "1-6", 2, "Methylprednisolone", "Not Given"),
            ("3", "14", "3-1", 80, "Heparin", "Administered")]
    _write(root / "hosp/emar.csv.gz", [
        {"subject_id": sub, "hadm_id": hadm, "emar_id": eid, "pharmacy_id": "1" if sub == "1" else None, "charttime": _ts(h), "medication": med, "event_txt": ev}
        for sub, hadm, eid, h, med, ev in emar
    ], ["subject_id", "hadm_id", "emar_id", "emar_seq", "poe_id", "pharmacy_id", "enter_provider_id", "charttime", "medication", "event_txt", "scheduletime", "storetime"])
    _write(root / "hosp/emar_detail.csv.gz", [
        {"subject_id": "1", "emar_id": "1-1", "dose_due": "50", "dose_due_unit": "mg"},  # parent row; two 25 mg vials given
        {"subject_id": "1", "emar_id": "1-1", "parent_field_ordinal": "1.1", "dose_given": "25", "dose_given_unit": "mg"},
        {"subject_id": "1", "emar_id": "1-1", "parent_field_ordinal": "1.2", "dose_given": "25", "dose_given_unit": "mg"},
        {"subject_id": "1", "emar_id": "1-2", "dose_due": "50", "dose_due_unit": "mg"},  # parent row only
        {"subject_id": "1", "emar_id": "1-3", "dose_due": "50", "dose_due_unit": "mg"},
        {"subject_id": "1", "emar_id": "1-4", "parent_field_ordinal": "1.1", "dose_given": "50", "dose_given_unit": "mg"},
        {"subject_id": "1", "emar_id": "1-5", "dose_due": "50", "dose_due_unit": "mg"},
    ], ["subject_id", "emar_id", "emar_seq", "parent_field_ordinal", "administration_type", "pharmacy_id", "dose_due", "dose_due_unit",
        "dose_given", "dose_given_unit", "product_description", "route"])
    _write(root / "hosp/labevents.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "specimen_id": "1", "itemid": "50912", "charttime": _ts(3.5), "valuenum": "2.5"},  # creatinine: renal 2
        {"subject_id": "1", "hadm_id": "11", "specimen_id": "2", "itemid": "51265", "charttime": _ts(3.5), "valuenum": "90"},  # platelets: coag 2
        {"subject_id": "1", "hadm_id": "11", "specimen_id": "3", "itemid": "50813", "charttime": _ts(3.5), "valuenum": "45"},  # lactate 45: implausible
        {"subject_id": "3", "hadm_id": "14", "specimen_id": "4", "itemid": "51265", "charttime": _ts(0.5), "valuenum": "40"},  # coag 3
    ], ["labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "charttime", "value", "valuenum", "valueuom"])
    _write(root / "icu/chartevents.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "charttime": _ts(2.2), "itemid": "223761", "valuenum": "101.3"},  # 38.5 C
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "charttime": _ts(2.4), "itemid": "223762", "valuenum": "38.7"},
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "charttime": _ts(1.1), "itemid": "220045", "valuenum": "120"},
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "charttime": _ts(200), "itemid": "220045", "valuenum": "90"},  # last HR: ICU hours end
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "charttime": _ts(0.2), "itemid": "226512", "valuenum": "80"},
        {"subject_id": "3", "hadm_id": "14", "stay_id": "104", "charttime": _ts(0.2), "itemid": "220045", "valuenum": "88"},
    ], ["subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid", "value", "valuenum", "valueuom", "warning"])
    _write(root / "icu/inputevents.csv.gz", [
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "starttime": _ts(1), "endtime": _ts(30), "itemid": "221906", "rate": "0.2", "rateuom": "mcg/kg/min", "statusdescription": "FinishedRunning"},
        {"subject_id": "1", "hadm_id": "11", "stay_id": "101", "starttime": _ts(1), "endtime": _ts(30), "itemid": "222315", "rate": "2.4", "rateuom": "units/hour", "statusdescription": "FinishedRunning"},
    ], ["subject_id", "hadm_id", "stay_id", "starttime", "endtime", "itemid", "amount", "rate", "rateuom", "statusdescription", "patientweight"])
    return root


def _with(cfg: dict, **definition) -> dict:
    return {**cfg, "cohort_definition": {**cfg["cohort_definition"], **definition}}


def test_mini_mimic_known_answers(tmp_path, base_config, concepts, dictionary):
    root = make_mini_mimic(tmp_path / "mimic")
    # default: the new-user step follows the minimum ICU stay (no prevalent user here; see test_mini_mimic_options)
    res = mimic_iv.ingest(root, "mini", base_config, concepts, dictionary)
    assert res.attrition["n_stays"].to_list() == [5, 4, 3, 1, 1, 1, 1, 1] and res.cohort["stay_id"].to_list() == ["101"]
    assert res.stats["n_cs_prevalent_users"] == 0 and res.stats["n_cohort_icu_stays_without_emar"] == 0
    res = mimic_iv.ingest(root, "mini", _with(base_config, prevalent_cs="include"), concepts, dictionary)
    att = dict(zip(res.attrition["step"], res.attrition["n_stays"]))
    # raw, adults, first stays, suspected infection during the ICU stay, Sepsis-3, onset window, ICU stay, prevalent users kept
    assert list(att.values()) == [5, 4, 3, 1, 1, 1, 1, 1]
    c = {r["stay_id"]: r for r in res.cohort.iter_rows(named=True)}
    assert set(c) == {"101"}  # 104's antibiotic started before ICU admission (mimic-code: during the ICU stay)
    a = c["101"]
    # stay 101: culture at 1 h, antibiotic at 2 h -> infection at 1 h = end of clock hour 0 (hours (k, k + 1]);
    # SOFA 4 (norepinephrine 0.2) from hour 1, the first ICU hour (first heart rate at 1.1 h) -> time zero = hour 0
    assert a["cs"] and a["cs_drug"] == "hydrocortisone" and a["cs_start_h"] == pytest.approx(5.0) and a["cs_first_h"] == a["cs_start_h"]
    # eMAR: 25 + 25 mg (product rows), 50 mg (parent row), 50 mg at 23 h charted twice; not the dose 'Not Given'; not the order's 4 x 50 mg
    assert a["cs_hydrocortisone_eq_mg_24h"] == pytest.approx(150.0)
    # event times (hours from time zero): death in hospital at 240 h, hence follow-up ends there
    assert (a["death_h"], a["icu_discharge_h"], a["hospital_discharge_h"], a["followup_end_h"]) == (240.0, 240.0, 240.0, 240.0)
    assert (a["hospital_mortality"], a["mortality_28d"], a["vasopressor_t0"], a["shock_reversal_7d"]) == (1, 1, 1, 1)
    assert a["weight"] == 80 and a["age"] == 60 and a["sex"] == "M" and a["infection_source"] == "other"
    assert a["sofa_t0"] == 0  # nothing measured in the 24 h up to time zero
    ts = res.timeseries
    temp = ts.filter((pl.col("stay_id") == "101") & (pl.col("variable") == "temperature"))
    assert temp.select("hour", "value").rows() == [(2, pytest.approx((38.5 + 38.7) / 2))]  # degF converted, 2.2-2.4 h = hour 2
    assert ts.filter(pl.col("variable") == "lactate").height == 0  # implausible lactate removed
    ne = dict(ts.filter((pl.col("stay_id") == "101") & (pl.col("variable") == "norepinephrine_eq")).select("hour", "value").iter_rows())
    assert 0 not in ne and ne[1] == pytest.approx(0.3)  # norepinephrine 0.2 + vasopressin 2.4 U/h (0.1) from 1 h
    sofa = dict(ts.filter((pl.col("stay_id") == "101") & (pl.col("variable") == "sofa")).select("hour", "value").iter_rows())
    assert 0 not in sofa and sofa[1] == 4 and sofa[3] == 4 + 2 + 2  # from 3.5 h: + renal 2 (creatinine 2.5) + coag 2
    assert sofa[20] == 8  # the worst of the last 24 h, not a carried-forward value
    vent = ts.filter((pl.col("stay_id") == "101") & (pl.col("variable") == "mechanical_ventilation"))
    assert vent.height > 0 and vent["value"].max() == 0  # hourly ventilation status: none charted


def test_mini_mimic_options(tmp_path, base_config, concepts, dictionary):
    root = make_mini_mimic(tmp_path / "mimic")
    cd = base_config["cohort_definition"]
    # any antibiotic of the admission (not only during the ICU stay): stay 104 (piperacillin 5 h before ICU
    # admission, sputum culture 15 h later) joins with infection at -5 h -> time zero -6 (hour (-6, -5])
    cfg = {**base_config, "cohort_definition": {**cd, "suspected_infection": {**cd["suspected_infection"], "antibiotic_during_icu": False}}}
    res = mimic_iv.ingest(root, "mini", cfg, concepts, dictionary)
    # stay 104 is a prevalent CS user (oral methylprednisolone 3 h before time zero): out of the default new-user cohort
    assert res.attrition["n_stays"].to_list() == [5, 4, 3, 2, 2, 2, 2, 1] and res.stats["n_cs_prevalent_users"] == 1
    res = mimic_iv.ingest(root, "mini", _with(cfg, prevalent_cs="include"), concepts, dictionary)
    assert res.attrition["n_stays"].to_list() == [5, 4, 3, 2, 2, 2, 2, 2]
    b = {r["stay_id"]: r for r in res.cohort.iter_rows(named=True)}["104"]
    # eye drops are not systemic; oral methylprednisolone 3 h before (prior use); hydrocortisone from the ICU order at 3 h
    assert b["cs"] and b["cs_before_t0"] == 1 and b["cs_start_h"] == pytest.approx(9.0) and b["cs_hydrocortisone_eq_mg_24h"] == pytest.approx(100.0)
    # no death record: vital status followed to one year after the hospital discharge (100 h)
    assert b["death_h"] is None and (b["hospital_discharge_h"], b["followup_end_h"]) == (106.0, 106.0 + 365 * 24)
    assert res.stats["n_cohort_icu_stays_without_emar"] == 1 and res.stats["n_cs_in_icu_stays_without_emar"] == 1
    # eMAR coverage by admission (the literal rule): admission 14 has eMAR (on the ward), so its ICU orders are no longer doses
    alt = mimic_iv.ingest(root, "mini", _with(cfg, prevalent_cs="include"), {**concepts, "cs_administration": {"emar_coverage": "admission"}}, dictionary)
    assert dict(zip(alt.cohort["stay_id"], alt.cohort["cs"])) == {"101": True, "104": False}
    assert (b["hospital_mortality"], b["mortality_28d"], b["shock_reversal_7d"], b["vasopressor_t0"]) == (0, 0, None, 0)
    assert b["infection_source"] == "pulmonary" and b["icu_los_days"] == pytest.approx(3.0) and b["sofa_t0"] == 0  # nothing in the 24 h to t0
    # the files pass the contract validator
    validate(res.cohort, res.timeseries, dictionary, ContractSettings.from_config({**base_config, "contract": {**base_config["contract"], "min_group_size": 0}}))
    # min_rise 6: stay 101 reaches SOFA 8; no first-stay step
    cfg = {**base_config, "cohort_definition": {**cd, "first_stay_only": False, "min_age": 10, "sofa": {"baseline": "zero", "min_rise": 6}}}
    res = mimic_iv.ingest(root, "mini", cfg, concepts, dictionary)
    assert res.attrition["n_stays"].to_list() == [5, 5, 1, 1, 1, 1, 1]
    assert res.cohort["stay_id"].to_list() == ["101"]
    with pytest.raises(Exception, match="patients"):
        (root / "hosp/patients.csv.gz").unlink()
        mimic_iv.ingest(root, "mini", base_config, concepts, dictionary)


# ----------------------------------------------------------------------------- real MIMIC-IV demo
@pytest.fixture(scope="module")
def demo(base_config, concepts):
    if not (MIMIC / "icu").is_dir():
        pytest.skip("../shared/data/mimic-iv-demo-2.2 absent")
    return mimic_iv.ingest(MIMIC, "mimic_iv_demo", base_config, concepts, load_dictionary(ROOT / "config" / "variables.yaml"))


@pytest.mark.realdata
def test_demo_cohort_sizes(demo):
    att = dict(zip(demo.attrition["step"], demo.attrition["n_stays"]))
    # mimic-code's sepsis3 finds the same 40 adult first stays (tests/test_cohort_definitions.py); 1 prevalent CS user out
    assert list(att.values()) == [140, 140, 100, 57, 40, 40, 40, 39]
    c = demo.cohort
    # 5 treated stays: far too few for any conclusion (see docs/databases.md)
    assert c.height == 39 and int(c["cs"].sum()) == 5
    assert c.filter(pl.col("cs"))["cs_drug"].value_counts().sort("cs_drug").rows() == [
        ("dexamethasone", 1), ("hydrocortisone", 2), ("methylprednisolone", 2)
    ]
    assert int(c["hospital_mortality"].sum()) == 8
    # sanity: treated share and mortality in the range reported for sepsis cohorts
    assert 0.05 <= c["cs"].mean() <= 0.3 and 0.05 <= c["hospital_mortality"].mean() <= 0.4
    assert c["patient_id"].n_unique() == c.height  # first stay only


@pytest.mark.realdata
def test_demo_contract_valid(demo, base_config, dictionary):
    cfg = {**base_config, "contract": {**base_config["contract"], "min_group_size": 3}}
    cohort, ts, changes = validate(demo.cohort, demo.timeseries, dictionary, ContractSettings.from_config(cfg))
    assert changes.height == 0  # the adapter already filtered implausible values
    for col in ("age", "sex", "weight", "sofa_t0", "infection_source", "admission_type", "diabetes", "mechanical_ventilation_t0"):
        assert col in cohort.columns
    present = set(ts["variable"].unique())
    assert {"map", "heart_rate", "temperature", "lactate", "creatinine", "platelets", "pf_ratio", "norepinephrine_eq", "urine_output", "sofa"} <= present
    # Sepsis-3: time zero <= the SOFA criterion <= infection + 24 h, so every stay has SOFA >= 2 within 0..25 h
    hit = ts.filter((pl.col("variable") == "sofa") & pl.col("hour").is_between(0, 25) & (pl.col("value") >= 2))
    assert hit["stay_id"].n_unique() == cohort.height
    assert cohort["sofa_t0"].median() >= 0 and cohort["age"].min() >= 18


@pytest.mark.realdata
@pytest.mark.slow
def test_real_demos_workflow(tmp_path):
    """ingest -> validate -> cohort summary of both demos through Snakemake (tests/configs/real_demos.yaml)."""
    if not (MIMIC / "icu").is_dir() or not EICU.is_dir():
        pytest.skip("../shared/data demo databases absent")
    wd = make_workdir(tmp_path / "wd")
    cfg = yaml.safe_load((ROOT / "tests" / "configs" / "real_demos.yaml").read_text())
    cfg["databases"]["mimic_iv_demo"]["path"] = str(MIMIC)
    cfg["databases"]["eicu_demo"]["path"] = str(EICU)
    cfg["reference"]["mimic_code"] = str(SHARED_DATA.parent / "reference" / "mimic-code")
    (wd / "tests" / "configs" / "real_demos_abs.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/{db}/summary/cohort.json" for db in ("mimic_iv_demo", "eicu_demo")] + [
        f"results/{db}/ingest/attrition.csv" for db in ("mimic_iv_demo", "eicu_demo")
    ] + ["results/eicu_demo/external/apache_iv.csv"]
    run_snakemake(wd, "--cores", "2", *targets, "--configfile", "tests/configs/real_demos_abs.yaml")
    m = json.loads((wd / "results/mimic_iv_demo/summary/cohort.json").read_text())
    e = json.loads((wd / "results/eicu_demo/summary/cohort.json").read_text())
    # MIMIC-IV: the 1 prevalent CS user is a small last exclusion, shown only merged with the earlier ones, so the
    # Sepsis-3 count is withheld. eICU: the 6 + 4 septic stays excluded by the onset window and the minimum ICU
    # stay after time zero are shown only together (the stay count between them is withheld)
    assert (m["n_icu_stays_raw"], m["n_sepsis"], m["n_stays"]) == (140, None, 39)
    assert (e["n_icu_stays_raw"], e["n_sepsis"], e["n_stays"], e["n_onset_after_window"]) == (2520, 155, 98, None)
    assert m["ingest_seconds"] > 0 and e["ingest_seconds"] > 0
    assert e["n_cs_by_drug_hydrocortisone"] == 12 and e["n_hospitals_without_medication"] == 42
    # agreement with MIT-LCP mimic-code (tests/configs/real_demos.yaml sets reference.mimic_code)
    assert m["sepsis3_agreement_mimic_code"] >= 0.95 and m["sepsis3_kappa_mimic_code"] >= 0.90 and m["sofa_hourly_exact_share_mimic_code"] >= 0.90
    att = pl.read_csv(wd / "results/eicu_demo/ingest/attrition.csv")
    assert att.columns == ["step", "n_stays", "n_excluded", "note"] and att.height == 9  # ..., hospitals with medication data, new users
    # small exclusions are merged with the next step so that no small count is shown or derivable
    assert "in next step" in att["n_excluded"].to_list()
    shown = [int(x) for x in att["n_stays"].to_list() if x != "-"]
    assert all(a - b == 0 or a - b >= 10 for a, b in zip(shown, shown[1:]))
    for col in ("n_stays", "n_excluded"):
        assert all(not x.isdigit() or int(x) == 0 or int(x) >= 10 for x in att[col].to_list())
    apache = pl.read_csv(wd / "results/eicu_demo/external/apache_iv.csv")
    assert apache.columns == ["stay_id", "score", "name"] and set(apache["name"]) == {"apache_iv"}
    assert apache["score"].is_between(0, 1).all() and apache.height > 50
    bench = pl.read_csv(wd / "results/benchmarks/eicu_demo/ingest_eicu.tsv", separator="\t")
    assert math.isfinite(bench["max_rss"][0])


def test_mini_mimic_parquet_tables_give_the_same_cohort(tmp_path, base_config, concepts, dictionary):
    csv_root = make_mini_mimic(tmp_path / "csv")
    pq_root = tmp_path / "pq"
    for f in csv_root.rglob("*.csv.gz"):
        out = pq_root / f.relative_to(csv_root).with_suffix("").with_suffix(".parquet")
        out.parent.mkdir(parents=True, exist_ok=True)
        pl.read_csv(f, try_parse_dates=True).write_parquet(out)  # typed columns, real datetimes
    a = mimic_iv.ingest(csv_root, "mini", base_config, concepts, dictionary)
    b = mimic_iv.ingest(pq_root, "mini", base_config, concepts, dictionary)
    assert a.cohort.equals(b.cohort) and a.timeseries.equals(b.timeseries)
