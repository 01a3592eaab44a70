"""Databases that are randomised trials of CS (``databases.<name>.randomised``, or ``design: trial`` simulated).

A randomised trial of CS at time zero is its own target trial: there is no grace period to emulate (the arm is
assigned at time zero, the first dose follows within hours) and no confounding to weight away. The target-trial
phase therefore reports the trial's **intention-to-treat** contrast (mortality by randomised arm, ``cs``) instead
of a clone-censor-weight emulation, whose per-protocol strategies ("CS within G h", uniform or natural timing)
are not what was randomised and whose weight models have nothing to model (docs/target-trial.md).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .io import format_count, suppress_count

#: note written in place of the emulation
NOTE = ("randomised trial (databases.<name>.randomised or design: trial): the trial is its own target trial, "
        "so no clone-censor-weight emulation; the estimate is the intention-to-treat risk difference by randomised arm (cs)")
#: mortality outcome by follow-up in days -> cohort column, and the simulator truth's columns of the trial contrast
OUTCOME_OF_DAYS = {28: "mortality_28d", 90: "mortality_90d"}
TRUTH_OF = {"mortality_28d": ("p_death28_cs", "p_death28_no_cs"), "mortality_90d": ("p_death90_cs", "p_death90_no_cs"),
            "hospital_mortality": ("p_death_cs", "p_death_no_cs")}


def risk_difference(y: np.ndarray, arm: np.ndarray) -> dict:
    """Risk in each arm, their difference (CS - no CS) with its Wald SE and 95 % interval; known outcomes only."""
    known = ~np.isnan(y)
    y, arm = y[known], arm[known]
    n1, n0 = int(arm.sum()), int((~arm).sum())
    if n1 < 2 or n0 < 2:
        return {"n_cs": n1, "n_no_cs": n0, "risk_cs": None, "risk_no_cs": None, "rd": None, "rd_se": None, "rd_lo": None, "rd_hi": None}
    r1, r0 = float(y[arm].mean()), float(y[~arm].mean())
    se = float(np.sqrt(r1 * (1 - r1) / n1 + r0 * (1 - r0) / n0))
    return {"n_cs": n1, "n_no_cs": n0, "risk_cs": r1, "risk_no_cs": r0, "rd": r1 - r0, "rd_se": se,
            "rd_lo": r1 - r0 - 1.96 * se, "rd_hi": r1 - r0 + 1.96 * se}


def itt_estimates(cohort: pl.DataFrame, min_cell_count: int, truth: pl.DataFrame | None = None) -> pl.DataFrame:
    """Intention-to-treat risk differences for every mortality outcome the cohort records.

    One row per outcome: counts (suppressed under ``min_cell_count``), risks, RD with 95 % Wald CI, and on a
    simulated trial the truth (mean over the stays of the individual risk differences of the trial's contrast).
    """
    k = int(min_cell_count)
    arm = cohort["cs"].cast(pl.Boolean).to_numpy()
    rows = []
    for out in ("mortality_28d", "mortality_90d", "hospital_mortality"):
        if out not in cohort.columns or cohort[out].null_count() == cohort.height:
            continue
        y = cohort[out].cast(pl.Float64).to_numpy()
        r = risk_difference(y, arm)
        events = [int(np.nansum(y[arm])), int(np.nansum(y[~arm])), int((~np.isnan(y[arm])).sum() - np.nansum(y[arm])),
                  int((~np.isnan(y[~arm])).sum() - np.nansum(y[~arm]))]
        small = any(suppress_count(e, k) is None for e in events)
        row = {"outcome": out, "estimand": "intention to treat (randomised arm)", "n_cs": format_count(r["n_cs"], k),
               "n_no_cs": format_count(r["n_no_cs"], k)}
        for key in ("risk_cs", "risk_no_cs", "rd", "rd_se", "rd_lo", "rd_hi"):
            row[key] = None if small or r[key] is None else round(r[key], 6)
        row["true_rd"] = None
        if truth is not None and all(c in truth.columns for c in TRUTH_OF[out]):
            t = truth.join(cohort.select(pl.col("stay_id").cast(truth["stay_id"].dtype)), on="stay_id", how="semi")
            c1, c0 = TRUTH_OF[out]
            row["true_rd"] = round(float((t[c1] - t[c0]).mean()), 6)
        rows.append(row)
    schema = {"outcome": pl.String, "estimand": pl.String, "n_cs": pl.String, "n_no_cs": pl.String,
              **{c: pl.Float64 for c in ("risk_cs", "risk_no_cs", "rd", "rd_se", "rd_lo", "rd_hi", "true_rd")}}
    return pl.DataFrame(rows, schema=schema)


def summary(table: pl.DataFrame, followup_days: int) -> dict:
    """Headline numbers of ``summary/target_trial.json`` for a randomised trial: the primary outcome's ITT contrast."""
    primary = OUTCOME_OF_DAYS.get(int(followup_days), "mortality_28d")
    rows = table.filter(pl.col("outcome") == primary)
    if not rows.height:
        rows = table.head(1)
    out = {"emulated": False, "randomised": True, "note": NOTE, "followup_days": int(followup_days)}
    if rows.height:
        r = rows.row(0, named=True)
        out.update({"itt_outcome": r["outcome"], **{f"itt_{k}": r[k] for k in ("risk_cs", "risk_no_cs", "rd", "rd_se", "rd_lo", "rd_hi")}})
        if r["true_rd"] is not None:
            out["true_rd"] = r["true_rd"]
    return out
