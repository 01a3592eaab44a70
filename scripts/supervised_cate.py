"""Held-out CS benefit of one CATE learner, its evaluation scores and per-stay intervals (rule supervised_cate)."""

import logging

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs import cate
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, write_parquet

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
    Z, stay_id, y, t, groups = cate.cate_design(feats, read_parquet(smk.input.cohort), columns, load_dictionary(smk.input.dictionary), cfg["outcome"])
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
