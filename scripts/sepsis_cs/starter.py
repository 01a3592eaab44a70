"""Starter files for a new database: an empty, correctly typed contract pair and a filled example.

``scripts/check_contract.py --starter DIR`` writes, from the data dictionary in force (with a
config's ``extra_variables`` when given):

- ``DIR/empty/``: ``cohort`` and ``timeseries`` with every column and no row (Parquet keeps the
  types; CSV has the header);
- ``DIR/example/``: the same filled with a few made-up stays (every dictionary variable, both CS
  groups, both outcome classes) that pass the check, as CSV and Parquet;
- ``DIR/columns.csv``: one row per column or variable: file, name, type, unit, required, allowed
  values or plausible range, meaning;
- ``DIR/my_database.yaml``: a config overlay declaring the example as a database, with an empty
  mapping to fill in.

The example values are arbitrary (uniform draws inside plausible ranges): a format template,
not data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .contract import CORE_COLUMNS, CS_DRUGS, OPTIONAL_OUTCOMES, REQUIRED_STATIC, TIMESERIES_COLUMNS, TIMING_COLUMNS, ContractSettings
from .dictionary import Dictionary
from .io import write_csv, write_parquet, write_text
from .units import CORE_UNITS

_DTYPE = {"id": pl.String, "string": pl.String, "bool": pl.Boolean, "numeric": pl.Float64, "binary": pl.Int8}
_VAR_DTYPE = {"numeric": pl.Float64, "binary": pl.Int8, "categorical": pl.String}
TS_SCHEMA = {"stay_id": pl.String, "hour": pl.Int32, "variable": pl.String, "value": pl.Float64}
_CORE_MEANING = {
    "stay_id": "ICU stay identifier, unique",
    "patient_id": "patient identifier (a patient may have several stays; splits are by patient)",
    "database": "database name",
    "time_zero": "definition of time zero, e.g. icu_admission, sepsis3_onset, randomisation",
    "cs": "systemic corticosteroid started within cs_window after time zero (true/false)",
    "cs_start_h": "hours from time zero to the first CS dose; empty when cs is false",
    "cs_drug": f"first CS drug: {', '.join(CS_DRUGS)}; empty when cs is false",
    "cs_hydrocortisone_eq_mg_24h": "hydrocortisone-equivalent dose of the first 24 h of treatment; empty when cs is false",
    "hospital_mortality": "death before hospital discharge (0/1; empty if unknown)",
    "mortality_28d": "death within 28 days of time zero (0/1; empty if unknown)",
    "shock_reversal_7d": "vasopressor-free for 24 h within 7 days (0/1; empty where not applicable)",
    "icu_los_days": "ICU length of stay, >= 0",
}


def cohort_schema(dictionary: Dictionary) -> dict[str, pl.DataType]:
    schema = {c: _DTYPE[k] for c, k in CORE_COLUMNS.items()}
    schema.update({c: pl.Float64 for c in TIMING_COLUMNS})
    schema.update({name: _VAR_DTYPE[v.type] for name, v in dictionary.static.items()})
    return schema


def empty_pair(dictionary: Dictionary) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.DataFrame(schema=cohort_schema(dictionary)), pl.DataFrame(schema=TS_SCHEMA)


def _draw(v, rng: np.random.Generator, n: int) -> np.ndarray | list:
    if v.type == "binary":
        return (rng.random(n) < 0.25).astype(np.int8)
    if v.type == "categorical":
        levels = list(v.levels or ("a", "b"))
        return [levels[i] for i in rng.integers(0, len(levels), n)]
    lo, hi = v.normal or v.range or (0.0, 1.0)
    if v.normal and v.range:  # inside both
        lo, hi = max(lo, v.range[0]), min(hi, v.range[1])
    x = lo + (hi - lo) * rng.uniform(0.2, 0.8, n)
    return np.round(x, 0 if v.unit == "points" else 1)


def example_pair(dictionary: Dictionary, settings: ContractSettings, n_stays: int = 40, seed: int = 1, database: str = "my_database") -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small made-up pair meeting the contract, with every dictionary variable."""
    rng = np.random.default_rng(seed)
    n = max(int(n_stays), 2 * settings.min_group_size)
    ids = [str(100001 + i) for i in range(n)]
    cs = np.arange(n) % 2 == 0
    lo, hi = settings.cs_window_start_h, settings.cs_window_end_h
    start = np.where(cs, np.round(rng.uniform(max(lo, 0.0), hi, n), 1), np.nan)
    death = (np.arange(n) % 3 == 0).astype(np.int8)
    los = np.round(rng.uniform(1, 15, n), 2)
    icu_out = np.round(los * 24 - rng.uniform(0, 12, n), 1).clip(1, None)
    hosp_out = np.round(icu_out + np.where(death == 1, 0, rng.uniform(24, 240, n)), 1)
    cols: dict = {
        "stay_id": ids,
        "patient_id": [f"p{i}" for i in ids],
        "database": [database] * n,
        "time_zero": ["icu_admission"] * n,
        "cs": cs,
        "cs_start_h": start,
        "cs_drug": [CS_DRUGS[i % 3] if c else None for i, c in enumerate(cs)],
        "cs_hydrocortisone_eq_mg_24h": np.where(cs, 200.0, np.nan),
        "hospital_mortality": death,
        "mortality_28d": death,
        "shock_reversal_7d": np.where(np.arange(n) % 4 == 0, 1, 0).astype(np.int8),
        "icu_los_days": los,
        "cs_first_h": start,
        "death_h": np.where(death == 1, icu_out, np.nan),
        "icu_discharge_h": icu_out,
        "hospital_discharge_h": hosp_out,
        "followup_end_h": hosp_out,
    }
    for name, v in dictionary.static.items():
        cols[name] = _draw(v, rng, n)
    schema = cohort_schema(dictionary)
    cohort = pl.DataFrame({k: cols[k] for k in schema}, schema=schema, nan_to_null=True)
    hours = list(range(max(settings.window_start_h, -6), min(settings.window_end_h, 24) + 1, 4))
    rows = []
    for name, v in dictionary.hourly.items():
        for h in hours:
            rows.append(pl.DataFrame({"stay_id": ids, "hour": [h] * n, "variable": [name] * n, "value": np.asarray(_draw(v, rng, n), dtype=float)}, schema=TS_SCHEMA))
    ts = pl.concat(rows) if rows else pl.DataFrame(schema=TS_SCHEMA)
    return cohort, ts.sort(["stay_id", "variable", "hour"])


