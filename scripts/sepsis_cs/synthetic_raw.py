"""Synthetic MIMIC-IV and eICU-CRD raw tables in the real schemas, at a fraction of the real row counts.

For the full-scale benchmark (``benchmarks/full_scale.py``, issue 16): the adapters read these folders
as they read the credentialed databases.  Nothing here is real data: every value is drawn from simple
distributions chosen to look like the databases (item and drug codes, units, charting densities,
offsets), with a share of stays planted as septic (an antibiotic with a culture, organ dysfunction in
the vitals and labs), of septic stays treated with a corticosteroid, ventilated or on vasopressors.

- ``scale`` multiplies the real row counts (:data:`REAL_ROWS`, MIMIC-IV 3.1 and eICU-CRD 2.0; 1.0 = the
  real size).  Event tables are written chunk by chunk (a few thousand admissions or stays at a time) so
  memory stays small at any scale; every file gets the real header (:data:`SCHEMAS`), columns no adapter
  reads are left empty unless cheap to fill.
- Deterministic: one seed; each chunk draws from its own generator seeded by (seed, database, chunk).
- Formats: ``csv.gz`` (as distributed on PhysioNet) or ``parquet`` (typed columns).

Rows per table come out close to ``scale x`` the real count (Poisson draws plus the planted rows);
:func:`generate` returns the rows actually written, which the benchmark reports.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

TS = "%Y-%m-%d %H:%M:%S"
US_H = 3_600_000_000  # microseconds per hour
EPOCH = int(np.datetime64("2110-01-01T00:00:00", "us").astype(np.int64))

#: Real row counts (MIMIC-IV 3.1; eICU-CRD 2.0). Counts of the issue where it gives them, else from the
#: databases' documentation (rounded); icustays / patient = ICU stays.
REAL_ROWS = {
    "mimic_iv": {
        "patients": 364_627, "admissions": 546_028, "icustays": 94_458, "chartevents": 432_997_491, "labevents": 158_374_764,
        "emar": 42_808_593, "emar_detail": 87_371_064, "prescriptions": 20_292_611, "pharmacy": 17_847_567, "inputevents": 10_953_713,
        "outputevents": 5_359_395, "procedureevents": 808_706, "microbiologyevents": 3_988_224, "diagnoses_icd": 6_364_488,
        "services": 593_071,
    },
    "eicu": {
        "patient": 200_859, "nurseCharting": 151_604_232, "vitalPeriodic": 146_671_642, "lab": 39_132_531, "vitalAperiodic": 25_075_074,
        "respiratoryCharting": 20_168_176, "intakeOutput": 12_030_289, "physicalExam": 9_212_316, "medication": 7_301_853,
        "infusiondrug": 4_803_719, "treatment": 3_688_745, "diagnosis": 2_710_672, "pastHistory": 1_149_180, "admissiondrug": 874_920,
        "admissionDx": 626_858, "apachePatientResult": 297_064, "microLab": 16_996,
    },
}

#: Real headers (PhysioNet MIMIC-IV 3.1 / eICU-CRD 2.0 documentation; the open demos have the same).
SCHEMAS = {
    "mimic_iv": {
        "hosp/patients": "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod",
        "hosp/admissions": "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,admission_location,discharge_location,"
        "insurance,language,marital_status,race,edregtime,edouttime,hospital_expire_flag",
        "hosp/diagnoses_icd": "subject_id,hadm_id,seq_num,icd_code,icd_version",
        "hosp/services": "subject_id,hadm_id,transfertime,prev_service,curr_service",
        "hosp/labevents": "labevent_id,subject_id,hadm_id,specimen_id,itemid,order_provider_id,charttime,storetime,value,valuenum,valueuom,"
        "ref_range_lower,ref_range_upper,flag,priority,comments",
        "hosp/microbiologyevents": "microevent_id,subject_id,hadm_id,micro_specimen_id,order_provider_id,chartdate,charttime,spec_itemid,"
        "spec_type_desc,test_seq,storedate,storetime,test_itemid,test_name,org_itemid,org_name,isolate_num,quantity,ab_itemid,ab_name,"
        "dilution_text,dilution_comparison,dilution_value,interpretation,comments",
        "hosp/prescriptions": "subject_id,hadm_id,pharmacy_id,poe_id,poe_seq,order_provider_id,starttime,stoptime,drug_type,drug,"
        "formulary_drug_cd,gsn,ndc,prod_strength,form_rx,dose_val_rx,dose_unit_rx,form_val_disp,form_unit_disp,doses_per_24_hrs,route",
        "hosp/pharmacy": "subject_id,hadm_id,pharmacy_id,poe_id,starttime,stoptime,medication,proc_type,status,entertime,verifiedtime,route,"
        "frequency,disp_sched,infusion_type,sliding_scale,lockout_interval,basal_rate,one_hr_max,doses_per_24_hrs,duration,"
        "duration_interval,expiration_value,expiration_unit,expirationdate,dispensation,fill_quantity",
        "hosp/emar": "subject_id,hadm_id,emar_id,emar_seq,poe_id,pharmacy_id,enter_provider_id,charttime,medication,event_txt,scheduletime,storetime",
        "hosp/emar_detail": "subject_id,emar_id,emar_seq,parent_field_ordinal,administration_type,pharmacy_id,barcode_type,reason_for_no_barcode,"
        "complete_dose_not_given,dose_due,dose_due_unit,dose_given,dose_given_unit,will_remainder_of_dose_be_given,product_amount_given,"
        "product_unit,product_code,product_description,product_description_other,prior_infusion_rate,infusion_rate,infusion_rate_adjustment,"
        "infusion_rate_adjustment_amount,infusion_rate_unit,route,infusion_complete,completion_interval,new_iv_bag_hung,"
        "continued_infusion_in_other_location,restart_interval,side,site,non_formulary_visual_verification",
        "icu/icustays": "subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los",
        "icu/chartevents": "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,warning",
        "icu/outputevents": "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valueuom",
        "icu/inputevents": "subject_id,hadm_id,stay_id,caregiver_id,starttime,endtime,storetime,itemid,amount,amountuom,rate,rateuom,orderid,"
        "linkorderid,ordercategoryname,secondaryordercategoryname,ordercomponenttypedescription,ordercategorydescription,patientweight,"
        "totalamount,totalamountuom,isopenbag,continueinnextdept,statusdescription,originalamount,originalrate",
        "icu/procedureevents": "subject_id,hadm_id,stay_id,caregiver_id,starttime,endtime,storetime,itemid,value,valueuom,location,"
        "locationcategory,orderid,linkorderid,ordercategoryname,ordercategorydescription,patientweight,isopenbag,continueinnextdept,"
        "statusdescription,ORIGINALAMOUNT,ORIGINALRATE",
    },
    "eicu": {
        "patient": "patientunitstayid,patienthealthsystemstayid,gender,age,ethnicity,hospitalid,wardid,apacheadmissiondx,admissionheight,"
        "hospitaladmittime24,hospitaladmitoffset,hospitaladmitsource,hospitaldischargeyear,hospitaldischargetime24,hospitaldischargeoffset,"
        "hospitaldischargelocation,hospitaldischargestatus,unittype,unitadmittime24,unitadmitsource,unitvisitnumber,unitstaytype,"
        "admissionweight,dischargeweight,unitdischargetime24,unitdischargeoffset,unitdischargelocation,unitdischargestatus,uniquepid",
        "apachePatientResult": "apachepatientresultsid,patientunitstayid,physicianspeciality,physicianinterventioncategory,acutephysiologyscore,"
        "apachescore,apacheversion,predictedicumortality,actualicumortality,predictediculos,actualiculos,predictedhospitalmortality,"
        "actualhospitalmortality,predictedhospitallos,actualhospitallos,preopmi,preopcardiaccath,ptcawithin24h,unabridgedunitlos,"
        "unabridgedhosplos,actualventdays,predventdays,unabridgedactualventdays",
        "admissionDx": "admissiondxid,patientunitstayid,admitdxenteredoffset,admitdxpath,admitdxname,admitdxtext",
        "diagnosis": "diagnosisid,patientunitstayid,activeupondischarge,diagnosisoffset,diagnosisstring,icd9code,diagnosispriority",
        "pastHistory": "pasthistoryid,patientunitstayid,pasthistoryoffset,pasthistoryenteredoffset,pasthistorynotetype,pasthistorypath,"
        "pasthistoryvalue,pasthistoryvaluetext",
        "medication": "medicationid,patientunitstayid,drugorderoffset,drugstartoffset,drugivadmixture,drugordercancelled,drugname,drughiclseqno,"
        "dosage,routeadmin,frequency,loadingdose,prn,drugstopoffset,gtc",
        "admissiondrug": "admissiondrugid,patientunitstayid,drugoffset,drugenteredoffset,drugnotetype,specialtytype,usertype,rxincluded,"
        "writtenineicu,drugname,drugdosage,drugunit,drugadmitfrequency,drughiclseqno",
        "infusiondrug": "infusiondrugid,patientunitstayid,infusionoffset,drugname,drugrate,infusionrate,drugamount,volumeoffluid,patientweight",
        "treatment": "treatmentid,patientunitstayid,treatmentoffset,treatmentstring,activeupondischarge",
        "microLab": "microlabid,patientunitstayid,culturetakenoffset,culturesite,organism,antibiotic,sensitivitylevel",
        "lab": "labid,patientunitstayid,labresultoffset,labtypeid,labname,labresult,labresulttext,labmeasurenamesystem,labmeasurenameinterface,"
        "labresultrevisedoffset",
        "vitalPeriodic": "vitalperiodicid,patientunitstayid,observationoffset,temperature,sao2,heartrate,respiration,cvp,etco2,systemicsystolic,"
        "systemicdiastolic,systemicmean,pamean,pasystolic,padiastolic,st1,st2,st3,icp",
        "vitalAperiodic": "vitalaperiodicid,patientunitstayid,observationoffset,noninvasivesystolic,noninvasivediastolic,noninvasivemean,paop,"
        "cardiacoutput,cardiacinput,svr,svri,pvr,pvri",
        "nurseCharting": "nursingchartid,patientunitstayid,nursingchartoffset,nursingchartentryoffset,nursingchartcelltypecat,"
        "nursingchartcelltypevallabel,nursingchartcelltypevalname,nursingchartvalue",
        "respiratoryCharting": "respchartid,patientunitstayid,respchartoffset,respchartentryoffset,respcharttypecat,respchartvaluelabel,respchartvalue",
        "intakeOutput": "intakeoutputid,patientunitstayid,intakeoutputoffset,intaketotal,outputtotal,dialysistotal,nettotal,intakeoutputentryoffset,"
        "cellpath,celllabel,cellvaluenumeric,cellvaluetext",
        "physicalExam": "physicalexamid,patientunitstayid,physicalexamoffset,physicalexampath,physicalexamvalue,physicalexamtext",
    },
}
SCHEMAS = {db: {t: cols.split(",") for t, cols in tables.items()} for db, tables in SCHEMAS.items()}


def table_name(path: str) -> str:
    """``hosp/labevents`` -> ``labevents``."""
    return path.rsplit("/", 1)[-1]


# ----------------------------------------------------------------------------- writing
class TableWriter:
    """Appends chunks to one table file (single gzip stream, or Parquet row groups) in the real column order."""

    def __init__(self, path: Path, columns: list[str], fmt: str):
        self.path, self.columns, self.fmt = path, columns, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows, self._fh, self._pq, self._schema = 0, None, None, None

    def write(self, df: pl.DataFrame) -> None:
        extra = set(df.columns) - set(self.columns)
        if extra:
            raise ValueError(f"{self.path.name}: columns not in the real schema: {sorted(extra)}")
        df = df.select([pl.col(c) if c in df.columns else pl.lit(None, dtype=pl.String).alias(c) for c in self.columns])
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self._schema is None:
                self._schema = {c: (pl.String if t == pl.Null else t) for c, t in df.schema.items()}
            df = df.cast(self._schema)  # type: ignore[arg-type]
            tbl = df.to_arrow()
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, tbl.schema, compression="zstd")
            self._pq.write_table(tbl)
        else:
            if self._fh is None:
                self._fh = gzip.open(self.path, "wb", compresslevel=1)
            self._fh.write(df.write_csv(include_header=self.rows == 0 and self._fh.tell() == 0, datetime_format=TS, null_value="").encode())
        self.rows += df.height

    def close(self) -> None:
        if self.rows == 0:  # header only
            self.write(pl.DataFrame({c: pl.Series([], dtype=pl.String) for c in self.columns}))
        if self._fh is not None:
            self._fh.close()
        if self._pq is not None:
            self._pq.close()


@dataclass
class Writers:
    root: Path
    database: str
    fmt: str = "csv.gz"
    open: dict = field(default_factory=dict)

    def path(self, table: str) -> Path:
        full = next(p for p in SCHEMAS[self.database] if table_name(p) == table)
        return self.root / f"{full}.{self.fmt}"

    def __call__(self, table: str, df: pl.DataFrame) -> None:
        if table not in self.open:
            full = next(p for p in SCHEMAS[self.database] if table_name(p) == table)
            self.open[table] = TableWriter(self.path(table), SCHEMAS[self.database][full], self.fmt)
        self.open[table].write(df)

    def close(self) -> dict:
        for table in (table_name(p) for p in SCHEMAS[self.database]):
            if table not in self.open:  # a table no chunk produced rows for still gets its header
                self.open[table] = TableWriter(self.path(table), SCHEMAS[self.database][next(p for p in SCHEMAS[self.database] if table_name(p) == table)], self.fmt)
        for w in self.open.values():
            w.close()
        return {t: w.rows for t, w in self.open.items()}


# ----------------------------------------------------------------------------- drawing helpers
def _pick(rng, n: int, choices, weights=None):
    choices = np.asarray(choices, dtype=object)
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    return choices[rng.choice(len(choices), size=n, p=p)]


def _counts(rng, weight: np.ndarray, total: float) -> np.ndarray:
    """Poisson row counts per unit, proportional to ``weight``, summing to about ``total``."""
    w = np.asarray(weight, float)
    s = w.sum()
    return rng.poisson(w * (total / s)) if s > 0 else np.zeros(len(w), int)


def _expand(units: pl.DataFrame, counts: np.ndarray) -> pl.DataFrame:
    return units[np.repeat(np.arange(units.height), counts)]


def _dt(us) -> pl.Series:
    return pl.Series(np.asarray(us, dtype=np.int64)).cast(pl.Datetime("us"))


@dataclass(frozen=True)
class Items:
    """Numeric items: code, weight, normal mean, septic mean, sd, lower, upper, decimals, unit."""

    rows: list

    def arrays(self):
        cols = list(zip(*self.rows))
        return {k: np.asarray(v, dtype=object if k in ("code", "unit") else float) for k, v in zip(("code", "w", "mn", "ms", "sd", "lo", "hi", "dec", "unit"), cols)}

    def draw(self, rng, septic: np.ndarray, which: np.ndarray | None = None):
        """``(item index, value)`` per row; ``which`` forces the item index."""
        a = self.arrays()
        n = len(septic)
        idx = rng.choice(len(a["w"]), size=n, p=a["w"] / a["w"].sum()) if which is None else which
        mean = np.where(septic, a["ms"][idx], a["mn"][idx])
        v = np.clip(rng.normal(mean, a["sd"][idx]), a["lo"][idx], a["hi"][idx])
        scale = 10.0 ** a["dec"][idx]
        v = np.round(v * scale) / scale
        odd = rng.random(n) < 0.005  # implausible charting (typos, unit errors)
        v[odd] = v[odd] * 100
        return idx, v, a


def _num_text(v: np.ndarray) -> pl.Series:
    """Values as the databases print them (whole numbers without a decimal point)."""
    s = pl.Series(v, dtype=pl.Float64)
    return pl.select(pl.when(s == s.round(0)).then(s.round(0).cast(pl.Int64, strict=False).cast(pl.String)).otherwise(s.cast(pl.String))).to_series()


def _chunks(n: int, size: int):
    for i, start in enumerate(range(0, n, size)):
        yield i, start, min(n, start + size)
def _years(us: np.ndarray) -> np.ndarray:
    return np.asarray(us, dtype="datetime64[us]").astype("datetime64[Y]").astype(int) + 1970


@dataclass(frozen=True)
class Shares:
    """Planted shares of stays (not tuned to any result: round numbers of the order seen in the databases)."""

    septic: float = 0.40
    cs_if_septic: float = 0.18
    cs_if_not: float = 0.04
    vent_if_septic: float = 0.50
    vent_if_not: float = 0.25
    shock_if_septic: float = 0.45
    chronic_cs: float = 0.03


def _flags(rng, n: int, sh: Shares) -> dict:
    septic = rng.random(n) < sh.septic
    return {
        "septic": septic,
        "cs": rng.random(n) < np.where(septic, sh.cs_if_septic, sh.cs_if_not),
        "vent": rng.random(n) < np.where(septic, sh.vent_if_septic, sh.vent_if_not),
        "shock": septic & (rng.random(n) < sh.shock_if_septic),
        "chronic_cs": rng.random(n) < sh.chronic_cs,
    }


# ============================================================================= MIMIC-IV
CHART_ITEMS = Items([
    # code, weight, normal mean, septic mean, sd, lo, hi, decimals, unit
    (220045, 9, 85, 105, 15, 25, 220, 0, "bpm"), (220052, 3, 78, 63, 10, 25, 160, 0, "mmHg"), (220181, 4, 80, 64, 11, 25, 160, 0, "mmHg"),
    (225312, 0.5, 78, 63, 10, 25, 160, 0, "mmHg"), (223761, 1.5, 98.6, 100.8, 1.0, 88, 108, 1, "°F"), (223762, 0.3, 37.0, 38.2, 0.6, 31, 42, 1, "°C"),
    (220210, 9, 18, 25, 5, 3, 60, 0, "insp/min"), (224690, 1, 18, 24, 5, 3, 60, 0, "insp/min"), (220277, 9, 96, 93, 3, 60, 100, 0, "%"),
    (220179, 4, 120, 100, 18, 50, 240, 0, "mmHg"), (220180, 4, 65, 54, 10, 20, 140, 0, "mmHg"), (220050, 3, 120, 98, 18, 50, 240, 0, "mmHg"),
    (220051, 3, 62, 52, 10, 20, 140, 0, "mmHg"), (220739, 1.2, 3.7, 3.0, 0.7, 1, 4, 0, ""), (223900, 1.2, 4.5, 3.2, 1.0, 1, 5, 0, ""),
    (223901, 1.2, 5.8, 5.0, 0.7, 1, 6, 0, ""), (225664, 1, 130, 160, 40, 20, 600, 0, "mg/dL"), (220621, 0.4, 130, 160, 40, 20, 600, 0, "mg/dL"),
    (226537, 0.4, 130, 160, 40, 20, 600, 0, "mg/dL"), (223835, 0.5, 40, 55, 15, 21, 100, 0, "%"), (224639, 0.1, 80, 80, 18, 30, 250, 1, "kg"),
    (220074, 1, 10, 12, 4, 0, 40, 0, "mmHg"), (223791, 2, 2, 3, 2, 0, 10, 0, ""), (228096, 1.5, -1, -2, 1.5, -5, 4, 0, ""),
    (220546, 0.3, 9, 16, 4, 0.1, 80, 1, "K/uL"), (220615, 0.3, 1.0, 2.2, 0.7, 0.2, 15, 1, "mg/dL"), (227443, 0.3, 24, 19, 4, 5, 50, 0, "mEq/L"),
    (224697, 0.6, 10, 12, 3, 0, 40, 0, "cmH2O"), (224695, 0.6, 20, 24, 5, 0, 60, 0, "cmH2O"), (226253, 0.8, 96, 93, 3, 60, 100, 0, "%"),
])
CHART_TEXT = {  # other charted items with text values (valuenum empty)
    220048: ["SR (Sinus Rhythm)", "ST (Sinus Tachycardia)", "AF (Atrial Fibrillation)", "SB (Sinus Bradycardia)"],
    224650: ["None", "PVC's", "PAC's"], 224641: ["Yes", "No"], 224084: ["Bed", "Chair", "Ambulate"], 227969: ["Side rails x2", "Bed alarm on"],
    224089: ["Yes"], 228409: ["Clean, dry, intact"], 224093: ["Left side", "Right side", "Supine"],
}
VENT = {"device": 226732, "mode": 223849, "peep": 220339, "fio2": 223835, "tidal": 224685}
LAB_PANELS = {  # panel -> (weight, [(itemid, normal, septic, sd, lo, hi, dec, unit)])
    "bmp": (0.3, [(50912, 1.0, 2.3, 0.6, 0.2, 15, 1, "mg/dL"), (51006, 18, 40, 10, 2, 200, 0, "mg/dL"), (50983, 139, 136, 4, 110, 170, 0, "mEq/L"),
                  (50971, 4.1, 4.5, 0.5, 2, 8, 1, "mEq/L"), (50902, 103, 104, 4, 80, 130, 0, "mEq/L"), (50882, 25, 19, 4, 5, 45, 0, "mEq/L"),
                  (50931, 125, 160, 40, 30, 600, 0, "mg/dL"), (50868, 13, 17, 3, 3, 40, 0, "mEq/L")]),
    "cbc": (0.3, [(51265, 230, 95, 60, 5, 900, 0, "K/uL"), (51301, 9, 16, 4, 0.2, 80, 1, "K/uL"), (51222, 10.5, 9.5, 1.8, 4, 18, 1, "g/dL"),
                  (51221, 32, 29, 5, 12, 55, 1, "%"), (51248, 30, 30, 2, 20, 40, 1, "pg"), (51250, 90, 91, 6, 60, 120, 0, "fL")]),
    "lft": (0.1, [(50885, 0.8, 2.8, 0.9, 0.1, 40, 1, "mg/dL"), (50861, 35, 80, 30, 3, 3000, 0, "IU/L"), (50878, 40, 90, 35, 3, 3000, 0, "IU/L"),
                  (50863, 90, 120, 40, 10, 1000, 0, "IU/L"), (50862, 3.4, 2.6, 0.5, 1, 5.5, 1, "g/dL")]),
    "bg": (0.15, [(52033, 0, 0, 0, 0, 0, 0, ""), (50821, 110, 72, 30, 25, 500, 0, "mm Hg"), (50816, 40, 60, 15, 21, 100, 0, ""),
                  (50818, 40, 36, 6, 15, 100, 0, "mm Hg"), (50820, 7.40, 7.31, 0.06, 6.8, 7.7, 2, "units"), (50813, 1.4, 3.6, 1.0, 0.3, 20, 1, "mmol/L"),
                  (50809, 130, 160, 40, 30, 600, 0, "mg/dL"), (50802, 0, -5, 3, -25, 20, 0, "mEq/L")]),
    "crp": (0.02, [(50889, 20, 150, 50, 0.1, 500, 1, "mg/L")]),
    "coag": (0.13, [(51237, 1.2, 1.6, 0.3, 0.8, 10, 1, ""), (51274, 13, 17, 3, 9, 100, 1, "sec"), (51275, 32, 40, 8, 18, 150, 1, "sec")]),
}
SPECIMENS = [  # spec_type_desc, weight, test_name
    ("BLOOD CULTURE", 0.3, "Blood Culture, Routine"), ("URINE", 0.25, "URINE CULTURE"), ("MRSA SCREEN", 0.15, "MRSA SCREEN"),
    ("SPUTUM", 0.08, "RESPIRATORY CULTURE"), ("SWAB", 0.04, "WOUND CULTURE"), ("STOOL", 0.05, "C. difficile PCR"),
    ("Blood (CMV AB)", 0.02, "CMV IgG ANTIBODY"), ("SEROLOGY/BLOOD", 0.03, "RAPID PLASMA REAGIN TEST"), ("CATHETER TIP-IV", 0.02, "WOUND CULTURE"),
    ("PERITONEAL FLUID", 0.02, "FLUID CULTURE"), ("BRONCHOALVEOLAR LAVAGE", 0.04, "RESPIRATORY CULTURE"),
]
# drug, weight, drug_type, route, dose, unit, doses per 24 h, pharmacy frequency
DRUGS = [
    ("Sodium Chloride 0.9%  Flush", 10, "MAIN", "IV", "3", "mL", 3, "Q8H"), ("Heparin", 6, "MAIN", "SC", "5000", "UNIT", 3, "Q8H"),
    ("Acetaminophen", 6, "MAIN", "PO/NG", "650", "mg", 4, "Q6H:PRN"), ("Insulin", 5, "MAIN", "SC", "0", "UNIT", 4, "QACHS"),
    ("Potassium Chloride", 5, "MAIN", "PO", "40", "mEq", 1, "ONCE"), ("Pantoprazole", 4, "MAIN", "IV", "40", "mg", 1, "Q24H"),
    ("Docusate Sodium", 4, "MAIN", "PO", "100", "mg", 2, "BID"), ("Senna", 3, "MAIN", "PO", "8.6", "mg", 2, "BID"),
    ("Ondansetron", 3, "MAIN", "IV", "4", "mg", 4, "Q6H:PRN"), ("Furosemide", 3, "MAIN", "IV", "40", "mg", 2, "BID"),
    ("Metoprolol Tartrate", 3, "MAIN", "PO", "25", "mg", 2, "BID"), ("Magnesium Sulfate", 3, "MAIN", "IV", "2", "gm", 1, "ONCE"),
    ("Bag", 4, "BASE", "IV", "1", "BAG", 1, "ONCE"), ("Famotidine", 2, "MAIN", "IV", "20", "mg", 2, "Q12H"),
    ("OxyCODONE (Immediate Release)", 3, "MAIN", "PO", "5", "mg", 6, "Q4H:PRN"), ("Lorazepam", 1, "MAIN", "IV", "1", "mg", 1, "ONCE"),
    ("Vancomycin", 0.4, "MAIN", "IV", "1000", "mg", 2, "Q12H"), ("Piperacillin-Tazobactam", 0.25, "MAIN", "IV", "4.5", "g", 3, "Q8H"),
    ("CefTRIAXone", 0.25, "MAIN", "IV", "1", "gm", 1, "Q24H"), ("CefazoLIN", 0.3, "MAIN", "IV", "2", "g", 3, "Q8H"),
    ("MetroNIDAZOLE (FLagyl)", 0.15, "MAIN", "IV", "500", "mg", 3, "Q8H"), ("Ciprofloxacin HCl", 0.1, "MAIN", "PO", "500", "mg", 2, "Q12H"),
    ("Mupirocin Ointment 2%", 0.2, "MAIN", "TP", "1", "Appl", 2, "BID"), ("PredniSONE", 0.3, "MAIN", "PO", "40", "mg", 1, "DAILY"),
    ("Dexamethasone", 0.1, "MAIN", "IV", "4", "mg", 4, "Q6H"), ("Hydrocortisone Cream 1%", 0.1, "MAIN", "TP", "1", "Appl", 2, "BID"),
    ("Fluticasone Propionate 110mcg", 0.1, "MAIN", "IH", "2", "PUFF", 2, "BID"),
]
ABX_PLANTED = [("Vancomycin", "IV", "1000", "mg", 2, "Q12H"), ("Piperacillin-Tazobactam", "IV", "4.5", "g", 3, "Q8H"), ("CefePIME", "IV", "2", "g", 2, "Q12H")]
CS_PLANTED = [("Hydrocortisone Na Succ.", "IV", "50", "mg", 4, "Q6H"), ("MethylPREDNISolone Sodium Succ", "IV", "40", "mg", 2, "Q12H"),
              ("Dexamethasone", "IV", "6", "mg", 1, "Q24H")]
INPUT_ITEMS = [  # itemid, weight, amountuom, rate mean, rateuom, ordercategoryname
    (225158, 5, "mL", 75, "mL/hour", "02-Fluids (Crystalloids)"), (220949, 2, "mL", 50, "mL/hour", "02-Fluids (Crystalloids)"),
    (222168, 2, "mg", 30, "mcg/kg/min", "01-Drips"), (221744, 2, "mcg", 50, "mcg/hour", "01-Drips"), (225166, 1, "mEq", 10, "mEq/hour", "05-Med Bolus"),
    (221668, 1, "mg", 2, "mg/hour", "01-Drips"), (225799, 2, "mL", 0, "", "14-Oral/Gastric Intake"), (220862, 0.5, "mL", 0, "", "04-Fluids (Colloids)"),
    (225943, 1, "mL", 0, "", "06-Insulin (Non IV)"), (223258, 1, "units", 3, "units/hour", "01-Drips"),
]
OUTPUT_ITEMS = [(226559, 75), (226560, 8), (226561, 2), (226584, 1), (227488, 1), (227489, 1), (226588, 4), (226580, 3), (226576, 3), (226599, 2)]
PROC_ITEMS = [(224275, 15), (225459, 25), (225401, 20), (225402, 15), (224263, 5), (225794, 5), (229351, 5), (225805, 10)]
ICD = {  # version -> [(code, weight)]; comorbidity prefixes of config/concepts.yaml among ordinary codes
    "9": [("4019", 10), ("2724", 6), ("53081", 4), ("311", 3), ("V1582", 3), ("5849", 3), ("486", 2), ("42731", 4), ("25000", 4), ("5859", 1.5),
          ("40390", 1.5), ("4280", 3), ("4928", 1), ("496", 1.5), ("5715", 0.8), ("1629", 0.8), ("1983", 0.5), ("V5865", 0.8), ("2859", 3), ("2449", 3)],
    "10": [("I10", 10), ("E785", 6), ("K219", 4), ("F329", 3), ("Z87891", 3), ("N179", 3), ("J189", 2), ("I4891", 4), ("E119", 4), ("N189", 1.5),
           ("I129", 1.5), ("I5032", 3), ("J449", 2.5), ("K7030", 0.8), ("C3490", 0.8), ("C7951", 0.5), ("Z7952", 0.8), ("D649", 3), ("E039", 3)],
}
SERVICES = [("MED", 55), ("SURG", 10), ("CMED", 10), ("NSURG", 5), ("CSURG", 5), ("OMED", 5), ("NMED", 5), ("TRAUM", 3), ("ORTHO", 2)]
ADM_TYPES = [("EW EMER.", 45), ("EU OBSERVATION", 15), ("OBSERVATION ADMIT", 10), ("URGENT", 10), ("ELECTIVE", 7), ("SURGICAL SAME DAY ADMISSION", 6),
             ("DIRECT EMER.", 4), ("DIRECT OBSERVATION", 3)]
CAREUNITS = ["Medical Intensive Care Unit (MICU)", "Surgical Intensive Care Unit (SICU)", "Cardiac Vascular Intensive Care Unit (CVICU)",
             "Medical/Surgical Intensive Care Unit (MICU/SICU)", "Trauma SICU (TSICU)", "Coronary Care Unit (CCU)", "Neuro Intermediate"]


def mimic_entities(rng, scale: float, sh: Shares) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(patients, admissions, stays)`` with the planted flags and event times (datetimes as int64 microseconds)."""
    real = REAL_ROWS["mimic_iv"]
    n_icu = max(20, round(real["icustays"] * scale))
    n_adm = max(n_icu + 10, round(real["admissions"] * scale))
    n_pat = max(10, min(n_adm, round(real["patients"] * scale)))
    n_icu_adm = round(n_icu * 0.9)
    pat_of = np.concatenate([np.arange(n_pat), rng.integers(0, n_pat, n_adm - n_pat)])
    rng.shuffle(pat_of)
    base = EPOCH + (rng.random(n_pat) * 90 * 365.25 * 24 * US_H).astype(np.int64)
    anchor_age = np.where(rng.random(n_pat) < 0.02, rng.integers(16, 18, n_pat), np.clip(rng.normal(62, 17, n_pat), 18, 91).astype(int))
    admit = base[pat_of] + (rng.random(n_adm) * 3 * 365.25 * 24 * US_H).astype(np.int64)
    hosp_los = (np.exp(rng.normal(np.log(4 * 24), 0.8, n_adm)) * US_H).astype(np.int64)
    icu_adm = np.zeros(n_adm, bool)
    icu_adm[rng.choice(n_adm, n_icu_adm, replace=False)] = True
    adm_idx = np.flatnonzero(icu_adm)
    stay_adm = np.concatenate([adm_idx, rng.choice(adm_idx, n_icu - n_icu_adm)])
    order = np.argsort(stay_adm, kind="stable")
    stay_adm = stay_adm[order]
    first = np.r_[True, stay_adm[1:] != stay_adm[:-1]]
    icu_los = (np.clip(np.exp(rng.normal(np.log(50), 0.85, n_icu)), 4, 60 * 24) * US_H).astype(np.int64)
    intime = admit[stay_adm] + (rng.random(n_icu) * 36 * US_H).astype(np.int64)
    for _ in range(3):  # later stays of an admission start after the previous one ends
        prev_out = np.r_[0, (intime + icu_los)[:-1]]
        later = ~first & (intime <= prev_out)
        intime = np.where(later, prev_out + ((6 + rng.random(n_icu) * 66) * US_H).astype(np.int64), intime)
    outtime = intime + icu_los
    last_out = np.zeros(n_adm, np.int64)
    np.maximum.at(last_out, stay_adm, outtime)
    disch = np.maximum(admit + hosp_los, np.where(icu_adm, last_out + ((2 + rng.random(n_adm) * 160) * US_H).astype(np.int64), 0))
    f = _flags(rng, n_icu, sh)
    adm_septic = np.zeros(n_adm, bool)
    np.logical_or.at(adm_septic, stay_adm, f["septic"])
    died = rng.random(n_adm) < np.where(icu_adm, 0.10 + 0.12 * adm_septic, 0.015)
    dod = np.where(died, disch, np.where(rng.random(n_adm) < 0.08, disch + (rng.random(n_adm) * 365 * 24 * US_H).astype(np.int64), -1))
    pat_dod = np.full(n_pat, -1, np.int64)
    np.maximum.at(pat_dod, pat_of, dod)
    hadm_id = 20_000_000 + rng.permutation(n_adm)
    subject_id = 10_000_000 + np.arange(n_pat)
    patients = pl.DataFrame({
        "subject_id": subject_id, "gender": _pick(rng, n_pat, ["F", "M"], [0.44, 0.56]).astype(str), "anchor_age": anchor_age,
        "anchor_year": _years(base), "anchor_year_group": _pick(rng, n_pat, ["2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022"]).astype(str),
        "dod": _dt(np.where(pat_dod > 0, pat_dod, 0)),
    }).with_columns(pl.when(pl.Series(pat_dod) > 0).then(pl.col("dod").dt.truncate("1d")).alias("dod"))
    adm = pl.DataFrame({
        "subject_id": subject_id[pat_of], "hadm_id": hadm_id, "admittime": admit, "dischtime": disch, "died": died, "icu": icu_adm,
        "septic": adm_septic, "admission_type": _pick(rng, n_adm, *zip(*ADM_TYPES)).astype(str),
    })
    t_inf = rng.uniform(-4, 20, n_icu)
    abx_h = np.maximum(t_inf + rng.uniform(0, 4, n_icu), 0.2)
    stays = pl.DataFrame({
        "adm_row": stay_adm, "subject_id": subject_id[pat_of][stay_adm], "hadm_id": hadm_id[stay_adm], "stay_id": 30_000_000 + np.arange(n_icu),
        "intime": intime, "outtime": outtime, **f, "weight": np.clip(rng.normal(82, 20, n_icu), 35, 220).round(1),
        "abx": intime + (abx_h * US_H).astype(np.int64), "culture": intime + ((abx_h - rng.uniform(0, 10, n_icu)) * US_H).astype(np.int64),
        "cs_time": intime + ((abx_h + rng.uniform(1, 18, n_icu)) * US_H).astype(np.int64),
        "vent_start": intime + (rng.uniform(0, 6, n_icu) * US_H).astype(np.int64), "vent_h": rng.uniform(12, 120, n_icu),
        "careunit": _pick(rng, n_icu, CAREUNITS).astype(str),
    })
    return patients, adm, stays


