"""Held-out evaluation of every CATE learner: RATE, BLP, GATES, c-for-benefit, decision curve,
heterogeneity verdict and group-level benefit classes (rule supervised_cate_evaluate)."""

import logging

import numpy as np
import polars as pl

from sepsis_cs.benefit import evaluate_learners, plot_benefit_evaluation, plot_policy_curve
from sepsis_cs.io import read_parquet, run_script, savefig, write_csv, write_json, write_parquet

log = logging.getLogger("sepsis_cs")


def main(smk):
    cfg = smk.config
    cc = cfg["supervised"]["cate"]
    db = smk.wildcards.database
    cohort = read_parquet(smk.input.cohort)
    patient_of = dict(zip(cohort["stay_id"].cast(pl.String).to_list(), cohort["patient_id"].cast(pl.String).to_list()))
    frames = {lr: read_parquet(p).to_pandas() for lr, p in zip(smk.params.learners, smk.input.cate)}
    lo, hi, step = cc["decision_thresholds"]
    res = evaluate_learners(
        frames, patient_of, n_groups=cc["benefit_bins"], alpha=cc["alpha"], delta=cc["delta"], n_boot=cfg["supervised"]["n_boot"],
        seed=int(cfg["seed"]), thresholds=np.round(np.arange(lo, hi + 1e-9, step), 6), primary=cc["primary_learner"],
        min_cell_count=cfg["min_cell_count"],
    )
    log.info("%s", res["summary"].get("heterogeneity_verdict", "primary learner not run"))
    write_csv(pl.from_pandas(res["table"]).with_columns(pl.selectors.float().round(4)), smk.output.table)
    write_csv(pl.from_pandas(res["gates"]).with_columns(pl.selectors.float().round(4)), smk.output.gates)
    write_csv(pl.from_pandas(res["policy"]).with_columns(pl.selectors.float().round(5)), smk.output.policy)
    write_parquet(pl.from_pandas(res["classes"]).sort("learner", "stay_id"), smk.output.classes)
    savefig(plot_benefit_evaluation(res["curves"], f"CS benefit on {db}, held-out folds (stays in overlap)", cc["alpha"]), smk.output.figure)
    savefig(plot_policy_curve(res["curves"], f"Treating by predicted benefit, {db} (held-out)"), smk.output.decision)
    write_json(res["summary"], smk.output.summary)


run_script(main, snakemake)  # noqa: F821
