"""Scaling benchmark of the chartevents -> hourly step of the MIMIC-IV adapter.

Generates ``icu/icustays.csv.gz`` and ``icu/chartevents.csv.gz`` in the MIMIC-IV schema with N
chartevents rows (about 60 % of them concept itemids, the rest other items, 1 % implausible values),
then times, each in a fresh subprocess (so that peak RSS is the step's own):

- ``polars_gz``: the adapter's own plan (``mimic_iv._events`` + ``common.aggregate_hourly``, lazy scan,
  streaming collect) on the ``.csv.gz`` file;
- ``polars_csv``: the same plan on the decompressed ``.csv`` (shows what gzip costs: polars cannot
  stream-decompress a gzip CSV, it inflates the whole file in memory before parsing);
- ``pandas_gz``: a straightforward pandas version (``read_csv`` of the needed columns, filter,
  merge, groupby) on the ``.csv.gz`` file.

Both produce one value per (stay, hour, variable); the table says whether they agree.

    .venv/bin/python benchmarks/ingest_scale.py                      # 200,000 rows (quick check)
    .venv/bin/python benchmarks/ingest_scale.py 1000000 10000000 50000000 --out benchmarks/ingest_scale.csv

Results go to a CSV (``--out``) and are printed as a table. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sepsis_cs.adapters import common, mimic_iv  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402

OTHER_ITEMS = [220277, 224641, 224650, 220048, 228096, 224093, 220179, 220180, 223791, 224084]
GRID = (-72, 97)


def concept_items() -> pl.DataFrame:
    concepts = common.load_concepts(ROOT / "config" / "concepts.yaml")
    return mimic_iv._item_map(concepts["mimic_iv"], "chartevents")


def generate(folder: Path, n_rows: int, seed: int = 1, chunk: int = 2_000_000) -> dict:
    """Write icustays + chartevents (csv.gz and decompressed csv) with ``n_rows`` chartevents rows."""
    rng = np.random.default_rng(seed)
    icu = folder / "icu"
    icu.mkdir(parents=True, exist_ok=True)
    n_stays = max(20, n_rows // 1500)
    intime = (np.datetime64("2150-01-01T00:00") + rng.integers(0, 3 * 365 * 24 * 60, n_stays).astype("timedelta64[m]")).astype("datetime64[ms]")
    stays = pl.DataFrame(
        {
            "subject_id": np.arange(n_stays) + 10_000_000,
            "hadm_id": np.arange(n_stays) + 20_000_000,
            "stay_id": np.arange(n_stays) + 30_000_000,
            "first_careunit": "MICU",
            "last_careunit": "MICU",
            "intime": pl.Series(intime).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "outtime": pl.Series(intime + np.timedelta64(7 * 24 * 60, "m")).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "los": 7.0,
        }
    )
    with gzip.open(icu / "icustays.csv.gz", "wb", compresslevel=1) as fh:
        stays.write_csv(fh)
    items = concept_items()
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    helpers = common.load_concepts(ROOT / "config" / "concepts.yaml").get("helpers", {})
    lo_hi = {}
    for r in items.iter_rows(named=True):
        v = dictionary.variables.get(r["variable"])
        rng_ = v.range if v is not None and v.range else tuple(helpers.get(r["variable"], {}).get("range", (0, 100)))
        if r["f2c"]:
            rng_ = (rng_[0] * 9 / 5 + 32, rng_[1] * 9 / 5 + 32)
        lo_hi[r["itemid"]] = rng_
    concept_ids = np.array(items["itemid"].to_list())
    all_lo = np.array([lo_hi[i][0] for i in concept_ids])
    all_hi = np.array([lo_hi[i][1] for i in concept_ids])
    written = 0
    header = True
    with gzip.open(icu / "chartevents.csv.gz", "wb", compresslevel=1) as gz, open(icu / "chartevents.csv", "wb") as raw:
        while written < n_rows:
            m = min(chunk, n_rows - written)
            s = rng.integers(0, n_stays, m)
            is_concept = rng.random(m) < 0.6
            k = rng.integers(0, len(concept_ids), m)
            itemid = np.where(is_concept, concept_ids[k], np.array(OTHER_ITEMS)[rng.integers(0, len(OTHER_ITEMS), m)])
            lo, hi = np.where(is_concept, all_lo[k], 0.0), np.where(is_concept, all_hi[k], 100.0)
            mid, half = (lo + hi) / 2, (hi - lo) / 4
            val = np.round(mid + half * rng.uniform(-1, 1, m), 2)
            val = np.where(rng.random(m) < 0.01, val * 50 + 1000, val)  # implausible
            offset_min = rng.integers(-30 * 60, 120 * 60, m)
            charttime = intime[s] + offset_min.astype("timedelta64[m]")
            df = pl.DataFrame(
                {
                    "subject_id": s + 10_000_000,
                    "hadm_id": s + 20_000_000,
                    "stay_id": s + 30_000_000,
                    "caregiver_id": rng.integers(1, 90000, m),
                    "charttime": pl.Series(charttime).dt.strftime("%Y-%m-%d %H:%M:%S"),
                    "storetime": pl.Series(charttime).dt.strftime("%Y-%m-%d %H:%M:%S"),
                    "itemid": itemid,
                    "value": pl.Series(val).cast(pl.String),
                    "valuenum": val,
                    "valueuom": "",
                    "warning": 0,
                }
            )
            df.write_csv(gz, include_header=header)
            df.write_csv(raw, include_header=header)
            header = False
            written += m
    return {
        "n_stays": n_stays,
        "gz_mb": round((icu / "chartevents.csv.gz").stat().st_size / 1e6, 1),
        "csv_mb": round((icu / "chartevents.csv").stat().st_size / 1e6, 1),
    }


# ----------------------------------------------------------------------------- the two implementations
def run_polars(folder: Path, fname: str) -> pl.DataFrame:
    """The adapter's plan: one lazy scan, filter itemids, join stays, convert, hourly aggregate, streaming collect."""
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    concepts = common.load_concepts(ROOT / "config" / "concepts.yaml")
    stays = pl.read_csv(folder / "icu" / "icustays.csv.gz").select(
        pl.col("stay_id").cast(pl.Int64), pl.col("intime").str.to_datetime("%Y-%m-%d %H:%M:%S")
    )
    ev = mimic_iv._events(pl.scan_csv(folder / "icu" / fname, infer_schema=False), concept_items(), stays, "stay_id", "charttime", "valuenum")
    return common.aggregate_hourly(ev, common.variable_specs(dictionary, concepts), GRID).collect(engine="streaming")


