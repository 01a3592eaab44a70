"""Held-out CS benefit of one CATE learner, its evaluation scores and per-stay intervals (rule supervised_cate)."""

import logging

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs import cate
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import format_count, read_parquet, run_script, write_parquet
from sepsis_cs.supervised import last_recorded_hour, restrict_to_risk_cohort, risk_cohort

log = logging.getLogger("sepsis_cs")

COLUMNS = ("benefit", "se", "lo", "hi", "gamma", "ps", "ps_eval", "mu0", "mu1", "risk_based")


def main(smk):
    cfg = smk.config
    cc = cfg["supervised"]["cate"]
    seed = int(cfg["seed"])
    feats = read_parquet(smk.input.features)
    available = [c for c in feats.columns if c != "stay_id"]
    spec = cfg["features"] if cc["features"] == "selected" else "all"
    columns = cate.cate_columns(spec, available, smk.input.selected or None)
    cohort = read_parquet(smk.input.cohort)
    if cc["landmark"]:
        # stays alive and in the ICU at the end of the CS window: an untreated stay that died or left before
        # it could not have been treated (immortal time), and would make CS look better than it is
        end_h = float(cfg["cs_window"]["end_h"])
        last = None if "icu_discharge_h" in cohort.columns else last_recorded_hour(smk.input.timeseries)
        risk, info = risk_cohort(cohort, last, end_h)
        cohort = restrict_to_risk_cohort(cohort, risk)
        k = int(cfg["min_cell_count"])
        log.info("landmark at the end of the CS window (%g h; %s): %s of %s stays", end_h, info["landmark_source"],
                 format_count(info["n_risk_cohort"], k), format_count(info["n_stays"], k))
    Z, stay_id, y, t, groups = cate.cate_design(feats, cohort, columns, load_dictionary(smk.input.dictionary), cfg["outcome"])
    log.info("%s: %d stays, %d baseline columns, %d treated", smk.wildcards.learner, len(y), len(columns), int(t.sum()))
    with threadpool_limits(limits=smk.threads):
        if smk.input.propensity:
            ps, in_overlap = cate.load_propensity(smk.input.propensity, stay_id)
            source = "phase 2 propensity.parquet"
        else:
            fold = cate.patient_folds(t, y, groups, cc["folds"], seed)
            ps = cate.crossfit_propensity(Z, t, fold, cc["outcome_C"], seed)
            in_overlap = cate.overlap_mask(ps, cc["overlap_trim"])
            source = "cross-fitted here (no propensity_model rule in the workflow)"
        log.info("overlap region: %s; %d stays outside", source, int((~in_overlap).sum()))
        res = cate.estimate_cate(
            smk.wildcards.learner, Z, y, t, ps, in_overlap, groups,
            outcome_learner=cc["outcome_learner"], C=cc["outcome_C"], n_folds=cc["folds"],
            n_boot=cc["n_boot"], seed=seed, clip=cc["overlap_trim"], level=1 - cc["alpha"],
        )
    log.info("common log odds ratio of CS per training part: %s", ", ".join(f"{v:.3f}" for v in sorted(set(np.round(res["log_or"], 3)))))
    out = pl.DataFrame({"stay_id": stay_id, "t": t, "y": y}).with_columns(
        *(pl.Series(c, np.round(res[c].to_numpy(float), 6)) for c in COLUMNS),
        pl.Series("fold", res["fold"].to_numpy().astype(np.int32)),
        pl.Series("in_overlap", in_overlap),
    )
    write_parquet(out.sort("stay_id"), smk.output.cate)


run_script(main, snakemake)  # noqa: F821