def _hours_between(rng, start, end, n=None):
    start, end = np.asarray(start), np.asarray(end)
    return start + (rng.random(len(start) if n is None else n) * np.maximum(end - start, 1)).astype(np.int64)


def _mimic_hosp_static(w: Writers, rng, patients: pl.DataFrame, adm: pl.DataFrame, stays: pl.DataFrame) -> None:
    w("patients", patients)
    a = adm.with_columns(_dt(adm["admittime"]).alias("admittime"), _dt(adm["dischtime"]).alias("dischtime"))
    w("admissions", a.select(
        "subject_id", "hadm_id", "admittime", "dischtime", pl.when(pl.col("died")).then(pl.col("dischtime")).alias("deathtime"), "admission_type",
        pl.lit("EMERGENCY ROOM").alias("admission_location"), pl.when(pl.col("died")).then(pl.lit("DIED")).otherwise(pl.lit("HOME")).alias("discharge_location"),
        pl.lit("Medicare").alias("insurance"), pl.lit("ENGLISH").alias("language"), pl.lit("WHITE").alias("race"), pl.col("died").cast(pl.Int8).alias("hospital_expire_flag"),
    ))
    w("icustays", stays.select(
        "subject_id", "hadm_id", "stay_id", pl.col("careunit").alias("first_careunit"), pl.col("careunit").alias("last_careunit"),
        _dt(stays["intime"]).alias("intime"), _dt(stays["outtime"]).alias("outtime"), ((pl.col("outtime") - pl.col("intime")) / (24 * US_H)).round(4).alias("los"),
    ))
    n = adm.height
    k = 1 + (rng.random(n) < REAL_ROWS["mimic_iv"]["services"] / REAL_ROWS["mimic_iv"]["admissions"] - 1).astype(int)
    sv = _expand(adm.select("subject_id", "hadm_id", "admittime"), k)
    w("services", sv.select("subject_id", "hadm_id", _dt(sv["admittime"]).alias("transfertime"), pl.Series("curr_service", _pick(rng, sv.height, *zip(*SERVICES)).astype(str))))


