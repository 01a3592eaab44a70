"""The whole workflow on synthetic MIMIC-IV and eICU-CRD at a fraction of the real row counts (issue 16).

For each ``--scale`` (1.0 = MIMIC-IV 3.1 / eICU-CRD 2.0 row counts, ``sepsis_cs.synthetic_raw.REAL_ROWS``):

1. writes both databases in their real schemas (``sepsis_cs.synthetic_raw``; csv.gz, or Parquet with
   ``--format parquet``) under ``--data/s<scale>/`` (kept and reused if already there with the same seed);
2. runs the workflow on them in a fresh copy (``--work/s<scale>/``): a config overlay drops the simulated
   databases, adds ``mimic_synth`` and ``eicu_synth`` and transfers eICU -> MIMIC-IV; ingest and every
   phase of the default configuration (the mimic-code concordance is off: it needs tables we do not write);
3. reads each job's ``benchmark:`` file (wall seconds, peak RSS of the job's process tree) and what is
   cheap to count: raw rows in (ingest), cohort stays (every job of a database), timeseries rows.

Before the first scale, an audit at a tiny scale runs each adapter on freshly generated data with its scans
recorded (``sepsis_cs.adapters.audit``): it stops with one line per problem if an adapter reads a column
the generator leaves empty, and writes how many times each raw table is scanned.

    .venv/bin/python benchmarks/full_scale.py --scales 0.01 0.1 --data /work/scale-data --work /work/scale-runs
    .venv/bin/python benchmarks/full_scale.py --scales 0.001 --generate-only --data /tmp/synth     # data only

Writes ``--out`` (one row per job and scale), ``<out>_runs.csv`` (one row per scale: wall time, peak RSS of
the whole run, data size), ``<out>_slopes.csv`` (log-log slope of time and peak RSS per job across the
scales, with the value extrapolated to scale 1.0: an extrapolation, not a measurement), ``<out>_scans.csv``
(scans per raw table) and a figure.  Timings on a shared machine are contended: say so when quoting them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from helpers import SNAKEMAKE, make_workdir  # noqa: E402
from scale import slope, tree_rss  # noqa: E402
from sepsis_cs import synthetic_raw  # noqa: E402

DBS = {"mimic_synth": "mimic_iv", "eicu_synth": "eicu"}
TARGET_MB = 8000
#: large raw tables (issue 16): each should be read once
LARGE = {"mimic_iv": ["chartevents", "labevents", "emar", "emar_detail", "prescriptions", "inputevents", "microbiologyevents"],
         "eicu": ["nurseCharting", "vitalPeriodic", "lab", "respiratoryCharting", "medication"]}


# ----------------------------------------------------------------------------- audit
def audit(folder: Path, scale: float = 0.0005, seed: int = 1) -> list[dict]:
    """Generate both databases at a tiny scale, run each adapter with its scans recorded.

    Returns one row per (database, table): scans in the optimised plans, columns read.  Exits with one line per column an adapter reads that the generator leaves empty.
    """
    from sepsis_cs.adapters import audit as au
    from sepsis_cs.adapters import common, eicu, mimic_iv
    from sepsis_cs.dictionary import load_dictionary

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    concepts = common.load_concepts(ROOT / "config/concepts.yaml")
    dictionary = load_dictionary(ROOT / "config/variables.yaml")
    rows, problems = [], []
    for db_type, module in (("mimic_iv", mimic_iv), ("eicu", eicu)):
        root = folder / db_type
        synthetic_raw.generate(root, db_type, scale, seed=seed)
        with au.recorded_plans() as plans:
            module.ingest(root, "audit", config, concepts, dictionary)
        with au.recorded_scans(module) as rec:
            module.ingest(root, "audit", config, concepts, dictionary)
        read = au.columns_read(rec)
        problems += au.unfilled_reads(read, module.table_path, root)
        plan_counts = au.plan_scan_counts(plans)
        for table in sorted(set(plan_counts) | set(read)):
            rows.append({"database": db_type, "table": table, "large": table in LARGE[db_type], "plan_scans": plan_counts.get(table, 0),
                         "columns_read": " ".join(sorted(read.get(table, [])))})
    if problems:
        raise SystemExit("the synthetic data lack columns the adapters read:\n" + "\n".join(problems))
    return rows


# ----------------------------------------------------------------------------- data
def ensure_data(data: Path, scale: float, seed: int, fmt: str) -> dict:
    out = {}
    for name, db_type in DBS.items():
        root = data / f"s{scale:g}" / db_type
        info_path = root / "synthetic.json"
        if info_path.is_file():
            info = json.loads(info_path.read_text())
            if (info["scale"], info["seed"], info["format"]) == (scale, seed, fmt):
                out[name] = info
                continue
        print(f"generating {db_type} at scale {scale:g} ...", flush=True)
        out[name] = synthetic_raw.generate(root, db_type, scale, seed=seed, fmt=fmt)
        print(f"  {out[name]['seconds']} s, {sum(out[name]['rows'].values()):,} rows, {sum(out[name]['bytes'].values()) / 2**20:,.0f} MB", flush=True)
    return out


def overlay(data: Path, scale: float) -> dict:
    """Config overlay: the two synthetic databases analysed, the simulated ones dropped (as tests/configs/real_demos.yaml)."""
    base = yaml.safe_load((ROOT / "tests/configs/real_demos.yaml").read_text())
    dbs = {k: None for k, v in base["databases"].items() if v is None}
    for name, db_type in DBS.items():
        dbs[name] = {"type": db_type, "analyse": True, "path": str((data / f"s{scale:g}" / db_type).resolve())}
    return {"databases": dbs, "reference": {"mimic_code": None}, "transfer": {"pairs": [{"source": "eicu_synth", "target": "mimic_synth"}]}}


# ----------------------------------------------------------------------------- run
def run_scale(scale: float, data: Path, work: Path, cores: int, extra: list[str], info: dict, timeout: float) -> tuple[dict, list[dict]]:
    wd = make_workdir(work / f"s{scale:g}")
    (wd / "full_scale.yaml").write_text(yaml.safe_dump(overlay(data, scale)))
    cmd = [SNAKEMAKE, "--cores", str(cores), "--configfile", "full_scale.yaml", "--rerun-incomplete", *extra]
    t0 = time.monotonic()
    with open(wd / "full_scale_snakemake.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, tree_rss(ps))
            except psutil.NoSuchProcess:
                break
            if time.monotonic() - t0 > timeout:
                proc.terminate()
                proc.wait(60)
                break
            time.sleep(0.5)
    seconds = time.monotonic() - t0
    jobs = collect_jobs(wd, scale, info)
    summary = {
        "scale": scale, "cores": cores, "returncode": proc.returncode, "seconds": round(seconds, 1), "peak_tree_mb": round(peak / 2**20),
        "largest_job_mb": round(max((j["max_rss_mb"] for j in jobs if not math.isnan(j["max_rss_mb"])), default=math.nan)), "jobs": len(jobs),
        **{f"{n}_stays": cohort_size(wd, n)[0] for n in DBS},
        **{f"{n}_raw_rows": sum(i["rows"].values()) for n, i in info.items()},
        **{f"{n}_raw_mb": round(sum(i["bytes"].values()) / 2**20) for n, i in info.items()},
        **{f"{n}_generate_s": i["seconds"] for n, i in info.items()},
    }
    if proc.returncode != 0:
        tail = (wd / "full_scale_snakemake.log").read_text()[-2500:]
        print(f"snakemake failed at scale {scale:g} (see {wd}/full_scale_snakemake.log):\n{tail}", file=sys.stderr)
    return summary, jobs


def cohort_size(wd: Path, database: str) -> tuple[int | None, int | None]:
    """(cohort stays, timeseries rows) of a finished ingest (Parquet metadata: cheap)."""
    import polars as pl

    folder = wd / "results" / database / "ingest"
    if not (folder / "cohort.parquet").is_file():
        return None, None
    n = lambda f: pl.scan_parquet(folder / f).select(pl.len()).collect().item()  # noqa: E731
    return n("cohort.parquet"), n("timeseries.parquet")


def _num(x) -> float:
    return float(x) if x not in (None, "-", "NA", "") else math.nan


def collect_jobs(wd: Path, scale: float, info: dict) -> list[dict]:
    out = []
    bench = wd / "results" / "benchmarks"
    for tsv in sorted(bench.rglob("*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rel = tsv.relative_to(bench)
        database = rel.parts[0] if len(rel.parts) > 1 else ""
        stays, ts_rows = cohort_size(wd, database) if database in DBS else (None, None)
        ingest = tsv.stem.startswith("ingest_")
        out.append({
            "scale": scale, "database": database, "job": str(rel.with_suffix("")), "rule": tsv.stem,
            "seconds": float(row["s"]), "cpu_seconds": _num(row.get("cpu_time")), "max_rss_mb": _num(row["max_rss"]),
            "rows_in": sum(info[database]["rows"].values()) if ingest and database in info else stays,
            "rows_out": ts_rows if ingest else None, "cohort_stays": stays,
        })
    return out


# ----------------------------------------------------------------------------- ingest alone
_INGEST = """
import json, resource, sys, time
sys.path.insert(0, {scripts!r})
sys.path.insert(0, {tests!r})
from helpers import unit_config
from sepsis_cs.adapters import common, {module}
from sepsis_cs.dictionary import load_dictionary
t0, c0 = time.perf_counter(), time.process_time()
res = {module}.ingest({root!r}, "synthetic", unit_config(), common.load_concepts({concepts!r}), load_dictionary({dictionary!r}))
ru = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM: this process's own peak (ru_maxrss keeps the parent's peak across exec on Linux)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"seconds": time.perf_counter() - t0, "cpu_seconds": ru.ru_utime + ru.ru_stime, "max_rss_mb": hwm / 1024,
                  "cohort_stays": res.cohort.height, "rows_out": res.timeseries.height}}))
