"""Coverage of the risk models' AUROC interval under a null outcome, over simulator seeds.

For each seed: simulate a database whose outcome (death by day 28, simulator ``outcome_model: noise``) is
independent of every covariate and of CS, keep the stays alive and in the ICU at 24 h (the risk models'
landmark cohort), build the stay features as the workflow does, run the nested patient-level CV of each
internal model (light fixed grids: tuning does not matter for the null) and compute two AUROC intervals
from the same out-of-fold predictions:

* ``pooled`` -- the AUROC of the pooled out-of-fold predictions with a patient bootstrap (before this
  benchmark's fix);
* ``per_fold_fixed_models`` -- the mean of the per-fold AUROCs with a patient bootstrap within folds
  (fold models held fixed);
* ``per_fold_nadeau_bengio`` -- the same interval widened by the Nadeau-Bengio factor (what
  ``supervised_evaluate`` reports now; :func:`sepsis_cs.metrics.bootstrap_metrics` with ``fold``).

The true AUROC of every model is 0.5.  Prints, per model and method, the mean AUROC (its bias), the
coverage of 0.5 by the 95% interval, the share of misses below and above, and Monte-Carlo standard errors.

    .venv/bin/python benchmarks/auroc_null_coverage.py --seeds 20 --n-stays 700

Rows per seed go to ``benchmarks/auroc_null_coverage_runs.csv``, the summary to ``benchmarks/auroc_null_coverage.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from threadpoolctl import threadpool_limits  # noqa: E402

from sepsis_cs import metrics as M  # noqa: E402
from sepsis_cs import supervised as S  # noqa: E402
from sepsis_cs.dictionary import load_dictionary  # noqa: E402
from sepsis_cs.features import categorical_columns, stay_features  # noqa: E402
from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

#: light fixed settings (no inner tuning) of each internal model
GRIDS = {
    "logistic": {"C": [0.01]},
    "random_forest": {"n_estimators": [100], "min_samples_leaf": [20]},
    "hist_gb": {"max_depth": [2], "max_iter": [60]},
}


def null_design(seed: int, n_stays: int, dictionary):
    """Design of the landmark cohort of a simulated database with a pure-noise outcome."""
    cohort, ts, _ = simulate(SimulationSettings(n_stays=n_stays, outcome_model="noise"), seed=seed, database="simulated")
    risk, _ = S.risk_cohort(cohort, None, 24)
    cohort = S.restrict_to_risk_cohort(cohort, risk)
    feats = stay_features(cohort, ts.join(cohort.select("stay_id"), on="stay_id", how="semi"), dictionary, [(-24, 0), (0, 24)])
    cols = [c for c in feats.columns if c != "stay_id"]
    X, y, groups = S.model_inputs(feats, cohort, cols, dictionary, "mortality_28d")
    cat = categorical_columns(cols, dictionary)
    return X, y, groups, [c for c in cols if c not in cat], cat


def one_seed(seed: int, n_stays: int, models: list[str], n_folds: int, n_boot: int, dictionary) -> list[dict]:
    X, y, groups, num, cat = null_design(seed, n_stays, dictionary)
    rows = []
    for m in models:
        oof, _, _ = S.nested_cv(X, y, groups, m, num, cat, GRIDS[m], n_folds, 2, seed=seed)
        yy, p, f = oof["y"].to_numpy(), oof["score"].to_numpy(), oof["fold"].to_numpy()
        for method, fold, corrected in (("pooled", None, False), ("per_fold_fixed_models", f, False), ("per_fold_nadeau_bengio", f, True)):
            est, lo, hi = M.bootstrap_metrics(yy, p, groups, n_boot, seed, {"auroc": M.auroc}, fold=fold, corrected=corrected)["auroc"]
            rows.append({"seed": seed, "model": m, "method": method, "n": len(yy), "events": int(yy.sum()), "auroc": est, "lo": lo, "hi": hi,
                         "covers": lo <= 0.5 <= hi, "miss_below": hi < 0.5, "miss_above": lo > 0.5})
        print(seed, m, {r["method"]: (round(r["auroc"], 3), round(r["lo"], 3), round(r["hi"], 3)) for r in rows[-3:]}, flush=True)
    return rows


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (m, method), g in runs.groupby(["model", "method"], sort=False):
        k = len(g)
        row = {"model": m, "method": method, "seeds": k, "mean_auroc": g["auroc"].mean(), "mean_auroc_mcse": g["auroc"].std(ddof=1) / np.sqrt(k),
               "mean_width": (g["hi"] - g["lo"]).mean()}
        for col in ("covers", "miss_below", "miss_above"):
            v = g[col].astype(float)
            row[col], row[f"{col}_mcse"] = v.mean(), np.sqrt(v.mean() * (1 - v.mean()) / k)
        out.append(row)
    return pd.DataFrame(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--n-stays", type=int, default=700)
    ap.add_argument("--folds", type=int, default=3, help="outer folds (the default config's supervised.outer_folds)")
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples (the default config's supervised.n_boot)")
    ap.add_argument("--models", default=",".join(GRIDS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "auroc_null_coverage"))
    a = ap.parse_args()
    dictionary = load_dictionary(ROOT / "config" / "variables.yaml")
    rows = []
    with threadpool_limits(limits=1):
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            rows += one_seed(seed, a.n_stays, a.models.split(","), a.folds, a.n_boot, dictionary)
            pd.DataFrame(rows).to_csv(f"{a.out}_runs.csv", index=False, float_format="%.4f")
    table = summarise(pd.DataFrame(rows))
    table.to_csv(f"{a.out}.csv", index=False, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
