"""Headline numbers of the understanding and general-analysis phases (rule analysis_summary)."""

import numpy as np
import polars as pl

from sepsis_cs.io import read_json, run_script, write_json


def main(smk):
    sel_out, sel_trt = read_json(smk.input.outcome), read_json(smk.input.treatment)
    ps = read_json(smk.input.propensity)
    smd = pl.read_csv(smk.input.smd)
    groups = pl.read_csv(smk.input.groups)
    landmarks = pl.read_csv(smk.input.landmarks, infer_schema_length=None)
    u = smd["smd_unweighted"].drop_nulls().drop_nans().abs()
    w = smd["smd_iptw"].drop_nulls().drop_nans().abs()
    thr = float(smk.config["understand"]["balance_threshold"])
    out = {
        "database": smk.wildcards.database,
        "n_selected_outcome": len(sel_out["selected"]),
        "n_selected_treatment": len(sel_trt["selected"]),
        "top_selected_outcome": ", ".join(sel_out["selected"][:5]),
        "top_selected_treatment": ", ".join(sel_trt["selected"][:5]),
        "selection_outcome_oof_auc": sel_out.get("permutation_oof_auc"),
        "selection_treatment_oof_auc": sel_trt.get("permutation_oof_auc"),
        "selection_outcome_pfer_bound": sel_out.get("stability_pfer_bound"),
        "selection_treatment_pfer_bound": sel_trt.get("stability_pfer_bound"),
        "selection_notes": " | ".join(sel_out.get("notes", []) + sel_trt.get("notes", [])),
        "max_abs_smd_unweighted": float(u.max()) if len(u) else None,
        "max_abs_smd_weighted": float(w.max()) if len(w) else None,
        "n_table1_imbalanced_unweighted": int((u > thr).sum()),
        "n_table1_imbalanced_weighted": int((w > thr).sum()),
        "share_outside_overlap": ps["share_outside_overlap"],
        "share_outside_support": ps["share_outside_support"],
        "propensity_oof_auc": ps["oof_auc"],
        "propensity_ess_cs": ps["ess_cs"],
        "propensity_ess_no_cs": ps["ess_no_cs"],
        "propensity_note": ps.get("note", ""),
        "n_redundancy_groups": groups.height,
        "n_landmark_slopes_ci_excludes_0": int(
            ((landmarks["slope_diff_ci_low"] > 0) | (landmarks["slope_diff_ci_high"] < 0)).fill_null(False).sum()
        ) if "slope_diff_ci_low" in landmarks.columns else 0,
    }
    out = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}
    write_json(out, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