def run_pandas(folder: Path, fname: str) -> pl.DataFrame:
    """Straightforward pandas: read the needed columns of the whole table, then filter, merge, group."""
    import pandas as pd

    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    concepts = common.load_concepts(ROOT / "config" / "concepts.yaml")
    specs = common.variable_specs(dictionary, concepts).to_pandas()
    items = concept_items().to_pandas()
    stays = pd.read_csv(folder / "icu" / "icustays.csv.gz", usecols=["stay_id", "intime"], parse_dates=["intime"])
    ce = pd.read_csv(folder / "icu" / fname, usecols=["stay_id", "charttime", "itemid", "valuenum"])
    ce = ce[ce["itemid"].isin(items["itemid"])]
    ce = ce.merge(items, on="itemid").merge(stays, on="stay_id")
    ce["charttime"] = pd.to_datetime(ce["charttime"], format="%Y-%m-%d %H:%M:%S")
    ce["t_h"] = (ce["charttime"] - ce["intime"]).dt.total_seconds() / 3600.0
    v = ce["valuenum"].where(~ce["f2c"], (ce["valuenum"] - 32.0) * (5.0 / 9.0))
    ce["value"] = v * ce["factor"] + ce["offset"]
    ce["hour_icu"] = np.floor(ce["t_h"]).astype("int64")
    ce = ce[(ce["hour_icu"] >= GRID[0]) & (ce["hour_icu"] <= GRID[1]) & ce["value"].notna()]
    ce = ce.merge(specs, on="variable")
    ce = ce[(ce["value"] >= ce["lo"]) & (ce["value"] <= ce["hi"])]
    out = []
    for agg, part in ce.groupby("agg"):
        part = part.sort_values("t_h")
        g = part.groupby(["stay_id", "hour_icu", "variable"])["value"].agg(agg).reset_index()
        out.append(g)
    res = pd.concat(out)
    return pl.from_pandas(res).select(
        pl.col("stay_id").cast(pl.Int64), pl.col("hour_icu").cast(pl.Int32), "variable", pl.col("value").cast(pl.Float64)
    )


