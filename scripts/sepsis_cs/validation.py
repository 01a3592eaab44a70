"""Validation against the simulator's truth (only validation steps read ``truth.parquet``).

:func:`cate_truth_metrics` compares one CATE learner's output with the true individual effect
``ite`` (``p_death_no_cs - p_death_cs`` of each stay, given all its latent variables):

* ``cate_spearman_truth`` / ``cate_mae_truth`` -- rank correlation and mean absolute error of the
  held-out benefit;
* ``cate_interval_coverage_truth`` -- share of stays in overlap whose per-stay interval
  ``[lo, hi]`` contains ``ite`` (the interval targets the CATE given baseline features,
  ``E[ite | x]``; ``ite`` also varies with latent variables that no baseline feature reveals, so this
  coverage is below the nominal level even for an exact CATE interval), with the mean width;
* ``gates_coverage_truth`` -- share of the GATES groups whose interval contains the true mean
  ``ite`` of the group's stays (the target those intervals claim), and the largest error.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import spearmanr


def cate_truth_metrics(frame: pl.DataFrame, gates: pl.DataFrame | None = None) -> dict:
    """``frame``: ``benefit, lo, hi, ite, in_overlap`` [, ``group``] per stay; ``gates``: ``group, effect,
    lo, hi`` of the same learner.  Returns a flat dict (keys without the learner suffix)."""
    out: dict = {}
    out["cate_spearman_truth"] = float(spearmanr(frame["benefit"], frame["ite"])[0]) if frame["ite"].n_unique() > 1 else None
    out["cate_mae_truth"] = float((frame["benefit"] - frame["ite"]).abs().mean())
    ov = frame.filter(pl.col("in_overlap"))
    if ov.height and ov["lo"].is_not_null().any():
        ok = ov.filter(pl.col("lo").is_not_null() & pl.col("hi").is_not_null() & pl.col("lo").is_not_nan())
        out["cate_interval_coverage_truth"] = float(((ok["lo"] <= ok["ite"]) & (ok["ite"] <= ok["hi"])).mean())
        out["cate_interval_width"] = float((ok["hi"] - ok["lo"]).mean())
    if gates is not None and gates.height and "group" in frame.columns:
        true = ov.group_by("group").agg(pl.col("ite").mean().alias("true_effect"))
        g = gates.join(true, on="group", how="inner")
        if g.height:
            covered = (g["lo"] <= g["true_effect"]) & (g["true_effect"] <= g["hi"])
            out["gates_coverage_truth"] = float(covered.mean())
            out["gates_max_abs_error_truth"] = float((g["effect"] - g["true_effect"]).abs().max())
            out["gates_true_range"] = float(np.ptp(g["true_effect"].to_numpy()))
    return out


def auroc_covers_chance(summary: dict, models) -> dict[str, bool]:
    """``{model: auroc_<model>_lo <= 0.5 <= auroc_<model>_hi}`` of a supervised summary (the check of
    ``tests/configs/null_outcome.yaml``, where no model can beat chance)."""
    out = {}
    for m in models:
        lo, hi = summary.get(f"auroc_{m}_lo"), summary.get(f"auroc_{m}_hi")
        out[m] = lo is not None and hi is not None and lo <= 0.5 <= hi
    return out