def _mimic_chartevents(rng, st: pl.DataFrame, total: float) -> pl.DataFrame:
    los = (st["outtime"] - st["intime"]).to_numpy() / US_H
    n_text = 0.15
    ev = _expand(st.select("subject_id", "hadm_id", "stay_id", "intime", "outtime", "septic", "vent"), _counts(rng, los, total))
    n = ev.height
    t = _hours_between(rng, ev["intime"].to_numpy() - US_H, ev["outtime"].to_numpy())
    is_text = rng.random(n) < n_text
    idx, v, a = CHART_ITEMS.draw(rng, ev["septic"].to_numpy())
    codes = a["code"][idx].astype(np.int64)
    text_codes = np.array(list(CHART_TEXT), dtype=np.int64)
    tc = text_codes[rng.integers(0, len(text_codes), n)]
    text_vals = np.array([CHART_TEXT[c][0] for c in tc], dtype=object)
    alt = rng.random(n) < 0.3
    text_vals[alt] = [CHART_TEXT[c][-1] for c in tc[alt]]
    verbal_ett = (codes == 223900) & ev["vent"].to_numpy() & (rng.random(n) < 0.7)
    value = _num_text(v).to_numpy().astype(object)
    value[verbal_ett] = "No Response-ETT"
    v = np.where(verbal_ett, 1.0, v)
    value = np.where(is_text, text_vals, value)
    out = pl.DataFrame({
        "subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "stay_id": ev["stay_id"], "caregiver_id": rng.integers(10_000, 99_999, n),
        "charttime": _dt(t // 60_000_000 * 60_000_000), "storetime": _dt(t + (rng.random(n) * US_H).astype(np.int64)),
        "itemid": np.where(is_text, tc, codes), "value": pl.Series(value, dtype=pl.String),
        "valuenum": pl.Series(np.where(is_text, np.nan, v)).fill_nan(None), "valueuom": pl.Series(np.where(is_text, "", a["unit"][idx]).astype(str)).replace("", None),
    })
    return pl.concat([out, _mimic_vent_chart(rng, st)], how="diagonal_relaxed")


def _mimic_vent_chart(rng, st: pl.DataFrame) -> pl.DataFrame:
    """Ventilated stays: device / mode / PEEP / FiO2 / tidal volume hourly while ventilated; others: oxygen device every 4 h."""
    vent = st.filter(pl.col("vent"))
    hours = np.maximum(1, np.minimum(vent["vent_h"].to_numpy(), (vent["outtime"] - vent["vent_start"]).to_numpy() / US_H)).astype(int)
    ev = _expand(vent.select("subject_id", "hadm_id", "stay_id", "vent_start", "septic"), hours)
    j = np.arange(ev.height) - np.repeat(np.cumsum(hours) - hours, hours)
    t = ev["vent_start"].to_numpy() + j * US_H
    parts = []
    for code, val, num, uom in ((VENT["device"], "Endotracheal tube", None, None), (VENT["mode"], "CMV/ASSIST/AutoFlow", None, None),
                                (VENT["peep"], None, (5, 14), "cmH2O"), (VENT["fio2"], None, (30, 80), "%"), (VENT["tidal"], None, (380, 560), "mL")):
        x = rng.integers(*num, ev.height).astype(float) if num else np.full(ev.height, np.nan)
        parts.append(pl.DataFrame({
            "subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "stay_id": ev["stay_id"], "charttime": _dt(t), "storetime": _dt(t + 600_000_000),
            "itemid": np.full(ev.height, code), "value": pl.Series([val] * ev.height, dtype=pl.String) if val else _num_text(x),
            "valuenum": pl.Series(x).fill_nan(None), "valueuom": pl.Series([uom] * ev.height, dtype=pl.String),
        }))
    other = st.filter(~pl.col("vent"))
    k = np.maximum(1, ((other["outtime"] - other["intime"]).to_numpy() / US_H / 4).astype(int))
    ev = _expand(other.select("subject_id", "hadm_id", "stay_id", "intime"), k)
    j = np.arange(ev.height) - np.repeat(np.cumsum(k) - k, k)
    t = ev["intime"].to_numpy() + j * 4 * US_H + 1_800_000_000
    parts.append(pl.DataFrame({
        "subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "stay_id": ev["stay_id"], "charttime": _dt(t), "storetime": _dt(t + 600_000_000),
        "itemid": np.full(ev.height, VENT["device"]), "value": pl.Series(_pick(rng, ev.height, ["Nasal cannula", "None", "Face tent"], [6, 3, 1]).astype(str)),
        "valuenum": pl.Series([None] * ev.height, dtype=pl.Float64), "valueuom": pl.Series([None] * ev.height, dtype=pl.String),
    }))
    # admission weight, once
    wt = st.filter(pl.col("weight") > 0)
    parts.append(wt.select("subject_id", "hadm_id", "stay_id", _dt(wt["intime"] + 1_800_000_000).alias("charttime"), _dt(wt["intime"] + 2_400_000_000).alias("storetime"),
                           pl.lit(226512).alias("itemid"), pl.col("weight").cast(pl.String).alias("value"), pl.col("weight").alias("valuenum"), pl.lit("kg").alias("valueuom")))
    return pl.concat(parts, how="diagonal_relaxed")


def _mimic_labevents(rng, ad: pl.DataFrame, total: float, id0: int) -> pl.DataFrame:
    names = list(LAB_PANELS)
    pw = np.array([LAB_PANELS[k][0] for k in names])
    size = np.array([len(LAB_PANELS[k][1]) for k in names])
    per_panel = (pw / pw.sum() * size).sum()
    los = (ad["dischtime"] - ad["admittime"]).to_numpy() / US_H
    ev = _expand(ad.select("subject_id", "hadm_id", "admittime", "dischtime", "septic", "icu"), _counts(rng, los * np.where(ad["icu"].to_numpy(), 3, 1), total / per_panel))
    panel = rng.choice(len(names), ev.height, p=pw / pw.sum())
    t = _hours_between(rng, ev["admittime"].to_numpy(), ev["dischtime"].to_numpy())
    k = size[panel]
    rows = _expand(ev.with_columns(pl.Series("panel", panel), pl.Series("t", t), pl.Series("specimen_id", id0 + np.arange(ev.height))), k)
    j = np.arange(rows.height) - np.repeat(np.cumsum(k) - k, k)
    spec = np.array([r for n in names for r in LAB_PANELS[n][1]], dtype=object)
    start = np.r_[0, np.cumsum(size)[:-1]]
    item = spec[start[rows["panel"].to_numpy()] + j]
    f = lambda i: np.array([r[i] for r in item])  # noqa: E731
    septic = rows["septic"].to_numpy()
    v = np.clip(rng.normal(np.where(septic, f(2), f(1)).astype(float), f(3).astype(float)), f(4).astype(float), f(5).astype(float))
    sc = 10.0 ** f(6).astype(float)
    v = np.round(v * sc) / sc
    code = f(0).astype(np.int64)
    is_spec = code == 52033
    value = _num_text(v).to_numpy().astype(object)
    value[is_spec] = np.where(rng.random(is_spec.sum()) < np.where(rows["icu"].to_numpy()[is_spec], 0.75, 0.3), "ART.", "VEN.")
    n = rows.height
    return pl.DataFrame({
        "labevent_id": id0 + np.arange(n), "subject_id": rows["subject_id"], "hadm_id": rows["hadm_id"], "specimen_id": rows["specimen_id"], "itemid": code,
        "charttime": _dt(rows["t"].to_numpy()), "storetime": _dt(rows["t"].to_numpy() + (rng.uniform(0.3, 3, n) * US_H).astype(np.int64)),
        "value": pl.Series(value, dtype=pl.String), "valuenum": pl.Series(np.where(is_spec, np.nan, v)).fill_nan(None),
        "valueuom": pl.Series(f(7).astype(str)).replace("", None), "priority": _pick(rng, n, ["ROUTINE", "STAT"], [0.6, 0.4]).astype(str),
    })


def _mimic_micro(rng, ad: pl.DataFrame, st: pl.DataFrame, total: float, id0: int) -> pl.DataFrame:
    los = (ad["dischtime"] - ad["admittime"]).to_numpy() / US_H
    per_spec = 2.5
    filler = _expand(ad.select("subject_id", "hadm_id", "admittime", "dischtime"), _counts(rng, los * np.where(ad["icu"].to_numpy(), 3, 1), total / per_spec))
    ft = _hours_between(rng, filler["admittime"].to_numpy(), filler["dischtime"].to_numpy())
    sp = rng.choice(len(SPECIMENS), filler.height, p=np.array([s[1] for s in SPECIMENS]) / sum(s[1] for s in SPECIMENS))
    sep = st.filter(pl.col("septic"))
    planted = _expand(sep.select("subject_id", "hadm_id", "culture"), np.full(sep.height, 2))
    spec = pl.concat([
        filler.select("subject_id", "hadm_id", pl.Series("t", ft), pl.Series("sp", sp)),
        planted.select("subject_id", "hadm_id", pl.col("culture").alias("t"), pl.Series("sp", np.where(rng.random(planted.height) < 0.7, 0, 3))),
    ])
    spec = spec.with_columns(pl.Series("micro_specimen_id", id0 + np.arange(spec.height)))
    k = 1 + rng.poisson(per_spec - 1, spec.height)
    rows = _expand(spec, k)
    n = rows.height
    spi = rows["sp"].to_numpy()
    t = rows["t"].to_numpy()
    no_time = rng.random(n) < 0.05
    positive = rng.random(n) < 0.3
    return pl.DataFrame({
        "microevent_id": id0 + np.arange(n), "subject_id": rows["subject_id"], "hadm_id": rows["hadm_id"], "micro_specimen_id": rows["micro_specimen_id"],
        "chartdate": _dt(t).dt.truncate("1d"), "charttime": pl.Series(np.where(no_time, 0, t)).cast(pl.Datetime("us")).alias("charttime"),
        "spec_itemid": 70000 + spi, "spec_type_desc": pl.Series([SPECIMENS[i][0] for i in spi]), "test_seq": 1,
        "test_itemid": 90000 + spi, "test_name": pl.Series([SPECIMENS[i][2] for i in spi]),
        "org_name": pl.Series(np.where(positive, "ESCHERICHIA COLI", "")).replace("", None),
        "ab_name": pl.Series(np.where(positive, "CEFTRIAXONE", "")).replace("", None),
    }).with_columns(pl.when(pl.Series(no_time)).then(None).otherwise(pl.col("charttime")).alias("charttime"))


def _mimic_orders(rng, ad: pl.DataFrame, st: pl.DataFrame, total: float, id0: int) -> dict[str, pl.DataFrame]:
    """prescriptions, pharmacy, emar and emar_detail of one chunk (orders, their pharmacy entry and administrations)."""
    los = (ad["dischtime"] - ad["admittime"]).to_numpy() / US_H
    ev = _expand(ad.select("subject_id", "hadm_id", "admittime", "dischtime"), _counts(rng, los * np.where(ad["icu"].to_numpy(), 2.5, 1), total))
    d = rng.choice(len(DRUGS), ev.height, p=np.array([x[1] for x in DRUGS]) / sum(x[1] for x in DRUGS))
    start = _hours_between(rng, ev["admittime"].to_numpy(), ev["dischtime"].to_numpy())
    col = lambda i, idx, table: np.array([table[j][i] for j in idx], dtype=object)  # noqa: E731
    filler = pl.DataFrame({
        "subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "start": start, "hours": np.exp(rng.normal(np.log(48), 1.0, ev.height)),
        "drug": col(0, d, DRUGS).astype(str), "drug_type": col(2, d, DRUGS).astype(str), "route": col(3, d, DRUGS).astype(str),
        "dose": col(4, d, DRUGS).astype(str), "unit": col(5, d, DRUGS).astype(str), "per_day": col(6, d, DRUGS).astype(float),
        "freq": col(7, d, DRUGS).astype(str), "n_admin": 1 + rng.poisson(1.4, ev.height),
    })
    parts = [filler]
    for flag, when, table in (("septic", "abx", ABX_PLANTED), ("cs", "cs_time", CS_PLANTED)):
        s = st.filter(pl.col(flag))
        i = rng.choice(len(table), s.height, p=[0.7, 0.2, 0.1])
        hours = rng.uniform(72, 168, s.height)
        parts.append(pl.DataFrame({
            "subject_id": s["subject_id"], "hadm_id": s["hadm_id"], "start": s[when], "hours": hours, "drug": col(0, i, table).astype(str),
            "drug_type": "MAIN", "route": col(1, i, table).astype(str), "dose": col(2, i, table).astype(str), "unit": col(3, i, table).astype(str),
            "per_day": col(4, i, table).astype(float), "freq": col(5, i, table).astype(str), "n_admin": (hours / 24 * col(4, i, table).astype(float)).astype(np.int64),
        }))
    o = pl.concat(parts, how="diagonal_relaxed")
    o = o.with_columns(pl.Series("pharmacy_id", id0 + np.arange(o.height)), (pl.col("start") + (pl.col("hours") * US_H).cast(pl.Int64)).alias("stop"))
    n = o.height
    has_ph = rng.random(n) < 0.88
    rx = o.select(
        "subject_id", "hadm_id", "pharmacy_id", _dt(o["start"]).alias("starttime"), _dt(o["stop"]).alias("stoptime"), "drug_type", "drug",
        pl.col("dose").alias("dose_val_rx"), pl.col("unit").alias("dose_unit_rx"), pl.col("per_day").alias("doses_per_24_hrs"), "route",
    )
    ph = o.filter(pl.Series(has_ph))
    pharmacy = ph.select(
        "subject_id", "hadm_id", "pharmacy_id", _dt(ph["start"]).alias("starttime"), _dt(ph["stop"]).alias("stoptime"), pl.col("drug").alias("medication"),
        pl.lit("Unit Dose").alias("proc_type"), pl.lit("Discontinued").alias("status"), "route", pl.col("freq").alias("frequency"), pl.col("per_day").alias("doses_per_24_hrs"),
    )
    k = ph["n_admin"].to_numpy().clip(0, 60)
    e = _expand(ph.select("subject_id", "hadm_id", "pharmacy_id", "start", "per_day", "drug", "dose", "unit", "route"), k)
    j = np.arange(e.height) - np.repeat(np.cumsum(k) - k, k)
    t = e["start"].to_numpy() + (j * 24 / np.maximum(e["per_day"].to_numpy(), 1) * US_H).astype(np.int64) + (rng.normal(0, 0.3, e.height) * US_H).astype(np.int64)
    seq = id0 + np.arange(e.height)
    emar_id = (e["subject_id"].cast(pl.String) + "-" + pl.Series(seq).cast(pl.String)).alias("emar_id")
    event = _pick(rng, e.height, ["Administered", "Not Given", "Flushed", "Held", "Confirmed"], [85, 5, 3, 3, 4]).astype(str)
    emar = pl.DataFrame({
        "subject_id": e["subject_id"], "hadm_id": e["hadm_id"], "emar_id": emar_id, "emar_seq": seq, "pharmacy_id": e["pharmacy_id"],
        "charttime": _dt(t), "medication": e["drug"], "event_txt": event, "scheduletime": _dt(t), "storetime": _dt(t + 300_000_000),
    })
    det_parent = emar.select("subject_id", "emar_id", "emar_seq", "pharmacy_id", pl.lit(None, dtype=pl.String).alias("parent_field_ordinal"),
                             e["dose"].alias("dose_due"), e["unit"].alias("dose_due_unit"), e["route"].alias("route"))
    det_child = emar.select("subject_id", "emar_id", "emar_seq", "pharmacy_id", pl.lit("1.1").alias("parent_field_ordinal"),
                            e["dose"].alias("dose_given"), e["unit"].alias("dose_given_unit"), e["drug"].alias("product_description"), e["route"].alias("route"))
    return {"prescriptions": rx, "pharmacy": pharmacy, "emar": emar, "emar_detail": pl.concat([det_parent, det_child], how="diagonal_relaxed")}


def _mimic_icu_events(rng, st: pl.DataFrame, totals: dict, id0: int) -> dict[str, pl.DataFrame]:
    los = (st["outtime"] - st["intime"]).to_numpy() / US_H
    base = st.select("subject_id", "hadm_id", "stay_id", "intime", "outtime", "septic", "weight")
    out = {}
    # inputevents: ordinary fluids and drips, plus vasopressors in shock
    ev = _expand(base, _counts(rng, los, totals["inputevents"]))
    i = rng.choice(len(INPUT_ITEMS), ev.height, p=np.array([x[1] for x in INPUT_ITEMS]) / sum(x[1] for x in INPUT_ITEMS))
    s = _hours_between(rng, ev["intime"].to_numpy(), ev["outtime"].to_numpy())
    rate = np.array([INPUT_ITEMS[j][3] for j in i], float) * rng.uniform(0.5, 1.5, ev.height)
    fill = pl.DataFrame({
        "subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "stay_id": ev["stay_id"], "start": s, "end": s + (rng.uniform(0.2, 4, ev.height) * US_H).astype(np.int64),
        "itemid": np.array([INPUT_ITEMS[j][0] for j in i]), "amountuom": np.array([INPUT_ITEMS[j][2] for j in i]), "rate": pl.Series(np.where(rate > 0, rate, np.nan)).fill_nan(None),
        "rateuom": pl.Series([INPUT_ITEMS[j][4] for j in i]).replace("", None), "ordercategoryname": np.array([INPUT_ITEMS[j][5] for j in i]), "patientweight": ev["weight"],
    })
    sh = base.filter(pl.col("septic")).join(st.select("stay_id", "abx", "shock"), on="stay_id").filter(pl.col("shock"))
    segs = rng.integers(3, 36, sh.height)
    v = _expand(sh, segs)
    j = np.arange(v.height) - np.repeat(np.cumsum(segs) - segs, segs)
    s = v["abx"].to_numpy() + (j * 2 * US_H)
    vaso_rate = np.exp(rng.normal(np.log(0.12), 0.6, v.height)).round(3)
    vp = rng.random(v.height) < 0.15
    planted = pl.DataFrame({
        "subject_id": v["subject_id"], "hadm_id": v["hadm_id"], "stay_id": v["stay_id"], "start": s, "end": s + 2 * US_H, "itemid": np.where(vp, 222315, 221906),
        "amountuom": np.where(vp, "units", "mg"), "rate": np.where(vp, 2.4, vaso_rate), "rateuom": np.where(vp, "units/hour", "mcg/kg/min"),
        "ordercategoryname": "01-Drips", "patientweight": v["weight"],
    })
    inp = pl.concat([fill, planted], how="diagonal_relaxed")
    out["inputevents"] = inp.select(
        "subject_id", "hadm_id", "stay_id", _dt(inp["start"]).alias("starttime"), _dt(inp["end"]).alias("endtime"), _dt(inp["end"]).alias("storetime"), "itemid",
        (pl.col("rate").fill_null(100.0) * 2).round(3).alias("amount"), "amountuom", pl.col("rate").round(4), "rateuom",
        pl.Series("orderid", id0 + np.arange(inp.height)), pl.Series("linkorderid", id0 + np.arange(inp.height)), "ordercategoryname", "patientweight",
        pl.lit("FinishedRunning").alias("statusdescription"),
    )
    # outputevents: mostly urine
    ev = _expand(base, _counts(rng, los, totals["outputevents"]))
    i = rng.choice(len(OUTPUT_ITEMS), ev.height, p=np.array([x[1] for x in OUTPUT_ITEMS]) / sum(x[1] for x in OUTPUT_ITEMS))
    t = _hours_between(rng, ev["intime"].to_numpy(), ev["outtime"].to_numpy())
    val = np.clip(rng.normal(np.where(ev["septic"].to_numpy(), 40, 90), 45), 0, 1500).round(0)
    out["outputevents"] = pl.DataFrame({
        "subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "stay_id": ev["stay_id"], "caregiver_id": rng.integers(10_000, 99_999, ev.height),
        "charttime": _dt(t), "storetime": _dt(t + 900_000_000), "itemid": np.array([OUTPUT_ITEMS[j][0] for j in i]), "value": val, "valueuom": "ml",
    })
    # procedureevents: ordinary procedures; invasive ventilation episodes of the ventilated stays
    ev = _expand(base, _counts(rng, los, totals["procedureevents"]))
    i = rng.choice(len(PROC_ITEMS), ev.height, p=np.array([x[1] for x in PROC_ITEMS]) / sum(x[1] for x in PROC_ITEMS))
    s = _hours_between(rng, ev["intime"].to_numpy(), ev["outtime"].to_numpy())
    pe = pl.DataFrame({"subject_id": ev["subject_id"], "hadm_id": ev["hadm_id"], "stay_id": ev["stay_id"], "start": s, "end": s + 600_000_000,
                       "itemid": np.array([PROC_ITEMS[j][0] for j in i]), "w": ev["weight"]})
    vs = st.filter(pl.col("vent"))
    pe = pl.concat([pe, vs.select("subject_id", "hadm_id", "stay_id", pl.col("vent_start").alias("start"),
                                  pl.min_horizontal(pl.col("vent_start") + (pl.col("vent_h") * US_H).cast(pl.Int64), pl.col("outtime")).alias("end"),
                                  pl.lit(225792).alias("itemid"), pl.col("weight").alias("w"))], how="diagonal_relaxed")
    out["procedureevents"] = pe.select(
        "subject_id", "hadm_id", "stay_id", _dt(pe["start"]).alias("starttime"), _dt(pe["end"]).alias("endtime"), _dt(pe["end"]).alias("storetime"), "itemid",
        ((pl.col("end") - pl.col("start")) / 60_000_000).round(0).alias("value"), pl.lit("min").alias("valueuom"), pl.col("w").alias("patientweight"),
        pl.lit("FinishedRunning").alias("statusdescription"),
    )
    return out


def _mimic_diagnoses(rng, ad: pl.DataFrame, total: float) -> pl.DataFrame:
    ev = _expand(ad.select("subject_id", "hadm_id", "admittime", "septic", "icu"), _counts(rng, np.where(ad["icu"].to_numpy(), 2.0, 1.0), total))
    v10 = ev["admittime"].to_numpy() > EPOCH + int(50 * 365.25 * 24 * US_H)
    codes = np.where(v10, _pick(rng, ev.height, *zip(*ICD["10"])), _pick(rng, ev.height, *zip(*ICD["9"])))
    d = ev.select("subject_id", "hadm_id", pl.Series("icd_code", codes.astype(str)), pl.Series("icd_version", np.where(v10, 10, 9)))
    sep = ad.filter(pl.col("septic"))
    v10s = sep["admittime"].to_numpy() > EPOCH + int(50 * 365.25 * 24 * US_H)
    d = pl.concat([d, sep.select("subject_id", "hadm_id", pl.Series("icd_code", np.where(v10s, "A419", "0389")), pl.Series("icd_version", np.where(v10s, 10, 9)))])
    return d.with_columns(pl.col("hadm_id").cum_count().over("hadm_id").alias("seq_num"))


def generate_mimic_iv(root: Path, scale: float, seed: int = 1, fmt: str = "csv.gz", shares: Shares = Shares(), chunk_admissions: int = 4000) -> dict:
    """Write a synthetic MIMIC-IV (hosp/ + icu/) under ``root``; returns rows written per table."""
    rng = np.random.default_rng([seed, 1, 0])
    patients, adm, stays = mimic_entities(rng, scale, shares)
    w = Writers(Path(root), "mimic_iv", fmt)
    _mimic_hosp_static(w, rng, patients, adm, stays)
    real = {t: n * scale for t, n in REAL_ROWS["mimic_iv"].items()}
    # rows per unit of weight, over the whole database (each chunk then draws its share)
    los_adm = ((adm["dischtime"] - adm["admittime"]).to_numpy() / US_H)
    icu = adm["icu"].to_numpy()
    los_icu = ((stays["outtime"] - stays["intime"]).to_numpy() / US_H)
    share = lambda wa, part: part.sum() / wa.sum()  # noqa: E731
    stay_rows = np.searchsorted(stays["adm_row"].to_numpy(), np.arange(0, adm.height + 1))
    for i, a0, a1 in _chunks(adm.height, chunk_admissions):
        crng = np.random.default_rng([seed, 1, i + 1])
        ad = adm[a0:a1]
        st = stays[stay_rows[a0]:stay_rows[a1]]
        la, li = los_adm[a0:a1], los_icu[stay_rows[a0]:stay_rows[a1]]
        id0 = (i + 1) * 10**9
        w("chartevents", _mimic_chartevents(crng, st, real["chartevents"] * 0.93 * share(los_icu, li)))
        w("labevents", _mimic_labevents(crng, ad, real["labevents"] * share(los_adm * np.where(icu, 3, 1), la * np.where(icu[a0:a1], 3, 1)), id0))
        w("microbiologyevents", _mimic_micro(crng, ad, st, real["microbiologyevents"] * share(los_adm * np.where(icu, 3, 1), la * np.where(icu[a0:a1], 3, 1)), id0))
        for t, df in _mimic_orders(crng, ad, st, real["prescriptions"] * share(los_adm * np.where(icu, 2.5, 1), la * np.where(icu[a0:a1], 2.5, 1)), id0).items():
            w(t, df)
        for t, df in _mimic_icu_events(crng, st, {t: real[t] * share(los_icu, li) for t in ("inputevents", "outputevents", "procedureevents")}, id0).items():
            w(t, df)
        w("diagnoses_icd", _mimic_diagnoses(crng, ad, real["diagnoses_icd"] * share(np.where(icu, 2.0, 1.0), np.where(icu[a0:a1], 2.0, 1.0))))
    return w.close()


# ============================================================================= eICU-CRD
MIN = 60_000_000  # microseconds per minute (eICU offsets are minutes; kept as int minutes here)
NURSE = [  # valname, weight, cat, vallabel, normal, septic, sd, lo, hi, dec
    ("Heart Rate", 20, "Vital Signs", "Heart Rate", 85, 105, 15, 25, 220, 0), ("Respiratory Rate", 15, "Vital Signs", "Respiratory Rate", 18, 25, 5, 3, 60, 0),
    ("O2 Saturation", 15, "Vital Signs", "O2 Saturation", 96, 93, 3, 60, 100, 0),
    ("Non-Invasive BP Systolic", 6, "Vital Signs", "Non-Invasive BP", 122, 100, 18, 50, 240, 0),
    ("Non-Invasive BP Diastolic", 6, "Vital Signs", "Non-Invasive BP", 66, 54, 10, 20, 140, 0),
    ("Non-Invasive BP Mean", 6, "Vital Signs", "Non-Invasive BP", 82, 64, 11, 25, 160, 0), ("Invasive BP Mean", 3, "Vital Signs", "Invasive BP", 78, 62, 10, 25, 160, 0),
    ("Temperature (C)", 2, "Vital Signs", "Temperature", 37.0, 38.2, 0.6, 31, 42, 1), ("Temperature (F)", 2, "Vital Signs", "Temperature", 98.6, 100.8, 1.0, 88, 108, 1),
    ("GCS Total", 3, "Scores", "Glasgow coma score", 14, 11, 2.5, 3, 15, 0), ("Pain Score", 5, "Scores", "Pain Score/Goal", 2, 3, 2, 0, 10, 0),
    ("Bedside Glucose", 4, "Other Vital Signs and Infusions", "Bedside Glucose", 130, 160, 40, 20, 600, 0),
    ("Eyes", 3, "Scores", "Glasgow coma score", 3.7, 3.0, 0.7, 1, 4, 0), ("Motor", 3, "Scores", "Glasgow coma score", 5.8, 5.0, 0.7, 1, 6, 0),
    ("Verbal", 3, "Scores", "Glasgow coma score", 4.5, 3.2, 1.0, 1, 5, 0), ("Sedation Score", 4, "Scores", "Sedation Scale/Score/Goal", 0, -1, 1.5, -5, 4, 0),
]
ELAB = [  # labname, weight, normal, septic, sd, lo, hi, dec, unit
    ("creatinine", 6, 1.0, 2.3, 0.6, 0.2, 15, 2, "mg/dL"), ("BUN", 6, 18, 40, 10, 2, 200, 0, "mg/dL"), ("sodium", 6, 139, 136, 4, 110, 170, 0, "mmol/L"),
    ("potassium", 7, 4.1, 4.5, 0.5, 2, 8, 1, "mmol/L"), ("chloride", 6, 103, 104, 4, 80, 130, 0, "mmol/L"), ("bicarbonate", 6, 25, 19, 4, 5, 45, 0, "mmol/L"),
    ("glucose", 6, 125, 160, 40, 30, 600, 0, "mg/dL"), ("bedside glucose", 10, 130, 160, 40, 20, 600, 0, "mg/dL"),
    ("platelets x 1000", 5, 230, 95, 60, 5, 900, 0, "K/mcL"), ("WBC x 1000", 5, 9, 16, 4, 0.2, 80, 1, "K/mcL"), ("Hgb", 5, 10.5, 9.5, 1.8, 4, 18, 1, "g/dL"),
    ("Hct", 5, 32, 29, 5, 12, 55, 1, "%"), ("total bilirubin", 2, 0.8, 2.8, 0.9, 0.1, 40, 1, "mg/dL"), ("lactate", 1.5, 1.4, 3.6, 1.0, 0.3, 20, 1, "mmol/L"),
    ("paO2", 2, 110, 72, 30, 25, 500, 0, "mm Hg"), ("FiO2", 1.5, 40, 60, 15, 21, 100, 0, "%"), ("pH", 2, 7.40, 7.31, 0.06, 6.8, 7.7, 2, ""),
    ("CRP", 0.3, 2, 15, 5, 0.1, 50, 1, "mg/dL"), ("calcium", 5, 8.6, 8.0, 0.6, 5, 13, 1, "mg/dL"), ("magnesium", 4, 2.0, 2.0, 0.3, 0.8, 4, 1, "mg/dL"),
]
RESP = [("FiO2", 25, 40, 60, 15, 21, 100, 0), ("PEEP", 15, 5, 8, 3, 0, 24, 0), ("Tidal Volume (set)", 12, 450, 450, 60, 200, 900, 0),
        ("RR (patient)", 12, 18, 24, 5, 3, 60, 0), ("Peak Insp. Pressure", 10, 22, 28, 6, 5, 60, 0), ("Plateau Pressure", 6, 18, 22, 4, 5, 45, 0),
        ("LPM O2", 10, 3, 4, 2, 0.5, 15, 1), ("Mean Airway Pressure", 10, 10, 13, 3, 2, 35, 0)]
IO_LABELS = [("Urine", 50, "Output (ml)"), ("Foley", 8, "Output (ml)"), ("Voided Amount", 3, "Output (ml)"), ("Chest Tube", 4, "Output (ml)"),
             ("Stool", 2, "Output (ml)"), ("Crystalloids", 10, "Intake (ml)"), ("IVPB", 10, "Intake (ml)"), ("Enteral/Gastric Tube Intake", 8, "Intake (ml)"),
             ("Oral Intake", 5, "Intake (ml)")]
# drugname, weight, hicl, dosage, route, frequency (filler); "" = name missing (hicl only)
EMED = [
    ("PANTOPRAZOLE 40 MG IV RECON SOLN", 6, "22008", "40 mg", "IV", "Q24H"), ("HEPARIN 5,000 UNIT/ML INJ", 6, "2812", "5000 Units", "SubQ", "Q8H"),
    ("ACETAMINOPHEN 325 MG PO TABS", 6, "1866", "650 mg", "PO", "Q4H PRN"), ("INSULIN LISPRO 100 UNIT/ML SC SOLN", 5, "1539", "0-10 Units", "SubQ", "TID AC"),
    ("POTASSIUM CHLORIDE 20 MEQ PO PACK", 4, "549", "40 mEq", "PO", "Once"), ("SODIUM CHLORIDE 0.9 % IV SOLP", 8, "8255", "1000 mL", "IV", "Continuous"),
    ("ONDANSETRON 2 MG/ML IJ SOLN", 4, "6055", "4 mg", "IV", "Q6H PRN"), ("FUROSEMIDE 10 MG/ML IJ SOLN", 3, "3660", "40 mg", "IV", "BID"),
    ("METOPROLOL TARTRATE 25 MG PO TABS", 3, "2102", "25 mg", "PO", "BID"), ("", 20, "8255", "", "IV", ""), ("", 8, "2812", "", "SubQ", ""),
    ("VANCOMYCIN 1 GM IV SOLR", 0.8, "10093", "1 g", "IV", "Q12H"), ("PIPERACILLIN-TAZOBACTAM 3.375 G IVPB", 0.5, "8738", "3.375 g", "IVPB", "Q8H"),
    ("CEFTRIAXONE 1 G IJ SOLR", 0.5, "3996", "1 g", "IV", "Q24H"), ("", 0.6, "4042", "", "IV", ""), ("PREDNISONE 20 MG PO TABS", 0.3, "2879", "40 mg", "PO", "Daily"),
    ("FLUTICASONE 50 MCG/ACT NA SUSP", 0.2, "9216", "2 Spray", "Nasal", "Daily"),
]
EMED_ABX = [("VANCOMYCIN 1 GM IV SOLR", "10093", "1 g", "IV", "Q12H"), ("PIPERACILLIN-TAZOBACTAM 3.375 G IVPB", "8738", "3.375 g", "IVPB", "Q8H"),
            ("", "4042", "", "IV", "")]
EMED_CS = [("HYDROCORTISONE SOD SUCCINATE 100 MG IJ SOLR", "2866", "50 mg", "IV", "Q6H"), ("", "2866", "", "IV", ""),
           ("METHYLPREDNISOLONE SODIUM SUCC 125 MG IJ SOLR", "2877", "40 mg", "IV", "Q12H")]
INFUSIONS = [  # drugname, weight, rate, drugamount, volumeoffluid
    ("Propofol (mcg/kg/min)", 5, 30, 1000, 100), ("Heparin (units/hr)", 5, 1000, 25000, 250), ("Insulin (units/hr)", 4, 3, 100, 100),
    ("Fentanyl (mcg/hr)", 3, 50, 2500, 250), ("Sodium Chloride 0.9% (ml/hr)", 6, 75, None, 1000), ("Amiodarone (mg/min)", 1, 0.5, 450, 250),
    ("Diltiazem (mg/hr)", 1, 10, 125, 125), ("Nitroglycerin (mcg/min)", 1, 20, 50, 250)]
TREAT = [("gastrointestinal|medications|stress ulcer prophylaxis|pantoprazole", 5), ("cardiovascular|vascular disorders|VTE prophylaxis|heparin", 5),
         ("pulmonary|ventilation and oxygenation|oxygen therapy (< 40%)|nasal cannula", 4), ("renal|electrolyte correction|administration of electrolytes|potassium", 3),
         ("neurologic|pain / agitation / altered mentation|analgesics|narcotic analgesic", 3), ("infectious diseases|medications|therapeutic antibacterials|cephalosporin", 0.5),
         ("endocrine|glucose metabolism|insulin|sliding scale administration", 3), ("cardiovascular|hypertension|vasodilating agent - IV|labetalol", 1)]
EDX = [("cardiovascular|chest pain / ASHD|coronary artery disease", 5), ("pulmonary|respiratory failure|acute respiratory failure", 4),
       ("renal|disorder of kidney|acute renal failure", 3), ("endocrine|glucose metabolism|diabetes mellitus", 3), ("cardiovascular|ventricular disorders|congestive heart failure", 3),
       ("neurologic|altered mental status / pain|change in mental status", 3), ("renal|disorder of kidney|chronic kidney disease", 1.5),
       ("gastrointestinal|hepatic disease|cirrhosis of liver", 0.8), ("pulmonary|disorders of the airways|COPD", 1.5), ("oncology|chest tumors|lung tumor|cancer", 0.8),
       ("cardiovascular|shock / hypotension|hypotension", 2), ("infectious diseases|chest/pulmonary infections|pneumonia", 2)]
EDX_SEPSIS = ["infectious diseases|systemic/other infections|sepsis|severe", "cardiovascular|shock / hypotension|sepsis|sepsis with single organ dysfunction",
              "infectious diseases|systemic/other infections|septic shock"]
PASTHX = [("notes/Progress Notes/Past History/Organ Systems/Cardiovascular (R)/Hypertension Requiring Treatment/hypertension requiring treatment", 6),
          ("notes/Progress Notes/Past History/Organ Systems/Endocrine (R)/Non-Insulin Dependent Diabetes/medication dependent", 3),
          ("notes/Progress Notes/Past History/Organ Systems/Renal  (R)/Renal Insufficiency/renal insufficiency - baseline creatinine 1-2", 1.5),
          ("notes/Progress Notes/Past History/Organ Systems/Pulmonary/COPD/COPD  - moderate", 1.5),
          ("notes/Progress Notes/Past History/Organ Systems/Cardiovascular (R)/Congestive Heart Failure/CHF", 2),
          ("notes/Progress Notes/Past History/Organ Systems/Hematology/Oncology (R)/Cancer/-Cancer Location/lung", 0.8),
          ("notes/Progress Notes/Past History/Past History Obtain Options/Performed", 8)]
APACHE_DX = ["CHF, congestive heart failure", "Overdose, sedatives, hypnotics, antipsychotics, benzodiazepines", "CABG alone, coronary artery bypass grafting",
             "Rhythm disturbance (atrial, supraventricular)", "Infarction, acute myocardial (MI)", "CVA, cerebrovascular accident/stroke", "Diabetic ketoacidosis",
             "Pneumonia, bacterial", "GI bleeding, upper"]
APACHE_SEPSIS = ["Sepsis, pulmonary", "Sepsis, renal/UTI (including bladder)", "Sepsis, GI", "Sepsis, unknown"]
CULTURE_SITES = ["Blood, Venipuncture", "Urine, Catheter Specimen", "Sputum, Tracheal Specimen", "Nasopharynx", "Wound, Decubitus"]


def eicu_entities(rng, scale: float, sh: Shares) -> pl.DataFrame:
    """Unit stays with patient and hospital-stay identifiers, offsets (minutes), planted flags and event offsets."""
    n = max(20, round(REAL_ROWS["eicu"]["patient"] * scale))
    n_h, n_p = max(10, round(n * 0.83)), max(10, round(n * 0.69))
    h_of = np.sort(np.concatenate([np.arange(n_h), rng.integers(0, n_h, n - n_h)]))
    p_of_h = np.concatenate([np.arange(n_p), rng.integers(0, n_p, n_h - n_p)])
    rng.shuffle(p_of_h)
    visit = np.arange(n) - np.searchsorted(h_of, h_of)  # 0 = first unit stay of the hospital stay
    los = np.clip(np.exp(rng.normal(np.log(40 * 60), 0.9, n)), 30, 60 * 24 * 60).astype(np.int64)
    f = _flags(rng, n, sh)
    died = rng.random(n) < 0.08 + 0.10 * f["septic"]
    age = np.clip(rng.normal(64, 17, n), 15, 95).astype(int)
    t_inf = rng.uniform(-240, 1200, n)
    abx = np.maximum(t_inf + rng.uniform(0, 240, n), 10).astype(np.int64)
    return pl.DataFrame({
        "patientunitstayid": 100_000 + rng.permutation(n * 3)[:n], "patienthealthsystemstayid": 50_000 + h_of,
        "uniquepid": pl.Series(p_of_h[h_of]).map_elements(lambda i: f"{i // 100000:03d}-{i % 100000:05d}", return_dtype=pl.String),
        "gender": _pick(rng, n, ["Female", "Male"], [0.46, 0.54]).astype(str), "age": np.where(age >= 90, "> 89", age.astype(str)),
        "hospitalid": rng.integers(60, 460, n), "hospitaladmitoffset": -(rng.uniform(0, 72 * 60, n) + visit * rng.uniform(24 * 60, 120 * 60, n)).astype(np.int64),
        "hospitaldischargeyear": _pick(rng, n, [2014, 2015]).astype(int), "unitdischargeoffset": los,
        "hospitaldischargeoffset": los + rng.uniform(0, 10 * 24 * 60, n).astype(np.int64), "hospitaldischargestatus": np.where(died, "Expired", "Alive"),
        "unitdischargestatus": np.where(died & (rng.random(n) < 0.6), "Expired", "Alive"), "unitvisitnumber": visit + 1,
        "admissionweight": pl.Series(np.where(rng.random(n) < 0.05, np.nan, np.clip(rng.normal(82, 22, n), 35, 220).round(1))).fill_nan(None),
        "apacheadmissiondx": np.where(f["septic"] & (rng.random(n) < 0.45), _pick(rng, n, APACHE_SEPSIS), _pick(rng, n, APACHE_DX)).astype(str),
        **f, "abx": abx, "culture": abx - rng.uniform(0, 600, n).astype(np.int64), "cs_time": abx + rng.uniform(60, 1080, n).astype(np.int64),
        "vent_start": rng.uniform(0, 360, n).astype(np.int64),
    })


def _offsets(rng, ev: pl.DataFrame, before: int = 0) -> np.ndarray:
    los = ev["unitdischargeoffset"].to_numpy()
    return (-before + rng.random(ev.height) * (los + before)).astype(np.int64)


def _eicu_numeric(rng, septic, table, idx, cols=(2, 3, 4, 5, 6, 7)):
    mn, ms, sd, lo, hi, dec = (np.array([table[i][c] for i in idx], float) if len(idx) else np.array([]) for c in cols)
    v = np.clip(rng.normal(np.where(septic, ms, mn), sd), lo, hi)
    return np.round(v * 10.0**dec) / 10.0**dec


def _eicu_chunk(rng, st: pl.DataFrame, totals: dict, id0: int) -> dict[str, pl.DataFrame]:
    out = {}
    los = st["unitdischargeoffset"].to_numpy().astype(float)
    base = st.select("patientunitstayid", "unitdischargeoffset", "septic", "vent", "shock", "admissionweight")
    sid = "patientunitstayid"
    ids = lambda df: id0 + np.arange(df.height)  # noqa: E731
    # vitalPeriodic: every 5 minutes from admission
    k = _counts(rng, los, totals["vitalPeriodic"])
    ev = _expand(base, k)
    j = np.arange(ev.height) - np.repeat(np.cumsum(k) - k, k)
    sep = ev["septic"].to_numpy()
    n = ev.height
    art = (rng.random(st.height) < np.where(st["shock"].to_numpy(), 0.7, 0.3))[np.repeat(np.arange(st.height), k)]
    nn = lambda x, p: pl.Series(np.where(rng.random(n) < p, x, np.nan)).fill_nan(None)  # noqa: E731
    out["vitalPeriodic"] = pl.DataFrame({
        "vitalperiodicid": ids(ev), sid: ev[sid], "observationoffset": j * 5 + rng.integers(0, 5, n),
        "temperature": nn(np.clip(rng.normal(np.where(sep, 38.2, 37.0), 0.6), 30, 43).round(1), 0.08),
        "sao2": nn(np.clip(rng.normal(np.where(sep, 93, 96), 3), 50, 100).round(0), 0.93),
        "heartrate": nn(np.clip(rng.normal(np.where(sep, 105, 85), 15), 25, 220).round(0), 0.98),
        "respiration": nn(np.clip(rng.normal(np.where(sep, 25, 18), 5), 3, 60).round(0), 0.85),
        "systemicmean": pl.Series(np.where(art, np.clip(rng.normal(np.where(sep, 62, 78), 10), 25, 160).round(0), np.nan)).fill_nan(None),
        "systemicsystolic": pl.Series(np.where(art, np.clip(rng.normal(np.where(sep, 98, 120), 18), 50, 240).round(0), np.nan)).fill_nan(None),
        "systemicdiastolic": pl.Series(np.where(art, np.clip(rng.normal(np.where(sep, 52, 62), 10), 20, 140).round(0), np.nan)).fill_nan(None),
    })
    # vitalAperiodic: non-invasive BP
    ev = _expand(base, _counts(rng, los, totals["vitalAperiodic"]))
    sep, n = ev["septic"].to_numpy(), ev.height
    out["vitalAperiodic"] = pl.DataFrame({
        "vitalaperiodicid": ids(ev), sid: ev[sid], "observationoffset": _offsets(rng, ev),
        "noninvasivesystolic": np.clip(rng.normal(np.where(sep, 100, 122), 18), 50, 240).round(0),
        "noninvasivediastolic": np.clip(rng.normal(np.where(sep, 54, 66), 10), 20, 140).round(0),
        "noninvasivemean": np.clip(rng.normal(np.where(sep, 64, 82), 11), 25, 160).round(0),
    })
    # nurseCharting (long)
    ev = _expand(base, _counts(rng, los, totals["nurseCharting"]))
    n = ev.height
    i = rng.choice(len(NURSE), n, p=np.array([x[1] for x in NURSE]) / sum(x[1] for x in NURSE))
    v = _eicu_numeric(rng, ev["septic"].to_numpy(), NURSE, i, cols=(4, 5, 6, 7, 8, 9))
    t = _offsets(rng, ev, 60)
    val = _num_text(v).to_numpy().astype(object)
    val[(rng.random(n) < 0.01)] = "Unable to score due to medication"
    out["nurseCharting"] = pl.DataFrame({
        "nursingchartid": ids(ev), sid: ev[sid], "nursingchartoffset": t, "nursingchartentryoffset": t + rng.integers(0, 60, n),
        "nursingchartcelltypecat": np.array([NURSE[x][2] for x in i]), "nursingchartcelltypevallabel": np.array([NURSE[x][3] for x in i]),
        "nursingchartcelltypevalname": np.array([NURSE[x][0] for x in i]), "nursingchartvalue": pl.Series(val, dtype=pl.String),
    })
    # lab
    ev = _expand(base, _counts(rng, los + 1440, totals["lab"]))
    n = ev.height
    i = rng.choice(len(ELAB), n, p=np.array([x[1] for x in ELAB]) / sum(x[1] for x in ELAB))
    v = _eicu_numeric(rng, ev["septic"].to_numpy(), ELAB, i)
    t = _offsets(rng, ev, 1440)
    out["lab"] = pl.DataFrame({
        "labid": ids(ev), sid: ev[sid], "labresultoffset": t, "labtypeid": rng.integers(1, 7, n), "labname": np.array([ELAB[x][0] for x in i]),
        "labresult": v, "labresulttext": _num_text(v), "labmeasurenamesystem": pl.Series([ELAB[x][8] for x in i]).replace("", None),
        "labmeasurenameinterface": pl.Series([ELAB[x][8] for x in i]).replace("", None), "labresultrevisedoffset": t + rng.integers(10, 300, n),
    })
    # respiratoryCharting: denser while ventilated
    ev = _expand(base, _counts(rng, los * np.where(st["vent"].to_numpy(), 4, 1), totals["respiratoryCharting"]))
    n = ev.height
    i = rng.choice(len(RESP), n, p=np.array([x[1] for x in RESP]) / sum(x[1] for x in RESP))
    v = _eicu_numeric(rng, ev["septic"].to_numpy(), RESP, i)
    is_fio2 = np.array([RESP[x][0] == "FiO2" for x in i])
    text = _num_text(v).to_numpy().astype(object)
    frac = is_fio2 & (rng.random(n) < 0.2)  # FiO2 sometimes recorded as a fraction
    text[frac] = _num_text(np.round(v[frac] / 100, 2)).to_numpy()
    t = _offsets(rng, ev)
    out["respiratoryCharting"] = pl.DataFrame({
        "respchartid": ids(ev), sid: ev[sid], "respchartoffset": t, "respchartentryoffset": t + rng.integers(0, 60, n),
        "respcharttypecat": "respFlowSettings", "respchartvaluelabel": np.array([RESP[x][0] for x in i]), "respchartvalue": pl.Series(text, dtype=pl.String),
    })
    # intakeOutput
    ev = _expand(base, _counts(rng, los, totals["intakeOutput"]))
    n = ev.height
    i = rng.choice(len(IO_LABELS), n, p=np.array([x[1] for x in IO_LABELS]) / sum(x[1] for x in IO_LABELS))
    val = np.clip(rng.normal(np.where(ev["septic"].to_numpy(), 45, 95), 50), 0, 2000).round(0)
    t = _offsets(rng, ev)
    out["intakeOutput"] = pl.DataFrame({
        "intakeoutputid": ids(ev), sid: ev[sid], "intakeoutputoffset": t, "intakeoutputentryoffset": t + rng.integers(0, 60, n),
        "cellpath": pl.Series([f"flowsheet|Flowsheet Cell Labels|I&O|{IO_LABELS[x][2]}|{IO_LABELS[x][0]}" for x in i]),
        "celllabel": np.array([IO_LABELS[x][0] for x in i]), "cellvaluenumeric": val, "cellvaluetext": _num_text(val),
    })
    # physicalExam: a few notes per day, GCS components among other findings
    ev = _expand(base, _counts(rng, 1 + los / 1440, totals["physicalExam"]))
    n = ev.height
    kind = rng.choice(5, n, p=[0.1, 0.1, 0.1, 0.05, 0.65])
    sep = ev["septic"].to_numpy()
    eye = np.clip(np.round(rng.normal(np.where(sep, 3, 3.7), 0.7)), 1, 4).astype(int)
    verbal = np.clip(np.round(rng.normal(np.where(sep, 3.2, 4.5), 1)), 1, 5).astype(int)
    motor = np.clip(np.round(rng.normal(np.where(sep, 5, 5.8), 0.7)), 1, 6).astype(int)
    pre = "notes/Progress Notes/Physical Exam/Physical Exam/Neurologic/GCS/"
    paths = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [
        np.char.add(pre + "Eyes Score/", eye.astype(str)), np.char.add(pre + "Verbal Score/", verbal.astype(str)),
        np.char.add(pre + "Motor Score/", motor.astype(str)), np.char.add(pre, (eye + verbal + motor).astype(str))],
        "notes/Progress Notes/Physical Exam/Physical Exam/Constitutional/Vital Sign and Physiological Data/HR/Current/90")
    out["physicalExam"] = pl.DataFrame({
        "physicalexamid": ids(ev), sid: ev[sid], "physicalexamoffset": _offsets(rng, ev), "physicalexampath": paths.astype(str),
        "physicalexamvalue": pl.Series(np.char.rpartition(paths.astype(str), "/")[:, 2]), "physicalexamtext": pl.Series(np.char.rpartition(paths.astype(str), "/")[:, 2]),
    })
    # medication: filler orders; planted antibiotics (septic) and corticosteroids (cs)
    ev = _expand(base, _counts(rng, los, totals["medication"]))
    i = rng.choice(len(EMED), ev.height, p=np.array([x[1] for x in EMED]) / sum(x[1] for x in EMED))
    t = _offsets(rng, ev, 600)
    med = [pl.DataFrame({sid: ev[sid], "start": t, "drugname": np.array([EMED[x][0] for x in i]), "drughiclseqno": np.array([EMED[x][2] for x in i]),
                         "dosage": np.array([EMED[x][3] for x in i]), "routeadmin": np.array([EMED[x][4] for x in i]), "frequency": np.array([EMED[x][5] for x in i])})]
    for flag, when, table in (("septic", "abx", EMED_ABX), ("cs", "cs_time", EMED_CS)):
        s = st.filter(pl.col(flag))
        i = rng.choice(len(table), s.height, p=[0.6, 0.3, 0.1])
        med.append(pl.DataFrame({sid: s[sid], "start": s[when], "drugname": np.array([table[x][0] for x in i]), "drughiclseqno": np.array([table[x][1] for x in i]),
                                 "dosage": np.array([table[x][2] for x in i]), "routeadmin": np.array([table[x][3] for x in i]), "frequency": np.array([table[x][4] for x in i])}))
    m = pl.concat(med)
    n = m.height
    cancelled = rng.random(n) < 0.03
    out["medication"] = m.select(
        pl.Series("medicationid", id0 + np.arange(n)), sid, (pl.col("start") - 30).alias("drugorderoffset"), pl.col("start").alias("drugstartoffset"),
        pl.lit("No").alias("drugivadmixture"), pl.Series("drugordercancelled", np.where(cancelled, "Yes", "No")), pl.col("drugname").replace("", None),
        "drughiclseqno", pl.col("dosage").replace("", None), pl.col("routeadmin").replace("", None), pl.col("frequency").replace("", None),
        pl.lit("No").alias("loadingdose"), pl.lit("No").alias("prn"), (pl.col("start") + pl.Series(rng.integers(600, 7 * 1440, n))).alias("drugstopoffset"), pl.lit(0).alias("gtc"),
    )
    # infusiondrug: ordinary drips; norepinephrine (mcg/min) every hour in shock
    ev = _expand(base, _counts(rng, los, totals["infusiondrug"]))
    i = rng.choice(len(INFUSIONS), ev.height, p=np.array([x[1] for x in INFUSIONS]) / sum(x[1] for x in INFUSIONS))
    inf = [pl.DataFrame({sid: ev[sid], "off": _offsets(rng, ev), "drugname": np.array([INFUSIONS[x][0] for x in i]),
                         "rate": np.array([INFUSIONS[x][2] for x in i], float) * rng.uniform(0.5, 1.5, ev.height), "w": ev["admissionweight"],
                         "amount": pl.Series([INFUSIONS[x][3] for x in i], dtype=pl.Float64), "volume": pl.Series([INFUSIONS[x][4] for x in i], dtype=pl.Float64)})]
    sh = st.filter(pl.col("shock"))
    segs = rng.integers(6, 72, sh.height)
    ml = rng.random(sh.height) < 0.3  # charted in ml/hr with the bag's concentration (4 mg in 250 ml)
    v = _expand(sh.select(sid, "abx", "admissionweight", pl.Series("ml", ml)), segs)
    j = np.arange(v.height) - np.repeat(np.cumsum(segs) - segs, segs)
    mcg_min = np.exp(rng.normal(np.log(8), 0.6, v.height))
    vml = v["ml"].to_numpy()
    inf.append(pl.DataFrame({sid: v[sid], "off": v["abx"].to_numpy() + j * 60, "drugname": np.where(vml, "Norepinephrine (ml/hr)", "Norepinephrine (mcg/min)"),
                             "rate": np.where(vml, mcg_min * 60 / 16.0, mcg_min), "w": v["admissionweight"],
                             "amount": pl.Series(np.where(vml, 4.0, np.nan)).fill_nan(None), "volume": pl.Series(np.where(vml, 250.0, np.nan)).fill_nan(None)}))
    x = pl.concat(inf, how="diagonal_relaxed")
    out["infusiondrug"] = x.select(
        pl.Series("infusiondrugid", id0 + np.arange(x.height)), sid, pl.col("off").alias("infusionoffset"), "drugname", pl.col("rate").round(2).alias("drugrate"),
        pl.lit(None, dtype=pl.Float64).alias("infusionrate"), pl.col("amount").alias("drugamount"), pl.col("volume").alias("volumeoffluid"),
        pl.col("w").alias("patientweight"),
    )
    # treatment: filler, plus cultures (some septic), antibacterials (septic), ventilation (ventilated)
    ev = _expand(base, _counts(rng, 1 + los / 1440, totals["treatment"]))
    i = rng.choice(len(TREAT), ev.height, p=np.array([x[1] for x in TREAT]) / sum(x[1] for x in TREAT))
    parts = [pl.DataFrame({sid: ev[sid], "off": _offsets(rng, ev), "s": np.array([TREAT[x][0] for x in i])})]
    sep_st = st.filter(pl.col("septic"))
    cult = sep_st.filter(pl.Series(rng.random(sep_st.height) < 0.4))
    parts.append(cult.select(sid, pl.col("culture").alias("off"), pl.lit("infectious diseases|cultures / immuno-assays|cultures|blood").alias("s")))
    parts.append(sep_st.select(sid, pl.col("abx").alias("off"), pl.lit("infectious diseases|medications|therapeutic antibacterials|penicillins").alias("s")))
    vs = st.filter(pl.col("vent"))
    parts.append(vs.select(sid, pl.col("vent_start").alias("off"), pl.lit("pulmonary|ventilation and oxygenation|mechanical ventilation").alias("s")))
    cs = st.filter(pl.col("cs") & pl.Series(rng.random(st.height) < 0.3))
    parts.append(cs.select(sid, pl.col("cs_time").alias("off"), pl.lit("endocrine|glucocorticoid administration|hydrocortisone").alias("s")))
    x = pl.concat(parts)
    out["treatment"] = x.select(pl.Series("treatmentid", id0 + np.arange(x.height)), sid, pl.col("off").alias("treatmentoffset"), pl.col("s").alias("treatmentstring"),
                                pl.lit("False").alias("activeupondischarge"))
    # diagnosis: filler, sepsis strings for most septic stays
    ev = _expand(base, _counts(rng, 1 + los / 1440, totals["diagnosis"]))
    i = rng.choice(len(EDX), ev.height, p=np.array([x[1] for x in EDX]) / sum(x[1] for x in EDX))
    sdx = sep_st.filter(pl.Series(rng.random(sep_st.height) < 0.7))
    x = pl.concat([
        pl.DataFrame({sid: ev[sid], "off": _offsets(rng, ev), "s": np.array([EDX[x][0] for x in i])}),
        sdx.select(sid, (pl.col("abx") + 30).alias("off"), pl.Series("s", _pick(rng, sdx.height, EDX_SEPSIS).astype(str))),
    ])
    out["diagnosis"] = x.select(pl.Series("diagnosisid", id0 + np.arange(x.height)), sid, pl.lit("True").alias("activeupondischarge"), pl.col("off").alias("diagnosisoffset"),
                                pl.col("s").alias("diagnosisstring"), pl.lit(None, dtype=pl.String).alias("icd9code"), pl.lit("Other").alias("diagnosispriority"))
    # pastHistory, admissiondrug, admissionDx, apachePatientResult, microLab
    ev = _expand(base, _counts(rng, np.ones(st.height), totals["pastHistory"]))
    i = rng.choice(len(PASTHX), ev.height, p=np.array([x[1] for x in PASTHX]) / sum(x[1] for x in PASTHX))
    p = np.array([PASTHX[x][0] for x in i])
    out["pastHistory"] = ev.select(pl.Series("pasthistoryid", ids(ev)), sid, pl.lit(10).alias("pasthistoryoffset"), pl.lit(20).alias("pasthistoryenteredoffset"),
                                   pl.lit("Past History").alias("pasthistorynotetype"), pl.Series("pasthistorypath", p), pl.Series("pasthistoryvalue", np.char.rpartition(p, "/")[:, 2]))
    ev = _expand(st.select(sid, "chronic_cs"), _counts(rng, np.ones(st.height), totals["admissiondrug"]))
    chronic = ev["chronic_cs"].to_numpy() & (rng.random(ev.height) < 0.5)
    out["admissiondrug"] = ev.select(
        pl.Series("admissiondrugid", ids(ev)), sid, pl.lit(-60).alias("drugoffset"), pl.lit(30).alias("drugenteredoffset"), pl.lit("Comprehensive Progress").alias("drugnotetype"),
        pl.Series("drugname", np.where(chronic, "PREDNISONE", _pick(rng, ev.height, ["LISINOPRIL", "ASPIRIN", "METFORMIN HCL", "ATORVASTATIN CALCIUM"]))),
        pl.Series("drughiclseqno", np.where(chronic, "2879", "1820")),
    )
    k = 3 + (rng.random(st.height) < totals["admissionDx"] / max(st.height, 1) - 3)
    ev = _expand(st.select(sid, "apacheadmissiondx"), k)
    j = np.arange(ev.height) - np.repeat(np.cumsum(k) - k, k)
    oper = rng.random(ev.height) < 0.2
    elective = rng.random(ev.height) < 0.5
    path = np.select([j == 0, j == 1], [
        np.where(oper, "admission diagnosis|All Diagnosis|Operative|Diagnosis|Cardiovascular|CABG alone, coronary artery bypass grafting",
                 "admission diagnosis|All Diagnosis|Non-operative|Diagnosis|" + ev["apacheadmissiondx"].to_numpy().astype(str)),
        np.where(oper & elective, "admission diagnosis|Elective|Yes", "admission diagnosis|Elective|No")],
        "admission diagnosis|Was the patient admitted from the O.R. or went to the O.R. within 4 hours of admission?|No")
    out["admissionDx"] = ev.select(pl.Series("admissiondxid", ids(ev)), sid, pl.lit(5).alias("admitdxenteredoffset"), pl.Series("admitdxpath", path.astype(str)),
                                   pl.Series("admitdxname", np.char.rpartition(path.astype(str), "|")[:, 2]))
    has = st.filter(pl.Series(rng.random(st.height) < totals["apachePatientResult"] / 2 / max(totals["patient"], 1)))
    ev = _expand(has.select(sid, "septic"), np.full(has.height, 2))
    pm = np.clip(rng.beta(1.2, 6, ev.height) + 0.1 * ev["septic"].to_numpy(), 0, 1).round(4)
    pm[rng.random(ev.height) < 0.02] = -1
    out["apachePatientResult"] = ev.select(
        pl.Series("apachepatientresultsid", ids(ev)), sid, pl.Series("apacheversion", np.tile(["IV", "IVa"], has.height)), pl.Series("predictedhospitalmortality", pm),
        pl.Series("predictedicumortality", (pm * 0.6).round(4)), pl.Series("apachescore", rng.integers(10, 150, ev.height)),
    )
    ml = sep_st.filter(pl.Series(rng.random(sep_st.height) < 0.12))
    ev = _expand(base, _counts(rng, np.ones(st.height), max(0.0, totals["microLab"] - ml.height)))
    x = pl.concat([ml.select(sid, pl.col("culture").alias("off")), ev.select(sid, pl.Series("off", _offsets(rng, ev)))])
    out["microLab"] = x.select(pl.Series("microlabid", id0 + np.arange(x.height)), sid, pl.col("off").alias("culturetakenoffset"),
                               pl.Series("culturesite", _pick(rng, x.height, CULTURE_SITES, [5, 3, 2, 1, 1]).astype(str)), pl.lit("no growth").alias("organism"))
    return out


