"""End-to-end scaling of the workflow: wall time and peak memory on simulated cohorts of growing size.

For each size N the whole workflow (`snakemake --cores C`, every phase) runs in a fresh copy on the
default configuration with every simulated database set to N stays. Measured:

- wall time of the `snakemake` call;
- peak RSS of the process tree (sum over snakemake and all its children, sampled every 0.2 s with
  psutil: the memory the machine must have), and the largest single job (`max_rss` of the rules'
  `benchmark:` files);
- per benchmark file name (rule, or rule_population_method for wildcard rules; summed over
  databases): seconds and max RSS from the `benchmark:` files, and the growth exponent between sizes
  (1 = linear; clearly above 1 = grows faster than linear and is listed at the end).

    .venv/bin/python benchmarks/scale.py                       # 1,000 and 10,000 stays
    .venv/bin/python benchmarks/scale.py --stays 1000 10000 --with-100k
    .venv/bin/python benchmarks/scale.py --cores 4 --out benchmarks/scale.csv --figure benchmarks/scale.png

Writes `--out` (one row per size), `<out>_rules.csv` (one row per rule and size) and a log-log figure;
prints the table and the slopes. Not part of the test suite (minutes to hours).
"""

from __future__ import annotations

import argparse
import csv
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

from helpers import SNAKEMAKE, make_workdir  # noqa: E402


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_size(n: int, cores: int, workroot: Path, extra: list[str]) -> tuple[dict, list[dict]]:
    wd = make_workdir(workroot / f"n{n}")
    base = yaml.safe_load((wd / "config/config.yaml").read_text())
    dbs = {name: {**db, "n_stays": n} for name, db in base["databases"].items() if db["type"] == "simulated"}
    (wd / "scale.yaml").write_text(yaml.safe_dump({"databases": dbs}))
    cmd = [SNAKEMAKE, "--cores", str(cores), "--configfile", "scale.yaml", *extra]
    t0 = time.monotonic()
    log = open(wd / "scale_snakemake.log", "w")
    proc = subprocess.Popen(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(ps))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    seconds = time.monotonic() - t0
    log.close()
    if proc.returncode != 0:
        tail = (wd / "scale_snakemake.log").read_text()[-3000:]
        raise SystemExit(f"snakemake failed at n={n} (see {wd}/scale_snakemake.log):\n{tail}")
    rules = []
    for tsv in sorted((wd / "results/benchmarks").rglob("*.tsv")):
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        # benchmark name: rule (plus wildcards where the rule writes them into the file name), summed
        # over databases in rule_growth
        rules.append(
            {
                "stays": n,
                "rule": tsv.stem,
                "job": str(tsv.relative_to(wd / "results/benchmarks")),
                "seconds": float(row["s"]),
                "max_rss_mb": float(row["max_rss"]) if row["max_rss"] not in ("-", "NA", "") else math.nan,
            }
        )
    n_jobs = len(rules)
    largest = max((r["max_rss_mb"] for r in rules if not math.isnan(r["max_rss_mb"])), default=math.nan)
    summary = {
        "stays": n,
        "cores": cores,
        "jobs": n_jobs,
        "seconds": round(seconds, 1),
        "peak_tree_mb": round(peak / 2**20, 0),
        "largest_job_mb": round(largest, 0),
        "sum_job_seconds": round(sum(r["seconds"] for r in rules), 1),
    }
    return summary, rules