"""


def ingest_alone(data: Path, scale: float, info: dict) -> list[dict]:
    """Each adapter's ingest in a fresh process (no Snakemake): wall and CPU seconds, peak RSS (the process's own)."""
    out = []
    for name, db_type in DBS.items():
        code = _INGEST.format(scripts=str(ROOT / "scripts"), tests=str(ROOT / "tests"), module=db_type, root=str(data / f"s{scale:g}" / db_type),
                              concepts=str(ROOT / "config/concepts.yaml"), dictionary=str(ROOT / "config/variables.yaml"))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=6 * 3600)
        if proc.returncode != 0:
            raise SystemExit(f"ingest of {name} at scale {scale:g} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append({"scale": scale, "database": name, "job": f"{name}/ingest_{db_type}", "rule": f"ingest_{db_type}", **{k: round(v, 2) for k, v in r.items()},
                    "rows_in": sum(info[name]["rows"].values())})
        print(" ".join(f"{k}={v}" for k, v in out[-1].items()), flush=True)
    return out


# ----------------------------------------------------------------------------- summaries
def slopes(jobs: list[dict]) -> list[dict]:
    """Per job: log-log slope of seconds and peak RSS against scale, and both extrapolated to scale 1.0."""
    by: dict[str, dict[float, dict]] = {}
    for j in jobs:
        by.setdefault(j["job"], {})[j["scale"]] = j
    out = []
    for job, d in by.items():
        scales = sorted(d)
        row = {"job": job, "scales": " ".join(f"{s:g}" for s in scales)}
        last = d[scales[-1]]
        row |= {"seconds_at_largest": last["seconds"], "cpu_seconds_at_largest": last.get("cpu_seconds", math.nan), "max_rss_mb_at_largest": last["max_rss_mb"]}
        if len(scales) >= 2:
            t = slope(scales, [max(d[s]["seconds"], 0.05) for s in scales])
            m = slope(scales, [max(d[s]["max_rss_mb"], 1) for s in scales]) if all(not math.isnan(d[s]["max_rss_mb"]) for s in scales) else math.nan
            cpu = [d[s].get("cpu_seconds", math.nan) for s in scales]
            row["cpu_slope"] = round(slope(scales, [max(c, 0.05) for c in cpu]), 2) if not any(math.isnan(c) for c in cpu) else math.nan
            k = 1.0 / scales[-1]
            row |= {"time_slope": round(t, 2), "rss_slope": round(m, 2),
                    "seconds_at_1_extrapolated": round(last["seconds"] * k ** max(t, 0)), "rss_mb_at_1_extrapolated": round(last["max_rss_mb"] * k ** max(m, 0)) if not math.isnan(m) else math.nan}
            row["over_8gb_at_1"] = bool(row["rss_mb_at_1_extrapolated"] > TARGET_MB) if not math.isnan(m) else None
        out.append(row)
    return sorted(out, key=lambda r: -r["seconds_at_largest"])


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def figure(jobs: list[dict], path: Path, top: int = 12) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns

    from sepsis_cs.io import savefig
    from sepsis_cs.plotting import figure as new_figure
    from sepsis_cs.plotting import set_style

    set_style()
    t = pd.DataFrame(jobs)
    keep = t.groupby("job")["seconds"].max().nlargest(top).index
    t = t[t["job"].isin(keep)]
    fig, axes = new_figure(12, 5, ncols=2)
    sns.lineplot(data=t, x="scale", y="seconds", hue="job", marker="o", ax=axes[0], legend=False)
    axes[0].set(xscale="log", yscale="log", xlabel="scale (1 = real row counts)", ylabel="wall seconds (contended)", title=f"Time, {top} slowest jobs")
    sns.lineplot(data=t, x="scale", y="max_rss_mb", hue="job", marker="o", ax=axes[1])
    axes[1].axhline(TARGET_MB, ls=":", color="grey")
    axes[1].set(xscale="log", yscale="log", xlabel="scale (1 = real row counts)", ylabel="peak RSS (MB)", title="Peak memory (dotted: 8 GB target)")
    axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    savefig(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.01])
    ap.add_argument("--data", type=Path, default=Path("/work/scale-data"), help="generated databases (outside the repository)")
    ap.add_argument("--work", type=Path, default=None, help="workflow copies (default: a temporary folder, removed)")
    ap.add_argument("--format", choices=["csv.gz", "parquet"], default="csv.gz")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--timeout-h", type=float, default=6.0, help="stop a workflow run after this many hours")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--no-audit", action="store_true")
    ap.add_argument("--collect-only", action="store_true", help="no run: re-read the benchmark files of finished runs under --work")
    ap.add_argument("--ingest-only", action="store_true", help="no workflow: each adapter's ingest alone, in a fresh process per scale")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/full_scale.csv")
    ap.add_argument("--figure", type=Path, default=ROOT / "benchmarks/full_scale.png")
    ap.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments (after --)")
    args = ap.parse_args(argv)
    stem = args.out.with_suffix("")
    if not (args.no_audit or args.collect_only):
        with tempfile.TemporaryDirectory(prefix="full_scale_audit_") as tmp:
            scans = audit(Path(tmp), seed=args.seed)
        write_csv(Path(f"{stem}_scans.csv"), scans)
        print("scans per raw table (optimised plans; large tables should be read once):")
        for r in scans:
            print(f"  {r['database']:<9} {r['table']:<20} {r['plan_scans']:>3}{'  <- large' if r['large'] and r['plan_scans'] > 1 else ''}")
    infos = {s: ensure_data(args.data, s, args.seed, args.format) for s in sorted(args.scales)}
    if args.generate_only:
        return
    if args.ingest_only:
        jobs = [r for s in sorted(args.scales) for r in ingest_alone(args.data, s, infos[s])]
        write_csv(args.out, jobs)
        for r in slopes(jobs):
            print(" ".join(f"{k}={v}" for k, v in r.items()))
        return
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="full_scale_")
        args.work = Path(tmp.name)
    runs, jobs = [], []
    for s in sorted(args.scales):
        if args.collect_only:
            per_job = collect_jobs(args.work / f"s{s:g}", s, infos[s])
            runs.append({"scale": s, **{f"{n}_stays": cohort_size(args.work / f"s{s:g}", n)[0] for n in DBS}})
            jobs += per_job
            continue
        summary, per_job = run_scale(s, args.data, args.work, args.cores, args.snakemake_args, infos[s], args.timeout_h * 3600)
        print(" ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
        runs.append(summary)
        jobs += per_job
        # written after every scale: a long run interrupted later keeps what it measured
        write_csv(args.out, jobs)
        write_csv(Path(f"{stem}_runs.csv"), runs)
    if args.collect_only:
        write_csv(args.out, jobs)
    sl = slopes(jobs)
    write_csv(Path(f"{stem}_slopes.csv"), sl)
    print(f"\n{'job':<58} {'s':>8} {'MB':>7} {'t slope':>8} {'mem slope':>9} {'MB at 1.0 (extrap.)':>20}")
    for r in sl[:30]:
        print(f"{r['job']:<58} {r['seconds_at_largest']:>8.1f} {r['max_rss_mb_at_largest']:>7.0f} {r.get('time_slope', ''):>8} {r.get('rss_slope', ''):>9} {r.get('rss_mb_at_1_extrapolated', ''):>20}")
    over = [r["job"] for r in sl if r.get("over_8gb_at_1")]
    if over:
        print(f"\nabove {TARGET_MB} MB at scale 1.0 by extrapolation: {', '.join(over)}")
    figure(jobs, args.figure)
    print(f"\nwrote {args.out}, {stem}_runs.csv, {stem}_slopes.csv, {args.figure}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
