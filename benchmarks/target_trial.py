"""Coverage benchmark of the target-trial emulation on the simulator (not a test; minutes to hours).

Repeats a simulated database over seeds and, for each, runs the primary analysis of ``sepsis_cs.target_trial``
(the protocol of config/config.yaml: grace 24 h, uniform CS timing, spline weight model, untruncated weights,
28-day mortality, patient-level bootstrap of the whole procedure with ``--n-boot`` resamples, Wald intervals
with the bootstrap SE) and compares it with the simulator's per-protocol truth (the mean over the eligible
stays of their risks under each strategy). Reports bias (with its Monte-Carlo SE), empirical SE, mean
bootstrap SE and 95 % CI coverage of the emulated risk difference and of the naive ones (crude 0-24 h
contrast; baseline IPTW), and the bias of the emulated estimate with weights truncated at the 99th
percentile (point estimate only). With ``--effect-model none`` the truth is 0 for every stay: coverage is
then the share of intervals that say "nothing here".

Fan-out friendly: each process runs one batch of seeds and writes one CSV; ``--summarise`` merges them.

    .venv/bin/python benchmarks/target_trial.py --seeds 100 --batch 0 --n-batches 2 --out benchmarks/target_trial_runs/default
    .venv/bin/python benchmarks/target_trial.py --seeds 100 --batch 0 --n-batches 2 --effect-model none \\
        --out benchmarks/target_trial_runs/null
    .venv/bin/python benchmarks/target_trial.py --summarise benchmarks/target_trial_runs/default --table benchmarks/target_trial.csv

Each process pins BLAS to one thread (as the workflow's rule does): on a shared machine, multithreaded BLAS
on these small matrices is several times slower.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sepsis_cs import target_trial as tt  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

#: estimator -> columns (estimate, lower, upper, bootstrap SE); None: no interval
ESTIMATORS = {
    "emulated": ("rd", "rd_lo", "rd_hi", "rd_se"),
    "emulated_truncated_p99": ("rd_trunc99", None, None, None),
    "naive_crude": ("naive_rd", "naive_rd_lo", "naive_rd_hi", "naive_rd_se"),
    "naive_iptw": ("naive_iptw_rd", "naive_iptw_rd_lo", "naive_iptw_rd_hi", "naive_iptw_rd_se"),
}


def one_seed(seed: int, n_stays: int, cfg: dict, n_boot: int, db: dict) -> dict:
    """Simulate one database, emulate the trial, and return the estimates beside the truth."""
    t0 = time.perf_counter()
    settings = SimulationSettings(n_stays=n_stays, **db)
    cohort, ts, truth = simulate(settings, seed=seed, database="simulated")
    protocol = tt.Protocol.from_config({**cfg, "n_boot": n_boot})
    data = tt.prepare(cohort, ts, protocol, protocol.grace_h)
    res = tt.primary_analysis(data, protocol, seed)
    s, est = res["summary"], res["estimate"]
    g = protocol.grace_h
    trunc = tt.build_clones(data, g, est["hazards"], replace(protocol, truncate_quantile=0.99), protocol.min_dose_mg)
    r_trunc = [tt.cumulative_incidence(trunc, a, protocol.horizon_h, np.ones(len(data.stay_id)))[-1] for a in range(2)]
    t = truth.filter(pl.col("stay_id").is_in(list(data.stay_id)))
    true_cs, true_no = float(t[f"risk28_cs_{protocol.cs_timing}_g{g}"].mean()), float(t[f"risk28_no_cs_g{g}"].mean())
    row = {"seed": seed, "n_stays": n_stays, "n_boot": n_boot, "weight_model": protocol.weight_model,
           "truncate_quantile": protocol.truncate_quantile, "ci_method": protocol.ci_method,
           "true_risk_cs": true_cs, "true_risk_no_cs": true_no, "true_rd": true_cs - true_no,
           "rd_trunc99": r_trunc[0] - r_trunc[1]}
    for key in ("risk_cs", "risk_no_cs", "rd", "rd_lo", "rd_hi", "rd_se", "naive_rd", "naive_rd_lo", "naive_rd_hi", "naive_rd_se",
                "naive_iptw_rd", "naive_iptw_rd_lo", "naive_iptw_rd_hi", "naive_iptw_rd_se", "ess_cs", "ess_no_cs",
                "max_weight_cs", "max_weight_no_cs"):
        row[key] = s.get(key)
    row["seconds"] = time.perf_counter() - t0
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Bias, Monte-Carlo SE of the bias, empirical SE, mean bootstrap SE and coverage per estimator."""
    out = []
    t = np.array([float(r["true_rd"]) for r in rows])
    for name, (est, lo, hi, se) in ESTIMATORS.items():
        if not rows or est not in rows[0]:
            continue
        e = np.array([float(r[est]) for r in rows])
        err = e - t
        row = {"estimator": name, "n_seeds": len(rows), "n_boot": rows[0].get("n_boot", ""), "mean_true_rd": t.mean(),
               "mean_estimate": e.mean(), "bias": err.mean(), "bias_mc_se": err.std(ddof=1) / np.sqrt(len(err)),
               "empirical_se": e.std(ddof=1), "rmse": np.sqrt((err**2).mean()), "mean_boot_se": np.nan,
               "coverage_95": np.nan, "coverage_mc_se": np.nan, "mean_ci_width": np.nan}
        if lo is not None:
            lo_ = np.array([float(r[lo]) for r in rows])
            hi_ = np.array([float(r[hi]) for r in rows])
            cover = (lo_ <= t) & (t <= hi_)
            row.update(mean_boot_se=np.mean([float(r[se]) for r in rows]), coverage_95=cover.mean(),
                       coverage_mc_se=np.sqrt(cover.mean() * (1 - cover.mean()) / len(cover)), mean_ci_width=(hi_ - lo_).mean())
        out.append(row)
    return out


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100, help="total number of seeds (first-seed .. first-seed + N - 1)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0, help="this process's batch (0-based)")
    ap.add_argument("--n-batches", type=int, default=1)
    ap.add_argument("--n-stays", type=int, default=3000)
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default: target_trial.n_boot of --config)")
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--effect-size", default="planted", help="planted | trial (simulator option)")
    ap.add_argument("--effect-model", default="heterogeneous", help="heterogeneous | common | none (simulator option)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override target_trial keys of the config (YAML values), e.g. weight_model=linear")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "target_trial_runs" / "default"), help="folder of per-batch CSVs")
    ap.add_argument("--summarise", metavar="FOLDER", nargs="+", help="merge the batch CSVs of each FOLDER and print its table")
    ap.add_argument("--table", help="with --summarise: also write the tables here (CSV, a scenario column = folder name)")
    args = ap.parse_args(argv)
    if args.summarise:
        table = []
        for folder in args.summarise:
            rows = []
            for f in sorted(Path(folder).glob("batch_*.csv")):
                with open(f) as fh:
                    rows += list(csv.DictReader(fh))
            table += [{"scenario": Path(folder).name, **r} for r in summarise(rows)]
        keys = list(table[0])
        print(",".join(keys))
        for r in table:
            print(",".join(_fmt(r[k]) for k in keys))
        if args.table:
            with open(args.table, "w", newline="") as fh:
                w = csv.DictWriter(fh, keys)
                w.writeheader()
                w.writerows({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in table)
        return
    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)["target_trial"]
    for kv in args.set:
        key, value = kv.split("=", 1)
        cfg[key] = yaml.safe_load(value)
    n_boot = int(cfg.get("n_boot", 20)) if args.n_boot is None else args.n_boot
    seeds = [s for i, s in enumerate(range(args.first_seed, args.first_seed + args.seeds)) if i % args.n_batches == args.batch]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch_{args.batch:03d}_of_{args.n_batches:03d}.csv"
    done = {}
    if path.exists():
        with open(path) as fh:
            done = {int(r["seed"]): r for r in csv.DictReader(fh)}
    rows = [done[s] for s in seeds if s in done]  # a rerun resumes a killed batch
    db = {"effect_size": args.effect_size, "effect_model": args.effect_model}
    for s in seeds:
        if s in done:
            continue
        r = one_seed(s, args.n_stays, cfg, n_boot, db)
        rows.append(r)
        print(f"seed {s}: true {r['true_rd']:+.4f} emulated {r['rd']:+.4f} [{r['rd_lo']:+.4f}, {r['rd_hi']:+.4f}] "
              f"naive {r['naive_rd']:+.4f} ESS {r['ess_cs']:.0f}/{r['ess_no_cs']:.0f} ({r['seconds']:.0f} s)", flush=True)
        with open(path, "w", newline="") as fh:  # rewritten after each seed: a killed batch keeps its rows
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