def slope(xs, ys) -> float:
    lx, ly = [math.log10(x) for x in xs], [math.log10(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else math.nan


def rule_growth(rules: list[dict]) -> list[dict]:
    """Per rule: total seconds and largest RSS at each size, exponent of seconds and memory."""
    by = {}
    for r in rules:
        d = by.setdefault(r["rule"], {})
        t, m = d.get(r["stays"], (0.0, 0.0))
        d[r["stays"]] = (t + r["seconds"], max(m, r["max_rss_mb"]))
    out = []
    for rule, d in by.items():
        sizes = sorted(d)
        if len(sizes) < 2:
            continue
        row = {"rule": rule}
        for s in sizes:
            row[f"s_{s}"] = round(d[s][0], 2)
            row[f"mb_{s}"] = round(d[s][1], 0)
        ts = [max(d[s][0], 0.05) for s in sizes]
        row["time_exponent"] = round(slope(sizes, ts), 2)
        row["mem_exponent"] = round(slope(sizes, [max(d[s][1], 1) for s in sizes]), 2)
        out.append(row)
    return sorted(out, key=lambda r: -max(v for k, v in r.items() if k.startswith("s_")))


def figure(table: list[dict], growth: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns

    from sepsis_cs.io import savefig
    from sepsis_cs.plotting import figure as new_figure
    from sepsis_cs.plotting import set_style

    set_style()
    fig, axes = new_figure(10, 4, ncols=2)
    t = pd.DataFrame(table)
    long = t.melt(id_vars="stays", value_vars=["seconds", "sum_job_seconds"], var_name="measure", value_name="value")
    sns.lineplot(data=long, x="stays", y="value", hue="measure", marker="o", ax=axes[0])
    ref = t["stays"] / t["stays"].iloc[0] * t["seconds"].iloc[0]
    axes[0].plot(t["stays"], ref, ls=":", color="grey", label="linear from smallest")
    axes[0].set(xscale="log", yscale="log", xlabel="simulated stays", ylabel="seconds", title=f"Wall time (slope {slope(t['stays'], t['seconds']):.2f})")
    axes[0].legend(fontsize=8)
    mem = t.melt(id_vars="stays", value_vars=["peak_tree_mb", "largest_job_mb"], var_name="measure", value_name="MB")
    sns.lineplot(data=mem, x="stays", y="MB", hue="measure", marker="o", ax=axes[1])
    axes[1].set(xscale="log", yscale="log", xlabel="simulated stays", ylabel="MB", title=f"Peak memory (slope {slope(t['stays'], t['peak_tree_mb']):.2f})")
    axes[1].legend(fontsize=8)
    savefig(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stays", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--with-100k", action="store_true", help="also run 100,000 stays (long; needs several GB)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/scale.csv")
    ap.add_argument("--figure", type=Path, default=ROOT / "benchmarks/scale.png")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("snakemake_args", nargs="*", help="extra arguments for snakemake, e.g. targets (after --)")
    args = ap.parse_args(argv)
    sizes = sorted(set(args.stays + ([100_000] if args.with_100k else [])))
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="sepsis_scale_")
        workroot = Path(tmp.name)
    else:
        workroot = args.workdir
    table, rules = [], []
    for n in sizes:
        summary, per_rule = run_size(n, args.cores, workroot, args.snakemake_args)
        print(" ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
        table.append(summary)
        rules.extend(per_rule)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    growth = rule_growth(rules)
    rules_out = args.out.with_name(args.out.stem + "_rules.csv")
    if growth:
        with open(rules_out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(growth[0]))
            w.writeheader()
            w.writerows(growth)
    print()
    print(f"{'stays':>8} {'seconds':>9} {'peak MB':>8} {'largest job MB':>15} {'jobs':>5}")
    for r in table:
        print(f"{r['stays']:>8} {r['seconds']:>9} {r['peak_tree_mb']:>8.0f} {r['largest_job_mb']:>15.0f} {r['jobs']:>5}")
    if len(table) > 1:
        xs = [r["stays"] for r in table]
        print(f"slope log(seconds) ~ log(stays): {slope(xs, [r['seconds'] for r in table]):.2f}")
        print(f"slope log(sum of job seconds) ~ log(stays): {slope(xs, [r['sum_job_seconds'] for r in table]):.2f}")
        print(f"slope log(peak MB) ~ log(stays): {slope(xs, [r['peak_tree_mb'] for r in table]):.2f}")
        print("\nbenchmarks by time at the largest size (exponent > 1.15 grows faster than linear):")
        for g in growth[:15]:
            flag = "  <-- faster than linear" if g["time_exponent"] > 1.15 and max(v for k, v in g.items() if k.startswith("s_")) > 1 else ""
            print(f"  {g['rule']:<28} " + " ".join(f"{k}={v}" for k, v in g.items() if k != "rule") + flag)
        figure(table, growth, args.figure)
        print(f"\nwrote {args.out}, {rules_out}, {args.figure}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