def generate_eicu(root: Path, scale: float, seed: int = 1, fmt: str = "csv.gz", shares: Shares = Shares(), chunk_stays: int = 2000) -> dict:
    """Write a synthetic eICU-CRD (flat folder, PhysioNet file names) under ``root``; returns rows written per table."""
    rng = np.random.default_rng([seed, 2, 0])
    stays = eicu_entities(rng, scale, shares)
    w = Writers(Path(root), "eicu", fmt)
    w("patient", stays.select(
        "patientunitstayid", "patienthealthsystemstayid", "gender", "age", pl.lit("Caucasian").alias("ethnicity"), "hospitalid", pl.lit(1).alias("wardid"),
        "apacheadmissiondx", "hospitaladmitoffset", "hospitaldischargeyear", "hospitaldischargeoffset", "hospitaldischargestatus", pl.lit("Med-Surg ICU").alias("unittype"),
        "unitvisitnumber", "admissionweight", "unitdischargeoffset", "unitdischargestatus", "uniquepid",
    ))
    los = stays["unitdischargeoffset"].to_numpy().astype(float)
    vent = stays["vent"].to_numpy()
    weights = {"vitalPeriodic": los, "vitalAperiodic": los, "nurseCharting": los, "lab": los + 1440, "respiratoryCharting": los * np.where(vent, 4, 1),
               "intakeOutput": los, "physicalExam": 1 + los / 1440, "medication": los, "infusiondrug": los, "treatment": 1 + los / 1440, "diagnosis": 1 + los / 1440}
    real = {t: n * scale for t, n in REAL_ROWS["eicu"].items()}
    for i, a0, a1 in _chunks(stays.height, chunk_stays):
        crng = np.random.default_rng([seed, 2, i + 1])
        totals = {t: real[t] * (wt[a0:a1].sum() / wt.sum()) for t, wt in weights.items()}
        frac = (a1 - a0) / stays.height
        totals |= {t: real[t] * frac for t in ("pastHistory", "admissiondrug", "admissionDx", "apachePatientResult", "microLab", "patient")}
        for t, df in _eicu_chunk(crng, stays[a0:a1], totals, (i + 1) * 10**9).items():
            w(t, df)
    return w.close()


def generate(root: Path, database: str, scale: float, seed: int = 1, fmt: str = "csv.gz") -> dict:
    """Generate one database (``mimic_iv`` or ``eicu``) under ``root``; writes ``root/synthetic.json`` (rows, seconds) and returns it."""
    t0 = time.perf_counter()
    rows = {"mimic_iv": generate_mimic_iv, "eicu": generate_eicu}[database](Path(root), scale, seed=seed, fmt=fmt)
    info = {"database": database, "scale": scale, "seed": seed, "format": fmt, "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
            "bytes": {str(p.relative_to(root)): p.stat().st_size for p in sorted(Path(root).rglob(f"*.{fmt}"))}}
    (Path(root) / "synthetic.json").write_text(json.dumps(info, indent=1))
    return info
