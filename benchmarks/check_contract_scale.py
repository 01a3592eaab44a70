"""Time of the contract check (scripts/check_contract.py) on a large generated pair.

    .venv/bin/python benchmarks/check_contract_scale.py --stays 100000 [--rows-per-stay 1050] [--formats parquet csv]

Generates a valid contract pair of N stays (cohort with every static variable of the data
dictionary; a long time series with every hourly variable, ``rows-per-stay`` rows per stay on
average, the simulator's density being ~1,050), writes it to a temporary folder (Parquet and/or
CSV), then runs ``scripts/check_contract.py`` on it in a child process (read, map, validate) and
reports its wall time, CPU time and peak resident memory (wall time depends on the machine's load;
CPU time much less).  Prints one CSV line per format and
appends it to ``benchmarks/check_contract_scale.csv``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
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
from sepsis_cs.starter import example_pair  # noqa: E402


def generate(n_stays: int, rows_per_stay: int, seed: int = 1, shuffle: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
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
    hourly = sorted(dictionary.hourly.values(), key=lambda v: v.name)  # rows in (stay, variable, hour) order, as most exports
    hours = np.arange(settings.window_start_h, settings.window_end_h + 1)
    # every (variable, hour) cell kept with the probability that gives rows_per_stay rows per stay; by chunks of stays
    p = min(1.0, rows_per_stay / (len(hourly) * len(hours)))
    n_cells = len(hourly) * len(hours)
    lo = np.array([(v.normal or v.range or (0, 1))[0] for v in hourly], dtype=float)
    hi = np.array([(v.normal or v.range or (0, 1))[1] for v in hourly], dtype=float)
    rlo = np.array([v.range[0] if v.range else -np.inf for v in hourly])
    rhi = np.array([v.range[1] if v.range else np.inf for v in hourly])
    lo, hi = np.maximum(lo, rlo), np.minimum(hi, rhi)
    names = pl.Series([v.name for v in hourly], dtype=pl.String)
    parts = []
    for start in range(0, n_stays, 5000):
        stop = min(start + 5000, n_stays)
        keep = rng.random((stop - start, n_cells)) < p
        stay_i, cell = np.nonzero(keep)
        var_i, hour_i = cell // len(hours), cell % len(hours)
        value = lo[var_i] + (hi[var_i] - lo[var_i]) * rng.random(len(var_i))
        parts.append(pl.DataFrame({
            "stay_id": cohort["stay_id"].gather(stay_i + start),
            "hour": hours[hour_i].astype(np.int32),
            "variable": names.gather(var_i),
            "value": value.round(2),
        }))
    ts = pl.concat(parts)
    if shuffle:  # rows in no particular order: the check then sorts them
        ts = ts.sample(fraction=1.0, shuffle=True, seed=seed)
    return cohort, ts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stays", type=int, default=100_000)
    ap.add_argument("--rows-per-stay", type=int, default=1050)
    ap.add_argument("--shuffle", action="store_true", help="time-series rows in random order (the check sorts them)")
    ap.add_argument("--formats", nargs="+", default=["parquet"], choices=["parquet", "csv"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "check_contract_scale.csv"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cohort, ts = generate(args.stays, args.rows_per_stay, shuffle=args.shuffle)
    gen_s = time.perf_counter() - t0
    n_rows = ts.height
    lines = []
    order = "shuffled" if args.shuffle else "sorted"
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for fmt in args.formats:
            c, t = Path(tmp) / f"cohort.{fmt}", Path(tmp) / f"timeseries.{fmt}"
            if fmt == "parquet":
                cohort.write_parquet(c)
                ts.write_parquet(t)
            else:
                cohort.write_csv(c)
                ts.write_csv(t)
            paths[fmt] = (c, t)
        del cohort, ts
        for fmt, (c, t) in paths.items():
            size_mb = (c.stat().st_size + t.stat().st_size) / 1e6
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t1 = time.perf_counter()
            # the command a user runs, in its own process (its peak memory is the check's alone)
            proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_contract.py"), "--cohort", str(c), "--timeseries", str(t)],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t1
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            peak_gb = after.ru_maxrss / 1e6
            lines.append(f"{args.stays},{n_rows},{fmt},{order},{size_mb:.0f},{wall:.1f},{cpu:.1f},{peak_gb:.2f}")
            print(f"stays={args.stays} rows={n_rows} format={fmt} row_order={order} files={size_mb:.0f} MB "
                  f"check: wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {peak_gb:.2f} GB (generation {gen_s:.1f} s)", flush=True)
    out = Path(args.out)
    new = not out.exists()
    with out.open("a") as fh:
        if new:
            fh.write("stays,timeseries_rows,format,row_order,files_mb,check_wall_s,check_cpu_s,peak_rss_gb\n")
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
