"""Time of the contract check (scripts/check_contract.py) on a large generated pair.

    .venv/bin/python benchmarks/check_contract_scale.py --stays 100000 [--rows-per-stay 1050] [--formats parquet csv]

Generates a valid contract pair of N stays (cohort with every static variable of the data
dictionary; a long time series with every hourly variable, ``rows-per-stay`` rows per stay on
average, the simulator's density being ~1,050), writes it to a temporary folder (Parquet and/or
CSV), then times ``sepsis_cs.onboard.check_pair`` (read, map, validate: what the CLI runs) and
reports wall time and the peak resident memory of the process.  Prints one CSV line per format and
appends it to ``benchmarks/check_contract_scale.csv``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sepsis_cs.contract import ContractSettings  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from sepsis_cs.mapping import Mapping  # noqa: E402
from sepsis_cs.onboard import check_pair  # noqa: E402
from sepsis_cs.starter import example_pair  # noqa: E402


def generate(n_stays: int, rows_per_stay: int, seed: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A valid pair: the starter example's cohort scaled to ``n_stays``, a long time series."""
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    settings = ContractSettings()
    template, _ = example_pair(dictionary, settings, n_stays=64, seed=seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, template.height, n_stays)
    cohort = template[idx].with_columns(
        pl.Series("stay_id", np.arange(30_000_000, 30_000_000 + n_stays).astype(str)),
        pl.Series("patient_id", np.arange(10_000_000, 10_000_000 + n_stays).astype(str)),
    )
    hourly = list(dictionary.hourly.values())
    hours = np.arange(settings.window_start_h, settings.window_end_h + 1)
    # every (variable, hour) cell kept with the probability that gives rows_per_stay rows per stay
    p = min(1.0, rows_per_stay / (len(hourly) * len(hours)))
    n_cells = len(hourly) * len(hours)
    keep = rng.random((n_stays, n_cells)) < p
    stay_i, cell = np.nonzero(keep)
    var_i, hour_i = cell // len(hours), cell % len(hours)
    lo = np.array([(v.normal or v.range or (0, 1))[0] for v in hourly], dtype=float)
    hi = np.array([(v.normal or v.range or (0, 1))[1] for v in hourly], dtype=float)
    if any(v.range for v in hourly):
        rlo = np.array([v.range[0] if v.range else -np.inf for v in hourly])
        rhi = np.array([v.range[1] if v.range else np.inf for v in hourly])
        lo, hi = np.maximum(lo, rlo), np.minimum(hi, rhi)
    value = lo[var_i] + (hi[var_i] - lo[var_i]) * rng.random(len(var_i))
    names = pl.Series([v.name for v in hourly], dtype=pl.String)
    ts = pl.DataFrame({
        "stay_id": cohort["stay_id"].gather(stay_i),
        "hour": hours[hour_i].astype(np.int32),
        "variable": names.gather(var_i),
        "value": value.round(2),
    })
    return cohort, ts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stays", type=int, default=100_000)
    ap.add_argument("--rows-per-stay", type=int, default=1050)
    ap.add_argument("--formats", nargs="+", default=["parquet"], choices=["parquet", "csv"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "check_contract_scale.csv"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cohort, ts = generate(args.stays, args.rows_per_stay)
    gen_s = time.perf_counter() - t0
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats:
            c, t = Path(tmp) / f"cohort.{fmt}", Path(tmp) / f"timeseries.{fmt}"
            if fmt == "parquet":
                cohort.write_parquet(c)
                ts.write_parquet(t)
            else:
                cohort.write_csv(c)
                ts.write_csv(t)
            size_mb = (c.stat().st_size + t.stat().st_size) / 1e6
            t1 = time.perf_counter()
            outcome = check_pair(c, t, Mapping(), dictionary, ContractSettings())
            wall = time.perf_counter() - t1
            assert outcome.ok, [p.line() for p in outcome.problems.errors][:5]
            peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
            lines.append(f"{args.stays},{ts.height},{fmt},{size_mb:.0f},{wall:.1f},{peak_gb:.2f}")
            print(f"stays={args.stays} rows={ts.height} format={fmt} files={size_mb:.0f} MB check={wall:.1f} s "
                  f"peak_rss={peak_gb:.2f} GB (generation {gen_s:.1f} s; peak includes the generated frames)", flush=True)
    out = Path(args.out)
    new = not out.exists()
    with out.open("a") as fh:
        if new:
            fh.write("stays,timeseries_rows,format,files_mb,check_seconds,peak_rss_gb\n")
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
