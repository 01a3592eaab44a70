"""Coverage benchmark of the target-trial emulation on the simulator (not a test; minutes to hours).

Repeats the default simulated database over seeds and, for each, runs the primary analysis of
``sepsis_cs.target_trial`` (default protocol of config/config.yaml: grace 24 h, uniform CS timing, 28-day
mortality, patient-level bootstrap of the whole procedure) and compares with the simulator's per-protocol
truth. Reports bias, empirical SE, mean bootstrap SE and 95 % CI coverage of the emulated risk difference
and of the naive ones (crude 0-24 h contrast; baseline IPTW) against the per-protocol truth.

Fan-out friendly: each process runs one batch of seeds and writes one CSV; ``--summarise`` merges them.

    .venv/bin/python benchmarks/target_trial.py --seeds 50 --batch 0 --n-batches 5 --out benchmarks/target_trial_runs
    .venv/bin/python benchmarks/target_trial.py --summarise benchmarks/target_trial_runs --table benchmarks/target_trial.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sepsis_cs import target_trial as tt  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

ESTIMATORS = {"emulated": ("rd", "rd_lo", "rd_hi", "rd_se"), "naive_crude": ("naive_rd", "naive_rd_lo", "naive_rd_hi", "naive_rd_se"),
              "naive_iptw": ("naive_iptw_rd", "naive_iptw_rd_lo", "naive_iptw_rd_hi", "naive_iptw_rd_se")}


def one_seed(seed: int, n_stays: int, cfg: dict, n_boot: int, db: dict) -> dict:
    t0 = time.perf_counter()
    settings = SimulationSettings(n_stays=n_stays, **db)
    cohort, ts, truth = simulate(settings, seed=seed, database="simulated")
    protocol = tt.Protocol.from_config({**cfg, "n_boot": n_boot})
    data = tt.prepare(cohort, ts, protocol, protocol.grace_h)
    res = tt.primary_analysis(data, protocol, seed)["summary"]
    g = protocol.grace_h
    elig = cohort.join(truth, on="stay_id").filter(cohort["cs_before_t0"].fill_null(0) != 1) if protocol.exclude_prevalent else cohort.join(truth, on="stay_id")
    true_rd = float((elig[f"risk28_cs_{protocol.cs_timing}_g{g}"] - elig[f"risk28_no_cs_g{g}"]).mean())
    row = {"seed": seed, "n_stays": n_stays, "n_boot": n_boot, "true_rd": true_rd, "seconds": time.perf_counter() - t0}
    for key in ("rd", "rd_lo", "rd_hi", "rd_se", "naive_rd", "naive_rd_lo", "naive_rd_hi", "naive_rd_se", "naive_iptw_rd",
                "naive_iptw_rd_lo", "naive_iptw_rd_hi", "naive_iptw_rd_se", "ess_cs", "ess_no_cs"):
        row[key] = res.get(key)
    return row


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for name, (est, lo, hi, se) in ESTIMATORS.items():
        e = np.array([float(r[est]) for r in rows])
        t = np.array([float(r["true_rd"]) for r in rows])
        lo_ = np.array([float(r[lo]) for r in rows])
        hi_ = np.array([float(r[hi]) for r in rows])
        se_ = np.array([float(r[se]) for r in rows])
        err = e - t
        cover = (lo_ <= t) & (t <= hi_)
        out.append({
            "estimator": name, "n_seeds": len(rows), "mean_true_rd": t.mean(), "mean_estimate": e.mean(),
            "bias": err.mean(), "bias_mc_se": err.std(ddof=1) / np.sqrt(len(err)), "empirical_se": e.std(ddof=1),
            "mean_boot_se": se_.mean(), "coverage_95": cover.mean(),
            "coverage_mc_se": np.sqrt(cover.mean() * (1 - cover.mean()) / len(cover)), "rmse": np.sqrt((err**2).mean()),
        })
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50, help="total number of seeds (1..N)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0, help="this process's batch (0-based)")
    ap.add_argument("--n-batches", type=int, default=1)
    ap.add_argument("--n-stays", type=int, default=3000)
    ap.add_argument("--n-boot", type=int, default=50)
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--effect-size", default="planted", help="planted | trial (simulator option)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "target_trial_runs"), help="folder of per-batch CSVs")
    ap.add_argument("--summarise", metavar="FOLDER", help="merge the batch CSVs of FOLDER and print the table")
    ap.add_argument("--table", help="with --summarise: also write the table here (CSV)")
    args = ap.parse_args(argv)
    if args.summarise:
        rows = []
        for f in sorted(Path(args.summarise).glob("batch_*.csv")):
            rows += list(csv.DictReader(open(f)))
        table = summarise(rows)
        keys = list(table[0])
        print(",".join(keys))
        for r in table:
            print(",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys))
        if args.table:
            with open(args.table, "w", newline="") as fh:
                w = csv.DictWriter(fh, keys)
                w.writeheader()
                w.writerows({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in table)
        return
    cfg = yaml.safe_load(open(args.config))["target_trial"]
    seeds = [s for i, s in enumerate(range(args.first_seed, args.first_seed + args.seeds)) if i % args.n_batches == args.batch]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch_{args.batch:03d}_of_{args.n_batches:03d}.csv"
    rows = []
    for s in seeds:
        rows.append(one_seed(s, args.n_stays, cfg, args.n_boot, {"effect_size": args.effect_size}))
        print(f"seed {s}: true {rows[-1]['true_rd']:.4f} emulated {rows[-1]['rd']:.4f} [{rows[-1]['rd_lo']:.4f}, {rows[-1]['rd_hi']:.4f}] "
              f"naive {rows[-1]['naive_rd']:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
        with open(path, "w", newline="") as fh:  # rewritten after each seed: a killed batch keeps its rows
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