def codebook(dictionary: Dictionary) -> pl.DataFrame:
    """One row per contract column or variable: what to write where."""
    rows = []
    for c, k in CORE_COLUMNS.items():
        rows.append(dict(file="cohort", name=c, type={"id": "integer or text", "bool": "true/false", "binary": "0/1"}.get(k, k), unit=CORE_UNITS.get(c, ""),
                         required="yes", allowed="", meaning=_CORE_MEANING.get(c, "")))
    for c, meaning in OPTIONAL_OUTCOMES.items():
        rows.append(dict(file="cohort", name=c, type="0/1", unit="", required="no", allowed="", meaning=meaning))
    for c, meaning in TIMING_COLUMNS.items():
        rows.append(dict(file="cohort", name=c, type="numeric", unit="h", required="no", allowed=">= 0", meaning=meaning))
    for name, v in dictionary.variables.items():
        allowed = " | ".join(v.levels) if v.levels else (f"[{v.range[0]:g}, {v.range[1]:g}]" if v.range else ("0/1" if v.type == "binary" else ""))
        rows.append(dict(file="cohort" if v.source == "static" else "timeseries (variable)", name=name, type=v.type, unit=v.unit,
                         required="yes" if name in REQUIRED_STATIC else "no", allowed=allowed, meaning=v.label))
    for c, t in zip(TIMESERIES_COLUMNS, ("integer or text", "integer", "text", "numeric")):
        rows.append(dict(file="timeseries", name=c, type=t, unit="h" if c == "hour" else "", required="yes", allowed="",
                         meaning={"stay_id": "a stay of the cohort", "hour": "hours from time zero, floor, within time_window (resolution daily: 24 * day)",
                                  "variable": "an hourly variable of the dictionary", "value": "in the dictionary's unit, one per stay, hour and variable"}[c]))
    return pl.DataFrame(rows)


def write_starter(dest: str | Path, dictionary: Dictionary, settings: ContractSettings, n_stays: int = 40, seed: int = 1) -> list[Path]:
    """Write the starter files under ``dest``; returns the paths written."""
    dest = Path(dest)
    written = []
    for sub, (cohort, ts) in (("empty", empty_pair(dictionary)), ("example", example_pair(dictionary, settings, n_stays, seed))):
        for name, df in (("cohort", cohort), ("timeseries", ts)):
            for ext, writer in (("parquet", write_parquet), ("csv", write_csv)):
                p = dest / sub / f"{name}.{ext}"
                writer(df, p)
                written.append(p)
    p = dest / "columns.csv"
    write_csv(codebook(dictionary), p)
    written.append(p)
    ex = (dest / "example").resolve()
    overlay = f"""# Config overlay for a new database in contract format (snakemake --configfile {dest / 'my_database.yaml'}).
# Check it first: scripts/check_contract.py --config {dest / 'my_database.yaml'} --database my_database
databases:
  my_database:
    type: contract
    cohort: {ex / 'cohort.csv'}
    timeseries: {ex / 'timeseries.csv'}
    # how your export maps onto the contract (docs/bring-your-database.md); the check suggests entries
    mapping: {{}}
"""
    p = dest / "my_database.yaml"
    write_text(overlay, p)
    written.append(p)
    return written
