"""Headline numbers of the supervised phase (rule supervised_summary).

On simulated databases (and only in this validation step) the estimated benefit of each learner
is compared with the true individual effect of the simulator (``ite``): rank correlation, error,
coverage of the per-stay intervals and of the GATES intervals (true mean ``ite`` of each group).
"""

import polars as pl

from sepsis_cs.io import read_json, read_parquet, run_script, write_json
from sepsis_cs.simulate import BENEFITING_PHENOTYPES
from sepsis_cs.validation import cate_truth_metrics


def main(smk):
    summary = {}
    for part in smk.input.parts:
        summary.update(read_json(part))
    if smk.input.truth:
        truth = read_parquet(smk.input.truth).select(pl.col("stay_id").cast(pl.String), "ite", "phenotype")
        classes = read_parquet(smk.input.classes)
        gates = pl.read_csv(smk.input.gates)
        for learner, path in zip(smk.params.learners, smk.input.cate):
            cls = classes.filter(pl.col("learner") == learner).select("stay_id", "group", "benefit_class")
            m = read_parquet(path).with_columns(pl.col("stay_id").cast(pl.String)).join(truth, on="stay_id", how="inner").join(cls, on="stay_id", how="left")
            g = gates.filter(pl.col("learner") == learner)
            summary.update({f"{k}_{learner}": v for k, v in cate_truth_metrics(m, g).items()})
            if learner == summary.get("primary_learner"):
                benefiting = m["phenotype"].is_in(list(BENEFITING_PHENOTYPES))
                sensitive = m["benefit_class"] == "cs_sensitive"
                summary["truth_benefiting_share_all"] = float(benefiting.mean())
                summary["truth_benefiting_share_cs_sensitive"] = float(benefiting.filter(sensitive).mean()) if sensitive.any() else None
                summary["truth_ate_overlap"] = float(m.filter(pl.col("in_overlap"))["ite"].mean())
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
