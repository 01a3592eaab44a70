"""MIT-LCP mimic-code as an external reference: build its concepts, read its derived tables.

:func:`build_mimic_code` loads the raw MIMIC-IV tables of a database folder (``hosp/``, ``icu/``;
``.csv.gz``, ``.csv`` or ``.parquet``) into DuckDB schemas ``mimiciv_hosp`` / ``mimiciv_icu`` and
runs the concept files of a mimic-code checkout in the order of its ``concepts_duckdb/duckdb.sql``
(the logic of its ``build_reference.py``; the SQL is read from the user's folder, never copied into
this repository).  :func:`read_derived` reads the tables the concordance harness and the
bring-your-own option use, from such a DuckDB file or from CSV/Parquet exports.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import polars as pl

from .errors import UserInputError

#: columns the concept files need typed as text on some copies (the demo's reconstructed chartevents)
TEXT_COLUMNS = {"chartevents": ("value", "valueuom")}

#: derived tables read from a mimic-code build and the columns each must have
DERIVED_COLUMNS = {
    "sepsis3": ("stay_id", "suspected_infection_time", "sofa_time", "sepsis3"),
    "suspicion_of_infection": ("stay_id", "suspected_infection", "suspected_infection_time", "antibiotic_time", "culture_time"),
    "sofa": (
        "stay_id", "hr", "endtime", "respiration_24hours", "coagulation_24hours", "liver_24hours",
        "cardiovascular_24hours", "cns_24hours", "renal_24hours", "sofa_24hours",
    ),
    "norepinephrine_equivalent_dose": ("stay_id", "starttime", "endtime", "norepinephrine_equivalent_dose"),
    "ventilation": ("stay_id", "starttime", "endtime", "ventilation_status"),
}


def concept_order(concepts_dir: Path) -> list[str]:
    """Concept files in dependency order (``.read`` lines of ``duckdb.sql``)."""
    index = concepts_dir / "duckdb.sql"
    if not index.is_file():
        raise UserInputError(index, None, "mimic-code concepts_duckdb/duckdb.sql not found (reference.mimic_code must be the folder holding mimic-iv/)")
    return re.findall(r"^\.read (\S+)", index.read_text(), re.MULTILINE)


def build_mimic_code(raw_root: str | Path, mimic_code: str | Path, out: str | Path, threads: int = 1) -> dict:
    """Build mimic-code's ``mimiciv_derived`` schema for the MIMIC-IV tables under ``raw_root`` into
    the DuckDB file ``out``; returns timings and the number of concept files run."""
    import duckdb

    raw_root, concepts_dir = Path(raw_root), Path(mimic_code) / "mimic-iv" / "concepts_duckdb"
    order = concept_order(concepts_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    con = duckdb.connect(str(out))
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET enable_progress_bar = false")
    for module in ("hosp", "icu"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS mimiciv_{module}")
        files: dict[str, Path] = {}
        for ext in (".csv", ".csv.gz", ".parquet"):  # later extensions win: parquet, then csv.gz
            for f in sorted((raw_root / module).glob(f"*{ext}")):
                files[f.name[: -len(ext)]] = f
        for table, f in sorted(files.items()):
            path = str(f).replace("'", "''")
            if f.suffix == ".parquet":
                src = f"read_parquet('{path}')"
            else:
                types = TEXT_COLUMNS.get(table)
                typ = (", types={" + ", ".join(f"'{c}': 'VARCHAR'" for c in types) + "}") if types else ""
                src = f"read_csv('{path}', header=true, sample_size=-1{typ})"
            con.execute(f"CREATE OR REPLACE TABLE mimiciv_{module}.{table} AS SELECT * FROM {src}")
    t1 = time.perf_counter()
    con.execute("CREATE SCHEMA IF NOT EXISTS mimiciv_derived")
    for rel in order:
        con.execute((concepts_dir / rel).read_text())
    con.close()
    return {"load_seconds": round(t1 - t0, 2), "concepts_seconds": round(time.perf_counter() - t1, 2), "n_concepts": len(order)}


def _check(frame: pl.DataFrame, name: str, source: str) -> pl.DataFrame:
    for c in DERIVED_COLUMNS[name]:
        if c not in frame.columns:
            raise UserInputError(source, c, f"required column of mimic-code table {name} is missing")
    return frame


def read_derived(source: dict, tables: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    """Derived tables from a mimic-code build: ``source`` = ``{duckdb: path}`` (schema ``mimiciv_derived``)
    or ``{<table>: path of a CSV/Parquet export, ...}``.  Timestamps become datetimes, ids integers."""
    out = {}
    if source.get("duckdb"):
        import duckdb

        path = Path(source["duckdb"])
        if not path.is_file():
            raise UserInputError(path, None, "mimic-code DuckDB file not found")
        con = duckdb.connect(str(path), read_only=True)
        try:
            have = {r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = 'mimiciv_derived'").fetchall()}
            for t in tables:
                if t not in have:
                    raise UserInputError(path, f"mimiciv_derived.{t}", "table missing from the mimic-code build")
                cols = ", ".join(DERIVED_COLUMNS[t])
                out[t] = _check(con.execute(f"select {cols} from mimiciv_derived.{t}").pl(), t, str(path))
        finally:
            con.close()
    else:
        for t in tables:
            if not source.get(t):
                raise UserInputError("config", f"derived.{t}", "path of the exported table is required (or set derived.duckdb)")
            p = Path(source[t])
            if not p.is_file():
                raise UserInputError(p, None, f"exported mimic-code table {t} not found")
            df = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p, infer_schema_length=0)
            out[t] = _check(df, t, str(p))
    return {t: _normalise(df, t, source.get("duckdb") or source.get(t)) for t, df in out.items()}


def _normalise(df: pl.DataFrame, table: str, source) -> pl.DataFrame:
    """Typed columns: ids Int64, times Datetime(us), numbers Float64, flags Boolean; one line per bad column."""
    exprs = []
    for c in DERIVED_COLUMNS[table]:
        dt = df.schema[c]
        if c in ("stay_id", "hr"):
            e = pl.col(c).cast(pl.Int64, strict=False)
        elif c.endswith("time") or c in ("starttime", "endtime"):
            e = pl.col(c) if dt.is_temporal() else pl.col(c).cast(pl.String).str.slice(0, 19).str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
            e = e.cast(pl.Datetime("us"))
        elif c in ("sepsis3", "suspected_infection"):
            e = pl.col(c).cast(pl.String).str.to_lowercase().replace_strict({"true": True, "1": True, "false": False, "0": False}, default=None, return_dtype=pl.Boolean)
        elif c == "ventilation_status":
            e = pl.col(c).cast(pl.String)
        else:
            e = pl.col(c).cast(pl.Float64, strict=False)
        exprs.append(e.alias(c))
    out = df.select(exprs)
    for c in DERIVED_COLUMNS[table]:
        bad = out[c].null_count() - df[c].null_count() if df[c].dtype != pl.String else out[c].null_count() - df[c].replace("", None).null_count()
        if bad > 0:
            raise UserInputError(source, c, f"{bad} values of mimic-code table {table} could not be read (expected {'timestamps' if 'time' in c else 'numbers/flags'})")
    return out
