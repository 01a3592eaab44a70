"""Where the emulated trial's bias comes from: weights from the simulator's true CS hazards vs fitted ones,
with and without truncation, and the weight model's form (not a test; minutes).

For each seed, the default simulated database is emulated (point estimates, no bootstrap) with the same clones
and the per-arm risks compared with the simulator's per-protocol truth, under these weights:

- ``true``: the clinicians' true hourly CS hazards of the simulator (``simulate(..., internals=...)``);
- ``splines``: the default weight model (restricted cubic splines, any-vasopressor indicator, covariates
  clipped to their 1st-99th percentiles); ``splines_noclip``: the same without clipping;
- ``linear``: the first pass's main-effects model (no clipping);

each untruncated (``_t1``) and truncated at the 99th percentile of the final weights per arm (``_t99``).

    .venv/bin/python benchmarks/target_trial_bias.py --seeds 60 --batch 0 --n-batches 2 --out benchmarks/target_trial_runs/bias
    .venv/bin/python benchmarks/target_trial_bias.py --summarise benchmarks/target_trial_runs/bias --table benchmarks/target_trial_bias.csv
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sepsis_cs import target_trial as tt  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

#: fitted variants: name -> (weight_model, clip_quantile)
FITTED = {"splines": ("splines", 0.01), "splines_noclip": ("splines", 0.0), "linear": ("linear", 0.0)}
TRUNCATION = {"t1": 1.0, "t99": 0.99}


def _risks(data, protocol, hz, G) -> tuple[float, float, float]:
    cl = tt.build_clones(data, G, hz, protocol, None)
    ones = np.ones(len(data.stay_id))
    r = [tt.cumulative_incidence(cl, a, protocol.horizon_h, ones)[-1] for a in range(2)]
    return r[0], r[1], float(cl.weights[1, :, G].max())


def one_seed(seed: int, n_stays: int, cfg: dict) -> dict:
    internals: dict = {}
    cohort, ts, truth = simulate(SimulationSettings(n_stays=n_stays), seed=seed, database="simulated", internals=internals)
    protocol = tt.Protocol.from_config({**cfg, "n_boot": 0})
    G = protocol.grace_h
    data = tt.prepare(cohort, ts, protocol, G)
    # cohort and truth rows are in simulation order; the eligible stays are a subset of it
    sim_index = np.flatnonzero(np.isin(cohort["stay_id"].cast(pl.String).to_numpy(), data.stay_id))
    t = truth.filter(pl.col("stay_id").is_in(list(data.stay_id)))
    row = {"seed": seed, "true_risk_cs": float(t[f"risk28_cs_{protocol.cs_timing}_g{G}"].mean()),
           "true_risk_no_cs": float(t[f"risk28_no_cs_g{G}"].mean())}
    hazards = {}
    for name, (model, clip) in FITTED.items():
        d = tt.with_weight_model(data, model, clip)
        hazards[name] = (d, tt.fit_hazards(d, G, np.ones(len(d.stay_id)), None))
    d, hz = hazards["splines"]
    s, h = d.panel_stay[hz.rows], d.panel_hour[hz.rows]
    h_true = internals["cs_hazard"][sim_index[s], h]
    hazards["true"] = (d, tt.HazardFit(hz.rows, h_true, h_true, hz.num_any, hz.num_any))
    for name, (d, hz) in hazards.items():
        for tname, q in TRUNCATION.items():
            r_cs, r_no, w_max = _risks(d, replace(protocol, truncate_quantile=q), hz, G)
            row[f"{name}_{tname}_risk_cs"], row[f"{name}_{tname}_risk_no_cs"] = r_cs, r_no
            row[f"{name}_{tname}_max_weight_no_cs"] = w_max
    return row


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    variants = [k[: -len("_risk_cs")] for k in rows[0] if k.endswith("_risk_cs") and not k.startswith("true_risk")]
    t_cs = np.array([float(r["true_risk_cs"]) for r in rows])
    t_no = np.array([float(r["true_risk_no_cs"]) for r in rows])
    for v in variants:
        e_cs = np.array([float(r[f"{v}_risk_cs"]) for r in rows]) - t_cs
        e_no = np.array([float(r[f"{v}_risk_no_cs"]) for r in rows]) - t_no
        e_rd = e_cs - e_no
        n = len(rows)
        w = np.array([float(r[f"{v}_max_weight_no_cs"]) for r in rows])
        weights, trunc = v.rsplit("_", 1)
        out.append({"weights": weights, "truncation": {"t1": "none", "t99": "99th percentile"}[trunc], "n_seeds": n,
                    "bias_risk_cs": e_cs.mean(), "bias_risk_no_cs": e_no.mean(), "bias_rd": e_rd.mean(),
                    "bias_rd_mc_se": e_rd.std(ddof=1) / np.sqrt(n), "sd_rd_error": e_rd.std(ddof=1),
                    "max_abs_error_risk_cs": np.abs(e_cs).max(), "median_max_weight_no_cs": float(np.median(w)),
                    "max_weight_no_cs": float(w.max())})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=60)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--n-batches", type=int, default=1)
    ap.add_argument("--n-stays", type=int, default=3000)
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "target_trial_runs" / "bias"))
    ap.add_argument("--summarise", metavar="FOLDER")
    ap.add_argument("--table")
    args = ap.parse_args(argv)
    if args.summarise:
        rows = []
        for f in sorted(Path(args.summarise).glob("batch_*.csv")):
            with open(f) as fh:
                rows += list(csv.DictReader(fh))
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
    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)["target_trial"]
    seeds = [s for i, s in enumerate(range(args.first_seed, args.first_seed + args.seeds)) if i % args.n_batches == args.batch]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch_{args.batch:03d}_of_{args.n_batches:03d}.csv"
    done = {}
    if path.exists():
        with open(path) as fh:
            done = {int(r["seed"]): r for r in csv.DictReader(fh)}
    rows = [done[s] for s in seeds if s in done]
    for s in seeds:
        if s in done:
            continue
        rows.append(one_seed(s, args.n_stays, cfg))
        print(f"seed {s} done", flush=True)
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
