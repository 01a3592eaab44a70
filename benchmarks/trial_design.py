"""Is the simulated randomised trial (``design: trial``) an unbiased check of treatment-effect estimates?

For ``--seeds`` replicates of the trial-like database (1,200 patients, CS randomised with probability 0.5,
daily measures, 90-day follow-up), compares the difference in mortality between the arms (the trial's
intention-to-treat estimate) and an IPTW-free covariate-adjusted estimate (logistic regression standardised
over the sample) with the simulator's truth: the mean over the sample of ``p_cs - p_no_cs`` for the same
outcome. Prints per outcome the mean error, its Monte Carlo SE, the empirical SD of the estimates and the
coverage of the 95 % Wald interval of the difference in proportions. Writes benchmarks/trial_design.csv.

    python benchmarks/trial_design.py --seeds 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sepsis_cs.simulate import SimulationSettings, simulate  # noqa: E402

OUTCOMES = {
    "hospital_mortality": ("p_death_cs", "p_death_no_cs"),
    "mortality_28d": ("p_death28_cs", "p_death28_no_cs"),
    "mortality_90d": ("p_death90_cs", "p_death90_no_cs"),
}
ADJUST = ["age", "sofa_t0", "lactate_t0", "malignancy", "gcs_t0"]


def adjusted_rd(df: pl.DataFrame, outcome: str) -> float:
    """Covariate-adjusted risk difference: logistic outcome model with the arm, standardised over the sample."""
    from sklearn.linear_model import LogisticRegression

    x = df.select(ADJUST).to_pandas().astype(float)
    x = x.fillna(x.median())
    a = df["cs"].to_numpy().astype(float)
    y = df[outcome].to_numpy().astype(int)
    m = LogisticRegression(C=1e4, max_iter=2000).fit(np.column_stack([x.to_numpy(), a]), y)
    p1 = m.predict_proba(np.column_stack([x.to_numpy(), np.ones_like(a)]))[:, 1]
    p0 = m.predict_proba(np.column_stack([x.to_numpy(), np.zeros_like(a)]))[:, 1]
    return float(np.mean(p1 - p0))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--effect-size", default="planted", choices=["planted", "trial"])
    args = ap.parse_args(argv)
    settings = SimulationSettings(n_stays=args.n, design="trial", resolution="daily", followup_h=2160,
                                  window_start_h=-24, window_end_h=144, effect_size=args.effect_size)
    rows = []
    for seed in range(1, args.seeds + 1):
        cohort, _, truth = simulate(settings, seed=seed, database="trial")
        df = cohort.join(truth, on="stay_id")
        a = df["cs"].to_numpy()
        for out, (c1, c0) in OUTCOMES.items():
            y = df[out].to_numpy().astype(float)
            est = y[a].mean() - y[~a].mean()
            se = np.sqrt(y[a].var(ddof=1) / a.sum() + y[~a].var(ddof=1) / (~a).sum())
            true = float((df[c1] - df[c0]).mean())
            rows.append({"seed": seed, "outcome": out, "truth": true, "itt": est, "itt_se": se,
                         "covered": abs(est - true) <= 1.96 * se, "adjusted": adjusted_rd(df, out)})
    res = pl.DataFrame(rows)
    res.write_csv(ROOT / "benchmarks" / "trial_design.csv")
    print(f"{args.seeds} simulated trials of {args.n} patients (effect_size {args.effect_size}); risk difference CS - no CS")
    for out in OUTCOMES:
        r = res.filter(pl.col("outcome") == out)
        for est in ("itt", "adjusted"):
            err = (r[est] - r["truth"]).to_numpy()
            print(f"  {out:18s} {est:8s}: truth {r['truth'].mean():+.4f}, estimate {r[est].mean():+.4f}, "
                  f"error {err.mean():+.4f} (MC SE {err.std(ddof=1) / np.sqrt(len(err)):.4f}), SD {r[est].std():.4f}"
                  + (f", 95% CI coverage {r['covered'].mean():.2f}" if est == "itt" else ""))


if __name__ == "__main__":
    main()
