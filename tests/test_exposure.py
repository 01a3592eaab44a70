"""Corticosteroid exposure (new users, administered drug) and event times: sepsis_cs.adapters.exposure.

Unit tests on small hand-made frames for every rule (frequency strings, doses, order expansion,
duplicates, glucocorticoid vs fludrocortisone, prevalent users, minimum dose, hospitals without
medication data, event times), then checks on the open demos when ../shared/data is present.
``tests/data/frequency_strings.csv`` lists every distinct frequency text of both demos (MIMIC-IV
``pharmacy.frequency``, eICU ``medication.frequency``) with its expected reading, so the parser test
also runs without the demos; with them, the test checks that no demo string is missing from the list.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from conftest import SHARED_DATA
from sepsis_cs.adapters import common, eicu, mimic_iv
from sepsis_cs.adapters.common import CohortDefinition
from sepsis_cs.adapters.exposure import (
    EVENT_SCHEMA,
    ORDER_SCHEMA,
    AdministrationSettings,
    cs_exposure,
    deduplicate,
    dose_mg,
    doses_per_day,
    event_times,
    expand_orders,
    exposure_criteria,
    parse_frequency,
)

ROOT = Path(__file__).resolve().parents[1]
FREQUENCIES = ROOT / "tests" / "data" / "frequency_strings.csv"
MIMIC = SHARED_DATA / "mimic-iv-demo-2.2"
EICU = SHARED_DATA / "eicu-crd-demo-2.0.1"


def _events(rows: list[tuple]) -> pl.DataFrame:
    """(stay_id, t_h, drug, dose_mg[, evidence])"""
    rows = [r if len(r) == 5 else (*r, "administration") for r in rows]
    return pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")


def _orders(rows: list[dict]) -> pl.DataFrame:
    base = {"stay_id": 1, "start_h": 0.0, "stop_h": None, "drug": "hydrocortisone", "dose_mg": 50.0, "frequency": None, "per_day": None, "prn": False}
    return pl.DataFrame([{**base, **r} for r in rows], schema=ORDER_SCHEMA)


def _t0(ids, t0=0):
    return pl.DataFrame({"stay_id": ids, "t0_h": [t0] * len(ids)}, schema={"stay_id": pl.Int64, "t0_h": pl.Int32})


NO_HOME = pl.DataFrame(schema={"stay_id": pl.Int64})


def _exposure(events, concepts, d=None, home=NO_HOME, ids=None, t0=0):
    ids = ids or sorted(set(events["stay_id"].to_list()))
    out = cs_exposure(events, home, _t0(ids, t0), concepts, d or CohortDefinition())
    return {r["stay_id"]: r for r in out.iter_rows(named=True)}


# ----------------------------------------------------------------------------- frequency parser
def test_every_demo_frequency_string_has_its_expected_reading():
    exp = pl.read_csv(FREQUENCIES, infer_schema=False, schema_overrides={"doses_per_day": pl.Float64, "max_doses": pl.Int64})
    assert exp.height >= 600 and exp.select("source", "frequency").n_unique() == exp.height
    got = exp.with_columns(parse_frequency(pl.col("frequency")).alias("p")).select("frequency", "kind", "doses_per_day", "max_doses", pl.col("p").struct.field("kind").alias("k"),
             pl.col("p").struct.field("doses_per_day").alias("dpd"), pl.col("p").struct.field("max_doses").alias("mx"))
    bad = got.filter(
        (pl.col("k") != pl.col("kind"))
        | ~((pl.col("dpd") - pl.col("doses_per_day")).abs().fill_null(0) < 1e-6)
        | (pl.col("dpd").is_null() != pl.col("doses_per_day").is_null())
        | (pl.col("mx").fill_null(-1) != pl.col("max_doses").fill_null(-1))
    )
    assert bad.height == 0, bad.head(10)
    # the examples the previous parser missed
    read = dict(got.select("frequency", "dpd").unique().iter_rows())
    assert read["6H"] == 4 and read["Every 6 hours scheduled"] == 4 and read["q 8 hour"] == 3 and read["Q4H LIMITED (00;04;12;16)"] == 4
    assert read["Once per day on Mon Wed Fri"] == pytest.approx(3 / 7) and read["ONCE X1"] == 1


def test_demo_frequency_strings_are_all_listed():
    sources = {"mimic_iv": MIMIC / "hosp" / "pharmacy.csv.gz", "eicu": EICU / "medication.csv.gz"}
    present = {k: p for k, p in sources.items() if p.is_file()}
    if not present:
        pytest.skip("../shared/data demo databases absent")
    listed = pl.read_csv(FREQUENCIES, infer_schema=False)
    for source, path in present.items():
        demo = set(pl.read_csv(path, infer_schema=False, columns=["frequency"])["frequency"].drop_nulls().unique())
        missing = demo - set(listed.filter(pl.col("source") == source)["frequency"])
        assert not missing, f"{source}: add to tests/data/frequency_strings.csv: {sorted(missing)[:10]}"


def test_frequency_kinds_and_limits():
    texts = ["Q6H PRN", "Continuous", "as directed", None, "", "BID X10", "Q8H:PRN", "Once PRN X1", "Pyxis"]
    got = pl.DataFrame({"f": texts}).select(parse_frequency(pl.col("f")).alias("p")).unnest("p").rows()
    assert got == [
        ("prn", None, None), ("continuous", None, None), ("unknown", None, None), ("unknown", None, None), ("unknown", None, None),
        ("scheduled", 2.0, 10), ("prn", None, None), ("prn", None, 1), ("unknown", None, None),
    ]
    assert pl.DataFrame({"f": ["QID"]}).select(doses_per_day(pl.col("f")).alias("n"))["n"].to_list() == [4.0]


def test_dose_in_mg_from_text():
    texts = ["50 mg", "100 3", "1 g", "500 mcg", "40-80 mg", "2 ML", "1 drop", "", "0.1 MG", "125 MG ", "4 1"]
    got = pl.DataFrame({"t": texts}).select(dose_mg(pl.col("t")))["t"].to_list()
    assert got == [50.0, 100.0, 1000.0, 0.5, 40.0, None, None, None, 0.1, 125.0, None]
    two = pl.DataFrame({"v": ["8", "0.1", "___"], "u": ["mg", "MG", "mg"]}).select(dose_mg(pl.col("v"), pl.col("u")))["v"].to_list()
    assert two == [8.0, 0.1, None]


# ----------------------------------------------------------------------------- orders -> administrations
def test_expand_orders_schedules_replaces_and_stops():
    s = AdministrationSettings()
    o = _orders([
        # stay 1: 100 mg Q8H from 0 to 9 h (2 doses), replaced at 10 h by 50 mg Q6H without a usable stop (24 h)
        {"start_h": 0.0, "stop_h": 9.0, "dose_mg": 100.0, "frequency": "Q8H"},
        {"start_h": 10.0, "stop_h": 5.0, "dose_mg": 50.0, "frequency": "Every 6 hours scheduled"},
        # stay 2: two tablet orders at the same time add up (20 + 10 mg prednisone daily)
        {"stay_id": 2, "drug": "prednisone", "dose_mg": 20.0, "frequency": "Daily", "stop_h": 30.0},
        {"stay_id": 2, "drug": "prednisone", "dose_mg": 10.0, "frequency": "Daily", "stop_h": 30.0},
        # stay 3: 'X n' limit, the database's doses per day when the text is unknown, a single dose
        {"stay_id": 3, "frequency": "Q6H X2", "stop_h": 48.0},
        {"stay_id": 3, "drug": "dexamethasone", "dose_mg": 4.0, "frequency": None, "per_day": 3.0, "stop_h": 20.0},
        {"stay_id": 3, "drug": "methylprednisolone", "dose_mg": 125.0, "frequency": "STAT", "stop_h": 48.0},
        # stay 4: PRN, continuous, unknown
        {"stay_id": 4, "frequency": "Q6H PRN"},
        {"stay_id": 4, "drug": "dexamethasone", "dose_mg": 8.0, "frequency": "PRN", "prn": True},
        {"stay_id": 4, "drug": "methylprednisolone", "frequency": "Continuous", "stop_h": 48.0},
        {"stay_id": 4, "drug": "prednisone", "frequency": "as directed", "stop_h": 48.0},
    ])
    got = expand_orders(o, s).sort("stay_id", "drug", "t_h")
    by = {k[0]: g.select("drug", "t_h", "dose_mg").rows() for k, g in got.group_by("stay_id")}
    assert by[1] == [("hydrocortisone", 0.0, 100.0), ("hydrocortisone", 8.0, 100.0)] + [("hydrocortisone", h, 50.0) for h in (10.0, 16.0, 22.0, 28.0)]
    assert sorted(by[2]) == [("prednisone", 0.0, 10.0), ("prednisone", 0.0, 20.0), ("prednisone", 24.0, 10.0), ("prednisone", 24.0, 20.0)]
    assert by[3] == [("dexamethasone", 0.0, 4.0), ("dexamethasone", 8.0, 4.0), ("dexamethasone", 16.0, 4.0),
                     ("hydrocortisone", 0.0, 50.0), ("hydrocortisone", 6.0, 50.0), ("methylprednisolone", 0.0, 125.0)]
    assert sorted(by[4]) == [("methylprednisolone", 0.0, 50.0), ("prednisone", 0.0, 50.0)]  # PRN: no evidence of a dose
    assert set(got["evidence"]) == {"administration"}
    counted = expand_orders(o.filter(pl.col("stay_id") == 4), AdministrationSettings(prn_orders="count"))
    assert counted.height == 4  # PRN orders: one dose each at the start
    # a later once-order does not end a scheduled one
    keep = expand_orders(_orders([{"frequency": "Q12H", "stop_h": 24.0}, {"start_h": 3.0, "frequency": "ONCE", "dose_mg": 100.0}]), s)
    assert sorted(keep["t_h"].to_list()) == [0.0, 3.0, 12.0]
    assert expand_orders(_orders([]).clear(), s).height == 0


def test_duplicates_count_once():
    # the duplicated '200 mg ONCE' rows of the issue: 2 x 200 + 100 mg q8h gave 700 mg
    o = _orders([
        {"start_h": 16.47, "stop_h": 16.52, "dose_mg": 200.0, "frequency": "ONCE X1"},
        {"start_h": 16.47, "stop_h": 16.47, "dose_mg": 200.0, "frequency": "ONCE X1"},
        {"start_h": 25.22, "stop_h": 157.0, "dose_mg": 100.0, "frequency": "q 8 hour"},
    ])
    ev = deduplicate(expand_orders(o, AdministrationSettings()), 1.0)
    in24 = ev.filter(pl.col("t_h") < 16.47 + 24)
    assert in24["dose_mg"].sum() == pytest.approx(400.0)
    # a dose charted twice 13 min apart counts once; 20 mg + 10 mg at the same time are two doses; 2 h apart are two
    e = _events([(1, 5.0, "prednisone", 20.0), (1, 5.0, "prednisone", 10.0), (1, 5.22, "prednisone", 20.0), (1, 7.5, "prednisone", 20.0)])
    assert sorted(deduplicate(e, 1.0)["dose_mg"].to_list()) == [10.0, 20.0, 20.0]


# ----------------------------------------------------------------------------- per-stay exposure
def test_treatment_start_dose_and_first_drug(concepts):
    d = CohortDefinition(cs_window=(0.0, 24.0))
    ev = _events([
        (1, 12.0, "methylprednisolone", 80.0), (1, 14.0, "hydrocortisone", None), (1, 40.0, "hydrocortisone", 200.0),
        (2, 40.0, "dexamethasone", 8.0),  # late starter: keeps its time only (the contract: no drug or dose when untreated)
        (3, 11.0, "hydrocortisone", 50.0), (3, 17.0, "hydrocortisone", 50.0), (3, 23.0, "hydrocortisone", 50.0), (3, 29.0, "hydrocortisone", 50.0),
        (3, 35.0, "hydrocortisone", 50.0),  # 24 h after the first dose: not in the first day
        (4, 12.0, "hydrocortisone", None),  # no known dose: null, not 0
    ])
    out = _exposure(ev, concepts, d, t0=10)
    a, b, c, e = out[1], out[2], out[3], out[4]
    assert a["cs"] and a["cs_start_h"] == 2.0 and a["cs_first_h"] == 2.0 and a["cs_drug"] == "methylprednisolone"
    assert a["cs_hydrocortisone_eq_mg_24h"] == pytest.approx(400.0)  # 80 mg x 5; the hydrocortisone dose is unknown (lower bound)
    assert not b["cs"] and b["cs_late"] and b["cs_start_h"] is None and b["cs_first_h"] == 30.0
    assert b["cs_drug"] is None and b["cs_hydrocortisone_eq_mg_24h"] is None
    assert c["cs_hydrocortisone_eq_mg_24h"] == pytest.approx(200.0)
    assert e["cs"] and e["cs_hydrocortisone_eq_mg_24h"] is None
    assert not any(r["cs_before_t0"] for r in out.values())


def test_fludrocortisone_counts_only_with_a_glucocorticoid(concepts):
    ev = _events([
        (1, 2.0, "fludrocortisone", 0.1), (1, 26.0, "fludrocortisone", 0.1),  # fludrocortisone alone: not treated
        (2, 1.0, "fludrocortisone", 0.05), (2, 3.0, "hydrocortisone", 50.0),  # with hydrocortisone: treated from the hydrocortisone
        (3, -20.0, "fludrocortisone", 0.1),  # fludrocortisone alone before time zero: not a prevalent user
    ])
    out = _exposure(ev, concepts)
    assert not out[1]["cs"] and out[1]["cs_first_h"] is None and not out[1]["cs_late"] and out[1]["cs_drug"] is None
    assert out[2]["cs"] and out[2]["cs_start_h"] == 3.0 and out[2]["cs_drug"] == "hydrocortisone"
    assert out[2]["cs_hydrocortisone_eq_mg_24h"] == pytest.approx(50.0)  # fludrocortisone 1 h earlier is outside [start, start + 24 h)
    assert out[3]["cs_before_t0"] == 0


def test_unnamed_glucocorticoid_and_window_edges(concepts):
    # eICU 'systemic glucocorticoid' treatment entries have no drug name: treated, drug and dose unknown
    ev = _events([(1, 0.0, None, None), (2, 24.0, "prednisone", 40.0), (3, 24.01, "prednisone", 40.0)])
    out = _exposure(ev, concepts)
    assert out[1]["cs"] and out[1]["cs_drug"] is None and out[1]["cs_hydrocortisone_eq_mg_24h"] is None
    assert out[2]["cs"] and out[2]["cs_start_h"] == 24.0  # the window is closed
    assert not out[3]["cs"] and out[3]["cs_late"]
    # a window starting after time zero: a start before it is neither treated nor late, but cs_first_h is kept
    out = _exposure(_events([(1, 1.0, "hydrocortisone", 50.0)]), concepts, CohortDefinition(cs_window=(2.0, 24.0)))
    assert not out[1]["cs"] and not out[1]["cs_late"] and out[1]["cs_first_h"] == 1.0


def test_prevalent_users(concepts):
    d = CohortDefinition(cs_chronic_lookback_h=168)
    ev = _events([
        (1, -5.0, "prednisone", 20.0), (1, 3.0, "prednisone", 20.0),  # given 5 h before time zero: prevalent, still starts at 3 h
        (2, -170.0, "prednisone", 20.0), (2, 3.0, "hydrocortisone", 50.0),  # outside the look-back: a new user
        (3, -2.0, "methylprednisolone", 4.0, "order"), (3, 7.0, "methylprednisolone", 4.0),  # ordered before time zero: prior use
        (4, 5.0, "hydrocortisone", 50.0, "order"),  # an order alone is never a treatment
        (5, 4.0, "hydrocortisone", 100.0),  # home medication (below)
    ])
    home = pl.DataFrame({"stay_id": [5]}, schema={"stay_id": pl.Int64})
    out = _exposure(ev, concepts, d, home=home)
    assert [out[i]["cs_before_t0"] for i in (1, 2, 3, 4, 5)] == [1, 0, 1, 0, 1]
    assert out[1]["cs"] and out[1]["cs_start_h"] == 3.0 and out[2]["cs"] and out[3]["cs"]
    assert not out[4]["cs"] and out[4]["cs_first_h"] is None


def _cohort_rows(concepts, d, events, home=NO_HOME):
    t0 = _t0(sorted(set(events["stay_id"].to_list())))
    c = t0.join(cs_exposure(events, home, t0, concepts, d), on="stay_id").with_columns(pl.lit(100.0).alias("icu_out_h"))
    return c


def test_exposure_criteria_prevalent_min_dose_and_hospitals(concepts, caplog):
    ev = _events([
        (1, 1.0, "hydrocortisone", 50.0), (1, 7.0, "hydrocortisone", 50.0), (1, 13.0, "hydrocortisone", 50.0), (1, 19.0, "hydrocortisone", 50.0),
        (2, 1.0, "prednisone", 5.0),  # 20 mg/day hydrocortisone-equivalent
        (3, -10.0, "prednisone", 20.0), (3, 1.0, "prednisone", 20.0),  # prevalent user
        (4, 2.0, None, None),  # dose unknown
        (5, 30.0, "hydrocortisone", 50.0),  # late starter
        (6, 80.0, "hydrocortisone", 50.0),  # first CS after the time window: neither treated nor late
    ])
    c = _cohort_rows(concepts, CohortDefinition(), ev)
    out, rows, stats = exposure_criteria(c, CohortDefinition())
    assert sorted(out["stay_id"].to_list()) == [1, 2, 4, 5, 6] and stats["n_cs_prevalent_users"] == 1
    assert [r[1] for r in rows] == [5] and "prevalent" in rows[0][2]
    for mode in ("separate", "include"):
        out, rows, _ = exposure_criteria(c, CohortDefinition(prevalent_cs=mode))
        assert out.height == 6 and out.filter(pl.col("stay_id") == 3)["cs_before_t0"].item() == 1
        assert [r[1] for r in rows] == [6] and f"prevalent_cs: {mode}" in rows[0][2]  # a step without exclusions, saying what was done
        # separate: the analyses after the ingest do not leave them out yet (only the target trial): said in the log
        assert ("only the target trial" in caplog.text) == (mode == "separate")
        caplog.clear()
    d = CohortDefinition(cs_min_hc_eq_mg_day=200, late_cs_start="exclude")
    out, rows, stats = exposure_criteria(c, d)
    assert sorted(out["stay_id"].to_list()) == [1, 6]  # 2: 20 mg/day; 4: unknown dose; 5: late starter
    assert stats["n_cs_below_min_dose"] == 2 and [r[1] for r in rows] == [5, 3, 2]
    # stays of hospitals that never record medications leave the comparison (eICU), counted either way
    no_med = pl.DataFrame({"stay_id": [6]}, schema={"stay_id": pl.Int64})
    out, rows, stats = exposure_criteria(c, CohortDefinition(), no_med, "1 of 2 hospitals")
    assert 6 not in out["stay_id"].to_list() and rows[0] == ("hospital records medications (CS exposure verifiable)", 5, "1 of 2 hospitals")
    out, rows, stats = exposure_criteria(c, CohortDefinition(exclude_hospitals_without_medication=False), no_med)
    assert 6 in out["stay_id"].to_list() and stats["n_cohort_hospitals_without_medication"] == 1


def test_event_times():
    c = pl.DataFrame(
        {
            "t0_h": [5, 5, -3],
            "death_h": [100.0, None, None],
            "icu_out_h": [50.0, 30.0, 20.0],
            "hosp_out_h": [100.0, 200.0, None],
            "followup_end_h": [9000.0, 9000.0, 4.0],
        },
        schema_overrides={"t0_h": pl.Int32},
    )
    out, n_neg = event_times(c)
    assert out.select("death_h", "icu_discharge_h", "hospital_discharge_h", "followup_end_h").rows() == [
        (95.0, 45.0, 95.0, 95.0),  # follow-up of a recorded death ends at the death
        (None, 25.0, 195.0, 8995.0),
        (None, 23.0, None, 7.0),
    ]
    assert n_neg == 0
    out, n_neg = event_times(c.with_columns(pl.lit(60).cast(pl.Int32).alias("t0_h")))
    assert n_neg == 4 and out["icu_discharge_h"].min() == 0.0  # inconsistent records: clipped to time zero and counted


def test_public_stats_withhold_small_dose_summaries():
    stats = {"n_cs": 4, "n_cs_dose_known": 4, "cs_hydrocortisone_eq_mg_24h_median": 350.0}
    out = common.public_stats(stats, 10)
    assert out["cs_hydrocortisone_eq_mg_24h_median"] is None and out["n_cs"] is None
    assert common.public_stats({**stats, "n_cs_dose_known": 12}, 10)["cs_hydrocortisone_eq_mg_24h_median"] == 350.0


# ----------------------------------------------------------------------------- open demos
@pytest.fixture(scope="module")
def mimic_demo(base_config, concepts, dictionary):
    if not (MIMIC / "hosp" / "emar.csv.gz").is_file():
        pytest.skip("../shared/data/mimic-iv-demo-2.2 absent")
    return mimic_iv.ingest(MIMIC, "mimic_iv_demo", base_config, concepts, dictionary)


@pytest.fixture(scope="module")
def eicu_demo(base_config, concepts, dictionary):
    if not EICU.is_dir():
        pytest.skip("../shared/data/eicu-crd-demo-2.0.1 absent")
    return eicu.ingest(EICU, "eicu_demo", base_config, concepts, dictionary)


@pytest.mark.realdata
def test_demo_emar_statuses_given_or_not(concepts):
    if not (MIMIC / "hosp" / "emar.csv.gz").is_file():
        pytest.skip("../shared/data/mimic-iv-demo-2.2 absent")
    statuses = pl.read_csv(MIMIC / "hosp" / "emar.csv.gz", infer_schema=False, columns=["event_txt"])["event_txt"].drop_nulls().unique()
    given = set(statuses.filter(statuses.str.strip_chars().str.contains(AdministrationSettings.from_concepts(concepts).emar_given_regex)))
    assert given == {
        "Administered", "Delayed Administered", "Partial Administered", "Administered in Other Location", "Administered Bolus from IV Drip",
        "Started", "Delayed Started", "Started in Other Location", "Restarted",
    }
    assert {"Not Given", "Hold Dose", "Not Started", "Stopped", "Not Given per Sliding Scale", "Confirmed", "Flushed"} <= set(statuses) - given


@pytest.mark.realdata
def test_demo_mimic_exposure(mimic_demo, base_config, concepts, dictionary):
    c, st = mimic_demo.cohort, mimic_demo.stats
    treated = c.filter(pl.col("cs"))
    # the IV methylprednisolone given 1.2 h after time zero exists only in eMAR: now seen, 125 mg x 5
    early = treated.filter(pl.col("cs_start_h") < 2)
    assert early.select("cs_drug", "cs_hydrocortisone_eq_mg_24h").rows() == [("methylprednisolone", 625.0)]
    # hydrocortisone 100 mg q8h then 50 mg q6h (a change order): 350 mg in the first 24 h, not 500 mg
    assert 350.0 in treated["cs_hydrocortisone_eq_mg_24h"].to_list() and 500.0 not in treated["cs_hydrocortisone_eq_mg_24h"].to_list()
    assert "fludrocortisone" not in treated["cs_drug"].to_list()  # fludrocortisone alone is no treatment
    assert st["n_cs_prevalent_users"] == 1 and c["cs_before_t0"].sum() == 0
    # 25 of the 39 cohort ICU stays are not documented in eMAR (some in admissions with eMAR on the ward only)
    assert st["n_cohort_icu_stays_without_emar"] == 25 and st["n_cs_in_icu_stays_without_emar"] == 3
    assert c.filter(pl.col("cs"))["cs_first_h"].to_list() == treated["cs_start_h"].to_list()
    assert c["followup_end_h"].min() >= c["hospital_discharge_h"].min() and st["n_event_times_clipped_to_t0"] == 0
    # the literal per-admission rule loses the hydrocortisone given in an ICU stay whose admission has eMAR on the ward only
    adm = mimic_iv.ingest(MIMIC, "m", base_config, {**concepts, "cs_administration": {**concepts["cs_administration"], "emar_coverage": "admission"}}, dictionary)
    assert int(adm.cohort["cs"].sum()) == 4 and int(c["cs"].sum()) == 5


@pytest.mark.realdata
def test_demo_eicu_exposure(eicu_demo, base_config, concepts, dictionary):
    c, st = eicu_demo.cohort, eicu_demo.stats
    assert (st["n_hospitals"], st["n_hospitals_without_medication"], st["n_cohort_hospitals_without_medication"]) == (186, 42, 32)
    assert st["n_cs_prevalent_users"] == 15 and int(c["cs"].sum()) == 19
    # duplicated 'hydrocortisone 200 mg ONCE X1' rows then 100 mg q 8 hour: 400 mg, not 700 mg
    dose = dict(c.select("stay_id", "cs_hydrocortisone_eq_mg_24h").iter_rows())
    assert dose["2093906"] == pytest.approx(400.0) and 700.0 not in dose.values()
    assert c.filter(pl.col("cs"))["cs_hydrocortisone_eq_mg_24h"].drop_nulls().median() == pytest.approx(240.03)
    # route-less 'glucocorticoid administration' treatment entries: 2 more treated stays when counted
    counts = {}
    for policy in ("all", "none"):
        res = eicu.ingest(EICU, "e", {**base_config, "cohort_definition": {**base_config["cohort_definition"], "eicu_treatment_glucocorticoids": policy}}, concepts, dictionary)
        counts[policy] = int(res.cohort["cs"].sum())
    assert counts == {"all": 21, "none": 17}
    # eICU follows vital status to hospital discharge only
    assert (c["followup_end_h"] == c["hospital_discharge_h"]).all()
