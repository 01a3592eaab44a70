"""Per-stay estimated CS benefit of one CATE learner (rule supervised_cate)."""

import logging

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from sepsis_cs import cate
from sepsis_cs.dictionary import load_dictionary
from sepsis_cs.io import read_parquet, run_script, write_parquet

log = logging.getLogger("sepsis_cs")


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
        log.info("propensity: %s; %d stays outside overlap", source, int((~in_overlap).sum()))
        res = cate.estimate_cate(
            smk.wildcards.learner, Z, y, t, ps, in_overlap, groups,
            outcome_learner=cc["outcome_learner"], C=cc["outcome_C"], n_folds=cc["folds"],
            n_boot=cc["n_boot"], seed=seed, clip=cc["overlap_trim"],
        )
    res["benefit_class"] = cate.classify_benefit(res["lo"], res["hi"], in_overlap, cc["delta"])
    out = pl.DataFrame({"stay_id": stay_id, "t": t, "y": y}).with_columns(
        *(pl.Series(c, np.round(res[c].to_numpy(), 6)) for c in ("benefit", "se", "lo", "hi", "pseudo")),
        pl.Series("ps", np.round(ps, 6)),
        pl.Series("in_overlap", in_overlap),
        pl.Series("benefit_class", res["benefit_class"].astype(str).to_numpy()),
    )
    write_parquet(out.sort("stay_id"), smk.output.cate)


run_script(main, snakemake)  # noqa: F821
