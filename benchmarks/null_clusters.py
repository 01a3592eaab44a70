"""False-cluster rate and recovery of the clustering phase's choice of k, over simulator seeds.

For each scenario x seed, a simulated database is drawn, its stay features computed as the workflow
does, and every clustering method is run on the pooled stays with the settings of the config
(default: config/config.yaml; k = 1 decided by the null reference).  Printed and written to
benchmarks/null_clusters.csv: chosen k, the null-reference p and RCSI, ARI against the planted
phenotypes, CPU seconds.  Summary per scenario x method: share of seeds with k > 1 (on ``null`` and
``gaussian`` that is the false-cluster rate) with its Monte-Carlo standard error, mean ARI.

Scenarios: ``null`` (phenotype_separation 0: one population), ``overlapping`` (0.5), ``default`` (1),
``gaussian`` (3,000 draws from one correlated 12-dimensional Gaussian, no simulator).

    python benchmarks/null_clusters.py --seeds 10 --scenarios null,default --methods kmeans,gmm
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sklearn.metrics import adjusted_rand_score  # noqa: E402

from sepsis_cs.clustering.consensus import run_method  # noqa: E402
from sepsis_cs.clustering.prep import load_population  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from sepsis_cs.features import stay_features  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

SEPARATION = {"null": 0.0, "overlapping": 0.5, "default": 1.0}


def correlated_gaussian(n: int, p: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(p, p))
    S = A @ A.T / p + 0.3 * np.eye(p)
    X = rng.multivariate_normal(np.zeros(p), S, size=n)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(p)], index=[str(i) for i in range(n)])


def scenario_data(name: str, seed: int, n: int, config: dict, dictionary):
    """(df, categorical, truth labels or None) of the pooled stays of one scenario x seed."""
    if name == "gaussian":
        return correlated_gaussian(n, 12, seed), [], None
    cohort, ts, truth = simulate(SimulationSettings(n_stays=n, phenotype_separation=SEPARATION[name]), seed=seed, database="simulated")
    sf = config["stay_features"]
    windows = [(int(sf["baseline_start_h"]), 0), (0, int(config["prediction_horizon_h"]))]
    feats = stay_features(cohort, ts, dictionary, windows, tuple(sf["statistics"]))
    df, cat, _ = load_population(feats, cohort, dictionary, config["cluster"], "pooled")
    return df, cat, truth.sort("stay_id")["phenotype"].to_numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--scenarios", default="null,overlapping,default,gaussian")
    ap.add_argument("--methods", default=None, help="comma-separated; default: cluster.methods_run")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "null_clusters.csv"))
    args = ap.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    methods = args.methods.split(",") if args.methods else list(config["cluster"]["methods_run"])
    rows = []
    for name in args.scenarios.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            df, cat, truth = scenario_data(name, seed, args.n, config, dictionary)
            for method in methods:
                t = time.process_time()
                res = run_method(method, df, cat, config["cluster"], seed=seed)
                cpu = time.process_time() - t
                ari = float(adjusted_rand_score(truth, res["labels"])) if truth is not None else np.nan
                rows.append(
                    {
                        "scenario": name,
                        "seed": seed,
                        "method": method,
                        "n": len(df),
                        "chosen_k": res["chosen_k"],
                        "null_p": res["null"]["null_p"],
                        "rcsi": res["null"]["rcsi"],
                        "ari_truth": ari,
                        "cpu_s": round(cpu, 2),
                    }
                )
                print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()), flush=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)
    out = pd.DataFrame(rows)
    summary = (
        out.assign(k_gt_1=out["chosen_k"] > 1)
        .groupby(["scenario", "method"])
        .agg(seeds=("seed", "size"), share_k_gt_1=("k_gt_1", "mean"), median_k=("chosen_k", "median"), mean_ari=("ari_truth", "mean"), cpu_s=("cpu_s", "mean"))
        .reset_index()
    )
    summary["mc_se"] = np.sqrt(summary["share_k_gt_1"] * (1 - summary["share_k_gt_1"]) / summary["seeds"])
    print("\nshare of seeds with k > 1 (false-cluster rate on null / gaussian), Monte-Carlo SE, mean ARI vs truth:")
    print(summary.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