def _child(impl: str, folder: str, fname: str, out: str) -> None:
    t0 = time.perf_counter()
    df = (run_polars if impl.startswith("polars") else run_pandas)(Path(folder), fname)
    secs = time.perf_counter() - t0
    df.sort("stay_id", "hour_icu", "variable").write_parquet(out)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "peak_rss_mb": rss_mb, "out_rows": df.height}))


def measure(impl: str, folder: Path, fname: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", impl, str(folder), fname, str(out)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"seconds": None, "peak_rss_mb": None, "out_rows": None, "error": proc.stderr.strip().splitlines()[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=[200_000], help="chartevents rows (default 200000)")
    ap.add_argument("--out", default="benchmarks/ingest_scale.csv", help="result CSV")
    ap.add_argument("--workdir", default=None, help="folder for generated tables (default: a temporary folder, removed)")
    ap.add_argument("--skip-pandas-above", type=int, default=60_000_000, help="do not run pandas above this many rows")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ingest_scale_"))
    rows = []
    try:
        for n in args.sizes:
            folder = base / f"n{n}"
            t0 = time.perf_counter()
            info = generate(folder, n)
            gen_s = time.perf_counter() - t0
            results = {}
            for impl, fname in (("polars_gz", "chartevents.csv.gz"), ("polars_csv", "chartevents.csv"), ("pandas_gz", "chartevents.csv.gz")):
                if impl.startswith("pandas") and n > args.skip_pandas_above:
                    continue
                r = measure(impl, folder, fname, folder / f"{impl}.parquet")
                results[impl] = r
                rows.append(
                    {
                        "rows": n, "stays": info["n_stays"], "gz_mb": info["gz_mb"], "csv_mb": info["csv_mb"], "impl": impl,
                        "seconds": None if r["seconds"] is None else round(r["seconds"], 2),
                        "peak_rss_mb": None if r["peak_rss_mb"] is None else round(r["peak_rss_mb"]),
                        "rows_per_s": None if not r["seconds"] else round(n / r["seconds"]),
                        "out_rows": r["out_rows"], "generate_s": round(gen_s, 1), "error": r.get("error", ""),
                    }
                )
            # agreement of polars and pandas outputs
            if "pandas_gz" in results and results["pandas_gz"]["seconds"] is not None and results["polars_gz"]["seconds"] is not None:
                a = pl.read_parquet(folder / "polars_gz.parquet")
                b = pl.read_parquet(folder / "pandas_gz.parquet")
                j = a.join(b, on=["stay_id", "hour_icu", "variable"], how="full", coalesce=True)
                agree = a.height == b.height and bool(((j["value"] - j["value_right"]).abs() < 1e-6).all())
                for r in rows:
                    if r["rows"] == n:
                        r["polars_pandas_agree"] = agree
            if not args.workdir:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    table = pl.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(args.out)
    with pl.Config(tbl_rows=100, tbl_cols=-1, tbl_width_chars=250, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(table.drop("error") if not any(table["error"]) else table)


if __name__ == "__main__":
    main()
