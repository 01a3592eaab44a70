"""Raw tables each adapter reads (no heavy imports: the Snakefile uses it to declare inputs)."""

from __future__ import annotations

from pathlib import Path

#: MIMIC-IV logical table -> path inside the database folder (without extension)
MIMIC_IV_TABLES = {
    "patients": "hosp/patients",
    "admissions": "hosp/admissions",
    "diagnoses_icd": "hosp/diagnoses_icd",
    "services": "hosp/services",
    "labevents": "hosp/labevents",
    "microbiologyevents": "hosp/microbiologyevents",
    "prescriptions": "hosp/prescriptions",
    "emar": "hosp/emar",
    "emar_detail": "hosp/emar_detail",
    "pharmacy": "hosp/pharmacy",
    "icustays": "icu/icustays",
    "chartevents": "icu/chartevents",
    "outputevents": "icu/outputevents",
    "inputevents": "icu/inputevents",
    "procedureevents": "icu/procedureevents",
}
#: eICU-CRD tables (file names as on PhysioNet; lower-case names are accepted too)
EICU_TABLES = [
    "patient", "apachePatientResult", "admissionDx", "diagnosis", "pastHistory", "medication",
    "admissiondrug", "infusiondrug", "treatment", "microLab", "lab", "vitalPeriodic", "vitalAperiodic",
    "nurseCharting", "respiratoryCharting", "intakeOutput", "physicalExam",
]
EXTENSIONS = (".parquet", ".csv.gz", ".csv")


def mimic_iv_path(root: str | Path, table: str) -> Path | None:
    base = Path(root) / MIMIC_IV_TABLES[table]
    for ext in EXTENSIONS:
        p = base.with_name(base.name + ext)
        if p.is_file():
            return p
    return None


def eicu_path(root: str | Path, table: str) -> Path | None:
    for name in dict.fromkeys((table, table.lower())):
        for ext in EXTENSIONS:
            p = Path(root) / f"{name}{ext}"
            if p.is_file():
                return p
    return None


def input_files(db_type: str, root: str | Path) -> list[str]:
    """The raw files an adapter reads that are present under ``root`` (sorted)."""
    if db_type == "mimic_iv":
        found = [mimic_iv_path(root, t) for t in MIMIC_IV_TABLES]
    elif db_type == "eicu":
        found = [eicu_path(root, t) for t in EICU_TABLES]
    else:
        raise ValueError(f"no adapter for database type {db_type!r}")
    return sorted(str(p) for p in found if p is not None)
