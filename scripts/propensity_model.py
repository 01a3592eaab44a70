"""Cross-fitted propensity score for CS, overlap and positivity diagnostics (rule propensity_model)."""

import json

import numpy as np
import polars as pl

from sepsis_cs.analysis import design, usable_columns
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.features import categorical_columns, model_frame
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json, write_parquet
from sepsis_cs.propensity import confounder_columns, cross_fitted_ps, effective_sample_size, iptw_weights, overlap, overlap_plot


def main(smk):
    cfg = smk.config["analyse"]["propensity"]
    seed = int(smk.config["seed"])
    dictionary = load_dictionary(smk.input.dictionary)
    df = design(read_parquet(smk.input.features), read_parquet(smk.input.cohort))
    available = [c for c in df.columns if c not in ("stay_id", "patient_id", "cs")]
    selected = json.loads(open(smk.input.selected).read())["treatment"] if smk.input.get("selected") else None
    cols = confounder_columns(cfg["confounders"], available, dictionary, selected)
    cols, dropped = usable_columns(df, cols)
    X = model_frame(df, cols, dictionary)
    cs = df["cs"].to_numpy().astype(int)
    ps, info = cross_fitted_ps(X, cs, df["patient_id"].to_numpy(), categorical_columns(cols, dictionary),
                               float(cfg["C"]), float(cfg["l1_ratio"]), int(cfg["folds"]), seed)
    trim = cfg["trim"]
    inside, ov = overlap(ps, cs, trim)
    w = iptw_weights(ps, cs, inside)
    out = pl.DataFrame({"stay_id": df["stay_id"], "ps": np.round(ps, 6), "in_overlap": inside})
    write_parquet(out, smk.output.ps)
    k = int(smk.config["min_cell_count"])
    diag = {
        "n_confounders": len(cols),
        "confounders_dropped_constant_or_missing": len(dropped),
        "cv_folds": info["folds"],
        "oof_auc": info["oof_auc"],
        "trim_rule": trim if isinstance(trim, str) else f"[{trim[0]}, {trim[1]}]",
        **ov,
        "ess_cs": effective_sample_size(w[cs == 1]),
        "ess_no_cs": effective_sample_size(w[cs == 0]),
        "max_weight": float(w.max()) if len(w) else None,
        "note": info["note"],
    }
    notes = [info["note"]] if info["note"] else []
    if min(diag["ess_cs"], diag["ess_no_cs"]) < 2 * k:
        notes.append(f"effective sample size under {2 * k} in a group: weighted balance and IPTW estimates are unreliable")
    if len(cols) > cs.sum() / 2 or len(cols) > (1 - cs).sum() / 2:
        notes.append(f"{len(cols)} confounders for {int(min(cs.sum(), (1 - cs).sum()))} stays in the smaller group: consider fewer confounders")
    diag["note"] = "; ".join(notes)
    n_out = int((~inside).sum())
    diag["n_outside_overlap"] = str(n_out) if not (0 < n_out < k) else f"<{k}"
    write_json(diag, smk.output.info)
    rows = [{"metric": key, "value": (f"{v:.4g}" if isinstance(v, float) else str(v))} for key, v in diag.items()]
    write_csv(pl.DataFrame(rows), smk.output.diagnostics)
    title = f"Propensity score overlap ({smk.wildcards.database}; OOF AUC {info['oof_auc']:.2f})"
    savefig(overlap_plot(ps, cs, ov, title), smk.output.figure)


run_script(main, snakemake)  # noqa: F821
